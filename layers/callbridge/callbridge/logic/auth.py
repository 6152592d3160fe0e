"""HTTP Basic authentication against AccountsTable, cached briefly per container, with failed logins
rate-limited per API key and per source address."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from callbridge.domain.accounts import DUMMY_HASH, Account, verify_password
from callbridge.domain.errors import ServiceUnavailable, TooManyFailedLogins, Unauthorized
from callbridge.ports import AccountsStore, LoginFailureCounter

MAX_KEY = 256  # far above any issued key, far below DynamoDB's 2048-byte partition key limit


def parse_basic(header: str | None) -> tuple[str, str]:
    """(key, password) from an `Authorization: Basic ...` header; raises Unauthorized."""
    if not header:
        raise Unauthorized("no credentials given")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        raise Unauthorized("HTTP Basic credentials required")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise Unauthorized("malformed Basic credentials") from exc
    key, sep, password = decoded.partition(":")
    if not sep or not key or len(key) > MAX_KEY:
        raise Unauthorized("malformed Basic credentials")
    return key, password


@dataclass(frozen=True)
class LoginLimits:
    """How many failed logins a burst may hold before the rest of its window is refused with a 429."""

    window_seconds: int = 300
    per_key: int = 10  # failures for one API key, from anywhere
    per_source: int = 30  # failures from one address (an IPv6 /64), for any keys


def key_subject(key: str) -> str:
    """The counter of an API key: a digest, so the table holds no key (nor 256 bytes of garbage)."""
    return "key#" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def source_subject(source: str) -> str:
    """The counter of a source address. An IPv6 client usually holds a whole /64: count the /64."""
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return "ip#" + source[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "ip#" + str(address.ipv4_mapped)
        return "ip#" + str(ipaddress.IPv6Network((address, 64), strict=False))
    return "ip#" + str(address)


class LoginLimiter:
    """Refuses logins for a key or an address whose failures in the current window reached the limit.

    Counters are shared (`counter`, a table every container writes), so the limit holds however many
    containers an attacker's requests land on. A block learnt once is remembered by the container until
    its window ends, so refusing the rest of a burst costs no request at all. The decision depends only
    on the presented key and the address, never on whether the key exists. When the counter is
    unavailable the limiter stays out of the way (logins still work; `on_error` hears about it).
    """

    def __init__(
        self,
        counter: LoginFailureCounter,
        limits: LoginLimits | None = None,
        clock: Callable[[], float] = time.time,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._counter = counter
        self.limits = limits or LoginLimits()
        self.clock = clock  # wall time: windows are shared by every container
        self._on_error = on_error or (lambda _message: None)
        self._blocked: dict[str, float] = {}  # subject -> end of its block (epoch seconds)

    def _subjects(self, key: str, source: str | None) -> dict[str, int]:
        subjects = {key_subject(key): self.limits.per_key}
        if source:
            subjects[source_subject(source)] = self.limits.per_source
        return subjects

    def _window(self, now: float) -> tuple[int, float]:
        index = int(now // self.limits.window_seconds)
        return index, (index + 1) * self.limits.window_seconds

    def _refuse(self, until: float, now: float) -> TooManyFailedLogins:
        return TooManyFailedLogins(max(1, math.ceil(until - now)))

    def check_remembered(self, key: str, source: str | None) -> None:
        """Raise TooManyFailedLogins if this container already knows the key or the address is blocked."""
        now = self.clock()
        for subject in self._subjects(key, source):
            until = self._blocked.get(subject, 0.0)
            if until > now:
                raise self._refuse(until, now)

    def check(self, key: str, source: str | None) -> None:
        """Raise TooManyFailedLogins if the key or the address is blocked, asking the shared counters."""
        self.check_remembered(key, source)
        now = self.clock()
        window, ends = self._window(now)
        subjects = self._subjects(key, source)
        try:
            counts = self._counter.counts(list(subjects), window)
        except ServiceUnavailable as exc:
            self._on_error(f"could not read failed-login counters: {exc}")
            return
        self._learn(subjects, counts, ends)
        self.check_remembered(key, source)

    def failed(self, key: str, source: str | None) -> None:
        """Count a failed login (the request itself is still answered 401)."""
        now = self.clock()
        window, ends = self._window(now)
        subjects = self._subjects(key, source)
        try:
            counts = self._counter.add_failure(list(subjects), window, int(ends + self.limits.window_seconds))
        except ServiceUnavailable as exc:
            self._on_error(f"could not count a failed login: {exc}")
            return
        self._learn(subjects, counts, ends)

    def _learn(self, subjects: dict[str, int], counts: dict[str, int], ends: float) -> None:
        for subject, limit in subjects.items():
            if counts.get(subject, 0) >= limit:
                if len(self._blocked) > 10_000:
                    now = self.clock()
                    self._blocked = {s: t for s, t in self._blocked.items() if t > now}
                self._blocked[subject] = ends


class Authenticator:
    """Checks credentials; remembers accounts and verified credentials for `ttl` seconds.

    The cache holds an HMAC of the presented password under a per-container random key,
    never the password itself. With a `limiter`, a burst of failed logins for a key or from an
    address is refused with TooManyFailedLogins before any look-up or password hash.
    """

    def __init__(
        self,
        accounts: AccountsStore,
        ttl: float = 60,
        clock: Callable[[], float] = time.monotonic,
        limiter: LoginLimiter | None = None,
    ) -> None:
        self._accounts = accounts
        self._ttl = ttl
        self._clock = clock
        self._limiter = limiter
        self._pepper = secrets.token_bytes(32)
        self._accounts_cache: dict[str, tuple[float, Account | None]] = {}
        self._verified: dict[bytes, float] = {}

    def _cached_account(self, key: str) -> tuple[bool, Account | None]:
        hit = self._accounts_cache.get(key)
        if hit and hit[0] > self._clock():
            return True, hit[1]
        return False, None

    def _account(self, key: str) -> Account | None:
        found, account = self._cached_account(key)
        if found:
            return account
        account = self._accounts.get_account(key)
        if len(self._accounts_cache) > 10_000:
            self._accounts_cache.clear()
        self._accounts_cache[key] = (self._clock() + self._ttl, account)
        return account

    def _fingerprint(self, key: str, password: str, account: Account) -> bytes:
        return hmac.new(self._pepper, f"{key}\0{password}\0{account.password_hash}".encode(), hashlib.sha256).digest()

    def _enabled(self, account: Account) -> Account:
        if not account.enabled:
            raise Unauthorized("account disabled")
        return account

    def authenticate(self, header: str | None, source: str | None = None) -> Account:
        """The enabled account these credentials belong to; raises Unauthorized otherwise.

        `source`: the client's address, for the failed-login limit (TooManyFailedLogins).
        """
        key, password = parse_basic(header)
        limiter = self._limiter
        if limiter is not None:
            limiter.check_remembered(key, source)
        # A credential this container verified lately costs neither a request nor a hash.
        found, cached = self._cached_account(key)
        if (
            found
            and cached is not None
            and self._verified.get(self._fingerprint(key, password, cached), 0) > self._clock()
        ):
            return self._enabled(cached)
        if limiter is not None:
            limiter.check(key, source)
        account = self._account(key)
        # An unknown key costs the same hash as a wrong password: how long a refusal takes tells nothing.
        if account is None:
            verify_password(password, DUMMY_HASH)
        if account is None or not verify_password(password, account.password_hash):
            if limiter is not None:
                limiter.failed(key, source)
            raise Unauthorized("wrong API key or password")
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[self._fingerprint(key, password, account)] = self._clock() + self._ttl
        return self._enabled(account)
