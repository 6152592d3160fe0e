"""The small interfaces the use cases need from the outside world; adapters implement them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from callbridge.domain.accounts import Account
from callbridge.domain.calls import Call, CallStatus, TimelineEvent
from callbridge.domain.campaigns import CallChange, Campaign, CampaignCall, CampaignStatus, Counts, WaitingCall
from callbridge.domain.changes import Change
from callbridge.domain.dispatch import DueKind
from callbridge.domain.ivr import StoredMenu
from callbridge.domain.suppressions import Suppression

Cursor = dict[str, Any]


@dataclass(frozen=True)
class IdempotencyRecord:
    """The first response to a request made with an Idempotency-Key."""

    key: str
    request_hash: str
    response: dict[str, Any]
    expires_at: int


@dataclass(frozen=True)
class CallOutcome:
    """What the hourly chart counts of one call."""

    created_at: str
    status: CallStatus
    answered_by: str


@dataclass(frozen=True)
class Page:
    """One page of calls and where the next one starts (None when there is no more)."""

    calls: list[Call]
    cursor: Cursor | None


@dataclass(frozen=True)
class CallQuery:
    """Filters for an account's requested calls."""

    account_id: str
    statuses: frozenset[CallStatus] = frozenset()
    since: str | None = None
    until: str | None = None
    limit: int = 50
    cursor: Cursor | None = None


class CallsStore(Protocol):
    def create(self, call: Call, *, idempotency: IdempotencyRecord | None = None) -> None:
        """Store a new call (and its idempotency record, atomically). Raises IdempotencyKeyTaken, or
        CallAlreadyStored when there is no idempotency record and the callid is stored already."""

    def get(self, callid: str) -> Call | None: ...

    def get_many(self, callids: Sequence[str]) -> dict[str, Call]:
        """The stored calls of `callids` by callid, read consistently; a callid with no call is left out."""

    def list_calls(self, query: CallQuery) -> Page: ...

    def outcomes_since(self, account_id: str, since: str, limit: int) -> list[CallOutcome]: ...

    def list_scheduled(self, account_id: str, limit: int, cursor: Cursor | None) -> Page: ...

    def cancel(self, callid: str, account_id: str, event: TimelineEvent) -> Call:
        """A scheduled call not started yet (SCHEDULED, or QUEUED with a call_date) → CANCELED for its owner.

        Raises CallNotFound or Conflict.
        """

    def apply(self, callid: str, change: Change) -> tuple[bool, Call | None]:
        """Write one step of the call in one conditional request, no read first (see domain/changes.py).

        (whether the change held, the call after it, or as it is); (False, None) if there is no such call.
        """

    def write(self, callid: str, change: Change) -> tuple[Change | None, Call | None]:
        """`apply`, telling which change was written: `change`, one of its alternatives, or None (nothing held)."""

    def update(self, callid: str, change: Callable[[Call], Call | None], attempts: int = 8) -> Call | None:
        """Read the call, decide, write it back if unchanged meanwhile; None if there is no such call."""


class AccountsStore(Protocol):
    def get_account(self, api_key: str) -> Account | None: ...

    def put_account(self, account: Account) -> None: ...

    def list_accounts(self) -> list[Account]: ...


class IdempotencyRecords(Protocol):
    def get(self, account_id: str, key: str) -> IdempotencyRecord | None:
        """The first response to a request made with this key (written with its call by `CallsStore.create`)."""


class LoginFailureCounter(Protocol):
    """Failed logins per subject (an API key's digest or a source address) in fixed time windows, shared by
    every container. Raises ServiceUnavailable when it cannot count."""

    def counts(self, subjects: Sequence[str], window: int) -> dict[str, int]:
        """Failures so far in `window` for each subject (0 when none)."""

    def add_failure(self, subjects: Sequence[str], window: int, expires_at: int) -> dict[str, int]:
        """Count one more failure for each subject; the new totals. `expires_at`: epoch seconds to keep them."""


class IvrMenuStore(Protocol):
    """An account's IVR menus."""

    def get_ivr_menu(self, account_id: str, code: str) -> StoredMenu | None: ...

    def list_ivr_menus(self, account_id: str) -> list[StoredMenu]: ...

    def put_ivr_menu(self, account_id: str, menu: StoredMenu) -> None:
        """Create or replace the menu of `menu.code`."""

    def delete_ivr_menu(self, account_id: str, code: str) -> bool:
        """Delete a menu; whether there was one."""


class CallsQueue(Protocol):
    def send_call(self, callid: str, *, delay_seconds: int = 0, call_date: str | None = None) -> None: ...


@dataclass(frozen=True)
class DueCall:
    """An entry of the due index: a call, its attention time (ISO 8601, UTC) and whether the call needs the
    scheduler before that time."""

    callid: str
    due: str
    kind: DueKind = DueKind.AHEAD


class DueIndex(Protocol):
    """The sparse, sharded index of calls by the next moment the scheduler must look at them."""

    @property
    def shards(self) -> list[str]: ...

    def due(self, shard: str, before: str, limit: int | None = None) -> list[DueCall]:
        """The shard's calls due before `before` (ISO 8601), soonest first."""

    def dispatch(self, callid: str, before: str, event: TimelineEvent) -> tuple[bool, Call | None]:
        """SCHEDULED → QUEUED if due before `before`, in one conditional write: (True, None) when it moved,
        else (False, the call as it is; None if there is no such call)."""

    def move(self, callid: str, version: int, due: datetime, kind: DueKind) -> bool:
        """Move the call's entry to `due` (an entry of `kind`) if the call is still at `version` (it changed nothing
        else): whether it moved."""


@dataclass(frozen=True)
class Outgoing:
    """One `{"callid"}` message for CallsQueue and how long SQS holds it back."""

    callid: str
    delay_seconds: int
    call_date: str | None = None  # a scheduled call's time, for the placer to hold an early message


class DispatchQueue(Protocol):
    def send_calls(self, messages: Sequence[Outgoing]) -> list[str]:
        """Send up to 10 messages in one request; the callids SQS did not accept. Raises ServiceUnavailable."""


@dataclass(frozen=True)
class DeadLetter:
    """A message the calls queue gave up on, and the callid it names (None for other messages)."""

    receipt_handle: str
    callid: str | None


class DeadLetters(Protocol):
    def receive(self, max_messages: int = 10) -> list[DeadLetter]: ...

    def delete(self, receipt_handles: Sequence[str]) -> None: ...


class IdempotencyKeyTaken(Exception):
    """Another request already used this Idempotency-Key."""


class VersionConflict(Exception):
    """The call changed between read and write; read it again."""


class CallAlreadyStored(Exception):
    """A call with this callid is stored already: a create done before (a redelivery, or a retried request that
    had gone through)."""


class SuppressionList(Protocol):
    """An account's do-not-call list, by E.164 number."""

    def get(self, account_id: str, number: str) -> Suppression | None: ...

    def listed(self, account_id: str, numbers: Sequence[str]) -> set[str]:
        """Which of `numbers` are on the list (one look-up for many)."""

    def add(self, account_id: str, entry: Suppression) -> bool:
        """Add the entry unless the number is listed already (the first entry stays); whether it was new."""

    def put(self, account_id: str, entry: Suppression) -> tuple[Suppression, bool]:
        """Create or replace the number's entry; whether it was new."""

    def delete(self, account_id: str, number: str) -> bool:
        """Remove the number; whether it was listed."""

    def page(self, account_id: str, limit: int, cursor: Cursor | None) -> tuple[list[Suppression], Cursor | None]:
        """Entries in number order from `cursor`, and the next page's cursor (None at the end)."""

    def add_many(self, account_id: str, entries: Sequence[Suppression]) -> int:
        """Add the entries whose numbers are not listed yet; how many were new."""


class CampaignsStore(Protocol):
    """CampaignsTable: campaigns, their accepted calls, their waiting calls and their counts."""

    def create(
        self,
        campaign: Campaign,
        chunks: Sequence[Sequence[CampaignCall]],
        counts: Counts,
        idempotency: IdempotencyRecord | None,
    ) -> None: ...

    def get(self, campaign_id: str) -> Campaign | None: ...

    def header(self, campaign_id: str) -> dict[str, Any] | None: ...

    def counts(self, campaign_id: str) -> Counts: ...

    def list_campaigns(
        self, account_id: str, limit: int, cursor: Cursor | None
    ) -> tuple[list[Campaign], Cursor | None]: ...

    def move(
        self,
        campaign_id: str,
        account_id: str,
        allowed: Iterable[CampaignStatus],
        target: CampaignStatus,
        at: str,
        **fields: Any,
    ) -> Campaign: ...

    def claim_tick(self, campaign_id: str, seq: int, owner: str) -> dict[str, Any] | None: ...

    def tick_done(self, campaign_id: str, seq: int) -> None: ...

    def chunk_done(self, campaign_id: str, chunk: int) -> dict[str, Any]: ...

    def mark_notified(self, campaign_id: str, at: str) -> bool: ...

    def chunk(self, campaign_id: str, number: int) -> list[CampaignCall]: ...

    def chunks(self, campaign_id: str) -> list[CampaignCall]: ...

    def add_members(self, campaign_id: str, calls: Sequence[CampaignCall]) -> None: ...

    def members(
        self, campaign_id: str, limit: int | None = None, cursor: Cursor | None = None
    ) -> tuple[list[str], Cursor | None]: ...

    def members_in(self, campaign_id: str, statuses: Iterable[str]) -> list[str]:
        """Callids of the campaign's calls last counted in one of `statuses`."""

    def add_waiting(self, campaign_id: str, calls: Iterable[WaitingCall]) -> None: ...

    def waiting(self, campaign_id: str, limit: int, due_by: str | None = None) -> list[WaitingCall]:
        """Waiting calls in release order: the dated ones due by `due_by` (all when None), then the others."""

    def remove_waiting(self, campaign_id: str, calls: Iterable[WaitingCall]) -> None: ...

    def count(self, campaign_id: str, changes: Sequence[CallChange]) -> int:
        """Count the changes (one per call) exactly once each; how many were counted."""


class CampaignsQueue(Protocol):
    """CampaignsQueue: the campaigns function's work (fan-out, release steps, cancel, notification)."""

    def send(self, messages: Sequence[tuple[dict[str, Any], int]]) -> None:
        """Send (message, delay seconds) pairs; raises ServiceUnavailable if any is not accepted."""
