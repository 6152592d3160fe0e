"""Use case: place a queued call — exactly once, at the carrier's pace."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from callbridge.carrier.base import Carrier, CarrierRejected, CarrierRetryable, CarrierUncertain, CreateCall
from callbridge.domain.calls import Call, CallStatus, iso
from callbridge.domain.dispatch import moment
from callbridge.ports import CallsStore

TTS_FIELDS = (("answer_tts", "answer_tts_voice"), ("answermachine_tts", "answermachine_tts_voice"))
HOLD_SECONDS = 2.0  # a scheduled call whose message arrives this early is held until its call_date


class Pacer(Protocol):
    def acquire(self, now: float, horizon: float | None = None) -> float | None:
        """Reserve a carrier request slot within `horizon` seconds; its start time, or None if none is free."""


class SpeechCache(Protocol):
    def audio_url(self, voice: str, text: str) -> str:
        """A URL of `text` spoken by `voice` that stays valid longer than any call."""


class CampaignGate(Protocol):
    def admit(self, call: Call, token: str) -> bool:
        """Whether a campaign call just claimed may be dialed (False: its campaign paused or cancelled it)."""


class Placement(StrEnum):
    """What happened to one call message."""

    PLACED = "placed"
    SKIPPED = "skipped"  # no longer QUEUED: cancelled, already claimed, or finished
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


@dataclass(frozen=True)
class WebhookUrls:
    """Where the carrier reaches callbridge for a call (the public URL of the webhooks routes)."""

    base: str

    def route(self, callid: str, name: str) -> str:
        return f"{self.base.rstrip('/')}/carrier/twilio/{callid}/{name}"


@dataclass
class Placer:
    """Everything placing a call needs."""

    calls: CallsStore
    carrier: Carrier
    pacer: Pacer
    urls: WebhookUrls
    speech: SpeechCache | None = None
    campaigns: CampaignGate | None = None
    ring_timeout: int = 45
    time_limit: int | None = 4 * 3600
    now: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    log: Callable[..., None] = field(default=lambda *_args, **_kw: None)

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

    def _claim(self, callid: str, token: str, audio: dict[str, str]) -> Call | None:
        stamp = self._stamp()

        def claim(call: Call) -> Call | None:
            if call.status is not CallStatus.QUEUED:
                return None
            claimed = call.model_copy(
                update={
                    "status": CallStatus.DIALING,
                    "updated_at": stamp,
                    "dialed_at": stamp,
                    "claim_token": token,
                    "tts_audio": audio,
                }
            )
            return claimed.with_event(stamp, "dialing", claim=token)

        stored = self.calls.update(callid, claim)
        return stored if stored is not None and stored.claim_token == token else None

    def _release(self, callid: str, token: str, reason: str) -> None:
        stamp = self._stamp()

        def release(call: Call) -> Call | None:
            if call.status is not CallStatus.DIALING or call.claim_token != token:
                return None
            back = call.model_copy(update={"status": CallStatus.QUEUED, "updated_at": stamp, "claim_token": None})
            return back.with_event(stamp, "carrier.retry", reason=reason)

        self.calls.update(callid, release)

    def _finish(self, callid: str, change: Callable[[Call], Call]) -> None:
        self.calls.update(callid, change)

    def place(self, callid: str, *, attempt: int = 1, horizon: float | None = None) -> PlaceResult:
        """Claim the call (QUEUED → DIALING) and ask the carrier to dial it; never dials twice."""
        call = self.calls.get(callid)
        if call is None or call.status is not CallStatus.QUEUED:
            return PlaceResult(Placement.SKIPPED)
        audio = self._premium_audio(call)
        start = self.now()
        if call.call_date:  # its message may come up to half a second early (SQS delays are whole seconds)
            due = moment(call.call_date).timestamp()
            if due - start > HOLD_SECONDS:  # far too early (not sent by callbridge): come back when it is due
                return PlaceResult(Placement.RETRY, retry_after=due - start, waiting=True)
            start = max(start, due)
        slot = self.pacer.acquire(start, horizon)
        if slot is None:  # the carrier is booked for a while: come back when slots are likely free
            return PlaceResult(Placement.RETRY, retry_after=max(1.0, horizon or 5.0), waiting=True)
        token = secrets.token_hex(8)
        claimed = self._claim(callid, token, audio)
        if claimed is None:
            return PlaceResult(Placement.SKIPPED)
        if claimed.campaign and self.campaigns is not None and not self.campaigns.admit(claimed, token):
            return PlaceResult(Placement.SKIPPED)  # its campaign is paused (the call waits again) or cancelled
        wait = slot - self.now()
        if wait > 0:
            self.sleep(wait)
        request = self._request(claimed)
        started = self.now()
        try:
            carrier_call = self.carrier.create_call(request)
        except CarrierRetryable as exc:
            self._release(callid, token, str(exc))
            backoff = exc.retry_after or min(300.0, 2.0 ** min(attempt, 8))
            return PlaceResult(Placement.RETRY, retry_after=backoff)
        except CarrierUncertain as exc:
            return self._uncertain(callid, str(exc))
        except CarrierRejected as exc:
            return self._rejected(callid, exc.code, exc.message, exc.http_status)
        latency = self.now() - started
        stamp = self._stamp()
        lateness = started - moment(claimed.call_date).timestamp() if claimed.call_date else None
        on_time = {} if lateness is None else {"lateness_ms": int(lateness * 1000)}

        def placed(c: Call) -> Call:
            recorded = c.model_copy(update={"carrier_call_id": carrier_call.sid})
            return recorded.with_event(
                stamp,
                "carrier.created",
                sid=carrier_call.sid,
                status=carrier_call.status,
                latency_ms=int(latency * 1000),
                **on_time,
            )

        self._finish(callid, placed)
        return PlaceResult(Placement.PLACED, carrier_call_id=carrier_call.sid, latency=latency, lateness=lateness)

    def _uncertain(self, callid: str, error: str) -> PlaceResult:
        stamp = self._stamp()
        self._finish(callid, lambda c: c.with_event(stamp, "carrier.uncertain", error=error))
        return PlaceResult(Placement.UNCERTAIN)

    def _rejected(self, callid: str, code: int, message: str, http_status: int) -> PlaceResult:
        stamp = self._stamp()

        def failed(c: Call) -> Call:
            if c.status.is_final:
                return c
            done = c.model_copy(
                update={
                    "status": CallStatus.FAILED,
                    "updated_at": stamp,
                    "ended_at": stamp,
                    "error_code": str(code),
                    "error_desc": message,
                    "carrier_error": {"code": code, "message": message, "http_status": http_status},
                }
            )
            return done.with_event(stamp, "carrier.rejected", code=code, message=message)

        self._finish(callid, failed)
        return PlaceResult(Placement.FAILED)

    def _request(self, call: Call) -> CreateCall:
        record = call.request.get("record") == "YES"
        return CreateCall(
            to=call.request["to"],
            from_=call.request["from"],
            url=self.urls.route(call.callid, "flow"),
            fallback_url=self.urls.route(call.callid, "fallback"),
            status_callback=self.urls.route(call.callid, "status"),
            machine_detection="DetectMessageEnd",
            record=record,
            recording_status_callback=self.urls.route(call.callid, "recording") if record else None,
            timeout=self.ring_timeout,
            time_limit=self.time_limit,
        )


def describe(result: PlaceResult) -> dict[str, Any]:
    """A log-friendly view of a placement."""
    return {"placement": result.placement.value, "retry_after": result.retry_after, "sid": result.carrier_call_id}
