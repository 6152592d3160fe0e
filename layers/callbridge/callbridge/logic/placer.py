"""Use case: place a queued call — exactly once, at the carrier's pace."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from callbridge.carrier.base import (
    Carrier,
    CarrierCall,
    CarrierError,
    CarrierRejected,
    CarrierRetryable,
    CarrierSlotMissed,
    CarrierUncertain,
    CreateCall,
)
from callbridge.domain import events
from callbridge.domain.attempts import cancel_suppressed, hold_for_window
from callbridge.domain.calls import Call, CallStatus, iso
from callbridge.domain.campaigns import closed_until
from callbridge.domain.changes import ends
from callbridge.domain.dispatch import awaits_claim, due_at, moment
from callbridge.domain.errors import ServiceUnavailable
from callbridge.domain.placing import (
    PACING_NOTE_AHEAD,
    claim,
    placed,
    premium_audio,
    rejected,
    uncertain,
    waiting_for_a_slot,
)
from callbridge.domain.progress import ATTEMPT, STATUS_EVENTS
from callbridge.domain.suppressions import unlisted_since_check
from callbridge.ports import CallsStore, SuppressionList

TTS_FIELDS = (("answer_tts", "answer_tts_voice"), ("answermachine_tts", "answermachine_tts_voice"))
HOLD_SECONDS = 2.0  # a scheduled call whose message arrives this early is held until its call_date
_LATE_WAKEUPS = 4  # slots a placer may take for one call when it keeps waking after its slot
_LEAD_MEMORY = 5.0  # seconds a lead (below) remembers how long a write took
_MAX_LEAD = 1.0  # seconds: the most a placer asks ahead of now for its slot on account of its own slowness


@dataclass
class Lead:
    """How long some writes lately took in a container: the smaller of the last two times seen, both within
    _LEAD_MEMORY seconds (else none). A sustained slowness (a loaded machine) shows in both; a one-off (a
    container's first write builds its client) does not, nor does a slow spell that has passed."""

    seen: list[tuple[float, float]] = field(default_factory=list)  # (seconds, when seen), the last two

    def at(self, now: float) -> float:
        if len(self.seen) < 2 or any(now - at > _LEAD_MEMORY for _, at in self.seen):
            return 0.0
        return min(_MAX_LEAD, *(took for took, _ in self.seen))

    def learn(self, took: float, now: float) -> None:
        self.seen = [*self.seen[-1:], (took, now)]


class Pacer(Protocol):
    # The most a request may leave after its slot begins and still keep its distance from the previous one.
    late_after: float
    # When the do-not-call list last gained a number, as the last reservation saw it (None: not known).
    listed_at: float | None

    def acquire(self, now: float, horizon: float | None = None) -> float | None:
        """Reserve a carrier request slot within `horizon` seconds; its start time, or None if none is free."""


class SpeechCache(Protocol):
    def audio_url(self, voice: str, text: str) -> str:
        """A URL of `text` spoken by `voice` that stays valid longer than any call."""


class CampaignGate(Protocol):
    def admit(self, call: Call, token: str) -> bool:
        """Whether a campaign call just claimed may be dialed (False: its campaign paused or cancelled it)."""

    def wait_for_window(self, call: Call, token: str, opening: datetime) -> None:
        """A campaign call just claimed whose calling window is closed goes back to its campaign until `opening`."""


class Placement(StrEnum):
    """What happened to one call message."""

    PLACED = "placed"
    SKIPPED = "skipped"  # no longer awaiting its claim: cancelled, already claimed, or finished
    RETRY = "retry"  # not placed; try again later (the message goes back to the queue)
    FAILED = "failed"  # the carrier refused the call for good
    UNCERTAIN = "uncertain"  # the request may have reached the carrier; reconciliation decides


@dataclass(frozen=True)
class PlaceResult:
    placement: Placement
    retry_after: float = 0
    carrier_call_id: str | None = None
    latency: float | None = None
    lateness: float | None = None  # seconds from a scheduled call's call_date to its carrier request
    # RETRY because it is not this call's turn yet (no free carrier slot, or early): waiting is not failing,
    # so the message is sent again with a delay instead of counting a receive towards the DLQ.
    waiting: bool = False
    # The call this placement ended (FAILED: the carrier refused it), to be counted by its outcome; None when it
    # ended nothing, as when the call had ended meanwhile (hung up while its request was on its way).
    ended: Call | None = None


@dataclass(frozen=True)
class WebhookUrls:
    """Where the carrier reaches callbridge for a call (the public URL of the webhooks routes)."""

    base: str

    def route(self, callid: str, name: str, attempt: int | None = None) -> str:
        """The webhook `name` of a call; the callbacks of a call that may be retried name their attempt."""
        url = f"{self.base.rstrip('/')}/carrier/twilio/{callid}/{name}"
        return url if attempt is None else f"{url}?{ATTEMPT}={attempt}"


@dataclass
class Placer:
    """Everything placing a call needs."""

    calls: CallsStore
    carrier: Carrier
    pacer: Pacer
    urls: WebhookUrls
    speech: SpeechCache | None = None
    campaigns: CampaignGate | None = None
    suppressions: SuppressionList | None = None  # the do-not-call list, checked at the claim
    ring_timeout: int = 45
    time_limit: int | None = 4 * 3600
    now: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    log: Callable[..., None] = field(default=lambda *_args, **_kw: None)
    # A slot is asked for no sooner than the writes between asking and sending lately took in this container: a
    # call's first slot waits for the reservation and the claim, a new slot for its reservation alone. On a loaded
    # machine those writes take longer than the allowance after a slot, and a slot asked for at now would have
    # passed when they are done, costing a new reservation (and after _LATE_WAKEUPS of them, a trip back to the
    # queue). What happens once in a while before a send (a carrier client's first build, premium speech) is not
    # counted: it would hold later calls back for nothing.
    _first_lead: Lead = field(default_factory=Lead, init=False, repr=False)
    _retake_lead: Lead = field(default_factory=Lead, init=False, repr=False)
    _asked: float = field(default=0.0, init=False, repr=False)  # when the slot being waited for was asked for

    def _stamp(self) -> str:
        return iso(datetime.fromtimestamp(self.now(), UTC))

    def _premium_audio(self, call: Call) -> dict[str, str]:
        """Premium TTS audio URLs, synthesized (or found in the cache) before dialing."""
        audio: dict[str, str] = {}
        if self.speech is None:
            return audio
        for text_field, voice_field in TTS_FIELDS:
            text, voice = call.request.get(text_field), call.request.get(voice_field)
            if text and voice:
                try:
                    audio[text_field] = self.speech.audio_url(voice, text)
                except Exception as exc:  # the flow falls back to <Say voice="Polly.X">, which the carrier speaks
                    self.log("premium TTS unavailable, the carrier will speak it", error=str(exc))
        return audio

    def _held_back(self, claimed: Call, token: str) -> bool:
        """After the claim: a number put on the do-not-call list since the call was accepted ends it CANCELED,
        and an attempt outside its calling window waits for the next opening (SCHEDULED): a campaign's call waits
        with its campaign, which releases it then at its pace. Whether it is either."""
        due = due_at(claimed)
        # The window is judged when the attempt is due: the claim may come up to HOLD_SECONDS before that.
        at = max(datetime.fromtimestamp(self.now(), UTC), moment(due) if due else datetime.min.replace(tzinfo=UTC))
        listed = (
            self.suppressions is not None
            and not self._unlisted_since_intake(claimed)
            and self.suppressions.get(claimed.account_id, claimed.request["to"])
        )
        if listed:
            self.calls.update(claimed.callid, lambda c: cancel_suppressed(c, at, token=token))
            return True
        opening = closed_until(claimed.policy, at) if claimed.campaign and self.campaigns is not None else None
        if opening is not None and self.campaigns is not None:  # its campaign releases it then, at its pace
            self.campaigns.wait_for_window(claimed, token, opening)
            return True
        if hold_for_window(claimed, at, token=token) is not None:
            self.calls.update(claimed.callid, lambda c: hold_for_window(c, at, token=token))
            return True
        return False

    def _unlisted_since_intake(self, claimed: Call) -> bool:
        """Whether the number is known unlisted without a look-up: the intake checked it, and the do-not-call mark
        that this call's slot reservation returned says no number was listed since (a listing raises the mark
        after its write; see adapters/pacing.py)."""
        checked = moment(claimed.created_at).timestamp() if claimed.dnc_checked else None
        return unlisted_since_check(checked, self.pacer.listed_at)

    def _note_wait(self, callid: str, until: float) -> None:
        """Record on the call that its message comes back at `until`, so the scheduler does not re-send it as lost.

        One conditional write that holds only when the recorded wait ends sooner; a failure costs at most a
        duplicate message later.
        """
        back = iso(datetime.fromtimestamp(until, UTC))
        noted = iso(datetime.fromtimestamp(until + PACING_NOTE_AHEAD, UTC))
        try:
            self.calls.apply(callid, waiting_for_a_slot(back, noted))
        except ServiceUnavailable as exc:
            self.log("could not record a pacing wait", callid=callid, error=str(exc))

    def _release(self, callid: str, token: str, reason: str) -> None:
        """DIALING → QUEUED again (this placer's claim only): not placed, the message comes back later."""
        stamp = self._stamp()

        def release(call: Call) -> Call | None:
            if call.status is not CallStatus.DIALING or call.claim_token != token:
                return None
            back = call.model_copy(update={"status": CallStatus.QUEUED, "updated_at": stamp, "claim_token": None})
            return back.with_event(stamp, events.CARRIER_RETRY, reason=reason)

        self.calls.update(callid, release)

    def _turn(self, slot: float, deadline: float | None) -> float | None:
        """Sleep until `slot`; a placer that wakes later than the slot allows takes a new one (None: none left).

        So the carrier's requests, not the placers' wake-ups, keep their distance.
        """
        for _ in range(_LATE_WAKEUPS):
            wait = slot - self.now()
            if wait > 0:
                self.sleep(wait)
            now = self.now()
            if now <= slot + self.pacer.late_after:
                return slot
            next_slot = self._new_slot(deadline)
            if next_slot is None:
                return None
            slot = next_slot
        return None  # this container keeps waking late: let the message come back (to a less busy one)

    def _new_slot(self, deadline: float | None) -> float | None:
        """A new carrier slot from now, within `deadline` (None: none left in this invocation)."""
        now = self.now()
        left = None if deadline is None else deadline - now
        if left is not None and left < 0:
            return None
        slot = self._reserve(now, left, self._retake_lead)
        self._learn(self._retake_lead)
        return slot

    def _reserve(self, at: float, horizon: float | None, lead: Lead) -> float | None:
        """A carrier slot beginning at `at` or later, and no sooner than `lead` from now; within `horizon`
        seconds from now (None: the pacer's own)."""
        self._asked = now = self.now()
        ask = max(at, now + lead.at(now))
        if horizon is not None:
            horizon -= ask - now
            if horizon < 0:
                return None
        return self.pacer.acquire(ask, horizon)

    def _learn(self, lead: Lead) -> None:
        """`lead` takes in how long the writes since the last slot was asked for took."""
        now = self.now()
        lead.learn(now - self._asked, now)

    def _send_in_a_slot(
        self, request: CreateCall, slot: float, deadline: float | None
    ) -> tuple[float, CarrierCall] | None:
        """Send the create request within its slot's allowance: the carrier client checks `send_by` just before
        the request leaves and sends nothing if it is past, and then a new slot is taken. When it was sent and
        the carrier's answer; None when no slot could be kept."""
        self.carrier.ready()  # before the wait, so nothing slow comes between the slot and the request
        for _ in range(_LATE_WAKEUPS):
            turn = self._turn(slot, deadline)
            if turn is None:
                return None
            started = self.now()
            try:
                return started, self.carrier.create_call(replace(request, send_by=turn + self.pacer.late_after))
            except CarrierSlotMissed as exc:
                self.log("a carrier request missed its slot; taking another", error=str(exc))
            next_slot = self._new_slot(deadline)
            if next_slot is None:
                return None
            slot = next_slot
        return None

    def place(
        self, callid: str, *, attempt: int = 1, horizon: float | None = None, call_date: str | None = None
    ) -> PlaceResult:
        """Claim the call (→ DIALING) and ask the carrier to dial it; never dials twice.

        `call_date`: the scheduled time its message carries, if any (the claim checks the stored one too).
        A carrier slot is reserved first, so a backlog costs no writes to the call; then one conditional
        write claims the call and returns it, with no read before.
        """
        start = self.now()
        deadline = None if horizon is None else start + horizon
        if call_date:  # its message may come up to half a second early (SQS delays are whole seconds)
            due = moment(call_date).timestamp()
            if due - start > HOLD_SECONDS:  # far too early (not sent by callbridge): come back when it is due
                return PlaceResult(Placement.RETRY, retry_after=due - start, waiting=True)
            start = max(start, due)
        # An immediate call's slot begins no sooner than the allowance after now: the claim's writes come between,
        # and on a line with no one waiting, a slot that began now would have passed when they are done (another
        # slot's write). A scheduled call's begins at its call_date, however late its message came: on time first.
        ask = start if call_date else max(start, self.now() + self.pacer.late_after)
        slot = self._reserve(ask, horizon, self._first_lead)
        if slot is None:  # the carrier is booked for a while: come back when slots are likely free
            retry_after = max(1.0, horizon or 5.0)
            self._note_wait(callid, self.now() + retry_after)
            return PlaceResult(Placement.RETRY, retry_after=retry_after, waiting=True)
        token = secrets.token_hex(8)
        stamp = self._stamp()
        hold_until = iso(datetime.fromtimestamp(self.now() + HOLD_SECONDS, UTC))
        claimed_now, claimed = self.calls.apply(callid, claim(stamp, token, hold_until=hold_until))
        self._learn(self._first_lead)
        if not claimed_now or claimed is None:
            due_time = due_at(claimed) if claimed is not None else None
            if claimed is not None and awaits_claim(claimed) and due_time:
                early = moment(due_time).timestamp() - self.now()
                return PlaceResult(Placement.RETRY, retry_after=max(1.0, early), waiting=True)
            return PlaceResult(Placement.SKIPPED)
        if self._held_back(claimed, token):
            return PlaceResult(Placement.SKIPPED)
        due_time = due_at(claimed)
        if due_time and moment(due_time).timestamp() > slot:  # a message without its due time
            left = None if deadline is None else deadline - self.now()
            later = self._reserve(moment(due_time).timestamp(), left, self._retake_lead)
            if later is None:
                self._release(callid, token, "no carrier slot at its call_date")
                return PlaceResult(Placement.RETRY, retry_after=max(1.0, horizon or 5.0), waiting=True)
            slot = later
        if claimed.campaign and self.campaigns is not None and not self.campaigns.admit(claimed, token):
            return PlaceResult(Placement.SKIPPED)  # its campaign is paused (the call waits again) or cancelled
        audio = self._premium_audio(claimed)
        if audio:  # kept before the carrier is asked, so the flow webhook finds it
            self.calls.apply(callid, premium_audio(audio))
        request = self._request(claimed)
        try:
            sent = self._send_in_a_slot(request, slot, deadline)
            if sent is None:  # it kept missing its slot, or ran out of invocation: back on the queue at once
                self._release(callid, token, "no carrier slot it could keep in this invocation")
                return PlaceResult(Placement.RETRY, retry_after=1.0, waiting=True)
            started, carrier_call = sent
        except CarrierRetryable as exc:
            self._release(callid, token, str(exc))
            backoff = exc.retry_after or min(300.0, 2.0 ** min(attempt, 8))
            return PlaceResult(Placement.RETRY, retry_after=backoff)
        except CarrierUncertain as exc:
            self.calls.apply(callid, uncertain(self._stamp(), str(exc)))
            return PlaceResult(Placement.UNCERTAIN)
        except CarrierRejected as exc:
            refusal = rejected(self._stamp(), exc.code, exc.message, exc.http_status)
            held, stored = self.calls.apply(callid, refusal)
            return PlaceResult(Placement.FAILED, ended=stored if held and ends(refusal) else None)
        latency = self.now() - started
        lateness = started - moment(claimed.call_date).timestamp() if claimed.call_date else None
        on_time = {} if lateness is None else {"lateness_ms": int(lateness * 1000)}
        if claimed.attempt != 1:
            on_time[ATTEMPT] = claimed.attempt
        change = placed(self._stamp(), carrier_call.sid, carrier_call.status, latency_ms=int(latency * 1000), **on_time)
        _, stored = self.calls.apply(callid, change)
        if stored is not None and stored.status is CallStatus.CANCELED:
            self._end_at_carrier(callid, carrier_call.sid)
        return PlaceResult(Placement.PLACED, carrier_call_id=carrier_call.sid, latency=latency, lateness=lateness)

    def _end_at_carrier(self, callid: str, sid: str) -> None:
        """The call was hung up (DELETE /pcall/calls/{callid}) while its request was on the way: end it now."""
        stamp = self._stamp()
        try:
            self.carrier.hangup(sid)
            detail: dict[str, Any] = {"sid": sid}
        except CarrierError as exc:  # the carrier's ring timeout ends it anyway; the call stays CANCELED
            detail = {"sid": sid, "error": str(exc)}
            self.log("could not end a call hung up while it was being placed", callid=callid, error=str(exc))
        self.calls.update(callid, lambda c: c.with_event(stamp, events.CARRIER_HANGUP, **detail))

    def _request(self, call: Call) -> CreateCall:
        record = call.request.get("record") == "YES"
        # A call that may be retried names its attempt in its callbacks (an earlier attempt's late ones are told
        # apart); the others' URLs stay as they are.
        attempt = call.attempt if call.policy.retry_attempts else None
        return CreateCall(
            to=call.request["to"],
            from_=call.request["from"],
            url=self.urls.route(call.callid, "flow", attempt),
            fallback_url=self.urls.route(call.callid, "fallback"),
            status_callback=self.urls.route(call.callid, "status", attempt),
            status_events=STATUS_EVENTS,
            machine_detection="DetectMessageEnd",
            record=record,
            recording_status_callback=self.urls.route(call.callid, "recording", attempt) if record else None,
            timeout=self.ring_timeout,
            time_limit=self.time_limit,
        )
