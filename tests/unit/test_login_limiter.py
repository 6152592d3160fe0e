"""Failed logins are cheap to refuse: a burst per API key or per address, then 429 until the window ends."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from callbridge.domain.accounts import DUMMY_HASH, verify_password
from callbridge.domain.errors import ServiceUnavailable, TooManyFailedLogins, Unauthorized
from callbridge.logic import auth as auth_module
from callbridge.logic.auth import Authenticator, LoginLimiter, LoginLimits, key_subject, source_subject

from tests.unit.test_auth import HASH, PASSWORD, Clock, FakeAccounts, account, basic

LIMITS = LoginLimits(window_seconds=300, per_key=3, per_source=5)
IP = "203.0.113.10"


class FakeCounter:
    """The LoginFailureCounter port in memory (one table shared by every 'container'); records each request."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, int], int] = {}
        self.requests: list[tuple[str, tuple[str, ...], int]] = []
        self.expires: dict[tuple[str, int], int] = {}
        self.down = False

    def counts(self, subjects: Sequence[str], window: int) -> dict[str, int]:
        self.requests.append(("counts", tuple(subjects), window))
        if self.down:
            raise ServiceUnavailable("table down")
        return {s: self.items.get((s, window), 0) for s in subjects}

    def add_failure(self, subjects: Sequence[str], window: int, expires_at: int) -> dict[str, int]:
        self.requests.append(("add", tuple(subjects), window))
        if self.down:
            raise ServiceUnavailable("table down")
        for s in subjects:
            self.items[(s, window)] = self.items.get((s, window), 0) + 1
            self.expires[(s, window)] = expires_at
        return {s: self.items[(s, window)] for s in subjects}


class Hashes:
    """Counts password hashes (the expensive part) without changing their verdicts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.checked: list[str] = []
        real = verify_password

        def counting(password: str, stored: str) -> bool:
            self.checked.append(stored)
            return real(password, stored)

        monkeypatch.setattr(auth_module, "verify_password", counting)


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> Hashes:
    return Hashes(monkeypatch)


def container(
    counter: FakeCounter, wall: Clock, store: FakeAccounts | None = None, errors: list[str] | None = None
) -> Authenticator:
    """One container's Authenticator: its own caches, the shared counter."""
    limiter = LoginLimiter(counter, LIMITS, clock=wall, on_error=(errors.append if errors is not None else None))
    return Authenticator(store or FakeAccounts(account()), ttl=60, clock=wall, limiter=limiter)


def wall_clock() -> Clock:
    clock = Clock()
    clock.now = 1_800_000_000.0 + 10  # 10 s into a 300-s window
    return clock


def fail(auth: Authenticator, key: str = "cb_key", source: str | None = IP) -> None:
    """A wrong password for `key` (cb_key exists; other keys do not)."""
    with pytest.raises(Unauthorized, match="wrong API key or password"):
        auth.authenticate(basic(key, "wrong"), source)


# --- per key, per address, per window


def test_a_burst_of_failures_for_a_key_is_followed_by_429_until_the_window_ends(hashes: Hashes) -> None:
    # given: one container, three wrong passwords for cb_key from three addresses
    counter, clock = FakeCounter(), wall_clock()
    auth = container(counter, clock)
    for n in range(LIMITS.per_key):
        fail(auth, source=f"198.51.100.{n}")

    # when: the fourth try, even with the right password, from a fresh address
    hashes.checked.clear()
    requests_before = len(counter.requests)
    with pytest.raises(TooManyFailedLogins) as refused:
        auth.authenticate(basic("cb_key", PASSWORD), "192.0.2.99")

    # then: refused with the seconds left in the window, without a hash or a request to the counter
    assert refused.value.retry_after == 290
    assert hashes.checked == []
    assert len(counter.requests) == requests_before

    # and once the window is over, the right password works again
    clock.now += 290
    assert auth.authenticate(basic("cb_key", PASSWORD), "192.0.2.99").api_key == "cb_key"


def test_a_burst_of_failures_from_one_address_blocks_that_address_for_any_key() -> None:
    counter, clock = FakeCounter(), wall_clock()
    auth = container(counter, clock, FakeAccounts(account(), account(api_key="cb_other")))
    for n in range(LIMITS.per_source):
        fail(auth, key=f"cb_guess{n}")

    with pytest.raises(TooManyFailedLogins):
        auth.authenticate(basic("cb_other", PASSWORD), IP)
    # another address is not affected, nor is the key (it never failed)
    assert auth.authenticate(basic("cb_other", PASSWORD), "198.51.100.7").api_key == "cb_other"


def test_failures_below_the_limit_are_plain_401s() -> None:
    counter, clock = FakeCounter(), wall_clock()
    auth = container(counter, clock)
    for _ in range(LIMITS.per_key - 1):
        fail(auth)

    assert auth.authenticate(basic("cb_key", PASSWORD), IP).api_key == "cb_key"


def test_a_new_window_starts_a_new_count() -> None:
    counter, clock = FakeCounter(), wall_clock()
    auth = container(counter, clock)
    for _ in range(LIMITS.per_key - 1):
        fail(auth)
    clock.now += LIMITS.window_seconds

    for _ in range(LIMITS.per_key - 1):
        fail(auth)
    assert auth.authenticate(basic("cb_key", PASSWORD), IP).api_key == "cb_key"


def test_counters_are_kept_one_window_after_theirs_ends() -> None:
    counter, clock = FakeCounter(), wall_clock()
    fail(container(counter, clock))

    window = int(clock.now // LIMITS.window_seconds)
    assert set(counter.expires.values()) == {(window + 2) * LIMITS.window_seconds}


# --- across containers


def test_the_limit_holds_across_containers_and_each_learns_a_block_once() -> None:
    # given: the burst spent in container A
    counter, clock = FakeCounter(), wall_clock()
    a, b = container(counter, clock), container(counter, clock)
    for _ in range(LIMITS.per_key):
        fail(a)

    # when: container B is asked twice
    for _ in range(2):
        with pytest.raises(TooManyFailedLogins):
            b.authenticate(basic("cb_key", PASSWORD), "192.0.2.1")

    # then: B read the shared counters once and remembered the block
    reads_by_b = [r for r in counter.requests if r[0] == "counts"][LIMITS.per_key :]
    assert len(reads_by_b) == 1


def test_a_credential_the_container_verified_lately_costs_no_counter_request() -> None:
    counter, clock = FakeCounter(), wall_clock()
    auth = container(counter, clock)
    auth.authenticate(basic("cb_key", PASSWORD), IP)
    before = len(counter.requests)

    for _ in range(5):
        auth.authenticate(basic("cb_key", PASSWORD), IP)

    assert len(counter.requests) == before
    assert not any(r[0] == "add" for r in counter.requests)  # a success is never written


# --- no enumeration by timing or by answer


def test_an_unknown_key_and_a_wrong_password_cost_and_count_the_same(hashes: Hashes) -> None:
    def trace(key: str) -> tuple[list[tuple[str, int]], list[str], int | None]:
        counter, clock = FakeCounter(), wall_clock()
        auth = container(counter, clock)
        hashes.checked.clear()
        retry_after = None
        for _ in range(LIMITS.per_key + 2):
            try:
                auth.authenticate(basic(key, "wrong"), IP)
            except TooManyFailedLogins as exc:
                retry_after = exc.retry_after
            except Unauthorized:
                pass
        shape = [(kind, len(subjects)) for kind, subjects, _ in counter.requests]
        return shape, ["hash" for _ in hashes.checked], retry_after

    known = trace("cb_key")
    unknown = trace("cb_nobody")

    assert known == unknown
    assert known[1] == ["hash"] * LIMITS.per_key  # a hash per failure inside the burst, none after
    assert known[2] is not None
    # the last trace was the unknown key's: it paid the dummy hash, never the account's
    assert DUMMY_HASH in hashes.checked
    assert HASH not in hashes.checked


def test_subjects_hold_no_api_key_and_ipv6_counts_per_slash_64() -> None:
    assert "cb_secret_key" not in key_subject("cb_secret_key")
    assert key_subject("a") != key_subject("b")
    assert source_subject("2001:db8:1:2::1") == source_subject("2001:db8:1:2:ffff::9") == "ip#2001:db8:1:2::/64"
    assert source_subject("2001:db8:1:3::1") != source_subject("2001:db8:1:2::1")
    assert source_subject("::ffff:203.0.113.10") == source_subject("203.0.113.10") == "ip#203.0.113.10"


def test_no_source_address_counts_per_key_only() -> None:
    counter, clock = FakeCounter(), wall_clock()
    fail(container(counter, clock), source=None)

    assert counter.requests[-1][1] == (key_subject("cb_key"),)


# --- the counter is a cost control, not a dependency


def test_when_the_counter_is_unavailable_logins_still_work_and_someone_hears_of_it() -> None:
    counter, clock = FakeCounter(), wall_clock()
    errors: list[str] = []
    counter.down = True
    auth = container(counter, clock, errors=errors)

    fail(auth)
    assert auth.authenticate(basic("cb_key", PASSWORD), IP).api_key == "cb_key"
    assert any("failed-login counters" in e for e in errors)
    assert any("count a failed login" in e for e in errors)


def test_malformed_or_missing_credentials_are_not_counted() -> None:
    counter, clock = FakeCounter(), wall_clock()
    auth = container(counter, clock)
    for header in (None, "Bearer x", "Basic !!!"):
        with pytest.raises(Unauthorized):
            auth.authenticate(header, IP)

    assert counter.requests == []
