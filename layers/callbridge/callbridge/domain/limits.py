"""Limits of the AWS services callbridge runs on, which its rules are built around."""

from __future__ import annotations

MAX_DELAY_SECONDS = 900  # SQS's longest DelaySeconds (a message, or a queue's delay)
LAMBDA_PAYLOAD_BYTES = 6_291_556  # a synchronous invocation's event, and its answer, as JSON (Lambda's "6 MB")
