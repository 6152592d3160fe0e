"""Outcome callbacks, the pure parts: which changes notify, the payload, the signature (checked by an
independent implementation), the retry schedule and the notifier's decisions with in-memory fakes."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, parse_qsl

import pytest
from callbridge.domain import events
from callbridge.domain.accounts import Account
from callbridge.domain.calls import Call, CallStatus, TimelineEvent
from callbridge.domain.changes import Change
from callbridge.domain.changes import apply as apply_change
from callbridge.domain.errors import ServiceUnavailable
from callbridge.domain.limits import MAX_DELAY_SECONDS
from callbridge.domain.notifications import (
    EVENT_ID_HEADER,
    PAYLOAD_FIELDS,
    RETRY_FOR_SECONDS,
    SIGNATURE_HEADER,
    BadRetryMessage,
    DeliveryFailed,
    Retry,
    event_id,
    form_body,
    gives_up,
    is_final_transition,
    payload,
    retry_delay,
    signature_header,
    was_delivered,
)
from callbridge.logic.notify import Notifier, Result
from callbridge.ports import CallsStore
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.disable_socket

SECRET = "whsec_test-secret-0123456789"
CALLBACK = "https://hooks.example.com/outcome.php?src=callbridge"
SPEC_FIELDS = {
    "callid",
    "status",
    "answered_by",
    "billed_seconds",
    "from",
    "to",
    "call_date",
    "started_at",
    "answered_at",
    "ended_at",
    "recording_url",
    "digits",
    "error_code",
    "error_desc",
    "event_id",
}


def make_call(status: CallStatus = CallStatus.COMPLETED, *, callback: str | None = CALLBACK, **update: Any) -> Call:
    request = {"to": "+12812345670", "from": "+12815550100", "answer_play": "http://example.com/a.wav"}
    if callback is not None:
        request["callback_url"] = callback
    call = Call(
        callid="18c2f0a1b2c3d4e5f60718293a",
        account_id="cb_account",
        status=status,
        created_at="2027-01-10T12:00:30.000Z",
        updated_at="2027-01-10T12:01:30.000Z",
        request=request,
        accepted={"to": "12812345670", "from": "12815550100", "answer_play": "http://example.com/a.wav"},
    )
    return call.model_copy(update=update)


def completed() -> Call:
    return make_call(
        answered_by="Machine",
        billed_seconds=27,
        call_date="2027-01-10T12:01:00.000Z",
        started_at="2027-01-10T12:01:00.120Z",
        answered_at="2027-01-10T12:01:04.500Z",
        ended_at="2027-01-10T12:01:31.250Z",
        recording_url="https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1",
        digits="12",
    )


# --- which changes notify


def test_only_the_move_into_a_final_state_with_a_callback_notifies() -> None:
    queued, ringing = make_call(CallStatus.QUEUED), make_call(CallStatus.RINGING)
    for final in (CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED, CallStatus.CANCELED):
        done = make_call(final)
        assert is_final_transition(ringing, done)
        assert is_final_transition(None, done)  # created final (an invalid external request)
        assert not is_final_transition(done, done.with_event("2027-01-10T12:05:00.000Z", "carrier.recording"))
        assert not is_final_transition(make_call(final, callback=None), make_call(final, callback=None))
        assert not is_final_transition(ringing, make_call(final, callback=None))
    assert not is_final_transition(queued, ringing)
    assert not is_final_transition(None, queued)


def test_event_id_is_stable_per_call_and_differs_between_calls() -> None:
    call = completed()
    later = call.with_event("2027-01-10T13:00:00.000Z", events.CALLBACK, attempt=2).model_copy(
        update={"recording_url": "https://late.example/r.wav"}
    )

    assert event_id(call) == event_id(later) == f"{call.callid}.COMPLETED"
    assert event_id(call) != event_id(call.model_copy(update={"callid": "18c2f0a1b2c3d4e5f60718293b"}))


# --- the payload


def test_payload_carries_every_field_of_the_outcome_as_strings() -> None:
    fields = payload(completed())

    assert set(fields) >= SPEC_FIELDS
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["callid"] == "18c2f0a1b2c3d4e5f60718293a"
    assert fields["event_id"] == "18c2f0a1b2c3d4e5f60718293a.COMPLETED"
    assert fields["status"] == "COMPLETED"
    assert fields["answered_by"] == "Machine"
    assert fields["billed_seconds"] == "27"
    assert fields["from"] == "12815550100"
    assert fields["to"] == "12812345670"
    assert fields["call_date"] == "2027-01-10T12:01:00.000Z"
    assert fields["answered_at"] == "2027-01-10T12:01:04.500Z"
    assert fields["ended_at"] == "2027-01-10T12:01:31.250Z"
    assert fields["recording_url"] == "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"
    assert fields["digits"] == "12"


def test_unknown_values_are_empty_not_none() -> None:
    fields = payload(make_call(CallStatus.NO_ANSWER, error_code="SIP 487", error_desc="nobody answered"))

    assert fields["answered_by"] == ""
    assert fields["answered_at"] == ""
    assert fields["recording_url"] == ""
    assert fields["call_date"] == ""
    assert fields["billed_seconds"] == "0"
    assert fields["error_code"] == "SIP 487"
    assert "None" not in fields.values()


def test_form_body_is_what_php_reads_as_post() -> None:
    call = completed().model_copy(update={"error_desc": "a & b = 100% ünïcode +1"})

    body = form_body(payload(call))

    assert dict(parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)) == payload(call)
    assert all(len(v) == 1 for v in parse_qs(body.decode(), keep_blank_values=True).values())


# --- the signature, checked by an independent implementation


def verify(secret: str, header: str, body: bytes, now: float, tolerance: int = 300) -> bool:
    """What a receiver does, written from the README alone."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = parts["t"]
    expected = hmac.new(secret.encode("utf-8"), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(now - int(timestamp)) <= tolerance


@settings(deadline=None)
@given(body=st.binary(max_size=2000), timestamp=st.integers(min_value=1_600_000_000, max_value=4_000_000_000))
def test_signature_verifies_with_an_independent_implementation(body: bytes, timestamp: int) -> None:
    header = signature_header(SECRET, timestamp, body)

    assert header.startswith(f"t={timestamp},v1=")
    assert verify(SECRET, header, body, now=timestamp)
    assert not verify(SECRET + "x", header, body, now=timestamp)
    assert not verify(SECRET, header, body + b"&x=1", now=timestamp)
    assert not verify(SECRET, header, body, now=timestamp + 3600)  # a replay an hour later


def test_signature_known_vector() -> None:
    # printf '1700000000.a=1&b=2' | openssl dgst -sha256 -hmac 'whsec_test-secret-0123456789'
    assert signature_header(SECRET, 1700000000, b"a=1&b=2") == (
        "t=1700000000,v1=dc3a61ccd5660e3e42771d308380f32b8db41784154a5d584f65da093d993b17"
    )


# --- the retry schedule


@settings(deadline=None)
@given(attempt=st.integers(min_value=1, max_value=500), share=st.floats(min_value=0, max_value=1))
def test_delay_is_within_half_and_all_of_an_exponential_ceiling(attempt: int, share: float) -> None:
    ceiling = min(MAX_DELAY_SECONDS, 30 * 2 ** min(attempt - 1, 20))

    delay = retry_delay(attempt, lambda: share)

    assert ceiling / 2 - 1 <= delay <= ceiling
    assert 1 <= delay <= MAX_DELAY_SECONDS


def test_delays_grow_until_sqs_maximum() -> None:
    lowest = [retry_delay(n, lambda: 0.0) for n in range(1, 9)]
    highest = [retry_delay(n, lambda: 1.0) for n in range(1, 9)]

    assert highest == [30, 60, 120, 240, 480, 900, 900, 900]
    assert lowest == [15, 30, 60, 120, 240, 450, 450, 450]
    assert all(b >= a for a, b in itertools.pairwise(lowest))


def test_delays_are_jittered() -> None:
    import random

    rng = random.Random(7)
    delays = {retry_delay(4, rng.random) for _ in range(50)}

    assert len(delays) > 10
    assert min(delays) >= 120
    assert max(delays) <= 240


def test_retries_last_at_least_24_hours() -> None:
    first = 1_800_000_000.0

    assert not gives_up(first, first)
    assert not gives_up(first, first + RETRY_FOR_SECONDS - 1)
    assert gives_up(first, first + RETRY_FOR_SECONDS)
    # The whole schedule, at its fastest, still spans 24 hours before giving up.
    at, attempt = first, 1
    while not gives_up(first, at):
        at += retry_delay(attempt, lambda: 0.0)
        attempt += 1
    assert at - first >= RETRY_FOR_SECONDS
    assert attempt > 100


def test_retry_message_round_trips_and_rejects_strangers() -> None:
    retry = Retry("18c2f0a1b2c3d4e5f60718293a", "18c2f0a1b2c3d4e5f60718293a.BUSY", 3, 1_800_000_000.5)

    assert Retry.from_message(retry.to_message()) == retry
    for body in [
        "",
        "[]",
        "{}",
        '{"callid": "x"}',
        '{"callid":"x","event_id":"x.BUSY","attempt":0,"first_attempt_at":1}',
    ]:
        with pytest.raises(BadRetryMessage):
            Retry.from_message(body)


# --- the notifier's decisions, with fakes


class FakeCalls:
    def __init__(self, *calls: Call) -> None:
        self.calls = {c.callid: c for c in calls}
        self.fail_updates = False

    def get(self, callid: str) -> Call | None:
        return self.calls.get(callid)

    def update(self, callid: str, change: Callable[[Call], Call | None], attempts: int = 8) -> Call | None:
        if self.fail_updates:
            raise ServiceUnavailable("storage unavailable")
        current = self.calls.get(callid)
        if current is None:
            return None
        self.calls[callid] = change(current) or current
        return self.calls[callid]

    def apply(self, callid: str, change: Change) -> tuple[bool, Call | None]:
        if self.fail_updates:
            raise ServiceUnavailable("storage unavailable")
        current = self.calls.get(callid)
        if current is None:
            return False, None
        held, after = apply_change(current, change)
        self.calls[callid] = after or current
        return held, self.calls[callid]

    def attempts(self, callid: str) -> list[TimelineEvent]:
        return [e for e in self.calls[callid].timeline if e.event == events.CALLBACK]


class FakeAccounts:
    def __init__(self) -> None:
        self.lookups = 0
        self.accounts = {
            "cb_account": Account(api_key="cb_account", password_hash="x", caller_id="1", webhook_secret=SECRET)
        }

    def get_account(self, api_key: str) -> Account | None:
        self.lookups += 1
        return self.accounts.get(api_key)


class FakeSender:
    def __init__(self, *answers: int | DeliveryFailed) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.sent.append((url, body, dict(headers)))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, DeliveryFailed):
            raise answer
        return answer


class FakeQueue:
    def __init__(self) -> None:
        self.scheduled: list[tuple[Retry, int]] = []
        self.dead: list[tuple[Retry, str]] = []
        self.down = False

    def schedule(self, retry: Retry, delay_seconds: int) -> None:
        if self.down:
            raise ServiceUnavailable("queue unavailable")
        self.scheduled.append((retry, delay_seconds))

    def dead_letter(self, retry: Retry, reason: str) -> None:
        self.dead.append((retry, reason))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def as_store(calls: FakeCalls) -> CallsStore:
    """The fake as the calls store the Notifier takes (it only gets, applies and updates calls, as FakeCalls does)."""
    return cast(CallsStore, calls)


def notifier(sender: FakeSender, calls: FakeCalls, queue: FakeQueue | None = None) -> tuple[Notifier, FakeQueue, Clock]:
    clock, queue = Clock(), queue or FakeQueue()
    return Notifier(as_store(calls), FakeAccounts(), sender, queue, now=clock, rng=lambda: 1.0), queue, clock


def test_a_delivered_notification_is_signed_recorded_and_not_retried() -> None:
    call = completed()
    calls, sender = FakeCalls(call), FakeSender(204)
    notify, queue, clock = notifier(sender, calls)

    assert notify.on_change(make_call(CallStatus.IN_PROGRESS), call) is Result.DELIVERED

    ((url, body, headers),) = sender.sent
    assert url == CALLBACK
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers[EVENT_ID_HEADER] == event_id(call)
    assert verify(SECRET, headers[SIGNATURE_HEADER], body, now=clock.now)
    assert dict(parse_qsl(body.decode(), keep_blank_values=True)) == payload(call)
    assert queue.scheduled == []
    assert queue.dead == []
    (attempt,) = calls.attempts(call.callid)
    assert attempt.detail == {"event_id": event_id(call), "attempt": 1, "status_code": 204, "result": "delivered"}
    assert was_delivered(calls.calls[call.callid], event_id(call))


@pytest.mark.parametrize("answer", [199, 300, 301, 302, 303, 304, 307, 308, 400, 404, 500, 503])
def test_any_answer_outside_2xx_is_a_failed_delivery_retried_later(answer: int) -> None:
    # a redirect is not followed (the target could be anywhere) and not taken for a delivery
    call = completed()
    calls = FakeCalls(call)
    notify, queue, _clock = notifier(FakeSender(answer), calls)

    assert notify.on_change(None, call) is Result.RETRY

    ((retry, _delay),) = queue.scheduled
    assert retry.attempt == 2
    assert not was_delivered(calls.calls[call.callid], event_id(call))


@pytest.mark.parametrize("answer", [200, 201, 202, 204, 299])
def test_any_2xx_answer_is_a_delivery(answer: int) -> None:
    call = completed()
    calls = FakeCalls(call)
    notify, queue, _clock = notifier(FakeSender(answer), calls)

    assert notify.on_change(None, call) is Result.DELIVERED
    assert queue.scheduled == []


def test_a_failed_first_attempt_leaves_for_the_queue_with_a_delay() -> None:
    call = completed()
    calls = FakeCalls(call)
    notify, queue, clock = notifier(FakeSender(DeliveryFailed("timed out after 10 s")), calls)

    assert notify.on_change(None, call) is Result.RETRY

    ((retry, delay),) = queue.scheduled
    assert retry == Retry(call.callid, event_id(call), attempt=2, first_attempt_at=clock.now)
    assert delay == 30
    (attempt,) = calls.attempts(call.callid)
    assert attempt.detail["error"] == "timed out after 10 s"
    assert attempt.detail["retry_in"] == 30


def test_retries_grow_then_end_in_the_dead_letter_queue_after_24_hours() -> None:
    call = completed()
    calls = FakeCalls(call)
    notify, queue, clock = notifier(FakeSender(500), calls)
    notify.on_change(None, call)
    first = clock.now

    while not queue.dead:
        retry, delay = queue.scheduled[-1]
        clock.now += delay
        notify.on_retry(retry)

    delays = [d for _, d in queue.scheduled]
    assert delays[:6] == [30, 60, 120, 240, 480, 900]
    assert set(delays[5:]) == {900}
    assert clock.now - first >= RETRY_FOR_SECONDS
    ((retry, reason),) = queue.dead
    assert retry.event_id == event_id(call)
    assert retry.first_attempt_at == first
    assert "HTTP 500" in reason
    attempts = calls.attempts(call.callid)
    assert [a.detail["attempt"] for a in attempts] == list(range(1, len(delays) + 2))
    assert all(a.detail["status_code"] == 500 for a in attempts)
    assert attempts[-1].detail["result"] == "dead_letter"


def test_a_retry_of_a_delivered_notification_sends_nothing() -> None:
    call = completed()
    calls, sender = FakeCalls(call), FakeSender(200)
    notify, _queue, _clock = notifier(sender, calls)
    notify.on_change(None, call)

    assert notify.on_retry(Retry(call.callid, event_id(call), 2, 0.0)) is Result.DUPLICATE
    assert notify.on_retry(Retry("unknown", "unknown.COMPLETED", 2, 0.0)) is Result.IGNORED
    assert len(sender.sent) == 1


def test_a_url_that_can_never_be_valid_is_not_retried() -> None:
    call = completed()
    calls, queue = FakeCalls(call), FakeQueue()
    notify, _queue, _clock = notifier(FakeSender(DeliveryFailed("refused", permanent=True)), calls, queue)

    assert notify.on_change(None, call) is Result.REFUSED
    assert queue.scheduled == []
    assert queue.dead == []
    assert calls.attempts(call.callid)[0].detail["result"] == "refused"


def test_when_the_retry_cannot_be_queued_the_change_fails_so_it_is_retried() -> None:
    call = completed()
    calls, queue, sender = FakeCalls(call), FakeQueue(), FakeSender(503)
    queue.down = True
    notify, _queue, _clock = notifier(sender, calls, queue)

    with pytest.raises(ServiceUnavailable):
        notify.on_change(None, call)
    assert [a.detail["result"] for a in calls.attempts(call.callid)] == ["not_queued"]

    # The stream hands the record over again once the queue is back: the attempt is made again.
    queue.down = False
    assert notify.on_change(None, call) is Result.RETRY
    assert len(sender.sent) == 2
    assert len(queue.scheduled) == 1


def test_a_change_that_cannot_be_processed_is_parked_not_lost_nor_retried_forever() -> None:
    call = completed()

    class Broken(FakeCalls):
        def get(self, callid: str) -> Call | None:
            raise ValueError("an item this code cannot read")

    queue, sender = FakeQueue(), FakeSender(200)
    notify, _queue, _clock = notifier(sender, Broken(call), queue)

    assert notify.on_change(None, call) is Result.DEAD_LETTER
    ((retry, reason),) = queue.dead
    assert retry.event_id == event_id(call)
    assert "ValueError: an item this code cannot read" in reason
    assert sender.sent == []


@pytest.mark.parametrize(("answer", "first"), [(200, Result.DELIVERED), (500, Result.RETRY)])
def test_a_stream_record_handed_over_again_starts_nothing_new(answer: int, first: Result) -> None:
    call = completed()
    calls, sender = FakeCalls(call), FakeSender(answer)
    notify, queue, _clock = notifier(sender, calls)

    assert notify.on_change(None, call) is first
    assert notify.on_change(None, call) is Result.DUPLICATE

    assert len(sender.sent) == 1
    assert len(queue.scheduled) == (1 if first is Result.RETRY else 0)


def test_a_timeline_write_failure_does_not_stop_delivery_or_retry() -> None:
    call = completed()
    calls = FakeCalls(call)
    calls.fail_updates = True
    notify, queue, _clock = notifier(FakeSender(500), calls)

    assert notify.on_change(None, call) is Result.RETRY
    assert len(queue.scheduled) == 1


def test_the_webhook_secret_is_looked_up_once_per_ttl() -> None:
    call = completed()
    accounts = FakeAccounts()
    notify = Notifier(as_store(FakeCalls(call)), accounts, FakeSender(200), FakeQueue(), account_ttl=60)

    for _ in range(3):
        notify.on_change(None, call)

    assert accounts.lookups == 1


# --- the README documents what the code does


def _readme_section() -> str:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = text.index("## Outcome callbacks")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def test_the_readme_python_example_verifies_real_signatures() -> None:
    section = _readme_section()
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    verify_from_readme = namespace["verify"]
    body = form_body(payload(completed()))
    now = int(time.time())

    assert verify_from_readme(SECRET, signature_header(SECRET, now, body), body)
    assert not verify_from_readme("whsec_other", signature_header(SECRET, now, body), body)
    assert not verify_from_readme(SECRET, signature_header(SECRET, now - 3600, body), body)
    assert not verify_from_readme(SECRET, "garbage", body)


def test_the_readme_example_vector_and_fields_are_right() -> None:
    section = _readme_section()
    body = next(line for line in section.splitlines() if line.startswith("event_id=")).encode()
    vector = re.search(r"`t=(\d+)`.*?`v1` is `([0-9a-f]{64})`", section, re.DOTALL)
    documented = re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)?(?:, `([a-z_]+)`)? \|", section, re.MULTILINE)

    assert vector is not None
    assert signature_header("whsec_example", int(vector.group(1)), body) == f"t={vector.group(1)},v1={vector.group(2)}"
    assert list(dict(parse_qsl(body.decode(), keep_blank_values=True))) == list(PAYLOAD_FIELDS)
    assert {name for row in documented for name in row if name} == set(PAYLOAD_FIELDS)
