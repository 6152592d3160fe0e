"""GET /pcall/stats: an account's calls per hour by status, with the answer rate (the console's chart)."""

from __future__ import annotations

from typing import Any

import boto3

from tests.conftest import ApiClient
from tests.integration.conftest import MINIMAL, Clock


def place(api: ApiClient) -> str:
    response = api.post_call(MINIMAL)
    assert response.status == 200, response.body
    return str(response.data["callid"])


def finish(aws: Any, callid: str, status: str, answered_by: str = "") -> None:
    """Give a stored call its outcome, as the webhooks would have."""
    boto3.client("dynamodb").update_item(
        TableName=aws.refs["CallsTable"],
        Key={"callid": {"S": callid}},
        UpdateExpression="SET #s = :s, answered_by = :b",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": status}, ":b": {"S": answered_by}},
    )


def test_calls_are_counted_per_hour_of_creation_with_the_answer_rate(
    api: ApiClient, other_api: ApiClient, clock: Clock, aws: Any
) -> None:
    # given, at 12:00:30, a call answered by a person and one that was busy; at 13:10 one answered by a machine,
    # one nobody answered and one still queued; another account's call at 13:10 too
    early = [place(api), place(api)]
    finish(aws, early[0], "COMPLETED", "Person")
    finish(aws, early[1], "BUSY")
    clock.advance(hours=1, minutes=10)
    late = [place(api), place(api), place(api)]
    finish(aws, late[0], "COMPLETED", "Machine")
    finish(aws, late[1], "NO_ANSWER")
    place(other_api)
    # when the last 3 hours are asked for at 13:10:30
    response = api.get("/pcall/stats", query={"hours": "3"})
    # then each hour counts its own calls by status, and 2 of the 4 finished calls were answered
    assert response.status == 200, response.body
    data = response.data
    assert [h["hour"] for h in data["hours"]] == [
        "2027-01-10T11:00:00.000Z",
        "2027-01-10T12:00:00.000Z",
        "2027-01-10T13:00:00.000Z",
    ]
    assert [h["total"] for h in data["hours"]] == [0, 2, 3]
    assert data["hours"][1]["statuses"] == {"COMPLETED": 1, "BUSY": 1}
    assert data["hours"][2]["statuses"] == {"COMPLETED": 1, "NO_ANSWER": 1, "QUEUED": 1}
    assert [h["answered"] for h in data["hours"]] == [0, 1, 1]
    assert (data["total"], data["finished"], data["answered"], data["answer_rate"]) == (5, 4, 2, 0.5)


def test_cancelled_calls_are_not_in_the_answer_rate_and_nothing_finished_is_null(
    api: ApiClient, clock: Clock, aws: Any
) -> None:
    finish(aws, place(api), "CANCELED")
    response = api.get("/pcall/stats")
    assert response.status == 200, response.body
    assert len(response.data["hours"]) == 24
    assert (response.data["total"], response.data["finished"], response.data["answer_rate"]) == (1, 0, None)


def test_calls_older_than_the_window_are_left_out(api: ApiClient, clock: Clock) -> None:
    place(api)
    clock.advance(hours=2)
    response = api.get("/pcall/stats", query={"hours": "2"})
    assert response.data["total"] == 0
    assert api.get("/pcall/stats", query={"hours": "3"}).data["total"] == 1


def test_hours_out_of_bounds_or_unknown_parameters_are_a_400_naming_them(api: ApiClient) -> None:
    for hours in ("0", "169", "x"):
        response = api.get("/pcall/stats", query={"hours": hours})
        assert response.status == 400, hours
        assert [e["field"] for e in response.data["errors"]] == ["hours"]
    response = api.get("/pcall/stats", query={"hour": "3"})
    assert response.status == 400
    assert [e["field"] for e in response.data["errors"]] == ["hour"]


def test_stats_need_credentials(api: ApiClient) -> None:
    assert api.get("/pcall/stats", auth=False).status == 401


def test_only_the_newest_calls_are_counted_past_the_cap_and_the_answer_says_so(
    api: ApiClient, clock: Clock, monkeypatch: Any
) -> None:
    from callbridge.logic import calls

    monkeypatch.setattr(calls, "MAX_STATS_CALLS", 2)
    for _ in range(3):
        place(api)
        clock.advance(minutes=1)
    data = api.get("/pcall/stats").data
    assert (data["total"], data["complete"]) == (2, False)
    assert data["counted_since"] == "2027-01-10T12:01:30.000Z"  # the second call: the first was left out
    monkeypatch.setattr(calls, "MAX_STATS_CALLS", 3)
    data = api.get("/pcall/stats").data
    assert (data["total"], data["complete"], data["counted_since"]) == (3, True, data["since"])
