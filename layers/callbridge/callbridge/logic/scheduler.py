"""Use case: one scheduler run — dispatch calls due soon, re-send lost ones, reconcile stuck ones, drain the DLQ.

A run is safe to repeat, to overlap with another run and to die at any point:
- every change is a conditional write on the call (optimistic version check), so of two runs, a cancel and
  a placer, exactly one wins each transition, and a loser re-reads the call and does nothing;
- a call is written QUEUED *before* its message is sent, and stays in the due index: if the send never
  happens, a later run sends it again once it is `grace` seconds overdue (a duplicate message is harmless:
  the placer's claim QUEUED → DIALING succeeds once);
- nothing is removed from the due index except by the write that makes the call final;
- an index entry is a lower bound of its call's attention time (a step may keep an earlier place, see
  domain/dispatch.py): a call found before it needs anything is left as it is, and its entry, once past
  due, is moved to the call's time if that is beyond the run's window (the next runs would look for nothing);
- only an entry of a waiting call not dispatched (`DueKind.AHEAD`) is acted on before its time; any other
  entry whose time is still ahead is left without a request (a call in flight sits in the window for most of
  its life: it would cost a failed write at every run). Every function that writes calls places them with the
  scheduler's timing (settings.DueIndexSettings), so such an entry is a lower bound of the time it acts at.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from enum import StrEnum
from typing import Any

from callbridge.carrier.base import Carrier, CarrierCall, CarrierError
from callbridge.domain.calls import Call, iso, moment
from callbridge.domain.dispatch import (
    DEFAULT_TIMING,
    DueKind,
    Step,
    Timing,
    attention,
    dead_lettered,
    delay_seconds,
    dispatched_event,
    due_kind,
    from_carrier,
    horizon,
    never_placed,
    next_step,
    requeue,
    unknown_to_carrier,
)
from callbridge.domain.errors import ServiceUnavailable
from callbridge.logic.updates import update
from callbridge.ports import CallsStore, DeadLetters, DispatchQueue, DueCall, DueIndex, Outgoing

BATCH = 10  # SendMessageBatch entries


class Outcome(StrEnum):
    """What a run did with one call it looked at."""

    NOTHING = "nothing"
    DISPATCHED = "dispatched"
    RESENT = "resent"
    RECONCILE = "reconcile"  # ask the carrier (after the look-ups)
    NEVER_PLACED = "never_placed"
    ERROR = "error"
    LEFT = "left"  # the run ran out of time; the next one takes it


@dataclass
class RunReport:
    """What one run did (logged, and turned into metrics by the handler)."""

    due: int = 0
    dispatched: int = 0
    resent: int = 0
    reconciled: int = 0
    dead_lettered: int = 0
    send_failures: int = 0
    errors: int = 0
    left: int = 0
    seconds: float = 0.0
    # The calls this run ended after they were dialed (reconciliation: the carrier's answer, no record of the call,
    # never placed), each counted once by its outcome; a dead-lettered call, never dialed, is only `dead_lettered`.
    ended: list[Call] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The counts (what is logged and returned)."""
        return {k: v for k, v in self.__dict__.items() if k != "ended"}


def carrier_params(found: CarrierCall) -> dict[str, str]:
    """The carrier's answer to GET call as the status callback it stands for (domain/progress.py reads it)."""
    params = {"CallSid": found.sid, "CallStatus": found.status, "CallbackSource": "reconciliation"}
    if found.duration is not None:
        params["CallDuration"] = str(found.duration)
    if found.answered_by:
        params["AnsweredBy"] = found.answered_by
    when = found.end_time or found.start_time
    if when is not None:
        params["Timestamp"] = format_datetime(when.astimezone(UTC), usegmt=True)
    return params


class _Sender:
    """Collects dispatched calls into SendMessageBatch requests of 10, sent in parallel as they fill.

    Each message's DelaySeconds is computed when its batch goes out, so time spent in the run is not added.
    """

    def __init__(self, queue: DispatchQueue, pool: ThreadPoolExecutor, now: Callable[[], datetime], log: Any) -> None:
        self._queue = queue
        self._pool = pool
        self._now = now
        self._log = log
        self._lock = threading.Lock()
        self._pending: list[tuple[str, datetime]] = []
        self._batches: list[Future[list[str]]] = []

    def add(self, callid: str, due: datetime) -> None:
        with self._lock:
            self._pending.append((callid, due))
            if len(self._pending) < BATCH:
                return
            batch, self._pending = self._pending, []
            self._batches.append(self._pool.submit(self._send, batch))

    def finish(self) -> list[str]:
        """Send what is left and wait; the callids that could not be sent."""
        with self._lock:
            if self._pending:
                self._batches.append(self._pool.submit(self._send, self._pending))
                self._pending = []
        return [callid for batch in self._batches for callid in batch.result()]

    def _send(self, batch: list[tuple[str, datetime]]) -> list[str]:
        for attempt in (1, 2):
            at = self._now()
            messages = [Outgoing(callid, delay_seconds(due, at)) for callid, due in batch]
            try:
                failed = set(self._queue.send_calls(messages))
            except ServiceUnavailable as exc:
                self._log("could not send a batch of calls", error=str(exc), attempt=attempt)
                failed = {callid for callid, _ in batch}
            batch = [(callid, due) for callid, due in batch if callid in failed]
            if not batch:
                return []
        return [callid for callid, _ in batch]


@dataclass
class Scheduler:
    """Everything a scheduler run needs."""

    calls: CallsStore
    index: DueIndex
    queue: DispatchQueue
    carrier: Callable[[], Carrier]  # built on first use: most runs never ask the carrier anything
    dead_letters: DeadLetters | None = None
    timing: Timing = DEFAULT_TIMING  # the one every writer of calls places them in the due index with
    lookahead: float = 90
    workers: int = 32
    senders: int = 8
    carrier_workers: int = 8
    dead_letter_batches: int = 20
    now: Callable[[], float] = time.time
    log: Callable[..., None] = field(default=lambda *_args, **_kw: None)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def run(self, deadline: float | None = None) -> RunReport:
        """One run. `deadline` (same clock as `now`): start no new work after it; the next run picks it up."""
        started = self.now()
        report = RunReport()
        window_end = horizon(self._now(), self.lookahead)
        due = self.due(window_end)
        report.due = len(due)
        with ThreadPoolExecutor(self.workers) as lookers, ThreadPoolExecutor(self.senders) as senders:
            sender = _Sender(self.queue, senders, self._now, self.log)
            outcomes = list(lookers.map(lambda entry: self._look(entry, window_end, sender, deadline), due))
            unsent = sender.finish()
        to_ask = [call for outcome, call in outcomes if outcome is Outcome.RECONCILE and call is not None]
        counts = {o: sum(1 for outcome, _ in outcomes if outcome is o) for o in Outcome}
        reconciled, carrier_errors, ended = self._reconcile(to_ask, deadline)
        report.ended = [call for outcome, call in outcomes if outcome is Outcome.NEVER_PLACED and call] + ended
        report.dispatched = counts[Outcome.DISPATCHED]
        report.resent = counts[Outcome.RESENT]
        report.reconciled = counts[Outcome.NEVER_PLACED] + reconciled
        report.left = counts[Outcome.LEFT]
        report.errors = counts[Outcome.ERROR] + carrier_errors
        report.send_failures = len(unsent)
        if unsent:
            # Written QUEUED but not sent: they are re-sent once `grace` overdue (their index entry stays).
            self.log("calls written QUEUED but not sent; a later run re-sends them", callids=unsent[:20])
        if self.dead_letters is not None:
            report.dead_lettered, dlq_errors = self._drain_dead_letters(self.dead_letters, deadline)
            report.errors += dlq_errors
        report.seconds = round(self.now() - started, 3)
        return report

    def due(self, before: datetime) -> list[DueCall]:
        """Every index entry due before `before`, from all shards queried in parallel, soonest first."""
        shards = self.index.shards
        bound = iso(before)
        with ThreadPoolExecutor(min(len(shards), 16) or 1) as pool:
            found = [entry for part in pool.map(lambda s: self.index.due(s, bound), shards) for entry in part]
        return sorted(found, key=lambda e: (e.due, e.callid))

    def _past(self, deadline: float | None) -> bool:
        return deadline is not None and self.now() >= deadline

    def _look(
        self, entry: DueCall, window_end: datetime, sender: _Sender, deadline: float | None
    ) -> tuple[Outcome, Call | None]:
        """Move one call on if its state calls for it (conditional writes); queue its message if so.

        The common case, a SCHEDULED call due in the window, is one conditional write and no read; its
        failure returns the call as it is, which says whether it needs anything else. An entry that needs
        nothing before its time (`DueKind.AT`) costs nothing until then.
        """
        if self._past(deadline):
            return Outcome.LEFT, None
        now = self._now()
        if entry.kind is DueKind.AT and moment(entry.due) > now:
            return Outcome.NOTHING, None
        try:
            moved, current = self.index.dispatch(entry.callid, iso(window_end), dispatched_event(now, entry.due))
        except ServiceUnavailable as exc:
            self.log("could not dispatch a due call", callid=entry.callid, error=str(exc))
            return Outcome.ERROR, None
        if moved:
            sender.add(entry.callid, moment(entry.due))
            return Outcome.DISPATCHED, None
        if current is None:
            return Outcome.NOTHING, None
        step = next_step(current, now, window_end, self.timing)
        if step is Step.RECONCILE and current.carrier_call_id:
            return Outcome.RECONCILE, current  # the carrier is asked after the look-ups; nothing to write yet
        if step not in (Step.RESEND, Step.RECONCILE):
            self._move_early_entry(entry, current, now, window_end)
            return Outcome.NOTHING, current

        decided: list[Step] = [step]

        def change(call: Call) -> Call | None:
            again = decided[0] = next_step(call, now, window_end, self.timing)  # it may have moved since
            if again is Step.RESEND:
                return requeue(call, now, self.timing)
            if again is Step.RECONCILE and not call.carrier_call_id:
                return never_placed(call, now, self.timing)
            return None

        try:
            updated = update(self.calls, entry.callid, change)
        except ServiceUnavailable as exc:
            self.log("could not update a due call", callid=entry.callid, error=str(exc))
            return Outcome.ERROR, None
        stored = updated.call
        if not updated.wrote or stored is None:
            return Outcome.NOTHING, stored
        if decided[0] is Step.RESEND:
            sender.add(entry.callid, now)
            return Outcome.RESENT, stored
        return Outcome.NEVER_PLACED, stored  # it ended FAILED (`never_placed` changes only a call not final)

    def _move_early_entry(self, entry: DueCall, call: Call, now: datetime, window_end: datetime) -> None:
        """Move a past-due entry whose call needs nothing before this run's window ends to the call's time.

        An answer keeps the call's earlier place in the index (no index write on the call's path); a call that
        is still in progress long after it is moved here once, so later runs do not find it again and again.
        """
        if moment(entry.due) > now:
            return
        due = attention(call, self.timing)
        if due is None or due < window_end:
            return
        try:
            self.index.move(entry.callid, call.version, due, due_kind(call))
        except ServiceUnavailable as exc:  # it stays where it is: the next run finds it and tries again
            self.log("could not move a call in the due index", callid=entry.callid, error=str(exc))

    def _reconcile(self, calls: list[Call], deadline: float | None) -> tuple[int, int, list[Call]]:
        """Ask the carrier about each call in flight past its limits and apply its answer: (changed, errors, the
        calls its answer ended)."""
        if not calls:
            return 0, 0, []
        try:
            carrier = self.carrier()
        except ServiceUnavailable as exc:  # e.g. the carrier secret cannot be read: the next run asks again
            self.log("carrier unavailable for reconciliation", error=str(exc), calls=len(calls))
            return 0, len(calls), []

        def one(call: Call) -> tuple[Outcome, Call | None]:
            if self._past(deadline):
                return Outcome.LEFT, None
            sid = call.carrier_call_id or ""
            try:
                found = carrier.fetch_call(sid)
            except CarrierError as exc:
                self.log("could not ask the carrier about a call", callid=call.callid, sid=sid, error=str(exc))
                return Outcome.ERROR, None
            now = self._now()

            def change(current: Call) -> Call | None:
                if current.carrier_call_id != sid or next_step(current, now, now, self.timing) is not Step.RECONCILE:
                    return None
                if found is None:
                    return unknown_to_carrier(current, now)
                return from_carrier(current, carrier_params(found), now)

            try:
                updated = update(self.calls, call.callid, change)
            except ServiceUnavailable as exc:
                self.log("could not reconcile a call", callid=call.callid, error=str(exc))
                return Outcome.ERROR, None
            if not updated.wrote:
                return Outcome.NOTHING, None
            return Outcome.RECONCILE, updated.call if updated.ended else None

        with ThreadPoolExecutor(self.carrier_workers) as pool:
            results = list(pool.map(one, calls))
        outcomes = [outcome for outcome, _ in results]
        ended = [call for _, call in results if call is not None]
        return outcomes.count(Outcome.RECONCILE), outcomes.count(Outcome.ERROR), ended

    def _drain_dead_letters(self, dead_letters: DeadLetters, deadline: float | None) -> tuple[int, int]:
        """Each message the calls queue gave up on: its call, if still QUEUED, becomes FAILED. (failed, errors)"""
        failed = errors = 0
        for _ in range(self.dead_letter_batches):
            if self._past(deadline):
                break
            try:
                messages = dead_letters.receive()
            except ServiceUnavailable as exc:
                self.log("could not read the dead-letter queue", error=str(exc))
                return failed, errors + 1
            if not messages:
                break
            done: list[str] = []
            for message in messages:
                if message.callid is None:
                    # A request from another service that never became a call: for the operator (the DLQ alarm).
                    self.log("a dead-letter message names no call; left for the operator")
                    continue
                now = self._now()

                def fail_it(call: Call, at: datetime = now) -> Call | None:
                    return dead_lettered(call, at)

                try:
                    wrote = update(self.calls, message.callid, fail_it).wrote
                except ServiceUnavailable as exc:  # the message comes back after its visibility timeout
                    self.log("could not fail a dead-lettered call", callid=message.callid, error=str(exc))
                    errors += 1
                    continue
                failed += wrote
                done.append(message.receipt_handle)
            try:
                dead_letters.delete(done)
            except ServiceUnavailable as exc:  # they come back later and are handled again (a no-op by then)
                self.log("could not delete handled dead-letter messages", error=str(exc))
                errors += 1
        return failed, errors
