"""A burst of failed logins against the running sandbox: the counters live in the template's table."""

from __future__ import annotations

import secrets

import httpx
import pytest
from callbridge.logic.auth import LoginLimits

from tests.e2e.conftest import RunningSandbox

pytestmark = pytest.mark.e2e

LIMITS = LoginLimits()


def test_a_burst_of_failed_logins_for_one_key_is_refused_with_429(sandbox: RunningSandbox) -> None:
    # An unknown key of its own, so no other test's credentials are blocked. A burst may straddle two
    # counting windows: then the 429 comes after the new window's burst, within twice the limit.
    key = "cb_e2e_" + secrets.token_hex(8)
    statuses: list[int] = []
    refused = None
    with httpx.Client(base_url=sandbox.base_url, timeout=30) as client:
        for _ in range(2 * LIMITS.per_key + 1):
            response = client.get("/pcall/calls", auth=(key, "wrong"))
            statuses.append(response.status_code)
            if response.status_code == 429:
                refused = response
                break
            assert response.status_code == 401, response.text
            assert response.json()["data"]["code"] == 401

    assert refused is not None, statuses
    assert len(statuses) > LIMITS.per_key
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= LIMITS.window_seconds
    assert refused.json()["data"] == {
        "code": 429,
        "code_desc": f"Too many failed logins: retry after {retry_after} seconds",
    }
