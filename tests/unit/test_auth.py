"""Passwords as slow salted hashes, constant-time checks, HTTP Basic parsing and the per-container cache."""

from __future__ import annotations

import base64
import hmac
from typing import Any

import pytest
from callbridge.domain.accounts import DUMMY_HASH, Account, hash_password, verify_password
from callbridge.domain.errors import Unauthorized
from callbridge.logic.auth import MAX_KEY, Authenticator, parse_basic
from callbridge.ports import IdempotencyRecord
from hypothesis import given
from hypothesis import strategies as st

PASSWORD = "correct horse battery staple"
HASH = hash_password(PASSWORD)


def basic(key: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{password}".encode()).decode()


class FakeAccounts:
    """An in-memory AccountsStore that counts look-ups."""

    def __init__(self, *accounts: Account) -> None:
        self.accounts = {a.api_key: a for a in accounts}
        self.lookups = 0

    def get_account(self, api_key: str) -> Account | None:
        self.lookups += 1
        return self.accounts.get(api_key)

    def put_account(self, account: Account) -> None:
        self.accounts[account.api_key] = account

    def list_accounts(self) -> list[Account]:
        return list(self.accounts.values())

    def get_idempotency(self, account_id: str, key: str) -> IdempotencyRecord | None:
        return None

    def ivr_exists(self, account_id: str, code: str) -> bool:
        return False


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def account(**overrides: Any) -> Account:
    data: dict[str, Any] = {
        "api_key": "cb_key",
        "password_hash": HASH,
        "caller_id": "+12815550100",
        "webhook_secret": "whsec_x",
    }
    return Account(**{**data, **overrides})


# --- hashing


def test_hash_is_salted_scrypt_and_never_the_password() -> None:
    other = hash_password(PASSWORD)

    assert HASH.startswith("scrypt$")
    assert PASSWORD not in HASH
    assert other != HASH  # a fresh salt each time
    n = int(HASH.split("$")[1])
    assert n >= 2**14  # slow: memory-hard work factor


def test_verify_password() -> None:
    assert verify_password(PASSWORD, HASH)
    assert not verify_password(PASSWORD + "x", HASH)
    assert not verify_password("", HASH)


@pytest.mark.parametrize(
    "stored", ["", "plain", "bcrypt$1$2$3$4$5", "scrypt$x$8$1$AA==$AA==", "scrypt$16384$8$1$!!$AA"]
)
def test_malformed_stored_hashes_never_match(stored: str) -> None:
    assert not verify_password(PASSWORD, stored)


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a spy on the constant-time comparison
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module callbridge.domain.accounts compares with

    # when
    result = verify_password("wrong", HASH)

    # then
    assert result is False
    assert len(calls) == 1


# --- Basic credentials


def test_parse_basic() -> None:
    assert parse_basic(basic("cb_key", "p:w:d")) == ("cb_key", "p:w:d")
    assert parse_basic("basic " + base64.b64encode(b"k:").decode()) == ("k", "")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer abc",
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b":password").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        basic("k" * (MAX_KEY + 1), "x"),
    ],
)
def test_malformed_credentials(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        parse_basic(header)


@given(
    st.one_of(
        st.none(), st.text(max_size=80), st.binary(max_size=60).map(lambda b: "Basic " + base64.b64encode(b).decode())
    )
)
def test_parse_basic_only_ever_raises_unauthorized(header: str | None) -> None:
    try:
        key, _ = parse_basic(header)
    except Unauthorized:
        return
    assert 0 < len(key) <= MAX_KEY


# --- the Authenticator


def test_right_credentials_give_the_account() -> None:
    auth = Authenticator(FakeAccounts(account()))

    assert auth.authenticate(basic("cb_key", PASSWORD)).api_key == "cb_key"


@pytest.mark.parametrize(("key", "password"), [("cb_key", "wrong"), ("cb_other", PASSWORD)])
def test_wrong_key_or_password(key: str, password: str) -> None:
    auth = Authenticator(FakeAccounts(account()))

    with pytest.raises(Unauthorized, match="wrong API key or password"):
        auth.authenticate(basic(key, password))


def test_unknown_key_still_pays_for_a_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    # A miss must cost what a hit costs, so response time does not reveal which keys exist.
    from callbridge.logic import auth as auth_module

    checked: list[str] = []

    def verify(password: str, stored: str) -> bool:
        checked.append(stored)
        return False

    monkeypatch.setattr(auth_module, "verify_password", verify)

    with pytest.raises(Unauthorized):
        Authenticator(FakeAccounts()).authenticate(basic("cb_nobody", PASSWORD))

    assert checked == [DUMMY_HASH]


def test_disabled_account_is_refused_even_with_the_right_password() -> None:
    auth = Authenticator(FakeAccounts(account(enabled=False)))

    with pytest.raises(Unauthorized, match="disabled"):
        auth.authenticate(basic("cb_key", PASSWORD))


def test_verified_credentials_are_cached_for_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    from callbridge.logic import auth as auth_module

    verifications: list[str] = []
    real = verify_password

    def counting(password: str, stored: str) -> bool:
        verifications.append(password)
        return real(password, stored)

    monkeypatch.setattr(auth_module, "verify_password", counting)
    store, clock = FakeAccounts(account()), Clock()
    auth = Authenticator(store, ttl=60, clock=clock)

    # when: three requests within the ttl, one after
    for _ in range(3):
        auth.authenticate(basic("cb_key", PASSWORD))
    clock.now += 61
    auth.authenticate(basic("cb_key", PASSWORD))

    # then
    assert len(verifications) == 2
    assert store.lookups == 2


def test_the_cache_never_accepts_a_different_password() -> None:
    auth = Authenticator(FakeAccounts(account()), ttl=60, clock=Clock())
    auth.authenticate(basic("cb_key", PASSWORD))

    with pytest.raises(Unauthorized):
        auth.authenticate(basic("cb_key", PASSWORD + "!"))


def test_a_rotated_password_takes_effect_after_the_ttl() -> None:
    # given
    store, clock = FakeAccounts(account()), Clock()
    auth = Authenticator(store, ttl=60, clock=clock)
    auth.authenticate(basic("cb_key", PASSWORD))

    # when
    store.put_account(account(password_hash=hash_password("new password")))
    clock.now += 61

    # then
    with pytest.raises(Unauthorized):
        auth.authenticate(basic("cb_key", PASSWORD))
    assert auth.authenticate(basic("cb_key", "new password")).api_key == "cb_key"


def test_zero_ttl_sees_a_disable_at_once() -> None:
    store = FakeAccounts(account())
    auth = Authenticator(store, ttl=0, clock=Clock())
    auth.authenticate(basic("cb_key", PASSWORD))

    store.put_account(account(enabled=False))

    with pytest.raises(Unauthorized, match="disabled"):
        auth.authenticate(basic("cb_key", PASSWORD))


def test_the_dummy_hash_is_a_real_hash_of_the_same_cost() -> None:
    # written out to keep a scrypt out of every cold start; it must still cost what a real hash costs
    assert hash_password("callbridge-dummy", salt=b"\0" * 16) == DUMMY_HASH
    assert verify_password("callbridge-dummy", DUMMY_HASH)
