"""What Lambda and API Gateway carry, held to in the sandbox as deployed: a 400 that names tens of thousands of
problems still fits in an answer (not the 500 an answer over Lambda's 6 MB becomes); a body over what Lambda takes
as an event, or over what API Gateway takes, is refused as they refuse it."""

from __future__ import annotations

import json

from tests.e2e.conftest import RunningSandbox

LAMBDA_LIMIT = 6_291_556  # bytes of a synchronous invocation's event or answer (JSON)


def test_a_campaign_with_a_problem_in_every_cell_is_a_400_that_lists_the_first_thousand_and_counts_the_rest(
    sandbox: RunningSandbox,
) -> None:
    # 10,000 lines, 6 bad cells each: 60,000 problems, which listed in full (twice) would be a 13-MB answer
    header = "to,record,answer_ivr_timeout,retry_attempts,retry_interval,call_window,answer_tts_voice"
    lines = [header, *(f"1281555{n % 10_000:04d},maybe,0,99,5,25:00-26:00,nobody" for n in range(10_000))]
    with sandbox.client() as client:
        response = client.post(
            "/pcall/campaigns",
            params={"name": "every cell wrong"},
            content="\n".join(lines).encode(),
            headers={"Content-Type": "text/csv"},
        )

    assert response.status_code == 400, response.text[:500]
    data = response.json()["data"]
    *listed, more = data["errors"]
    assert len(listed) == 1000
    assert all(e["field"].startswith("calls.") for e in listed)
    assert more["field"] == "body"
    has, count, rest = more["message"].split(" ", 2)
    assert (has, rest) == ("has", "more problems (a 400 lists the first 1000)")
    assert int(count) >= 50_000
    assert len(response.content) < LAMBDA_LIMIT


def test_a_body_over_lambdas_limit_once_escaped_into_its_event_is_refused_as_lambda_refuses_it(
    sandbox: RunningSandbox,
) -> None:
    # 4.6 MB of JSON text, under the API's 5 MB for a campaign and API Gateway's 10 MB; but each of its quotes is
    # escaped in the event's body string, which makes the event 6.4 MB
    metadata = dict.fromkeys("abcdefghij", "v")
    calls = [{"to": f"1281555{n % 10_000:04d}", "metadata": metadata} for n in range(40_000)]
    body = json.dumps({"name": "too big", "calls": calls}, separators=(",", ":")).encode()
    assert len(body) < 5 * 1024 * 1024 < LAMBDA_LIMIT < len(json.dumps(body.decode()))
    with sandbox.client() as client:
        response = client.post("/pcall/campaigns", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 413, response.text[:500]
    assert response.json() == {"message": "Request Too Long"}


def test_a_body_over_api_gateways_limit_is_refused_before_any_function(sandbox: RunningSandbox) -> None:
    with sandbox.client() as client:
        response = client.post(
            "/pcall/call", content=b"to=" + b"1" * (10 * 1024 * 1024), headers={"Content-Type": "text/plain"}
        )

    assert response.status_code == 413
    assert response.text == f"HTTP content length exceeded {10 * 1024 * 1024} bytes."
