"""Plays calls out: CPS queue, ringing and answering by rule, the TwiML flow, status callbacks (with faults).

Each live call runs on its own thread, sleeping through its simulated steps (divided by `speed`);
a dispatcher thread starts queued calls when the calls-per-second limit lets them go.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import math
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar
from urllib.parse import urljoin, urlsplit

from sandbox.carrier.model import (
    API_VERSION,
    DIRECTION,
    SIP_CODES,
    Call,
    FaultConfig,
    LogHook,
    Message,
    Press,
    Recording,
    Timings,
    WebhookRecord,
    billed_minutes,
    new_sid,
    outcome_for,
    rfc2822,
)
from sandbox.carrier.twiml import TwimlError, Verb, parse_twiml
from sandbox.carrier.webhooks import Outbox, Reply, Timers, WebhookClient

DEFAULT_TIMEOUT = 60  # seconds of ringing (Twilio's default)
MAX_TIMEOUT = 600
DEFAULT_TIME_LIMIT = 4 * 3600
MAX_LOOPS = 10  # <Play loop="0"> repeats "forever": the simulated listener hangs up after this many
MAX_VERBS = 500  # loop guards: a flow that keeps redirecting to itself is ended, not run forever
MAX_FETCHES = 100
NOUNS = ("Number", "Client", "Sip", "Conference", "Queue")


class _Ended(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class _Redirected(Exception):
    pass


class _Shutdown(Exception):
    pass


@dataclass(frozen=True)
class Document:
    """A TwiML document and the URL it came from (the base for relative URLs and the default action)."""

    verbs: list[Verb]
    url: str | None


def truthy(value: str | None) -> bool:
    """Twilio's boolean parameters: `true` (any case)."""
    return (value or "").strip().lower() == "true"


def _number(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        return default


def whole_seconds(seconds: float) -> int:
    """Seconds rounded half up (not to even), so 2.5 s of speech bills as 3 s."""
    return math.floor(seconds + 0.5)


def requested_events(call: Call) -> set[str]:
    """The status-callback events asked for (repeated key, or space/comma separated); `completed` by default."""
    events = {word for value in call.params.get("StatusCallbackEvent", []) for word in value.replace(",", " ").split()}
    return events or {"completed"}


class Engine:
    """Runs calls and messages; shared by the REST front end and the simulator's Python API."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        speed: float,
        cps: float | None,
        timings: Timings,
        press: Press,
        faults: FaultConfig | None,
        seed: int | None,
        log: LogHook | None,
        base_url: Callable[[], str],
    ) -> None:
        self.account_sid = account_sid
        self.speed = speed
        self.cps = cps
        self.timings = timings
        self.press = press
        self.faults = faults
        # Without a seed, faults are still reproducible: the log names the seed drawn for this run.
        self.seed = seed if seed is not None else secrets.randbits(32)
        self._log_hook = log
        self._base_url = base_url
        self.client = WebhookClient(auth_token)
        self.outbox = Outbox(self.client)
        self.timers = Timers()
        self.recordings: dict[str, Recording] = {}
        self._stopping = False
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._queue: list[tuple[float, int, Call]] = []
        self._queue_cond = threading.Condition(self._lock)
        self._order = itertools.count()
        self._threads: dict[str, threading.Thread] = {}
        self._live: dict[str, Call] = {}
        self._conferences: dict[str, list[Call]] = {}
        self._rngs: dict[str, random.Random] = {}
        self._calls_to: dict[str, int] = {}
        self._held: dict[str, list[WebhookRecord]] = {}
        self.messages_cond = threading.Condition()
        self._dispatcher = threading.Thread(target=self._dispatch, name="carrier-dispatcher", daemon=True)
        self._dispatcher.start()

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """End every call without further callbacks, then stop the threads and the HTTP client."""
        with self._lock:
            self._stopping = True
            self._queue_cond.notify_all()
            live = list(self._live.values())
            threads = list(self._threads.values())
        for call in live:
            with call.cond:
                call.cond.notify_all()
        self._dispatcher.join()
        for thread in threads:
            thread.join(timeout=30)
        self.timers.stop()
        self.outbox.stop()
        self.client.close()
        with self.messages_cond:
            self.messages_cond.notify_all()

    def log(self, call: Call | Message, text: str) -> None:
        """One human-readable line per event for the log hook; a failing hook never breaks a call."""
        if self._log_hook is None:
            return
        with contextlib.suppress(Exception):
            self._log_hook(f"{call.sid[:8]}… {call.to} {text}")

    # ------------------------------------------------------------------ queue (CPS)

    def next_slot(self, now: float) -> float:
        """The monotonic time the CPS limit lets a call created `now` start; reserves it."""
        with self._lock:
            if not self.cps:
                return now
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.cps
            return slot

    def enqueue(self, call: Call) -> None:
        """Start `call` at its CPS slot."""
        if self.faults is not None:
            self._rngs[call.sid] = self._fault_draws(call.to)
        with self._lock:
            heapq.heappush(self._queue, (call.slot, next(self._order), call))
            self._queue_cond.notify()

    def _fault_draws(self, to: str) -> random.Random:
        """The random stream every fault draw of one call comes from, derived from the run's seed.

        Keyed by the called number and how many calls to it came before, not by arrival order: calls
        placed concurrently reach the simulator in any order, and the same seed must still give each
        number the same faults.
        """
        with self._lock:
            nth = self._calls_to[to] = self._calls_to.get(to, 0) + 1
        return random.Random(f"{self.seed}/{to}/{nth}")

    def _dispatch(self) -> None:
        with self._lock:
            while not self._stopping:
                if not self._queue or self._queue[0][0] > time.monotonic():
                    self._queue_cond.wait(self._queue[0][0] - time.monotonic() if self._queue else None)
                    continue
                _, _, call = heapq.heappop(self._queue)
                if call.ended:  # canceled while queued
                    continue
                call.queue_time_ms = round((time.monotonic() - call.arrived) * 1000)
                thread = threading.Thread(target=self._run_call, args=(call,), name=f"carrier-{call.sid[:8]}")
                thread.daemon = True
                self._threads[call.sid] = thread
                self._live[call.sid] = call
                thread.start()

    def cancel_queued(self, call: Call) -> bool:
        """Cancel a call still waiting for its CPS slot: it ends `canceled` and sends no callbacks."""
        with self._lock:
            if call.sid in self._live or call.ended:
                return False
            call.status = "canceled"
            call.end_time = time.time()
            call.duration = 0
            call.ended = True
        self.log(call, "canceled while queued")
        with call.cond:
            call.cond.notify_all()
        return True

    # ------------------------------------------------------------------ one call

    def _run_call(self, call: Call) -> None:
        status: str | None
        try:
            self._progress(call)
            status = "completed"
        except _Ended as end:
            status = end.status
        except _Shutdown:
            status = None
        except Exception as exc:  # a simulator bug must still end the call and say why
            call.errors.append(f"simulator error: {type(exc).__name__}: {exc}")
            status = "failed" if call.answer_time is None else "completed"
        try:
            if status is not None and not self._stopping:
                self._finish(call, status)
        finally:
            with self._lock:
                self._live.pop(call.sid, None)
                self._threads.pop(call.sid, None)
            with call.cond:
                call.ended = True
                call.cond.notify_all()

    def _progress(self, call: Call) -> None:
        t = self.timings
        call.start_time = time.time()
        if call.slot > call.arrived + 0.001:
            self.log(call, f"dequeued after {call.queue_time_ms} ms (CPS limit)")
        self._event(call, "initiated", "initiated")
        if call.outcome == "failed":
            self._sleep(call, t.failed)
            raise _Ended("failed")
        if call.outcome == "busy":
            self._sleep(call, t.busy)
            raise _Ended("busy")
        self._sleep(call, t.setup)
        call.status = "ringing"
        self._event(call, "ringing", "ringing")
        timeout = min(_number(call.param("Timeout"), DEFAULT_TIMEOUT), MAX_TIMEOUT)
        if call.outcome == "no-answer" or t.ring >= timeout:
            self._sleep(call, timeout)
            raise _Ended("no-answer")
        self._sleep(call, t.ring)
        self._answer(call)

    def _answer(self, call: Call) -> None:
        call.status = "in-progress"
        call.answer_time = time.time()
        call.answer_clock = call.clock
        detection = call.param("MachineDetection") if not call.param("SendDigits") else None
        verdict, detect_seconds = self._detect(call, detection)
        if detection and not truthy(call.param("AsyncAmd")):
            # Synchronous AMD: Twilio holds the call until the verdict, then asks for TwiML with AnsweredBy.
            self._sleep(call, detect_seconds)
            call.answered_by = verdict
        who = f"by {call.answered_by}" if call.answered_by else ("(voicemail)" if call.outcome == "machine" else "")
        self._event(call, "answered", f"answered {who}".rstrip())
        if detection and truthy(call.param("AsyncAmd")):
            self.timers.call_later(detect_seconds / self.speed, lambda: self._async_amd(call, verdict, detect_seconds))
        twiml = call.param("Twiml")
        if twiml:
            document = self._parse(call, Reply(200, twiml, "text/xml"), None)
        else:
            document = self._fetch(call, "flow", call.param("Url") or "", call.param("Method") or "POST", {})
        self._run(call, document)

    def _detect(self, call: Call, detection: str | None) -> tuple[str, float]:
        t = self.timings
        if call.outcome != "machine":
            return "human", t.amd_human
        if detection == "DetectMessageEnd":
            return "machine_end_beep", t.amd_greeting
        return "machine_start", t.amd_machine_start

    def _async_amd(self, call: Call, verdict: str, seconds: float) -> None:
        if call.ended or self._stopping:
            return
        call.answered_by = verdict
        self.log(call, f"answered by {verdict} (async AMD)")
        url = call.param("AsyncAmdStatusCallback")
        if url:
            params = {
                "CallSid": call.sid,
                "AccountSid": call.account_sid,
                "AnsweredBy": verdict,
                "MachineDetectionDuration": str(round(seconds * 1000)),
            }
            method = (call.param("AsyncAmdStatusCallbackMethod") or "POST").upper()
            self._post(call, WebhookRecord("amd", url, method, params))

    def _finish(self, call: Call, status: str) -> None:
        call.status = status
        call.end_time = time.time()
        answered = call.answer_clock is not None
        call.duration = whole_seconds(call.clock - call.answer_clock) if call.answer_clock is not None else 0
        call.sip_response_code = SIP_CODES[status]
        recording = None
        if answered and truthy(call.param("Record")):
            recording = self._new_recording(call, call.duration, call.answer_time or call.end_time, "OutboundAPI")
            recording.channels = 2 if (call.param("RecordingChannels") or "").lower() == "dual" else 1
        line = f"{status} {call.duration}s" if answered else status
        self._event(call, "completed", line, recording=recording)
        if recording is not None and call.param("RecordingStatusCallback"):
            method = (call.param("RecordingStatusCallbackMethod") or "POST").upper()
            self._recording_callback(call, recording, call.param("RecordingStatusCallback") or "", method)
        for held in self._held.pop(call.sid, []):
            self._post(call, held)

    # ------------------------------------------------------------------ time

    def _sleep(self, call: Call, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        """Let `seconds` of simulated time pass on the call; True when `until` came true first.

        Nominal step times are what the call is billed for (durations stay exact whatever the
        machine's load); an interrupted step counts the simulated time that really passed.
        Raises when the call is hung up, redirected, over its time limit, or the simulator stops.
        """
        over_limit = False
        if call.answer_clock is not None:
            limit = call.answer_clock + _number(call.param("TimeLimit"), DEFAULT_TIME_LIMIT)
            if call.clock + seconds > limit:
                seconds, over_limit = max(0.0, limit - call.clock), True
        start = time.monotonic()
        deadline = start + seconds / self.speed
        interrupted = False
        with call.cond:
            while True:
                interrupted = (
                    self._stopping
                    or call.hangup is not None
                    or call.redirect is not None
                    or (until is not None and until())
                )
                remaining = deadline - time.monotonic()
                if interrupted or remaining <= 0:
                    break
                call.cond.wait(remaining)
        call.clock += min(seconds, (time.monotonic() - start) * self.speed) if interrupted else seconds
        self._check(call)
        if over_limit:
            self.log(call, "time limit reached")
            raise _Ended("completed")
        return interrupted

    def _check(self, call: Call) -> None:
        if self._stopping:
            raise _Shutdown
        if call.hangup is not None:
            raise _Ended(call.hangup if call.answer_time is not None else "canceled")
        if call.redirect is not None and call.answer_time is not None:
            raise _Redirected

    def wake(self, call: Call) -> None:
        """Make the call's thread look at its control fields now (hang-up, redirect, conference)."""
        with call.cond:
            call.cond.notify_all()

    # ------------------------------------------------------------------ webhooks

    def _params(self, call: Call, status: str | None = None) -> dict[str, str]:
        params = {
            "CallSid": call.sid,
            "AccountSid": call.account_sid,
            "From": call.from_,
            "To": call.to,
            "CallStatus": status or call.status,
            "ApiVersion": API_VERSION,
            "Direction": DIRECTION,
            "Caller": call.from_,
            "Called": call.to,
        }
        if call.answered_by:
            params["AnsweredBy"] = call.answered_by
        if call.parent_call_sid:
            params["ParentCallSid"] = call.parent_call_sid
        return params

    def _fetch(self, call: Call, kind: str, url: str, method: str, extra: dict[str, str]) -> Document:
        """Ask a webhook for TwiML (on the call's thread: the call waits, as on Twilio)."""
        self._check(call)
        if len(call.documents) >= MAX_FETCHES:
            call.errors.append(f"more than {MAX_FETCHES} TwiML fetches: ended as a loop")
            raise _Ended("completed")
        method = method.upper() if method.upper() in ("GET", "POST") else "POST"
        record = WebhookRecord(kind, url, method, {**self._params(call), **extra})
        call.callbacks.append(record)
        call.documents.append(url)
        reply = self.client.send(record)
        if reply.ok:
            return self._parse(call, reply, url)
        error = f"11200 HTTP retrieval failure: {method} {url} ({reply.error or reply.status_code})"
        call.errors.append(error)
        self.log(call, error)
        fallback = call.param("FallbackUrl") if kind == "flow" else None
        if fallback:
            return self._fetch(
                call,
                "fallback",
                fallback,
                call.param("FallbackMethod") or "POST",
                {"ErrorCode": "11200", "ErrorUrl": url},
            )
        # Twilio says "an application error has occurred" and hangs up.
        raise _Ended("completed")

    def _parse(self, call: Call, reply: Reply, url: str | None) -> Document:
        if reply.content_type.startswith("audio/") and url:
            return Document([Verb("Play", {}, url)], url)  # Twilio plays an audio reply as it is
        try:
            return Document(parse_twiml(reply.text), url)
        except TwimlError as exc:
            call.errors.append(f"12100 {exc}")
            self.log(call, f"12100 {exc}")
            raise _Ended("completed") from exc

    def _post(self, call: Call, record: WebhookRecord, *, counted: bool = False) -> None:
        """Deliver a webhook off the call's thread, after the call's earlier ones."""
        if not counted:
            with call.cond:
                call.pending += 1

        def done(rec: WebhookRecord, reply: Reply) -> None:
            if not reply.ok:
                self.log(call, f"webhook {rec.kind} to {rec.url} failed: {rec.error}")
            with call.cond:
                call.pending -= 1
                call.cond.notify_all()

        self.outbox.submit(call.sid, record, done)

    def _event(self, call: Call, event: str, line: str, *, recording: Recording | None = None) -> None:
        call.events.append({"event": event, "at": time.time(), "clock": call.clock, "status": call.status})
        self.log(call, line)
        url = call.param("StatusCallback")
        if not url or event not in requested_events(call):
            return
        status = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress"}.get(event, call.status)
        params = self._params(call, status)
        params.update(
            {
                "Timestamp": rfc2822(time.time()) or "",
                "CallbackSource": "call-progress-events",
                "SequenceNumber": str(call.sequence),
            }
        )
        call.sequence += 1
        if event == "completed":
            params["CallDuration"] = str(call.duration or 0)
            params["SipResponseCode"] = str(call.sip_response_code)
            params["Duration"] = str(billed_minutes(call.duration or 0, call.answer_time is not None))
            if recording is not None:
                params.update(
                    {
                        "RecordingUrl": recording.url,
                        "RecordingSid": recording.sid,
                        "RecordingDuration": str(recording.duration),
                    }
                )
        method = (call.param("StatusCallbackMethod") or "POST").upper()
        self._status_callback(call, WebhookRecord("status", url, method, params))

    def _status_callback(self, call: Call, record: WebhookRecord) -> None:
        """Send a status callback, through the fault injector in faults mode."""
        call.callbacks.append(record)
        rng = self._rngs.get(call.sid)
        if self.faults is None or rng is None:
            self._post(call, record)
            return
        f = self.faults
        event = record.params.get("CallStatus", "")
        if rng.random() < f.drop:
            record.fault = "dropped"
            self.log(call, f"(fault) dropped the {event} callback")
            return
        copies = [record]
        if rng.random() < f.duplicate:
            duplicate = replace(record, params=dict(record.params), fault="duplicate")
            call.callbacks.append(duplicate)
            copies.append(duplicate)
            self.log(call, f"(fault) duplicated the {event} callback")
        delayed = rng.random() < f.delay
        reordered = not delayed and rng.random() < f.reorder
        for copy in copies:
            if delayed:
                copy.fault = copy.fault or "delayed"
                with call.cond:
                    call.pending += 1
                delay = rng.uniform(0.1, f.max_delay) / self.speed
                self.timers.call_later(delay, functools.partial(self._post, call, copy, counted=True))
            elif reordered:
                copy.fault = copy.fault or "reordered"
                self._held.setdefault(call.sid, []).append(copy)
            else:
                self._post(call, copy)
                for held in self._held.pop(call.sid, []):  # held ones go after this later one
                    self._post(call, held)
        if delayed:
            self.log(call, f"(fault) delayed the {event} callback")
        if reordered:
            self.log(call, f"(fault) holding the {event} callback to reorder it")

    def _new_recording(self, call: Call, duration: int, start: float, source: str) -> Recording:
        sid = new_sid("RE")
        url = f"{self._base_url()}/{API_VERSION}/Accounts/{call.account_sid}/Recordings/{sid}"
        recording = Recording(sid, call.sid, url, duration, start, source)
        call.recordings.append(recording)
        self.recordings[sid] = recording
        return recording

    def _recording_callback(self, call: Call, recording: Recording, url: str, method: str) -> None:
        params = {
            "AccountSid": call.account_sid,
            "CallSid": call.sid,
            "RecordingSid": recording.sid,
            "RecordingUrl": recording.url,
            "RecordingStatus": "completed",
            "RecordingDuration": str(recording.duration),
            "RecordingChannels": str(recording.channels),
            "RecordingStartTime": rfc2822(recording.start_time) or "",
            "RecordingSource": recording.source,
        }
        self._post(call, WebhookRecord("recording", url, method.upper(), params))

    # ------------------------------------------------------------------ TwiML

    def _run(self, call: Call, document: Document | None) -> None:
        while document is not None:
            try:
                document = self._run_document(call, document)
            except _Redirected:
                with call.cond:
                    kind, value = call.redirect or ("twiml", "")
                    call.redirect = None
                if kind == "twiml":
                    self.log(call, "redirected by the REST API (Twiml)")
                    document = self._parse(call, Reply(200, value, "text/xml"), None)
                else:
                    method, _, url = value.partition(" ")
                    self.log(call, f"redirected by the REST API to {url}")
                    document = self._fetch(call, "redirect", url, method, {})

    def _run_document(self, call: Call, document: Document) -> Document | None:
        for verb in document.verbs:
            self._check(call)
            if len(call.verbs) >= MAX_VERBS:
                call.errors.append(f"more than {MAX_VERBS} verbs: ended as a loop")
                raise _Ended("completed")
            handler = self._handlers.get(verb.name)
            if handler is None:
                self._note(call, verb, document, skipped=True)
                self.log(call, f"<{verb.name}> skipped (not simulated)")
                continue
            following = handler(self, call, verb, document)
            if following is not None:
                return following
        return None

    def _note(self, call: Call, verb: Verb, document: Document, **extra: object) -> dict[str, object]:
        record: dict[str, object] = {**verb.as_record(), "clock": call.clock, "document": document.url, **extra}
        call.verbs.append(record)
        return record

    def _resolve(self, call: Call, document: Document, target: str) -> str:
        url = urljoin(document.url, target) if document.url else target
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            call.errors.append(f"11100 invalid URL: {target!r}")
            self.log(call, f"11100 invalid URL {target!r}")
            raise _Ended("completed")
        return url

    def _seconds(self, verb: Verb) -> float:
        """Nominal time a Play, Say or Pause takes."""
        t = self.timings
        loops = int(_number(verb.attr("loop"), 1)) or MAX_LOOPS
        if verb.name == "Play":
            if verb.attr("digits"):
                return len(verb.attr("digits")) * t.digit
            return t.play * loops
        if verb.name == "Say":
            return max(t.say_min, len(verb.text) / t.say_chars_per_second) * loops
        if verb.name == "Pause":
            return max(0.0, _number(verb.attr("length"), 1.0))
        return 0.0

    def _play(self, call: Call, verb: Verb, document: Document) -> Document | None:
        seconds = self._seconds(verb)
        self._note(call, verb, document, seconds=seconds)
        what = f"digits {verb.attr('digits')}" if verb.attr("digits") else verb.text
        loops = f" ×{verb.attr('loop')}" if verb.attr("loop") not in ("", "1") else ""
        self.log(call, f"<{verb.name}> {what}{loops}")
        self._sleep(call, seconds)
        return None

    def _say(self, call: Call, verb: Verb, document: Document) -> Document | None:
        seconds = self._seconds(verb)
        self._note(call, verb, document, seconds=seconds)
        text = verb.text if len(verb.text) <= 60 else verb.text[:57] + "..."
        self.log(call, f'<Say> "{text}"')
        self._sleep(call, seconds)
        return None

    def _pause(self, call: Call, verb: Verb, document: Document) -> Document | None:
        seconds = self._seconds(verb)
        self._note(call, verb, document, seconds=seconds)
        self.log(call, f"<Pause> {seconds:g}s")
        self._sleep(call, seconds)
        return None

    def _keys(self, call: Call) -> str:
        if call.outcome != "human":
            return ""  # a voicemail machine presses nothing
        return self.press(call.to) if callable(self.press) else self.press

    def _gather(self, call: Call, verb: Verb, document: Document) -> Document | None:
        record = self._note(call, verb, document)
        for child in verb.children:
            if child.name in ("Say", "Play", "Pause"):
                self._handlers[child.name](self, call, child, document)
                call.verbs[-1]["parent"] = "Gather"
        timeout = _number(verb.attr("timeout"), 5.0)
        finish_key = verb.attr("finishOnKey", "#")
        wanted = int(_number(verb.attr("numDigits"), 0)) or None
        keys = self._keys(call) if "dtmf" in verb.attr("input", "dtmf") else ""
        digits, finished_on, keying = "", "", 0.0
        for key in keys:
            keying += self.timings.digit
            if key == "w":
                continue
            if finish_key and key == finish_key:
                finished_on = key
                break
            digits += key
            if wanted is not None and len(digits) >= wanted:
                break
        complete = bool(finished_on) or (wanted is not None and len(digits) >= wanted)
        # Twilio submits at once on numDigits or finishOnKey, otherwise after `timeout` seconds of quiet.
        self._sleep(call, keying + (0.0 if complete else timeout))
        call.digits.append(digits)
        record["digits"] = digits
        if not digits and not truthy(verb.attr("actionOnEmptyResult")):
            self.log(call, "<Gather> no input, continuing")
            return None
        self.log(call, f"<Gather> pressed {digits or '(nothing)'}")
        target = verb.attr("action")
        if not target and document.url is None:
            return None
        url = self._resolve(call, document, target) if target else document.url or ""
        extra = {"Digits": digits}
        if finished_on:
            extra["FinishedOnKey"] = finished_on
        return self._fetch(call, "action", url, verb.attr("method", "POST"), extra)

    def _dial(self, call: Call, verb: Verb, document: Document) -> Document | None:
        record = self._note(call, verb, document)
        nouns = [child for child in verb.children if child.name in NOUNS]
        if not nouns and verb.text:
            nouns = [Verb("Number", {}, verb.text)]
        timeout = _number(verb.attr("timeout"), 30.0)
        talk_limit = _number(verb.attr("timeLimit"), DEFAULT_TIME_LIMIT)
        conference = next((noun for noun in nouns if noun.name == "Conference"), None)
        if conference is not None:
            status, talk, leg_sid = self._conference(call, conference, document, talk_limit)
        elif nouns:
            status, talk, leg_sid = self._second_leg(call, nouns[0], timeout, talk_limit)
        else:
            self.log(call, "<Dial> with nothing to dial")
            status, talk, leg_sid = "failed", 0, new_sid("CA")
        record.update({"dial_status": status, "dial_duration": talk, "dial_sid": leg_sid})
        target = verb.attr("action")
        if not target:
            return None
        extra = {
            "DialCallStatus": status,
            "DialCallSid": leg_sid,
            "DialCallDuration": str(talk),
            "DialBridged": "true" if status == "completed" else "false",
        }
        return self._fetch(call, "action", self._resolve(call, document, target), verb.attr("method", "POST"), extra)

    def _second_leg(self, call: Call, noun: Verb, timeout: float, talk_limit: float) -> tuple[str, int, str]:
        t = self.timings
        target = noun.text
        outcome = outcome_for(target) if noun.name == "Number" else "human"
        sid = new_sid("CA")
        self.log(call, f"<Dial> {noun.name.lower()} {target}")
        talk = 0
        if outcome == "failed":
            self._sleep(call, t.failed)
            status = "failed"
        elif outcome == "busy":
            self._sleep(call, t.busy)
            status = "busy"
        elif outcome == "no-answer" or t.dial_ring >= timeout:
            self._sleep(call, timeout)
            status = "no-answer"
        else:
            self._sleep(call, t.dial_ring)
            talk = whole_seconds(min(t.dial_talk, talk_limit))
            self.log(call, f"<Dial> {target} answered, talking")
            self._sleep(call, talk)
            status = "completed"
        call.legs.append({"sid": sid, "to": target, "noun": noun.name, "status": status, "duration": talk})
        self.log(call, f"<Dial> {target} {status}" + (f" {talk}s" if talk else ""))
        return status, talk, sid

    def _conference(self, call: Call, noun: Verb, document: Document, talk_limit: float) -> tuple[str, int, str]:
        t = self.timings
        name = noun.text
        with self._lock:
            members = self._conferences.setdefault(name, [])
            waiting = [m for m in members if m.bridged_with is None and not m.ended]
            members.append(call)
        for partner in waiting:
            with partner.cond:
                partner.bridged_with = call.sid
                partner.cond.notify_all()
        if waiting:
            call.bridged_with = waiting[0].sid
        self.log(call, f"<Dial><Conference> {name}" + (" (joins a waiting caller)" if waiting else ""))
        try:
            if call.bridged_with is None:
                self._hold(call, noun, document, call.clock + t.conference_wait)
            if call.bridged_with is None:
                self.log(call, f"nobody joined {name}; treating it as bridged after a ring")
                self._sleep(call, t.dial_ring)
            else:
                self.log(call, f"conference {name} bridged with {call.bridged_with[:8]}…")
            talk = whole_seconds(min(t.dial_talk, talk_limit))
            self._sleep(call, talk)
        finally:
            with self._lock:
                members.remove(call)
                if not members:
                    self._conferences.pop(name, None)
        call.legs.append({"sid": call.sid, "to": name, "noun": "Conference", "status": "completed", "duration": talk})
        return "completed", talk, new_sid("CF")

    def _hold(self, call: Call, noun: Verb, document: Document, deadline: float) -> None:
        """Play the conference's waitUrl TwiML, over and over, until someone joins or `deadline`."""

        def joined() -> bool:
            return call.bridged_with is not None

        wait_url = noun.attr("waitUrl")
        verbs: list[Verb] = []
        if wait_url:
            # Twilio's default hold music lives on the internet: without a waitUrl the sandbox waits in silence.
            url = self._resolve(call, document, wait_url)
            verbs = self._fetch(call, "wait", url, noun.attr("waitMethod", "POST"), {}).verbs
        playable = [verb for verb in verbs if verb.name in ("Play", "Say", "Pause")]
        if sum(self._seconds(verb) for verb in playable) <= 0:
            self._sleep(call, max(0.0, deadline - call.clock), until=joined)
            return
        while not joined() and call.clock < deadline:
            for verb in playable:
                remaining = deadline - call.clock
                if joined() or remaining <= 0:
                    return
                seconds = min(self._seconds(verb), remaining)
                self._note(call, verb, Document(verbs, wait_url), seconds=seconds, parent="waitUrl")
                self.log(call, f"<{verb.name}> {verb.text} (waitUrl)")
                if self._sleep(call, seconds, until=joined):
                    return

    def _record(self, call: Call, verb: Verb, document: Document) -> Document | None:
        t = self.timings
        record = self._note(call, verb, document)
        max_length = _number(verb.attr("maxLength"), 3600.0)
        speak = min(t.record, max_length)
        self.log(call, "<Record> recording")
        start = time.time()
        self._sleep(call, speak)
        recording = self._new_recording(call, whole_seconds(speak), start, "RecordVerb")
        record["recording_sid"] = recording.sid
        # Recording stops after `timeout` seconds of silence (the silence is trimmed from the file).
        self._sleep(call, min(_number(verb.attr("timeout"), 5.0), max(0.0, max_length - speak)))
        self.log(call, f"<Record> {recording.sid[:8]}… {recording.duration}s")
        callback = verb.attr("recordingStatusCallback")
        if callback:
            method = verb.attr("recordingStatusCallbackMethod", "POST")
            self._recording_callback(call, recording, self._resolve(call, document, callback), method)
        target = verb.attr("action")
        if not target and document.url is None:
            return None
        url = self._resolve(call, document, target) if target else document.url or ""
        extra = {
            "RecordingUrl": recording.url,
            "RecordingSid": recording.sid,
            "RecordingDuration": str(recording.duration),
        }
        return self._fetch(call, "action", url, verb.attr("method", "POST"), extra)

    def _hangup(self, call: Call, verb: Verb, document: Document) -> Document | None:
        self._note(call, verb, document)
        self.log(call, "<Hangup>")
        raise _Ended("completed")

    def _reject(self, call: Call, verb: Verb, document: Document) -> Document | None:
        # <Reject> is meant for incoming calls; on an answered outbound call it can only hang up.
        self._note(call, verb, document)
        self.log(call, f"<Reject> {verb.attr('reason', 'rejected')}")
        raise _Ended("completed")

    def _redirect(self, call: Call, verb: Verb, document: Document) -> Document | None:
        self._note(call, verb, document)
        url = self._resolve(call, document, verb.text)
        self.log(call, f"<Redirect> {url}")
        return self._fetch(call, "redirect", url, verb.attr("method", "POST"), {})

    _handlers: ClassVar[dict[str, Callable[[Engine, Call, Verb, Document], Document | None]]] = {
        "Play": _play,
        "Say": _say,
        "Pause": _pause,
        "Gather": _gather,
        "Dial": _dial,
        "Record": _record,
        "Hangup": _hangup,
        "Reject": _reject,
        "Redirect": _redirect,
    }

    # ------------------------------------------------------------------ messages

    def send_message(self, message: Message) -> None:
        """Play out an SMS: queued → sent → delivered (undelivered for numbers ending in 4)."""
        step = self.timings.sms_delivery / self.speed
        final = "undelivered" if outcome_for(message.to) == "failed" else "delivered"

        def advance(status: str) -> None:
            if self._stopping:
                return
            with self.messages_cond:
                message.status = status
                if status == "sent":
                    message.sent = time.time()
                if status == "undelivered":
                    message.error_code = 30003  # unreachable destination handset
                self.messages_cond.notify_all()
            self.log(message, f"SMS {status}")
            url = message.params.get("StatusCallback", [""])[-1]
            if url:
                params = {
                    "MessageSid": message.sid,
                    "SmsSid": message.sid,
                    "AccountSid": message.account_sid,
                    "From": message.from_,
                    "To": message.to,
                    "MessageStatus": status,
                    "SmsStatus": status,
                    "ApiVersion": API_VERSION,
                }
                if message.error_code:
                    params["ErrorCode"] = str(message.error_code)
                record = WebhookRecord("message", url, "POST", params)
                message.callbacks.append(record)
                with self.messages_cond:
                    message.pending += 1
                self.outbox.submit(message.sid, record, lambda rec, reply: self._message_done(message))
            if status == "sent":
                self.timers.call_later(step, lambda: advance(final))

        self.log(message, f'SMS queued "{message.body[:40]}"')
        self.timers.call_later(step, lambda: advance("sent"))

    def _message_done(self, message: Message) -> None:
        with self.messages_cond:
            message.pending -= 1
            self.messages_cond.notify_all()


def message_done(message: Message) -> bool:
    """The SMS reached a final status and its callbacks were delivered."""
    return message.status in ("delivered", "undelivered", "failed") and message.pending == 0
