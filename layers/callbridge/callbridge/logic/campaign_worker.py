"""Use cases of the campaigns function: fan a campaign's calls out, release them at its pace, cancel the
waiting ones, count every call's moves, and tell the campaign's callback_url once it has finished."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import Any, Protocol

from callbridge.domain.calls import FINAL_STATUSES, Call, CallStatus, iso
from callbridge.domain.campaigns import (
    RELEASING,
    CallChange,
    Campaign,
    CampaignStatus,
    WaitingCall,
    back_to_its_campaign,
    campaign_call,
    cancel,
    closed_until,
    first_wait,
    hold,
    index_of,
    newest_changes,
    release,
    retry_held_for_its_window,
    wait_for_opening,
)
from callbridge.domain.dispatch import moment
from callbridge.domain.errors import Conflict, ServiceUnavailable
from callbridge.domain.limits import MAX_DELAY_SECONDS
from callbridge.domain.notifications import SIGNATURE_HEADER, DeliveryFailed, retry_delay, signature_header
from callbridge.logic.campaigns import cancel_message, fanout_message, notify_message, tick_message
from callbridge.ports import CallAlreadyStored, CallsStore, CampaignsQueue, CampaignsStore, DispatchQueue, Outgoing

CANCEL_BATCH = 100  # waiting calls cancelled per read
MAX_NOTIFY_ATTEMPTS = 12  # the campaign's callback: about a day of retries with the outcome callbacks' backoff
EVENT = "campaign.finished"
_LAST = 999_999  # release position of a held call whose own is unknown: after every other


class Step(StrEnum):
    """What one release step did."""

    STALE = "stale"  # another message holds this step: this chain ends
    STOPPED = "stopped"  # the campaign is paused, cancelled, finished or has nothing left to release
    WAITING = "waiting"  # before start_at, or nothing due before its next dated call
    RELEASED = "released"


class Sender(Protocol):
    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int: ...


class Secrets(Protocol):
    def get_account(self, api_key: str) -> Any: ...


def _stamp(now: float) -> str:
    return iso(datetime.fromtimestamp(now, UTC))


def _cancel_at(at: str, call: Call) -> Call | None:
    return cancel(call, at)


def pace(calls_per_second: float) -> tuple[float, int]:
    """(seconds between release steps, calls per step) for a campaign's calls_per_second."""
    period = max(1.0, 1.0 / calls_per_second)
    return period, max(1, int(calls_per_second * period + 1e-9))


@dataclass
class CampaignWorker:
    """Everything the campaigns function does, behind ports."""

    campaigns: CampaignsStore
    calls: CallsStore
    calls_queue: DispatchQueue
    queue: CampaignsQueue
    sender: Sender | None = None
    accounts: Secrets | None = None
    now: Callable[[], float] = time.time
    log: Callable[..., None] = field(default=lambda *_args, **_kw: None)

    # --- fan-out ------------------------------------------------------------------------------

    def fanout(self, campaign_id: str, chunk: int, *, start: int = 0, deadline: float | None = None) -> int:
        """Store one chunk's calls from its `start`-th on, each exactly once (derived callids; a redelivery finds
        them); how many this invocation went through.

        Past `deadline` it stops between two calls and sends a message to go on from the next one, so a chunk
        never needs more than one invocation's time however slow storage is (a chunk that timed out would be
        redone from its start, and time out again). Past it already (the messages before it in the batch took the
        time), it only sends its message again.
        """
        if deadline is not None and self.now() >= deadline:
            self.queue.send([(fanout_message(campaign_id, chunk, start), 0)])
            return 0
        campaign = self.campaigns.get(campaign_id)
        entries = self.campaigns.chunk(campaign_id, chunk)
        if campaign is None or not entries:
            self.log("fan-out of an unknown campaign chunk", campaign=campaign_id, chunk=chunk)
            return 0
        for offset in range(start, len(entries)):
            if deadline is not None and self.now() >= deadline:
                self.queue.send([(fanout_message(campaign_id, chunk, offset), 0)])
                return offset - start
            entry = entries[offset]
            self.campaigns.add_members(campaign_id, [entry])  # counted as it starts (first_state)
            # Conditional, never over a stored call: one an earlier run of this message stored (or a retried request
            # that had gone through) is already there.
            with contextlib.suppress(CallAlreadyStored):
                self.calls.create(campaign_call(entry, campaign))
        waiting = [first_wait(e, campaign) for e in entries if not e.suppressed]  # a suppressed call has ended
        self.campaigns.add_waiting(campaign_id, waiting)
        header = self.campaigns.chunk_done(campaign_id, chunk)
        # Cancelled while this chunk was being stored: its cancel may have read the waiting calls before. Out of time
        # part-way, a cancel message goes on with the rest.
        cancelled = header.get("status") == CampaignStatus.CANCELED.value
        if cancelled and not self._cancel_waiting(campaign_id, waiting, deadline):
            self.queue.send([(cancel_message(campaign_id), 0)])
        return len(entries) - start

    # --- release ------------------------------------------------------------------------------

    def tick(self, campaign_id: str, seq: int, owner: str) -> Step:
        """One step of the campaign's release chain: release the next calls its pace allows, then chain on."""
        header = self.campaigns.claim_tick(campaign_id, seq, owner)
        if header is None:
            return Step.STALE
        step, delay = self._step(Campaign.model_validate(header), header)
        if delay is not None:
            self.queue.send([(tick_message(campaign_id, seq + 1), delay)])
        self.campaigns.tick_done(campaign_id, seq)
        return step

    def _step(self, campaign: Campaign, header: Mapping[str, Any]) -> tuple[Step, int | None]:
        """What one release step does, and the delay of the next step (None: the chain ends here)."""
        now = self.now()
        if campaign.status not in RELEASING:
            return Step.STOPPED, None
        if campaign.status is CampaignStatus.SCHEDULED:
            start = moment(campaign.start_at).timestamp() if campaign.start_at else now
            if start > now:
                return Step.WAITING, math.ceil(start - now)
            try:
                stamp = _stamp(now)
                campaign = self.campaigns.move(
                    campaign.id,
                    campaign.account_id,
                    {CampaignStatus.SCHEDULED},
                    CampaignStatus.RUNNING,
                    stamp,
                    started_at=stamp,
                )
            except Conflict:
                return Step.STOPPED, None
        period, budget = pace(campaign.calls_per_second)
        if campaign.max_in_progress is not None:
            budget = min(budget, campaign.max_in_progress - self.campaigns.counts(campaign.id).in_progress())
        stamp = _stamp(now)
        waiting = self.campaigns.waiting(campaign.id, budget, due_by=stamp)
        released = [w for w in waiting if self._release(campaign.id, w, now)]
        # The step's marks go before its calls are sent: a placer that holds a call back (its campaign paused) marks
        # it waiting again only once it has its message, after this. A crash before this leaves marks the next step
        # finds on calls no longer waiting, and removes.
        self.campaigns.remove_waiting(campaign.id, waiting)
        for start in range(0, len(released), 10):
            batch = [Outgoing(w.callid, 0, call_date=w.call_date) for w in released[start : start + 10]]
            failed = self.calls_queue.send_calls(batch)
            if failed:  # they are QUEUED: the scheduler sends them again once overdue
                self.log("released calls not queued", campaign=campaign.id, callids=failed)
        fanned_out = len(header.get("fanned_out") or ()) >= campaign.chunks
        if budget <= 0 or waiting or not fanned_out or self.campaigns.waiting(campaign.id, 1, due_by=stamp):
            return Step.RELEASED, math.ceil(period)
        later = self.campaigns.waiting(campaign.id, 1)  # nothing due now: a dated call, if any, is the next
        if later and later[0].not_before:
            wait = moment(later[0].not_before).timestamp() - now
            return Step.WAITING, max(math.ceil(period), min(MAX_DELAY_SECONDS, math.ceil(wait)))
        return Step.STOPPED, None

    def _release(self, campaign_id: str, waiting: WaitingCall, now: float) -> bool:
        """Release one waiting call (QUEUED, with its call_date); one whose calling window has closed meanwhile
        is marked waiting for its next opening, which it shows (`wait_for_opening`). Whether it was released (its old
        mark is the caller's to remove)."""
        at = datetime.fromtimestamp(now, UTC)
        stamp = iso(at)
        moved: list[Call] = []
        reopens: list[datetime] = []

        def change(call: Call) -> Call | None:
            moved[:] = []
            reopens[:] = []
            if waiting.not_before and call.window_opening and waiting.not_before < call.window_opening:
                return None  # a mark left from an earlier wait: the call waits for a later opening (its own mark)
            opening = closed_until(call.policy, at) if call.status is CallStatus.SCHEDULED else None
            reopens[:] = [opening] if opening else []
            if opening:
                return wait_for_opening(call, opening, stamp)
            released = release(call, stamp, waiting.call_date)
            moved[:] = [released] if released else []
            return released

        self.calls.update(waiting.callid, change)
        if reopens:  # marked again before the old mark goes: a crash in between leaves two marks, not none
            later = WaitingCall(waiting.index, waiting.callid, iso(reopens[0]), waiting.call_date)
            self.campaigns.add_waiting(campaign_id, [later])  # a later time than the old mark's: another key
        return bool(moved)

    # --- cancel -------------------------------------------------------------------------------

    def cancel_all(self, campaign_id: str, deadline: float) -> bool:
        """Cancel the campaign's waiting calls, then its calls waiting for a retry, until none is left (True) or
        `deadline` (False: a new message goes on later)."""
        while self.now() < deadline:
            waiting = self.campaigns.waiting(campaign_id, CANCEL_BATCH)
            if waiting:
                self._cancel_waiting(campaign_id, waiting, deadline)
                continue
            end = partial(_cancel_at, _stamp(self.now()))
            for callid in self.campaigns.members_in(campaign_id, [CallStatus.RETRY_WAIT.value]):
                if self.now() >= deadline:
                    break
                self.calls.update(callid, end)
            else:
                return True
        self.queue.send([(cancel_message(campaign_id), 0)])
        return False

    def _cancel_waiting(self, campaign_id: str, waiting: list[WaitingCall], deadline: float | None = None) -> bool:
        """End the waiting calls and remove their marks; whether it ended them all.

        Past `deadline` it stops between two calls (the caller goes on in a new message), so a slow store never
        runs a cancel into the function's own deadline, where its next storage request would fail and the message
        would come back only after the queue's visibility timeout (6 minutes), the calls still waiting meanwhile.
        """
        end = partial(_cancel_at, _stamp(self.now()))
        ended: list[WaitingCall] = []
        for call in waiting:
            if deadline is not None and self.now() >= deadline:
                break
            self.calls.update(call.callid, end)
            ended.append(call)
        self.campaigns.remove_waiting(campaign_id, ended)  # after: a crash before leaves marks of ended calls
        return len(ended) == len(waiting)

    # --- the placer's question ------------------------------------------------------------------

    def admit(self, call: Call, token: str) -> bool:
        """Whether a campaign call the placer has just claimed may be dialed.

        Read after the claim: a pause or cancel written before this read stops the call (it goes back to
        waiting, or ends CANCELED); one written after it finds the call already dialing, which goes on.
        """
        if not call.campaign:
            return True
        campaign = self.campaigns.get(call.campaign)
        if campaign is None or campaign.status is CampaignStatus.RUNNING:
            return True
        stamp = _stamp(self.now())
        if campaign.status is CampaignStatus.PAUSED:
            index = index_of(call)
            # Marked waiting before it moves back: a crash in between leaves a mark the release skips. It was due:
            # it waits in the campaign's order, and keeps the call_date it was released with.
            mark = WaitingCall(_LAST if index is None else index, call.callid, call_date=call.call_date)
            self.campaigns.add_waiting(campaign.id, [mark])
            self.calls.update(call.callid, lambda c: hold(c, token, stamp))
            header = self.campaigns.header(campaign.id) or {}
            if header.get("status") in RELEASING:  # resumed meanwhile: its chain may have ended before this call
                self.queue.send([(tick_message(campaign.id, int(header.get("tick_seq", 0)) + 1), 0)])
        else:
            self.calls.update(call.callid, lambda c: cancel(c, stamp, token))
        return False

    # --- a call that must wait for its calling window goes back to its campaign ------------------------------------

    def wait_for_window(self, call: Call, token: str, opening: datetime) -> None:
        """A campaign call the placer has just claimed whose calling window is closed (its window closed after its
        release, or a retry came up outside it) goes back to its campaign, which releases it at `opening`, at its
        pace: it is marked waiting until then, and held (SCHEDULED, showing the opening). The placer does not dial it.
        """
        campaign_id = call.campaign or ""
        index = index_of(call)
        mark = WaitingCall(_LAST if index is None else index, call.callid, iso(opening), call.call_date)
        # Marked before it moves back: a crash in between leaves a mark the release skips (the call is not waiting).
        self.campaigns.add_waiting(campaign_id, [mark])
        self.calls.update(call.callid, lambda c: back_to_its_campaign(c, token, opening, _stamp(self.now())))
        self._waits_with_its_campaign(campaign_id, call.callid, mark)

    def hold_retries(self, calls: Iterable[Call]) -> set[str]:
        """Mark waiting, until its window's opening, each campaign call whose retry came due outside its calling
        window (`retry_held_for_its_window`: stored changes, a stream batch's), still so held; the campaigns that
        failed (their changes must come again: marking is idempotent)."""
        failed: set[str] = set()
        for seen in calls:
            campaign_id = seen.campaign or ""
            if campaign_id in failed or not retry_held_for_its_window(seen):
                continue
            try:
                call = self.calls.get(seen.callid)  # a change seen again late must not mark a call that has moved on
                if call is None or not retry_held_for_its_window(call) or call.window_opening != seen.window_opening:
                    continue
                index = index_of(call)
                mark = WaitingCall(_LAST if index is None else index, call.callid, call.window_opening)
                self.campaigns.add_waiting(campaign_id, [mark])
                self._waits_with_its_campaign(campaign_id, call.callid, mark)
            except ServiceUnavailable as exc:
                self.log("marking a retry waiting for its window failed", campaign=campaign_id, error=str(exc))
                failed.add(campaign_id)
        return failed

    def _waits_with_its_campaign(self, campaign_id: str, callid: str, mark: WaitingCall) -> None:
        """After a call went back to its campaign with its mark: read the campaign (consistently). Cancelled, the call
        ends now: the cancel may have read the marks before this one, or found the call claimed. Releasing, a release
        step is sent: its chain may have ended before this call came back (a duplicate of a step ends its copy).

        A cancel written after this read finds the mark and the call waiting, and ends it.
        """
        header = self.campaigns.header(campaign_id) or {}
        if header.get("status") == CampaignStatus.CANCELED.value:
            self.calls.update(callid, partial(_cancel_at, _stamp(self.now())))
            self.campaigns.remove_waiting(campaign_id, [mark])
        elif header.get("status") in RELEASING:
            self.queue.send([(tick_message(campaign_id, int(header.get("tick_seq", 0)) + 1), 0)])

    # --- counting -----------------------------------------------------------------------------

    def count(self, changes: Iterable[CallChange]) -> set[str]:
        """Count stored changes of campaign calls (a stream batch's), each call's newest only, one store write per
        campaign (per 99 calls); finish a campaign once a final change has been counted and its last call is.
        The campaigns whose counting failed (their changes must come again)."""
        final = {s.value for s in FINAL_STATUSES}
        failed: set[str] = set()
        for campaign_id, newest in newest_changes(changes).items():
            try:
                self.campaigns.count(campaign_id, newest)
                if any(c.state.status in final for c in newest):
                    self.finish_if_done(campaign_id)
            except ServiceUnavailable as exc:
                self.log("counting failed", campaign=campaign_id, error=str(exc))
                failed.add(campaign_id)
        return failed

    def finish_if_done(self, campaign_id: str) -> None:
        campaign = self.campaigns.get(campaign_id)
        if campaign is None or self.campaigns.counts(campaign_id).final() < campaign.total:
            return
        stamp = _stamp(self.now())
        try:
            if campaign.status is CampaignStatus.CANCELED:
                if not campaign.finished_at:
                    self.campaigns.move(
                        campaign_id, campaign.account_id, {campaign.status}, campaign.status, stamp, finished_at=stamp
                    )
            elif campaign.status is not CampaignStatus.FINISHED:
                self.campaigns.move(
                    campaign_id,
                    campaign.account_id,
                    {CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED},
                    CampaignStatus.FINISHED,
                    stamp,
                    finished_at=stamp,
                )
        except Conflict:
            pass  # another change of the campaign won; it is read again below
        if campaign.callback_url and self.campaigns.mark_notified(campaign_id, stamp):
            self.queue.send([(notify_message(campaign_id, 1), 0)])

    # --- the campaign's callback --------------------------------------------------------------

    def notify(self, campaign_id: str, attempt: int, rng: Callable[[], float]) -> bool:
        """POST the finished campaign to its callback_url, signed like the outcome callbacks; retried later."""
        campaign = self.campaigns.get(campaign_id)
        if campaign is None or not campaign.callback_url or self.sender is None or self.accounts is None:
            return False
        account = self.accounts.get_account(campaign.account_id)
        if account is None:
            return False
        now = self.now()
        body = json.dumps(
            {"event": EVENT, "campaign": campaign.public(self.campaigns.counts(campaign_id))}, separators=(",", ":")
        ).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(account.webhook_secret, int(now), body),
        }
        try:
            status = self.sender.send(campaign.callback_url, body, headers)
            if 200 <= status < 300:
                return True
            permanent = False
        except DeliveryFailed as exc:
            permanent = exc.permanent
        if not permanent and attempt < MAX_NOTIFY_ATTEMPTS:
            self.queue.send([(notify_message(campaign_id, attempt + 1), retry_delay(attempt, rng))])
        return False
