"""The campaign's rules without I/O: validation all or nothing, CSV intake, derived callids, counts, pace."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from callbridge.domain import events
from callbridge.domain.accounts import Account
from callbridge.domain.calls import Call, CallStatus, iso
from callbridge.domain.campaign_requests import MAX_CALLS, MAX_METADATA_KEYS, campaign_from_csv, parse_campaign
from callbridge.domain.campaigns import (
    CallChange,
    CallState,
    Campaign,
    CampaignCall,
    CampaignStatus,
    Counts,
    back_to_its_campaign,
    campaign_call,
    campaign_callid,
    cancel,
    first_state,
    first_wait,
    hold,
    index_of,
    newest_changes,
    release,
    retry_held_for_its_window,
    wait_for_opening,
)
from callbridge.domain.dispatch import attention, held_until, listed_as_scheduled, queued_since
from callbridge.domain.errors import FieldProblem, InvalidRequest
from callbridge.logic.campaign_worker import pace

NOW = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
PLAY = "https://example.com/a.wav"


def account(**defaults: Any) -> Account:
    return Account(api_key="cb_x", password_hash="x", caller_id="+12815550100", webhook_secret="s", **defaults)


def parse(body: dict[str, Any], **kwargs: Any) -> Any:
    kwargs.setdefault("account", account())
    return parse_campaign(body, now=NOW, carrier_cps=5, **kwargs)


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
    assert [c.request.to for c in spec.calls] == ["+12812345670", "+12812345671"]
    assert spec.calls[1].request.answer_speak == "hi"
    assert spec.calls[1].request.answer_play == PLAY
    assert [c.metadata for c in spec.calls] == [{"a": "1"}, {"a": "1"}]


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


def test_calls_per_second_is_at_least_one_call_every_fifteen_minutes() -> None:
    # a release step waits 1 / calls_per_second in one SQS delay, which is at most 900 s
    body = {"name": "n", "calls": [{"to": "12812345670", "answer_play": PLAY}]}

    assert parse({**body, "calls_per_second": 1 / 900}).calls_per_second == 1 / 900
    assert problems({**body, "calls_per_second": 0.001}) == {
        "calls_per_second": "must be at least 1/900 (one call every 15 minutes)"
    }


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


def test_metadata_may_be_given_as_its_json_text_as_a_csv_query_or_column_can_only_give_it() -> None:
    text = 'to,metadata\n12812345670,"{""order"": ""A-1""}"\n12812345671,\n12812345672,[]\n'
    body, lines, _ = campaign_from_csv(text, {"name": "n", "answer_play": PLAY, "metadata": '{"source": "web"}'})
    refused = problems(body, positions=lines)
    body["calls"] = body["calls"][:2]
    blank_default, blank_lines, _ = campaign_from_csv(text, {"name": "n", "answer_play": PLAY, "metadata": " "})
    blank_default["calls"] = blank_default["calls"][:2]

    spec = parse(body, positions=lines)

    assert [c.metadata for c in spec.calls] == [{"source": "web", "order": "A-1"}, {"source": "web"}]
    assert [c.metadata for c in parse(blank_default, positions=blank_lines).calls] == [{"order": "A-1"}, {}]
    assert refused == {"calls.4.metadata": "must be a JSON object of string keys to string values"}


def test_a_csv_gives_metadata_as_one_json_column_or_as_metadata_key_columns_not_both() -> None:
    with pytest.raises(InvalidRequest) as caught:
        campaign_from_csv('to,metadata,metadata.row\n12812345670,"{}",1\n', {"name": "n"})
    assert [p.field for p in caught.value.problems] == ["metadata"]


def test_a_csv_body_becomes_the_same_request_with_line_numbers() -> None:
    text = 'to,answer_speak,metadata.order\n12812345670,"Hello, there",A\n\n12812345671,,B\n'
    body, lines, unread = campaign_from_csv(text, {"name": "n", "answer_speak_lang": "en-US", "calls_per_second": "2"})

    assert (lines, unread) == ([2, 4], [])
    assert body["name"] == "n"
    assert body["calls_per_second"] == "2"
    assert body["defaults"] == {"answer_speak_lang": "en-US"}
    assert body["calls"] == [
        {"to": "12812345670", "answer_speak": "Hello, there", "metadata": {"order": "A"}},
        {"to": "12812345671", "metadata": {"order": "B"}},
    ]


def test_a_csv_row_with_more_cells_than_the_header_is_refused_by_line() -> None:
    _body, lines, unread = campaign_from_csv("to\n12812345670\n1,2\n", {"name": "n"})
    assert lines == [2]
    assert [p.field for p in unread] == ["calls.3"]


def test_a_csv_row_with_more_cells_is_listed_with_every_other_problem_of_the_request_in_line_order() -> None:
    text = "to,retry_attempts\nbad,1\n12812345670,1,extra\n12812345670,99\n"
    body, lines, unread = campaign_from_csv(text, {"answer_play": PLAY})

    found = problems(body, positions=lines, found_before=unread)

    assert list(found) == ["name", "calls.2.to", "calls.3", "calls.4.retry_attempts"]
    assert found["calls.3"] == "has 3 cells; the header names 2"


def test_a_csv_body_whose_every_row_is_unreadable_names_each_row_not_a_missing_list() -> None:
    body, lines, unread = campaign_from_csv("to\n1,2\n3,4\n", {"name": "n", "answer_play": PLAY})

    assert list(problems(body, positions=lines, found_before=unread)) == ["calls.2", "calls.3"]


def test_an_unknown_ivr_menu_is_listed_with_the_other_calls_problems() -> None:
    body = {
        "name": "n",
        "calls": [
            {"to": "12812345670", "answer_ivr": "nosuch"},
            {"to": "bad", "answer_play": PLAY},
            {"to": "12812345671", "answer_ivr": "main"},
        ],
    }
    looked_up: list[str] = []

    def menu_problems(code: str) -> list[FieldProblem]:
        looked_up.append(code)
        return [] if code == "main" else [FieldProblem("answer_ivr", f"unknown IVR menu code {code!r}")]

    found = problems(body, menu_problems=menu_problems)

    assert found == {"calls.0.answer_ivr": "unknown IVR menu code 'nosuch'", "calls.1.to": found["calls.1.to"]}
    assert looked_up == ["nosuch", "main"]


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


def test_a_batch_keeps_each_calls_newest_change_grouped_by_campaign() -> None:
    ringing, done, busy = CallState("RINGING"), CallState("COMPLETED", "Person", 30), CallState("BUSY")
    batch = [
        CallChange("c1", "b", done, 9),
        CallChange("c1", "a", ringing, 3),
        CallChange("c2", "a", ringing, 4),
        CallChange("c1", "b", ringing, 5),  # older than the change above: left out
        CallChange("c1", "a", busy, 7),
        CallChange("c1", "a", busy, 7),  # the same record twice
    ]

    grouped = newest_changes(batch)

    assert grouped == {
        "c1": [CallChange("c1", "a", busy, 7), CallChange("c1", "b", done, 9)],
        "c2": [CallChange("c2", "a", ringing, 4)],
    }


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


def test_a_dated_call_is_released_with_its_call_date_and_a_held_one_waits_for_its_campaign_alone() -> None:
    at = "2027-01-10T12:05:00.000Z"
    released = release(call(CallStatus.SCHEDULED), at, call_date="2027-01-10T12:05:00.000Z")
    dispatched = call(CallStatus.DIALING, claim_token="t", call_date=at, next_attempt_at=at)
    held = hold(dispatched, "t", at)

    assert released is not None
    assert released.call_date == "2027-01-10T12:05:00.000Z"
    assert release(call(CallStatus.SCHEDULED, next_attempt_at=at), at) is None  # a retry is the scheduler's
    assert held is not None
    assert (held.status, held.call_date, held.next_attempt_at) == (CallStatus.SCHEDULED, None, None)


def test_a_call_first_waits_for_its_call_date_or_its_window_judged_at_the_campaigns_start() -> None:
    spec = parse(
        {
            "name": "n",
            "defaults": {"answer_play": PLAY, "recipient_timezone": "UTC"},
            "calls": [
                {"to": "12812345670"},
                {"to": "12812345671", "call_date": "2027-01-10 15:00"},
                {"to": "12812345672", "call_window": "09:00-13:00"},
                {"to": "12812345673", "call_window": "09:00-13:00", "call_date": "2027-01-10 14:00"},
            ],
        }
    )
    entries = [
        CampaignCall(
            n,
            f"c{n}",
            {},
            {},
            policy=c.policy.model_dump(exclude_defaults=True),
            call_date=c.call_date.strftime("%Y-%m-%dT%H:%M:%S.000Z") if c.call_date else None,
        )
        for n, c in enumerate(spec.calls)
    ]

    now = [first_wait(e, campaign()) for e in entries]  # the campaign starts at 12:00
    later = [first_wait(e, campaign(start_at="2027-01-10T13:30:00.000Z")) for e in entries]

    assert [w.not_before for w in now] == [
        None,
        "2027-01-10T15:00:00.000Z",
        None,
        "2027-01-11T09:00:00.000Z",
    ]
    assert [w.not_before for w in later][2] == "2027-01-11T09:00:00.000Z"  # closed at 13:30
    assert [w.call_date for w in now] == [None, "2027-01-10T15:00:00.000Z", None, "2027-01-10T14:00:00.000Z"]


def listed(body: dict[str, Any], **kwargs: Any) -> list[tuple[str, str]]:
    """Every problem of a refused campaign, in the answer's order (a name listed twice shows twice)."""
    with pytest.raises(InvalidRequest) as caught:
        parse(body, **kwargs)
    return [(p.field, p.message) for p in caught.value.problems]


def unknown_menus(code: str) -> list[FieldProblem]:
    return [] if code == "main" else [FieldProblem("answer_ivr", f"unknown IVR menu code {code!r}")]


VOICE_RULE = "must be an Amazon Polly voice id (e.g. Joanna) or a supported IBM-style name (e.g. en-US_AllisonVoice)"


def test_a_call_with_a_bad_field_is_also_judged_by_the_accounts_rules_on_its_other_fields() -> None:
    # as POST /pcall/call does: the call's every problem at once, not its field's alone and the rest on a second try
    calls = [
        {"to": "12812345670", "record": "MAYBE", "call_date": "2027-01-10 11:00", "timezone": "UTC"},  # past
        {"to": "18005550100", "record": "MAYBE", "call_window": "09:00-17:00"},  # toll-free: all of its zones
        {"to": "bad", "answer_ivr": "nosuch"},
        {"to": "12812345671", "retry_attempts": "99", "call_date": "2029-01-10 12:00"},  # a policy refused
    ]
    text = "to,record,answer_ivr,call_date\n12812345670,MAYBE,nosuch,\n12812345671,,,2029-01-10 12:00\n"
    body, lines, _ = campaign_from_csv(text, {"name": "n", "answer_play": PLAY})

    as_json = listed({"name": "n", "defaults": {"answer_play": PLAY}, "calls": calls}, menu_problems=unknown_menus)
    as_csv = dict(listed(body, positions=lines, menu_problems=unknown_menus, defaults_in_query=True))

    fields = [field for field, _ in as_json]
    assert fields == [
        "calls.0.record",
        "calls.0.call_date",
        "calls.1.record",
        "calls.1.call_window",
        "calls.2.to",
        "calls.2.answer_ivr",
        "calls.3.retry_attempts",
        "calls.3.call_date",
    ]
    assert dict(as_json)["calls.0.call_date"] == "is in the past (now is 2027-01-10 12:00 UTC)"
    assert dict(as_json)["calls.2.answer_ivr"] == "unknown IVR menu code 'nosuch'"
    assert dict(as_json)["calls.3.call_date"] == "is more than 365 days ahead"
    assert as_csv == {
        "calls.2.record": "must be YES or NO",
        "calls.2.answer_ivr": "unknown IVR menu code 'nosuch'",
        "calls.3.call_date": "is more than 365 days ahead",
    }


def test_a_default_wrong_on_its_own_is_named_once_where_it_was_written_not_once_per_call() -> None:
    # line 3 gives its own (valid) voice: it does not take the wrong default and is not reported for it; line 4's
    # own cell is wrong: that stays the call's problem
    text = "to,answer_tts,answer_tts_voice\n12812345670,Hi,\n12812345671,Hi,Joanna\n12812345672,Hi,Nobody\n"
    body, lines, _ = campaign_from_csv(text, {"name": "n", "answer_tts_voice": "Bogus"})
    calls = [
        {"to": "12812345670", "answer_tts": "Hi"},
        {"to": "12812345671", "answer_tts": "Hi", "answer_tts_voice": "Joanna"},
        {"to": "12812345672", "answer_tts": "Hi", "answer_tts_voice": "Nobody"},
    ]

    as_csv = listed(body, positions=lines, defaults_in_query=True)
    as_json = listed({"name": "n", "defaults": {"answer_tts_voice": "Bogus"}, "calls": calls})

    assert as_csv == [("answer_tts_voice", VOICE_RULE), ("calls.4.answer_tts_voice", VOICE_RULE)]
    assert as_json == [("defaults.answer_tts_voice", VOICE_RULE), ("calls.2.answer_tts_voice", VOICE_RULE)]


def test_a_default_wrong_on_its_own_is_named_once_with_every_problem_of_the_calls_that_take_it() -> None:
    body = {
        "name": "n",
        "defaults": {"answer_ivr": "nosuch", "record": "MAYBE", "extra": "x", "metadata": {"k": 1}},
        "calls": [{"to": "12812345670"}, {"to": "bad"}, {"to": "12812345671", "answer_ivr": "main", "record": "yes"}],
    }

    found = listed(body, menu_problems=unknown_menus)

    assert found == [
        ("defaults.metadata", "must be a JSON object of string keys to string values"),
        ("defaults.record", "must be YES or NO"),
        ("defaults.extra", "unknown parameter"),
        ("defaults.answer_ivr", "unknown IVR menu code 'nosuch'"),
        ("calls.1.to", dict(found)["calls.1.to"]),
    ]
    # a CSV names its query's defaults as it names its other query parameters: by their names
    query = {"name": "n", "answer_play": PLAY, "record": "MAYBE", "metadata": "[]"}
    csv_body, lines, _ = campaign_from_csv("to\n12812345670\n", query)
    assert listed(csv_body, positions=lines, defaults_in_query=True) == [
        ("metadata", "must be a JSON object of string keys to string values"),
        ("record", "must be YES or NO"),
    ]


def test_a_default_call_date_in_the_past_is_named_once_unless_a_call_judges_it_in_its_own_time_zone() -> None:
    past = "is in the past (now is 2027-01-10 12:00 UTC)"
    body = {
        "name": "n",
        "defaults": {"answer_play": PLAY, "call_date": "2027-01-10 11:00", "timezone": "UTC"},
        "calls": [
            {"to": "12812345670"},
            {"to": "12812345671"},
            {"to": "12812345672", "timezone": "Europe/Paris"},  # 10:00 UTC: its own verdict
            {"to": "12812345673", "timezone": "America/Chicago"},  # 17:00 UTC: fine
            {"to": "12812345674", "call_date": "2027-01-11 09:00"},  # its own date: fine
        ],
    }

    assert listed(body) == [("defaults.call_date", past), ("calls.2.call_date", past)]


def test_a_default_wrong_only_with_a_calls_own_fields_is_that_calls_problem() -> None:
    # the window is fine alone; a toll-free number is never in it in all of its zones at once. answer_tts is fine
    # alone; a call without a voice breaks the rule between them.
    body = {
        "name": "n",
        "defaults": {"answer_tts": "Hi", "call_window": "09:00-17:00"},
        "calls": [
            {"to": "12812345670", "answer_tts_voice": "Joanna"},
            {"to": "18005550100", "answer_tts_voice": "Joanna"},
            {"to": "12812345671"},
        ],
    }

    assert [field for field, _ in listed(body)] == ["calls.1.call_window", "calls.2.answer_tts_voice"]


def test_a_wrong_default_every_call_overrides_refuses_nothing() -> None:
    body = {"name": "n", "defaults": {"answer_tts": "Hi", "answer_tts_voice": "Bogus"}}

    spec = parse({**body, "calls": [{"to": "12812345670", "answer_tts_voice": "Joanna"}]})

    assert [c.request.answer_tts_voice for c in spec.calls] == ["Joanna"]


def test_a_campaigns_calls_may_use_at_most_a_hundred_different_metadata_keys() -> None:
    # its report has a column for each: 10,000 calls of 20 keys of their own would be 200,000 columns
    def calls(keys: int) -> list[dict[str, Any]]:  # calls of up to 19 keys of their own (and the shared one)
        return [
            {"to": "12812345670", "metadata": {f"k{k}": "v" for k in range(start, min(start + 19, keys))}}
            for start in range(0, keys, 19)
        ]

    body = {"name": "n", "defaults": {"answer_play": PLAY, "metadata": {"shared": "v"}}}
    spec = parse({**body, "calls": [*calls(MAX_METADATA_KEYS - 1), {"to": "12812345670"}]})
    assert len(spec.metadata_keys) == MAX_METADATA_KEYS  # 99 of the calls' own, and the defaults' one

    found = problems({**body, "calls": calls(10_000)})
    assert found == {
        "calls": "use 10,001 different metadata keys; a campaign's calls may use at most 100 "
        "(its report has a column for each)"
    }


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


def test_call_date_and_timezone_are_taken_per_call_or_from_the_defaults() -> None:
    spec = parse(
        {
            "name": "n",
            "defaults": {"answer_play": PLAY, "timezone": "America/Chicago"},
            "calls": [
                {"to": "12812345670", "call_date": "2027-01-11 09:30"},  # the defaults' zone
                {"to": "12812345671", "call_date": "2027-01-11 09:30", "timezone": "Europe/Paris"},
                {"to": "12812345672"},
            ],
        },
        account=account(timezone="Asia/Tokyo"),
    )

    assert [c.call_date for c in spec.calls] == [
        datetime(2027, 1, 11, 15, 30, tzinfo=UTC),
        datetime(2027, 1, 11, 8, 30, tzinfo=UTC),
        None,
    ]


def test_a_call_date_is_judged_in_the_accounts_zone_and_by_the_calls_rules() -> None:
    found = problems(
        {
            "name": "n",
            "defaults": {"answer_play": PLAY},
            "calls": [
                {"to": "12812345670", "call_date": "2027-01-10 07:00"},  # 13:00 UTC in New York's winter: ahead
                {"to": "12812345671", "call_date": "2027-01-10 11:59", "timezone": "UTC"},  # before now
                {"to": "12812345672", "call_date": "2029-01-10 12:00"},  # more than a year ahead
            ],
        },
        account=account(timezone="America/New_York"),
    )
    assert set(found) == {"calls.1.call_date", "calls.2.call_date"}


def test_retry_and_window_parameters_become_each_calls_policy_with_the_accounts_defaults() -> None:
    spec = parse(
        {
            "name": "n",
            "defaults": {"answer_play": PLAY, "retry_attempts": "2", "retry_on": "busy"},
            "calls": [
                {"to": "12812345670", "retry_interval": "300"},
                {"to": "12812345671", "retry_attempts": "0", "call_window": "10:00-12:00"},
            ],
        },
        account=account(call_window="09:00-17:00", call_days="mon-fri", recipient_timezone="America/Chicago"),
    )

    first, second = (c.policy for c in spec.calls)
    assert (first.retry_attempts, first.retry_interval, first.retry_on) == (2, 300, "BUSY")
    assert (first.call_window, first.call_days) == ("09:00-17:00", "MON,TUE,WED,THU,FRI")
    assert first.zones == ["America/Chicago"]
    assert (second.retry_attempts, second.call_window) == (0, "10:00-12:00")


def test_a_policy_that_cannot_apply_is_named_by_call_index_and_field() -> None:
    found = problems(
        {
            "name": "n",
            "defaults": {"answer_play": PLAY},
            "calls": [
                {"to": "12812345670", "call_window": "09:00-17:00"},
                {"to": "12812345671", "call_window": "25:00-26:00"},
                {"to": "12812345672", "retry_attempts": "99"},
            ],
        },
        positions=[2, 3, 4],
    )
    assert set(found) == {"calls.3.call_window", "calls.4.retry_attempts"}


def campaign(**extra: Any) -> Campaign:
    at = "2027-01-10T12:00:00.000Z"
    return Campaign(
        id="0190f5a2b3c4d5e6f7a8b9c0d1e",
        account_id="cb_x",
        name="n",
        status=CampaignStatus.RUNNING,
        total=1,
        created_at=at,
        updated_at=at,
        calls_per_second=1,
        **extra,
    )


def test_a_stored_campaign_call_keeps_its_policy_and_a_suppressed_one_ends_at_once() -> None:
    spec = parse(
        {"name": "n", "calls": [{"to": "12812345670", "answer_play": PLAY, "retry_attempts": "3"}]},
        account=account(call_window="09:00-17:00", recipient_timezone="UTC"),
    )
    policy = spec.calls[0].policy.model_dump(exclude_defaults=True)
    entry = CampaignCall(0, "c0", {"to": "+12812345670"}, {}, policy=policy)
    round_trip = CampaignCall.from_json(entry.to_json())
    suppressed = CampaignCall(1, "c1", {"to": "+12812345671"}, {}, suppressed=True)

    stored = campaign_call(round_trip, campaign())
    ended = campaign_call(CampaignCall.from_json(suppressed.to_json()), campaign())

    assert stored.policy == spec.calls[0].policy
    assert stored.policy.retry_attempts == 3
    assert stored.policy.window() is not None
    assert stored.status is CallStatus.SCHEDULED
    assert (ended.status, ended.error_code, ended.ended_at) == (CallStatus.CANCELED, "suppressed", ended.created_at)
    assert first_state(suppressed) == CallState("CANCELED")
    assert first_state(entry) == CallState("SCHEDULED")


def test_a_call_held_for_its_window_shows_the_opening_until_its_release_or_cancel() -> None:
    waiting = call(CallStatus.SCHEDULED)
    opening = datetime(2027, 1, 11, 9, 0, tzinfo=UTC)

    held = wait_for_opening(waiting, opening, "2027-01-10T12:00:00.000Z")

    assert held is not None
    assert (held.status, held.next_attempt_at, held.window_opening) == (CallStatus.SCHEDULED, None, iso(opening))
    assert held.public(with_timeline=False)["next_attempt_at"] == iso(opening)
    assert (held_until(held), listed_as_scheduled(held), attention(held)) == (iso(opening), True, None)
    assert wait_for_opening(held, opening, "2027-01-10T12:00:01.000Z") is None  # no write for the same opening
    released = release(held, "2027-01-11T09:00:00.000Z")
    assert released is not None
    assert (released.window_opening, released.public(with_timeline=False)["next_attempt_at"]) == (None, None)
    assert not listed_as_scheduled(released)
    ended = cancel(held, "2027-01-10T13:00:00.000Z")
    assert ended is not None
    assert ended.public(with_timeline=False)["next_attempt_at"] is None


def test_a_claimed_call_outside_its_window_goes_back_to_its_campaign_without_a_due_time_of_its_own() -> None:
    at = "2027-01-10T16:00:30.000Z"
    opening = datetime(2027, 1, 11, 14, 0, tzinfo=UTC)
    claimed = call(
        CallStatus.DIALING, claim_token="t", dialed_at=at, call_date="2027-01-10T14:00:00.000Z", next_attempt_at=at
    )

    back = back_to_its_campaign(claimed, "t", opening, at)

    assert back is not None
    assert (back.status, back.claim_token, back.dialed_at) == (CallStatus.SCHEDULED, None, None)
    assert (back.call_date, back.next_attempt_at, back.window_opening) == (None, None, iso(opening))
    assert (held_until(back), listed_as_scheduled(back), attention(back)) == (iso(opening), True, None)
    assert back.public(with_timeline=False)["next_attempt_at"] == iso(opening)
    assert back_to_its_campaign(claimed, "u", opening, at) is None  # another placer's claim
    assert back_to_its_campaign(claimed.model_copy(update={"carrier_call_id": "CA1"}), "t", opening, at) is None
    assert not retry_held_for_its_window(back)  # the placer marks it itself


def test_a_retry_held_for_its_window_is_told_apart_from_every_other_wait() -> None:
    at = "2027-01-10T15:03:00.000Z"
    retry = call(CallStatus.SCHEDULED, window_opening=at).with_event(at, events.RETRY_SCHEDULED)
    assert retry_held_for_its_window(retry)
    assert not retry_held_for_its_window(call(CallStatus.SCHEDULED, window_opening=at))  # its campaign's first wait
    assert not retry_held_for_its_window(retry.model_copy(update={"window_opening": None}))
    assert not retry_held_for_its_window(retry.model_copy(update={"campaign": None}))
    assert index_of(call(CallStatus.SCHEDULED).with_event(at, events.ACCEPTED, index=7)) == 7
    assert index_of(call(CallStatus.SCHEDULED)) is None
