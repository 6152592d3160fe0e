"""The campaign's rules without I/O: validation all or nothing, CSV intake, derived callids, counts, pace."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from callbridge.domain.calls import Call, CallStatus
from callbridge.domain.campaigns import (
    MAX_CALLS,
    CallState,
    Counts,
    campaign_callid,
    campaign_from_csv,
    cancel,
    hold,
    parse_campaign,
    release,
)
from callbridge.domain.dispatch import queued_since
from callbridge.domain.errors import InvalidRequest
from callbridge.logic.campaign_worker import pace

NOW = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
PLAY = "https://example.com/a.wav"


def parse(body: dict[str, Any], **kwargs: Any) -> Any:
    return parse_campaign(body, timezone="UTC", now=NOW, carrier_cps=5, **kwargs)


def problems(body: dict[str, Any], **kwargs: Any) -> dict[str, str]:
    with pytest.raises(InvalidRequest) as caught:
        parse(body, **kwargs)
    return {p.field: p.message for p in caught.value.problems}


def test_defaults_apply_to_every_call_and_each_call_overrides_them() -> None:
    spec = parse(
        {
            "name": " school ",
            "defaults": {"answer_play": PLAY, "metadata": {"a": "1"}},
            "calls": [{"to": "12812345670"}, {"to": 12812345671, "answer_speak": "hi", "answer_speak_lang": "en-US"}],
        }
    )

    assert spec.name == "school"
    assert spec.calls_per_second == 5  # the carrier's
    assert [r.to for r in spec.requests] == ["+12812345670", "+12812345671"]
    assert spec.requests[1].answer_speak == "hi"
    assert spec.requests[1].answer_play == PLAY
    assert [m for _p, m in spec.calls] == [{"a": "1"}, {"a": "1"}]


def test_every_broken_rule_is_named_by_call_index_and_field() -> None:
    found = problems(
        {
            "name": "",
            "calls": [{"to": "12812345670", "answer_play": PLAY}, {"to": "1"}, {"to": "12812345670", "x": "y"}],
            "calls_per_second": 6,
            "max_in_progress": 1.5,
            "start_at": "yesterday",
            "callback_url": "http://127.0.0.1/x",
        }
    )

    assert set(found) >= {
        "name",
        "calls.1.to",
        "calls.2.x",
        "calls_per_second",
        "max_in_progress",
        "start_at",
        "callback_url",
    }
    assert found["calls.2.x"] == "unknown parameter"


def test_positions_name_csv_lines_and_the_size_is_bounded() -> None:
    found = problems({"name": "n", "calls": [{"to": "1"}]}, positions=[7])
    assert "calls.7.to" in found
    assert "calls" in problems({"name": "n", "calls": [{"to": "12812345670"}] * (MAX_CALLS + 1)})
    assert "calls" in problems({"name": "n", "calls": []})


def test_metadata_must_be_a_small_object_of_strings() -> None:
    found = problems(
        {
            "name": "n",
            "defaults": {"answer_play": PLAY},
            "calls": [
                {"to": "12812345670", "metadata": {"k": 1}},
                {"to": "12812345670", "metadata": {str(i): "v" for i in range(21)}},
            ],
        }
    )
    assert set(found) == {"calls.0.metadata", "calls.1.metadata"}


def test_a_csv_body_becomes_the_same_request_with_line_numbers() -> None:
    text = 'to,answer_speak,metadata.order\n12812345670,"Hello, there",A\n\n12812345671,,B\n'
    body, lines = campaign_from_csv(text, {"name": "n", "answer_speak_lang": "en-US", "calls_per_second": "2"})

    assert lines == [2, 4]
    assert body["name"] == "n"
    assert body["calls_per_second"] == "2"
    assert body["defaults"] == {"answer_speak_lang": "en-US"}
    assert body["calls"] == [
        {"to": "12812345670", "answer_speak": "Hello, there", "metadata": {"order": "A"}},
        {"to": "12812345671", "metadata": {"order": "B"}},
    ]


def test_a_csv_row_with_more_cells_than_the_header_is_refused_by_line() -> None:
    with pytest.raises(InvalidRequest) as caught:
        campaign_from_csv("to\n12812345670\n1,2\n", {"name": "n"})
    assert [p.field for p in caught.value.problems] == ["calls.3"]


def test_callids_are_derived_from_the_campaign_and_the_index() -> None:
    first = campaign_callid("0190f5a2b3c4d5e6f7a8b9c0d1e", 7)

    assert first == campaign_callid("0190f5a2b3c4d5e6f7a8b9c0d1e", 7)
    assert first != campaign_callid("0190f5a2b3c4d5e6f7a8b9c0d1e", 8)
    assert len(first) == 27
    assert first.isalnum()
    assert first.startswith("0190f5a2b3c")


def test_a_move_changes_the_counts_by_its_difference() -> None:
    old = CallState("RINGING")
    new = CallState("COMPLETED", "Person", 30)
    counts = Counts({"SCHEDULED": 2, "RINGING": 1}).add(new.delta(old))

    assert counts.statuses == {"SCHEDULED": 2, "RINGING": 0, "COMPLETED": 1}
    assert counts.answered == {"Person": 1}
    assert counts.billed_seconds == 30
    assert counts.final() == 1


@pytest.mark.parametrize(("cps", "expected"), [(1, (1.0, 1)), (2.5, (1.0, 2)), (0.5, (2.0, 1)), (10, (1.0, 10))])
def test_pace_turns_calls_per_second_into_steps(cps: float, expected: tuple[float, int]) -> None:
    assert pace(cps) == expected


def call(status: CallStatus, **extra: Any) -> Call:
    at = "2027-01-10T12:00:00.000Z"
    return Call(
        callid="c1", account_id="a", status=status, created_at=at, updated_at=at, request={}, campaign="k", **extra
    )


def test_a_campaign_call_moves_only_from_the_states_its_rules_allow() -> None:
    at = "2027-01-10T12:05:00.000Z"
    released = release(call(CallStatus.SCHEDULED), at)

    assert released is not None
    assert released.status is CallStatus.QUEUED
    assert queued_since(released) == datetime(2027, 1, 10, 12, 5, tzinfo=UTC)  # not since its creation
    assert release(call(CallStatus.QUEUED), at) is None
    assert hold(call(CallStatus.DIALING, claim_token="t"), "t", at).status is CallStatus.SCHEDULED  # type: ignore[union-attr]
    assert hold(call(CallStatus.DIALING, claim_token="u"), "t", at) is None
    assert cancel(call(CallStatus.QUEUED), at).error_code == "campaign_canceled"  # type: ignore[union-attr]
    assert cancel(call(CallStatus.DIALING, claim_token="t"), at) is None  # dialing goes on
    assert cancel(call(CallStatus.DIALING, claim_token="t"), at, "t").status is CallStatus.CANCELED  # type: ignore[union-attr]


def test_metadata_merged_from_defaults_and_a_call_must_fit_too() -> None:
    ten = {f"d{i}": "v" for i in range(10)}
    eleven = {f"c{i}": "v" for i in range(11)}
    found = problems(
        {
            "name": "n",
            "defaults": {"answer_play": PLAY, "metadata": ten},
            "calls": [{"to": "12812345670", "metadata": eleven}],
        }
    )
    assert set(found) == {"calls.0.metadata"}
