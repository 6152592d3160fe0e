"""A call's compact stored form reads back to the very same call, and items of the earlier form still read.

The API's JSON comes from the call read back, so `Call.public` is compared too: the timeline in
`GET /pcall/calls/{callid}` is exactly what was appended.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from callbridge.adapters.dynamodb.call_codec import call_attributes, call_data, event_value
from callbridge.adapters.dynamodb.codec import from_item, to_item
from callbridge.domain.calls import Call, CallStatus, TimelineEvent, iso
from callbridge.domain.policies import CallPolicy
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = datetime(2027, 1, 10, 12, 0, 0, tzinfo=UTC)
REQUEST = {"to": "+12812345670", "from": "+12815550100", "answer_play": "https://example.com/a.wav", "record": "NO"}

times = st.one_of(
    st.integers(min_value=-(10**10), max_value=10**11).map(lambda ms: iso(T0 + timedelta(milliseconds=ms))),
    st.sampled_from(["2027-01-10T12:00:00Z", "2027-01-10T12:00:00.123456+00:00", "Sun, 10 Jan 2027 12:00:00 +0000"]),
    st.text(max_size=12),
)
texts = st.text(max_size=8)
details = st.dictionaries(
    texts, st.one_of(texts, st.integers(-1000, 10**12), st.booleans(), st.none(), st.lists(texts, max_size=2))
)
events = st.builds(
    lambda at, name, detail, extra: TimelineEvent(at=at, event=name, detail=detail, **extra),
    times,
    st.sampled_from(["accepted", "dialing", "carrier.created", "flow", "carrier.status", "callback"]),
    details,
    st.one_of(st.just({}), st.dictionaries(st.sampled_from(["note", "by"]), texts, min_size=1)),
)
requests = st.dictionaries(st.sampled_from([*sorted(REQUEST), "callback_url", "metadata"]), texts)
accepted: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}),
    requests.flatmap(lambda r: st.fixed_dictionaries({}, optional={k: st.just(v) for k, v in r.items()})),
    requests,
)
policies = st.one_of(
    st.just(CallPolicy()),
    st.builds(CallPolicy, retry_attempts=st.integers(0, 3), retry_on=st.sampled_from(["BUSY,NO_ANSWER", "FAILED"])),
    st.just(CallPolicy(call_window="09:00-17:00", call_days="MON-FRI", zones=["America/Chicago"])),
)


@st.composite
def calls(draw: st.DrawFn) -> Call:
    request = draw(requests)
    return Call(
        callid="1a22d8c0673f362f0d4f5ff05ca",
        account_id="cb_account",
        status=draw(st.sampled_from(list(CallStatus))),
        created_at=iso(T0),
        updated_at=iso(T0),
        request=request,
        accepted=draw(st.one_of(accepted, st.just(request))),
        billed_seconds=draw(st.sampled_from([0, 7])),
        source=draw(st.sampled_from(["api", "campaign", "sqs"])),
        answered_by=draw(st.sampled_from(["", "Person"])),
        metadata=draw(st.one_of(st.none(), st.just({"order": "42"}))),
        policy=draw(policies),
        version=draw(st.integers(0, 5)),
        timeline=draw(st.lists(events, max_size=6)),
    )


@settings(max_examples=400, deadline=None, derandomize=True)
@given(calls())
def test_a_stored_call_reads_back_as_the_same_call(call: Call) -> None:
    stored = call_attributes(call)

    back = call_data(stored)

    assert back == call
    assert back.public(with_timeline=True) == call.public(with_timeline=True)
    assert "version" in stored  # a read-modify-write compares it, even at 0


def answered_call() -> Call:
    def at(seconds: float) -> str:
        return iso(T0 + timedelta(seconds=seconds))

    sid = "CA055648c900cb14fff8b95734ae2d5be7"
    return Call(
        callid="1a22d8c0673f362f0d4f5ff05ca",
        account_id="cb_416c196e14c861f1be9a0057",
        status=CallStatus.COMPLETED,
        created_at=at(0),
        updated_at=at(2),
        request=REQUEST,
        accepted={**REQUEST, "to": "12812345670"},
        carrier_call_id=sid,
        claim_token="a75d264658e6354a",
        dialed_at=at(0.4),
        version=4,
        timeline=[
            TimelineEvent(at=at(0), event="accepted", detail={"status": "QUEUED"}),
            TimelineEvent(at=at(0.4), event="dialing", detail={"claim": "a75d264658e6354a"}),
            TimelineEvent(at=at(0.7), event="carrier.created", detail={"sid": sid, "status": "queued"}),
            TimelineEvent(at=at(1.5), event="flow", detail={"label": "Person", "AnsweredBy": "human"}),
            TimelineEvent(at=at(2), event="carrier.status", detail={"CallSid": sid, "CallStatus": "completed"}),
        ],
    )


def test_events_are_lists_with_their_time_in_milliseconds() -> None:
    stamp = iso(T0)

    assert from_item({"e": event_value(TimelineEvent(at=stamp, event="flow", detail={"label": "Person"}))})["e"] == [
        int(T0.timestamp() * 1000),
        "flow",
        {"label": "Person"},
    ]
    assert from_item({"e": event_value(TimelineEvent(at=stamp, event="dialing"))})["e"] == [
        int(T0.timestamp() * 1000),
        "dialing",
    ]
    # a time that is not an `iso` one stays as it is
    assert from_item({"e": event_value(TimelineEvent(at="2027-01-10T12:00:00Z", event="x"))})["e"] == [
        "2027-01-10T12:00:00Z",
        "x",
    ]


def test_defaults_and_what_the_request_already_says_are_not_stored() -> None:
    stored = from_item(call_attributes(answered_call()))

    assert not {"policy", "billed_seconds", "source", "accepted", "answered_by", "digits"} & set(stored)
    assert stored["accepted_changes"] == {"to": "12812345670"}
    assert stored["version"] == 4


def test_an_item_of_the_earlier_form_reads_back_the_same() -> None:
    # given: the call as items were stored before the compact form (every field, events as maps)
    call = answered_call()
    earlier = to_item(
        {k: v for k, v in call.model_dump(mode="json").items() if v not in ("", {}, [])} | {"timeline": []}
    )
    earlier["timeline"] = to_item({"t": [e.model_dump() for e in call.timeline]})["t"]

    # then
    assert call_data(earlier) == call
    # and a step that appends in the compact form to such an item still reads back in order
    appended = TimelineEvent(at=iso(T0 + timedelta(seconds=3)), event="callback", detail={"attempt": 1})
    earlier["timeline"]["L"].append(event_value(appended))
    assert call_data(earlier).timeline == [*call.timeline, appended]


def test_the_compact_form_is_smaller() -> None:
    call = answered_call()
    compact = call_attributes(call)
    earlier = to_item(call.model_dump(mode="json"))

    assert size(compact) < size(earlier) - 300, (size(compact), size(earlier))


def size(item: dict[str, Any]) -> int:
    """Bytes of an item by DynamoDB's rules (names and texts by their UTF-8 length)."""
    from bench.capacity import item_size

    return item_size(item)
