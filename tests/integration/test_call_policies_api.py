"""Call policies over the API and the placer (moto): metadata round trip, retry parameters kept, a call outside its
calling window held SCHEDULED (account defaults, the request wins), a suppressed number cancelled at the claim, and
DELETE /pcall/calls/{callid} for a call not dialed yet, at the carrier, and already final."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import ModuleType
from typing import Any

import httpx
from callbridge.adapters.dynamodb.accounts import DynamoAccountsStore
from callbridge.domain.calls import Call, CallStatus, iso
from callbridge.domain.notifications import payload
from callbridge.domain.placing import claim
from callbridge.domain.progress import apply_status_callback

from tests.conftest import AccountCredentials, ApiClient
from tests.integration.conftest import Clock, queued, stored_call
from tests.integration.fakes import (
    ACCOUNT_SID,
    FakeTwilio,
    calls_store,
    invoke_placer,
    place_now,
    receive,
    sqs_event,
    stored,
)

PLAY = {"to": "12812345670", "answer_play": "https://example.com/a.wav"}
OUTCOME = ("answered_by", "started_at", "answered_at", "ended_at", "error_code", "error_desc")


def test_metadata_round_trips_in_json_and_form_bodies(api: ApiClient, clock: Clock) -> None:
    metadata = {"order": "A-17", "customer": "Zoë"}
    accepted = api.post_call(PLAY | {"metadata": metadata}, content_type="application/json")
    assert accepted.status == 200, accepted.body
    assert accepted.data["metadata"] == metadata
    callid = accepted.data["callid"]
    assert api.get(f"/pcall/calls/{callid}").data["call"]["metadata"] == metadata
    listed = api.get("/pcall/calls").data["calls"]
    assert [c["metadata"] for c in listed if c["callid"] == callid] == [metadata]

    form = api.post_call(PLAY | {"metadata": json.dumps(metadata)})
    assert form.status == 200, form.body
    assert form.data["metadata"] == metadata

    refused = api.post_call(PLAY | {"metadata": {"n": 1}}, content_type="application/json")
    assert refused.status == 400
    assert [e["field"] for e in refused.data["errors"]] == ["metadata"]


def test_retry_parameters_are_echoed_and_kept(api: ApiClient, aws: Any, clock: Clock) -> None:
    params = PLAY | {"retry_attempts": "3", "retry_interval": "120", "retry_on": "busy,failed"}
    accepted = api.post_call(params)
    assert accepted.status == 200, accepted.body
    assert (accepted.data["retry_attempts"], accepted.data["retry_on"]) == ("3", "busy,failed")
    policy = stored_call(aws, accepted.data["callid"])["policy"]
    assert (policy["retry_attempts"], policy["retry_interval"], policy["retry_on"]) == (3, 120, "BUSY,FAILED")
    problems = api.post_call(PLAY | {"retry_attempts": "11", "retry_interval": "10", "retry_on": "SOMETIMES"})
    assert {e["field"] for e in problems.data["errors"]} == {"retry_attempts", "retry_interval", "retry_on"}


def test_a_call_outside_its_window_waits_for_the_opening(api: ApiClient, aws: Any, clock: Clock) -> None:
    # now: Sunday 2027-01-10 12:00:30 UTC; the window opens at 13:00 UTC on weekdays
    params = PLAY | {"call_window": "13:00-14:00", "call_days": "MON-FRI", "recipient_timezone": "UTC"}
    accepted = api.post_call(params)
    assert accepted.status == 200, accepted.body
    callid = accepted.data["callid"]
    call = api.get(f"/pcall/calls/{callid}").data["call"]
    assert (call["status"], call["next_attempt_at"]) == ("SCHEDULED", "2027-01-11T13:00:00.000Z")
    assert call["attempts"] == []
    assert [c["callid"] for c in api.get("/pcall/scheduled").data["calls"]] == [callid]
    assert queued(aws) == []  # the scheduler sends it at the opening
    # open now: queued at once
    open_now = api.post_call(PLAY | {"call_window": "12:00-13:00", "recipient_timezone": "UTC"})
    assert stored_call(aws, open_now.data["callid"])["status"] == "QUEUED"
    # it can be cancelled like any scheduled call
    assert api.delete(f"/pcall/scheduled/{callid}").data["status"] == "CANCELED"


def test_account_defaults_hold_calls_and_the_request_wins(
    api: ApiClient, aws: Any, account: AccountCredentials, clock: Clock
) -> None:
    store = DynamoAccountsStore(aws.refs["AccountsTable"])
    store.put_account(account.account.model_copy(update={"call_window": "20:00-21:00", "recipient_timezone": "UTC"}))
    held = api.post_call(PLAY)
    assert stored_call(aws, held.data["callid"])["next_attempt_at"] == "2027-01-10T20:00:00.000Z"
    overridden = api.post_call(PLAY | {"call_window": "12:00-13:00"})
    assert stored_call(aws, overridden.data["callid"])["status"] == "QUEUED"


def test_a_number_suppressed_after_acceptance_is_cancelled_at_the_claim(
    api: ApiClient, aws: Any, clock: Clock, placer_module: ModuleType, twilio: FakeTwilio
) -> None:
    callid = api.post_call(PLAY | {"callback_url": "https://example.com/outcome"}).data["callid"]
    assert api.request("PUT", "/pcall/suppressions/12812345670", body=None, content_type=None).status == 200

    invoke_placer(placer_module, sqs_event(aws, receive(aws)))

    call = api.get(f"/pcall/calls/{callid}").data["call"]
    assert (call["status"], call["error_code"]) == ("CANCELED", "suppressed")
    assert twilio.creates == []


def test_hang_up_a_call_not_dialed_yet(
    api: ApiClient, other_api: ApiClient, aws: Any, clock: Clock, placer_module: ModuleType, twilio: FakeTwilio
) -> None:
    callid = api.post_call(PLAY).data["callid"]
    assert other_api.delete(f"/pcall/calls/{callid}").status == 404
    assert api.delete("/pcall/calls/0123456789abcdef0123456789a").status == 404

    ended = api.delete(f"/pcall/calls/{callid}")
    assert ended.status == 200, ended.body
    assert ended.data["call"]["status"] == "CANCELED"
    again = api.delete(f"/pcall/calls/{callid}")
    assert again.status == 409
    # its message is still on the queue: the placer finds it cancelled and never dials it
    invoke_placer(placer_module, sqs_event(aws, receive(aws)))
    assert twilio.creates == []
    assert stored_call(aws, callid)["status"] == "CANCELED"


def _carrier_answer(status: str, duration: str | None) -> Callable[[httpx.Request], httpx.Response]:
    """Twilio's answer to `POST /Calls/{sid}.json`: the call, ended."""

    def answer(request: httpx.Request) -> httpx.Response:
        sid = request.url.path.rsplit("/", 1)[1].removesuffix(".json")
        resource = {"sid": sid, "account_sid": ACCOUNT_SID, "status": status, "duration": duration}
        return httpx.Response(200, json=resource)

    return answer


def test_hang_up_at_the_carrier(
    api: ApiClient, api_module: ModuleType, aws: Any, clock: Clock, twilio: FakeTwilio, carrier_secret: Any
) -> None:
    api_module.deps().carrier = twilio.client()
    ringing = place_now(aws, twilio, api.post_call(PLAY).data["callid"])
    live = place_now(aws, twilio, api.post_call(PLAY | {"retry_attempts": "2", "retry_on": "MACHINE"}).data["callid"])

    twilio.update_answers += [_carrier_answer("canceled", "0"), _carrier_answer("completed", "12")]
    canceled = api.delete(f"/pcall/calls/{ringing.callid}")
    completed = api.delete(f"/pcall/calls/{live.callid}")

    assert canceled.status == 200, canceled.body
    assert canceled.data["call"]["status"] == "CANCELED"
    assert completed.status == 200, completed.body
    assert (completed.data["call"]["status"], completed.data["call"]["billed_seconds"]) == ("COMPLETED", 12)
    updates = [r for r in twilio.requests if r.method == "POST" and r.path.endswith(f"{live.carrier_call_id}.json")]
    assert [r.form for r in updates] == [[("Status", "completed")]]
    assert api.delete(f"/pcall/calls/{live.callid}").status == 409


def _status_callback(aws: Any, call: Call, status: str, at: datetime, **extra: str) -> None:
    """The carrier's status callback of the call's first attempt, applied as the webhooks apply it."""
    params = {"CallSid": call.carrier_call_id or "", "CallStatus": status, "Timestamp": format_datetime(at), **extra}
    calls_store(aws).update(call.callid, lambda c: apply_status_callback(c, params, iso(at), 1))


def _waiting_for_its_second_attempt(api: ApiClient, aws: Any, twilio: FakeTwilio) -> Call:
    """A call whose first attempt was dialed and ended busy: RETRY_WAIT, as stored."""
    params = PLAY | {"retry_attempts": "2", "callback_url": "https://example.com/outcome"}
    placed = place_now(aws, twilio, api.post_call(params).data["callid"])
    at = datetime.now(UTC).replace(microsecond=0)
    _status_callback(aws, placed, "initiated", at)
    _status_callback(aws, placed, "busy", at + timedelta(seconds=3), SipResponseCode="486", CallDuration="0")
    waiting = stored(aws, placed.callid)
    assert waiting.status is CallStatus.RETRY_WAIT
    return waiting


def test_a_call_cancelled_between_attempts_shows_its_last_attempts_outcome_everywhere(
    api: ApiClient, api_module: ModuleType, aws: Any, clock: Clock, twilio: FakeTwilio
) -> None:
    api_module.deps().carrier = twilio.client()
    by_call = _waiting_for_its_second_attempt(api, aws, twilio)
    by_scheduled = _waiting_for_its_second_attempt(api, aws, twilio)
    (first,) = by_call.public(with_timeline=False)["attempts"]
    assert (first["error_code"], bool(first["started_at"]), bool(first["ended_at"])) == ("SIP 486", True, True)

    answer = api.delete(f"/pcall/calls/{by_call.callid}")
    assert api.delete(f"/pcall/scheduled/{by_scheduled.callid}").data["status"] == "CANCELED"

    assert answer.status == 200, answer.body
    listed = {c["callid"]: c for c in api.get("/pcall/calls").data["calls"]}
    for call in (by_call, by_scheduled):
        (attempt,) = call.public(with_timeline=False)["attempts"]
        shown = api.get(f"/pcall/calls/{call.callid}").data["call"]
        for view in (shown, listed[call.callid], *([answer.data["call"]] if call is by_call else [])):
            assert (view["status"], view["next_attempt_at"]) == ("CANCELED", None)
            assert view["attempts"] == [attempt]
            # no code of its own: its outcome is its last attempt's, whole
            assert {f: view[f] for f in OUTCOME} == {f: attempt[f] for f in OUTCOME}
        body = payload(stored(aws, call.callid))  # what its outcome callback carries
        assert (body["status"], body["attempts"]) == ("CANCELED", "1")
        assert {f: body[f] for f in OUTCOME} == {f: attempt[f] or "" for f in OUTCOME}


def test_next_attempt_at_is_empty_from_the_claim_of_the_attempt_it_announced(
    api: ApiClient, aws: Any, clock: Clock, twilio: FakeTwilio
) -> None:
    waiting = _waiting_for_its_second_attempt(api, aws, twilio)
    due = waiting.next_attempt_at
    assert due
    assert api.get(f"/pcall/calls/{waiting.callid}").data["call"]["next_attempt_at"] == due
    store = calls_store(aws)
    store.update(waiting.callid, lambda c: c.model_copy(update={"dispatched_at": due}))  # its message sent, as due

    applied, _ = store.apply(waiting.callid, claim(due, "tok", hold_until=due))  # the placer's claim, as it writes it

    assert applied
    shown = api.get(f"/pcall/calls/{waiting.callid}").data["call"]
    assert (shown["status"], shown["next_attempt_at"]) == ("DIALING", None)
    assert [a["attempt"] for a in shown["attempts"]] == [1, 2]
