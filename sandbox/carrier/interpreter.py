"""The TwiML interpreter: fetches a live call's documents and plays their verbs out in simulated time.

Simulated: Play, Say, Pause, Gather (DTMF from the simulated person), Dial (a Number, Client or Sip second leg, or
a Conference), Record, Hangup, Reject and Redirect; any other verb is noted and skipped. A failed fetch goes to the
call's FallbackUrl, else Twilio's "application error" ends the call.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urljoin, urlsplit

from sandbox.carrier.callbacks import Callbacks, call_params
from sandbox.carrier.context import DEFAULT_TIME_LIMIT, Context, Ended, Redirected, number, truthy
from sandbox.carrier.model import Call, WebhookRecord, new_sid, normalize_number, outcome_for
from sandbox.carrier.twiml import TwimlError, Verb, parse_twiml
from sandbox.carrier.voices import say_problem
from sandbox.carrier.webhooks import Reply

MAX_LOOPS = 10  # <Play loop="0"> repeats "forever": the simulated listener hangs up after this many
MAX_VERBS = 500  # loop guards: a flow that keeps redirecting to itself is ended, not run forever
MAX_FETCHES = 100
NOUNS = ("Number", "Client", "Sip", "Conference", "Queue")


def whole_seconds(seconds: float) -> int:
    """Seconds rounded half up (not to even), so 2.5 s of speech bills as 3 s."""
    return math.floor(seconds + 0.5)


class ApplicationError(Exception):
    """TwiML Twilio cannot execute: the call goes to its FallbackUrl, or ends with Twilio's application error."""

    def __init__(self, code: str, message: str, url: str | None) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.url = url


@dataclass(frozen=True)
class Document:
    """A TwiML document and the URL it came from (the base for relative URLs and the default action)."""

    verbs: list[Verb]
    url: str | None


class Interpreter:
    """Runs a live call's TwiML on the call's thread: each verb takes its simulated time."""

    def __init__(self, ctx: Context, callbacks: Callbacks) -> None:
        self._ctx = ctx
        self._callbacks = callbacks
        self._conferences: dict[str, list[Call]] = {}
        self._lock = threading.Lock()  # guards the conference rooms

    # ------------------------------------------------------------------ documents

    def run(self, call: Call, document: Document | None) -> None:
        """Play `document` and whatever it leads to, following REST redirects, until the TwiML runs out."""
        while document is not None:
            try:
                document = self._run_document(call, document)
            except ApplicationError as error:
                call.errors.append(str(error))
                self._ctx.log(call, str(error))
                document = self._fallback(call, error.code, error.url)
            except Redirected:
                with call.cond:
                    kind, value = call.redirect or ("twiml", "")
                    call.redirect = None
                if kind == "twiml":
                    self._ctx.log(call, "redirected by the REST API (Twiml)")
                    document = self.parse(call, Reply(200, value, "text/xml"), None)
                else:
                    method, _, url = value.partition(" ")
                    self._ctx.log(call, f"redirected by the REST API to {url}")
                    document = self.fetch(call, "redirect", url, method, {})

    def fetch(self, call: Call, kind: str, url: str, method: str, extra: dict[str, str]) -> Document:
        """Ask a webhook for TwiML (on the call's thread: the call waits, as on Twilio)."""
        self._ctx.check(call)
        if len(call.documents) >= MAX_FETCHES:
            call.errors.append(f"more than {MAX_FETCHES} TwiML fetches: ended as a loop")
            raise Ended("completed")
        method = method.upper() if method.upper() in ("GET", "POST") else "POST"
        record = WebhookRecord(kind, url, method, {**call_params(call), **extra})
        call.callbacks.append(record)
        call.documents.append(url)
        reply = self._ctx.client.send(record)
        if reply.ok:
            try:
                return self.parse(call, reply, url)
            except Ended:
                if kind != "flow":
                    raise
                # "an error occurs when requesting or executing the TwiML at url": the FallbackUrl (twilio-oai)
                return self._fallback(call, "12100", url)
        error = f"11200 HTTP retrieval failure: {method} {url} ({reply.error or reply.status_code})"
        call.errors.append(error)
        self._ctx.log(call, error)
        if kind != "flow":
            raise Ended("completed")  # Twilio says "an application error has occurred" and hangs up
        return self._fallback(call, "11200", url)

    def _fallback(self, call: Call, code: str, failed_url: str | None) -> Document:
        """The call's FallbackUrl document after an error in its TwiML, else Twilio's application error (the end)."""
        fallback = call.param("FallbackUrl")
        if not fallback or any(record.kind == "fallback" for record in call.callbacks):
            raise Ended("completed")  # "an application error has occurred", then Twilio hangs up
        extra = {"ErrorCode": code, "ErrorUrl": failed_url or ""}
        return self.fetch(call, "fallback", fallback, call.param("FallbackMethod") or "POST", extra)

    def parse(self, call: Call, reply: Reply, url: str | None) -> Document:
        """The TwiML of a webhook's answer; a document Twilio cannot parse ends the call (error 12100)."""
        if reply.content_type.startswith("audio/") and url:
            return Document([Verb("Play", {}, url)], url)  # Twilio plays an audio reply as it is
        try:
            return Document(parse_twiml(reply.text), url)
        except TwimlError as exc:
            call.errors.append(f"12100 {exc}")
            self._ctx.log(call, f"12100 {exc}")
            raise Ended("completed") from exc

    def _run_document(self, call: Call, document: Document) -> Document | None:
        for verb in document.verbs:
            self._ctx.check(call)
            if len(call.verbs) >= MAX_VERBS:
                call.errors.append(f"more than {MAX_VERBS} verbs: ended as a loop")
                raise Ended("completed")
            handler = self._handlers.get(verb.name)
            if handler is None:
                self._note(call, verb, document, skipped=True)
                self._ctx.log(call, f"<{verb.name}> skipped (not simulated)")
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
            self._ctx.log(call, f"11100 invalid URL {target!r}")
            raise Ended("completed")
        return url

    def _seconds(self, verb: Verb) -> float:
        """Nominal time a Play, Say or Pause takes."""
        t = self._ctx.timings
        loops = int(number(verb.attr("loop"), 1)) or MAX_LOOPS
        if verb.name == "Play":
            if verb.attr("digits"):
                return len(verb.attr("digits")) * t.digit
            return t.play * loops
        if verb.name == "Say":
            return max(t.say_min, len(verb.text) / t.say_chars_per_second) * loops
        if verb.name == "Pause":
            return max(0.0, number(verb.attr("length"), 1.0))
        return 0.0

    # ------------------------------------------------------------------ verbs

    def _play(self, call: Call, verb: Verb, document: Document) -> Document | None:
        seconds = self._seconds(verb)
        self._note(call, verb, document, seconds=seconds)
        what = f"digits {verb.attr('digits')}" if verb.attr("digits") else verb.text
        loops = f" ×{verb.attr('loop')}" if verb.attr("loop") not in ("", "1") else ""
        self._ctx.log(call, f"<{verb.name}> {what}{loops}")
        self._ctx.sleep(call, seconds)
        return None

    def _say(self, call: Call, verb: Verb, document: Document) -> Document | None:
        problem = say_problem(verb.attr("voice"), verb.attr("language"))
        if problem:
            # Outside <Gather> an invalid voice is a warning (13511) and the <Say> speaks nothing.
            self._note(call, verb, document, seconds=0.0, error=f"13511 {problem}")
            call.errors.append(f"13511 Say: Invalid voice value: {problem}")
            self._ctx.log(call, f"<Say> not spoken (13511): {problem}")
            return None
        seconds = self._seconds(verb)
        self._note(call, verb, document, seconds=seconds)
        text = verb.text if len(verb.text) <= 60 else verb.text[:57] + "..."
        self._ctx.log(call, f'<Say> "{text}"')
        self._ctx.sleep(call, seconds)
        return None

    def _pause(self, call: Call, verb: Verb, document: Document) -> Document | None:
        seconds = self._seconds(verb)
        self._note(call, verb, document, seconds=seconds)
        self._ctx.log(call, f"<Pause> {seconds:g}s")
        self._ctx.sleep(call, seconds)
        return None

    def _keys(self, call: Call) -> str:
        if call.outcome != "human":
            return ""  # a voicemail machine presses nothing
        press = self._ctx.press
        return press(call.to) if callable(press) else press

    def _gather(self, call: Call, verb: Verb, document: Document) -> Document | None:
        record = self._note(call, verb, document)
        for child in verb.children:
            problem = say_problem(child.attr("voice"), child.attr("language")) if child.name == "Say" else None
            if problem:
                raise ApplicationError("13321", f"Gather -> Say: Invalid voice value: {problem}", document.url)
        for child in verb.children:
            if child.name in ("Say", "Play", "Pause"):
                self._handlers[child.name](self, call, child, document)
                call.verbs[-1]["parent"] = "Gather"
        timeout = number(verb.attr("timeout"), 5.0)
        finish_key = verb.attr("finishOnKey", "#")
        wanted = int(number(verb.attr("numDigits"), 0)) or None
        keys = self._keys(call) if "dtmf" in verb.attr("input", "dtmf") else ""
        digits, finished_on, keying = "", "", 0.0
        for key in keys:
            keying += self._ctx.timings.digit
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
        self._ctx.sleep(call, keying + (0.0 if complete else timeout))
        call.digits.append(digits)
        record["digits"] = digits
        if not digits and not truthy(verb.attr("actionOnEmptyResult")):
            self._ctx.log(call, "<Gather> no input, continuing")
            return None
        self._ctx.log(call, f"<Gather> pressed {digits or '(nothing)'}")
        target = verb.attr("action")
        if not target and document.url is None:
            return None
        url = self._resolve(call, document, target) if target else document.url or ""
        extra = {"Digits": digits}
        if finished_on:
            extra["FinishedOnKey"] = finished_on
        return self.fetch(call, "action", url, verb.attr("method", "POST"), extra)

    def _dial(self, call: Call, verb: Verb, document: Document) -> Document | None:
        record = self._note(call, verb, document)
        nouns = [child for child in verb.children if child.name in NOUNS]
        if not nouns and verb.text:
            nouns = [Verb("Number", {}, verb.text)]
        timeout = number(verb.attr("timeout"), 30.0)
        talk_limit = number(verb.attr("timeLimit"), DEFAULT_TIME_LIMIT)
        conference = next((noun for noun in nouns if noun.name == "Conference"), None)
        caller_id = verb.attr("callerId")
        if caller_id and not self._valid_caller_id(call, caller_id):
            # Warning 13214: "callerId must be the calling number, called number, or a validated outgoing number".
            call.errors.append(f"13214 Dial: Invalid callerId value: {caller_id}")
            self._ctx.log(call, f"<Dial> refused (13214): callerId {caller_id} is not the account's")
            status, talk, leg_sid = "failed", 0, new_sid("CA")
        elif conference is not None:
            status, talk, leg_sid = self._conference(call, conference, document, talk_limit)
        elif nouns:
            status, talk, leg_sid = self._second_leg(call, nouns[0], timeout, talk_limit)
        else:
            self._ctx.log(call, "<Dial> with nothing to dial")
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
        return self.fetch(call, "action", self._resolve(call, document, target), verb.attr("method", "POST"), extra)

    def _valid_caller_id(self, call: Call, caller_id: str) -> bool:
        e164 = normalize_number(caller_id)
        return e164 is not None and (e164 in (call.from_, call.to) or e164 in self._ctx.numbers)

    def _second_leg(self, call: Call, noun: Verb, timeout: float, talk_limit: float) -> tuple[str, int, str]:
        t = self._ctx.timings
        target = noun.text
        outcome = outcome_for(target) if noun.name == "Number" else "human"
        sid = new_sid("CA")
        self._ctx.log(call, f"<Dial> {noun.name.lower()} {target}")
        talk = 0
        if outcome == "failed":
            self._ctx.sleep(call, t.failed)
            status = "failed"
        elif outcome == "busy":
            self._ctx.sleep(call, t.busy)
            status = "busy"
        elif outcome == "no-answer" or t.dial_ring >= timeout:
            self._ctx.sleep(call, timeout)
            status = "no-answer"
        else:
            self._ctx.sleep(call, t.dial_ring)
            talk = whole_seconds(min(t.dial_talk, talk_limit))
            self._ctx.log(call, f"<Dial> {target} answered, talking")
            self._ctx.sleep(call, talk)
            status = "completed"
        call.legs.append({"sid": sid, "to": target, "noun": noun.name, "status": status, "duration": talk})
        self._ctx.log(call, f"<Dial> {target} {status}" + (f" {talk}s" if talk else ""))
        return status, talk, sid

    def _conference(self, call: Call, noun: Verb, document: Document, talk_limit: float) -> tuple[str, int, str]:
        t = self._ctx.timings
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
        self._ctx.log(call, f"<Dial><Conference> {name}" + (" (joins a waiting caller)" if waiting else ""))
        try:
            if call.bridged_with is None:
                self._hold(call, noun, document, call.clock + t.conference_wait)
            if call.bridged_with is None:
                # Twilio keeps a lone participant waiting (to the call's time limit); the simulated person hangs up.
                call.legs.append({"sid": call.sid, "to": name, "noun": "Conference", "status": "alone", "duration": 0})
                self._ctx.log(call, f"nobody joined {name}; the caller hangs up after {t.conference_wait:g}s alone")
                raise Ended("completed")
            self._ctx.log(call, f"conference {name} bridged with {call.bridged_with[:8]}…")
            talk = whole_seconds(min(t.dial_talk, talk_limit))
            self._ctx.sleep(call, talk)
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
            verbs = self.fetch(call, "wait", url, noun.attr("waitMethod", "POST"), {}).verbs
        playable = [verb for verb in verbs if verb.name in ("Play", "Say", "Pause")]
        if sum(self._seconds(verb) for verb in playable) <= 0:
            self._ctx.sleep(call, max(0.0, deadline - call.clock), until=joined)
            return
        while not joined() and call.clock < deadline:
            for verb in playable:
                remaining = deadline - call.clock
                if joined() or remaining <= 0:
                    return
                seconds = min(self._seconds(verb), remaining)
                self._note(call, verb, Document(verbs, wait_url), seconds=seconds, parent="waitUrl")
                self._ctx.log(call, f"<{verb.name}> {verb.text} (waitUrl)")
                if self._ctx.sleep(call, seconds, until=joined):
                    return

    def _record(self, call: Call, verb: Verb, document: Document) -> Document | None:
        t = self._ctx.timings
        record = self._note(call, verb, document)
        max_length = number(verb.attr("maxLength"), 3600.0)
        speak = min(t.record, max_length)
        self._ctx.log(call, "<Record> recording")
        start = time.time()
        self._ctx.sleep(call, speak)
        recording = self._callbacks.new_recording(call, whole_seconds(speak), start, "RecordVerb")
        record["recording_sid"] = recording.sid
        # Recording stops after `timeout` seconds of silence (the silence is trimmed from the file).
        self._ctx.sleep(call, min(number(verb.attr("timeout"), 5.0), max(0.0, max_length - speak)))
        self._ctx.log(call, f"<Record> {recording.sid[:8]}… {recording.duration}s")
        callback = verb.attr("recordingStatusCallback")
        if callback:
            method = verb.attr("recordingStatusCallbackMethod", "POST")
            self._callbacks.recording_callback(call, recording, self._resolve(call, document, callback), method)
        target = verb.attr("action")
        if not target and document.url is None:
            return None
        url = self._resolve(call, document, target) if target else document.url or ""
        extra = {
            "RecordingUrl": recording.url,
            "RecordingSid": recording.sid,
            "RecordingDuration": str(recording.duration),
        }
        return self.fetch(call, "action", url, verb.attr("method", "POST"), extra)

    def _hangup(self, call: Call, verb: Verb, document: Document) -> Document | None:
        self._note(call, verb, document)
        self._ctx.log(call, "<Hangup>")
        raise Ended("completed")

    def _reject(self, call: Call, verb: Verb, document: Document) -> Document | None:
        # <Reject> is meant for incoming calls; on an answered outbound call it can only hang up.
        self._note(call, verb, document)
        self._ctx.log(call, f"<Reject> {verb.attr('reason', 'rejected')}")
        raise Ended("completed")

    def _redirect(self, call: Call, verb: Verb, document: Document) -> Document | None:
        self._note(call, verb, document)
        url = self._resolve(call, document, verb.text)
        self._ctx.log(call, f"<Redirect> {url}")
        return self.fetch(call, "redirect", url, verb.attr("method", "POST"), {})

    _handlers: ClassVar[dict[str, Callable[[Interpreter, Call, Verb, Document], Document | None]]] = {
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
