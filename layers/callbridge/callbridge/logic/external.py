"""Use case: a call request dropped on CallsQueue by another AWS service.

The message (domain/messages.py) is `{"account_id": ..., "params": {<POST /pcall/call parameters>},
"idempotency_key": ...}` (`params` may also be given flat, next to `account_id`). It is validated by the
same model as the API; an invalid one is stored as a FAILED call with the reason, so it is listed and notified like
any other outcome instead of being retried forever.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from callbridge.domain import events
from callbridge.domain.calls import Call, CallStatus, TimelineEvent, iso, new_callid
from callbridge.domain.errors import Conflict, InvalidRequest
from callbridge.domain.messages import CallsQueueMessage
from callbridge.logic.intake import Accepted, Intake, accept_call


class UnknownAccount(Exception):
    """The message names no known, enabled account: nothing can be stored for it."""


def accept_external(message: CallsQueueMessage, intake: Intake, *, now: datetime) -> Accepted:
    """Accept an external call request like POST /pcall/call (a replayed idempotency_key stores nothing); an invalid
    one becomes a FAILED call (its `data` has code 400)."""
    account_id = message.account_id or ""
    account = intake.accounts.get_account(account_id) if account_id else None
    if account is None or not account.enabled:
        raise UnknownAccount(account_id)
    params = message.request_params()
    key = message.idempotency_key
    try:
        return accept_call(params, account, intake, now=now, idempotency_key=str(key) if key else None, source="sqs")
    except (InvalidRequest, Conflict) as exc:
        at = iso(now)
        call = Call(
            callid=new_callid(now.timestamp()),
            account_id=account.api_key,
            status=CallStatus.FAILED,
            created_at=at,
            updated_at=at,
            ended_at=at,
            request={str(k): json.dumps(v) if isinstance(v, Mapping | list) else str(v) for k, v in params.items()},
            error_code="invalid_request",
            error_desc=str(exc),
            source="sqs",
            timeline=[TimelineEvent(at=at, event=events.REJECTED, detail={"reason": str(exc)})],
        )
        intake.calls.create(call)
        return Accepted({"code": 400, "code_desc": str(exc), "callid": call.callid})
