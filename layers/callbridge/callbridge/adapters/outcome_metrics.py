"""The outcome metrics (CloudWatch, through Powertools Metrics): each call that ended after it was dialed counts
once, under its final status.

The function whose write ended the call counts it, and only that write: the webhooks function (the carrier's
final status callback), the scheduler (reconciliation), the api (a hang-up) and the placer (the carrier refused the
request). The store tells each of them whether its write is the one that ended the call (`domain.changes.ends`,
`logic.updates.update`), so a repeated or late callback, or one about a call already ended another way, counts
nothing. A call that ended before it was dialed (cancelled, held back at its claim, dead-lettered) is not counted
here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit

from callbridge.domain.calls import Call, CallStatus

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

_BY_STATUS = {
    CallStatus.COMPLETED: "CallsCompleted",
    CallStatus.BUSY: "CallsBusy",
    CallStatus.NO_ANSWER: "CallsNoAnswer",
    CallStatus.FAILED: "CallsFailed",
    CallStatus.CANCELED: "CallsCanceled",
}
# Who answered a completed call (answered_by); a completed call is answered, by a person unless detected otherwise.
_ANSWERED_BY = {"Machine": "CallsAnsweredByMachine", "Person": "CallsAnsweredByPerson"}


def count_ended(metrics: Metrics, call: Call) -> None:
    """Count `call`, which the caller's write just ended after it was dialed, by its outcome."""
    metrics.add_metric(name=_BY_STATUS[call.status], unit=MetricUnit.Count, value=1)
    if call.status is CallStatus.COMPLETED:
        answered = _ANSWERED_BY.get(call.answered_by, "CallsAnsweredByPerson")
        metrics.add_metric(name=answered, unit=MetricUnit.Count, value=1)
