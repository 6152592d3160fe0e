"""The sandbox's gateway routes requests as API Gateway's HTTP API does, from template.yaml's routes.

A stand-in function answers in place of the real handlers: what is checked is which route a request reaches
and the event it carries, not what the function makes of it.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from werkzeug.test import Client

from sandbox.gateway import Gateway
from sandbox.lambdas import Function
from sandbox.template import http_routes


class _Recorder:
    """A function that keeps every event it is given and answers 200."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"}


def _gateway() -> tuple[Client, dict[str, _Recorder]]:
    routes = http_routes()
    functions = {route.function: _Recorder() for route in routes}
    return Client(Gateway(routes, cast(dict[str, Function], functions))), functions


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("path", ["/pcall", "/pcall/"])
def test_the_api_root_reaches_the_api_function_not_the_gateways_own_404(method: str, path: str) -> None:
    client, functions = _gateway()

    response = client.open(path, method=method)

    assert response.status_code == 200, response.get_data(as_text=True)
    [event] = functions["ApiFunction"].events
    assert event["routeKey"] == "ANY /pcall"
    assert event["rawPath"] == path  # the path as sent: the function tells the two apart itself
    assert event["requestContext"]["http"]["method"] == method


def test_a_path_ending_in_a_slash_reaches_the_route_without_it_with_its_own_path() -> None:
    client, functions = _gateway()

    client.get("/pcall/calls/")
    client.get("/pcall/calls/0123456789abcdef0123456789a/")

    first, second = functions["ApiFunction"].events
    assert (first["routeKey"], first["rawPath"]) == ("GET /pcall/calls", "/pcall/calls/")
    assert second["routeKey"] == "GET /pcall/calls/{callid}"
    assert second["pathParameters"] == {"callid": "0123456789abcdef0123456789a"}


def test_a_path_no_route_matches_is_the_gateways_own_404() -> None:
    client, functions = _gateway()

    response = client.get("/elsewhere/")

    assert response.status_code == 404
    assert json.loads(response.get_data()) == {"message": "Not Found"}
    assert all(not function.events for function in functions.values())


def test_the_greedy_route_still_takes_every_deeper_path() -> None:
    client, functions = _gateway()

    client.get("/pcall/nope/deeper")

    [event] = functions["ApiFunction"].events
    assert (event["routeKey"], event["pathParameters"]) == ("ANY /pcall/{proxy+}", {"proxy": "nope/deeper"})
