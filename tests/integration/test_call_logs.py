"""A call's life in the functions' logs: each function's JSON lines about a call carry its `callid`, so an operator
follows it across the api, the placer and the webhooks with one Logs Insights filter (docs/runbook.md)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from tests.conftest import ApiClient, json_log_lines
from tests.integration.fakes import (
    CarrierWebhooks,
    invoke_placer,
    receive,
    sqs_event,
    status_params,
    stored,
)


def test_a_call_can_be_followed_across_the_functions_by_its_callid(
    api: ApiClient, placer_module: ModuleType, webhooks_module: ModuleType, aws: Any
) -> None:
    hooks = CarrierWebhooks(webhooks_module)
    # (In one process the three handlers' Powertools loggers are one logger, named after the service: one capture
    # holds all their lines, in order. Each message below is written by one function only.)
    with json_log_lines(api.module) as lines:
        # given: a call accepted by the API ...
        accepted = api.post_call({"to": "17134567890", "answer_play": "https://example.com/hello.wav"})
        assert accepted.status == 200, accepted.body
        callid = accepted.data["callid"]
        # ... placed by the placer ...
        invoke_placer(placer_module, sqs_event(aws, receive(aws)))
        sid = stored(aws, callid).carrier_call_id or ""
        # ... and answered and finished at the carrier
        for seq, status in enumerate(("ringing", "in-progress", "completed"), start=1):
            assert hooks.post(callid, "status", status_params(sid, status, seq, CallDuration="3")).status == 204

    # then: the lines naming the call tell its life, step by step: the api's, the placer's, the webhooks'
    about = [line for line in lines if line.get("callid") == callid]
    assert [line["message"] for line in about] == [
        "call accepted",  # api
        "placement",  # placer
        "carrier request",  # webhooks
        "carrier request",
        "carrier request",
    ]
    assert about[1]["placement"] == "placed"
    assert [line["carrier_status"] for line in about[2:]] == ["ringing", "in-progress", "completed"]
    # the API's and the webhooks' lines carry their request's id, the access log's requestId
    assert about[0]["correlation_id"]
    assert all(line["correlation_id"] for line in about[2:])
