"""CallsQueue's messages, both kinds, parsed by one model.

callbridge sends `{"callid": ..., "call_date": ...}` (call_date only for a scheduled call, so the placer can
hold an early message without reading the call). Other AWS services may send a call request instead:
`{"account_id": ..., "params": {<POST /pcall/call parameters>}, "idempotency_key": ...}`, `params` also
accepted flat, next to `account_id`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


class UnreadableMessage(ValueError):
    """A CallsQueue message that is neither kind."""


class CallsQueueMessage(BaseModel):
    """One CallsQueue message: a call to place (`callid`) or a call request from another service (`account_id`)."""

    model_config = ConfigDict(extra="allow", frozen=True, coerce_numbers_to_str=True)

    callid: str | None = None
    call_date: str | None = None
    account_id: str | None = None
    params: dict[str, Any] | None = None
    idempotency_key: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CallsQueueMessage:
        if self.account_id is None and not self.callid:
            raise ValueError("a CallsQueue message names a callid or an account_id")
        return self

    @property
    def is_request(self) -> bool:
        """A call request from another service, rather than a call callbridge already accepted."""
        return self.account_id is not None

    def request_params(self) -> dict[str, Any]:
        """The POST /pcall/call parameters of a call request (nested under `params`, or flat)."""
        if self.params is not None:
            return dict(self.params)
        return dict(self.model_extra or {})

    @classmethod
    def parse(cls, body: str) -> CallsQueueMessage:
        """The message in an SQS body; UnreadableMessage if it is not JSON or neither kind."""
        try:
            return cls.model_validate_json(body)
        except ValidationError as exc:
            raise UnreadableMessage(str(exc)) from exc

    @classmethod
    def for_call(cls, callid: str, call_date: str | None = None) -> str:
        """The body callbridge sends for an accepted call."""
        message = cls(callid=callid, call_date=call_date)
        return json.dumps(message.model_dump(include={"callid", "call_date"}, exclude_none=True))
