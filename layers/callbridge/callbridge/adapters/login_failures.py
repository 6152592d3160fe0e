"""Failed-login counters in LoginFailuresTable: one item per subject and window, expiring by TTL.

A read is one BatchGetItem for every subject of a login; a failure is one UpdateItem (an atomic ADD) per
subject. Items name their window, so an item TTL has not deleted yet is simply never read again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from callbridge.adapters.aws import LazyClient, aws_errors


class DynamoLoginFailures:
    """The LoginFailureCounter port over a DynamoDB table with a string `pk` and TTL on `expires_at`."""

    def __init__(self, table_name: str, *, dynamodb: Any = None) -> None:
        self._table = table_name
        self._db = LazyClient("dynamodb", dynamodb)

    @staticmethod
    def _pk(subject: str, window: int) -> str:
        return f"{subject}#{window}"

    def counts(self, subjects: Sequence[str], window: int) -> dict[str, int]:
        by_pk = {self._pk(s, window): s for s in subjects}
        with aws_errors("login failures table"):
            response = self._db().batch_get_item(
                RequestItems={
                    self._table: {
                        "Keys": [{"pk": {"S": pk}} for pk in by_pk],
                        "ProjectionExpression": "pk, failures",
                    }
                }
            )
        found = dict.fromkeys(subjects, 0)
        for item in response.get("Responses", {}).get(self._table, []):
            found[by_pk[item["pk"]["S"]]] = int(item.get("failures", {}).get("N", "0"))
        return found  # keys DynamoDB left unprocessed count as 0: the limit is a cost control, not a lock

    def add_failure(self, subjects: Sequence[str], window: int, expires_at: int) -> dict[str, int]:
        totals: dict[str, int] = {}
        for subject in subjects:
            with aws_errors("login failures table"):
                response = self._db().update_item(
                    TableName=self._table,
                    Key={"pk": {"S": self._pk(subject, window)}},
                    UpdateExpression="ADD failures :one SET expires_at = :expires",
                    ExpressionAttributeValues={":one": {"N": "1"}, ":expires": {"N": str(expires_at)}},
                    ReturnValues="UPDATED_NEW",
                )
            totals[subject] = int(response["Attributes"]["failures"]["N"])
        return totals
