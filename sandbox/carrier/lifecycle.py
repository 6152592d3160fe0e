"""One call from start to end: dialing, ringing and answering by rule, answering-machine detection, the end.

Outcomes come from the called number (see `model.outcome_for`); the answered call's TwiML is the interpreter's.
"""

from __future__ import annotations

import time

from sandbox.carrier.callbacks import Callbacks
from sandbox.carrier.context import Context, Ended, Shutdown, number, truthy
from sandbox.carrier.interpreter import Interpreter, whole_seconds
from sandbox.carrier.model import SIP_CODES, Call
from sandbox.carrier.webhooks import Reply

DEFAULT_TIMEOUT = 60  # seconds of ringing (Twilio's default)
MAX_TIMEOUT = 600


class CallLifecycle:
    """Plays one call out on its own thread."""

    def __init__(self, ctx: Context, callbacks: Callbacks, interpreter: Interpreter) -> None:
        self._ctx = ctx
        self._callbacks = callbacks
        self._interpreter = interpreter

    def run(self, call: Call) -> None:
        """The call's thread: progress, then the end and its callbacks (none when the simulator stops)."""
        status: str | None
        try:
            self._progress(call)
            status = "completed"
        except Ended as end:
            status = end.status
        except Shutdown:
            status = None
        except Exception as exc:  # a simulator bug must still end the call and say why
            call.errors.append(f"simulator error: {type(exc).__name__}: {exc}")
            status = "failed" if call.answer_time is None else "completed"
        if status is not None and not self._ctx.stopping:
            self._finish(call, status)

    def _progress(self, call: Call) -> None:
        t = self._ctx.timings
        call.start_time = time.time()
        if call.slot > call.arrived + 0.001:
            self._ctx.log(call, f"dequeued after {call.queue_time_ms} ms (CPS limit)")
        self._callbacks.event(call, "initiated", "initiated")
        if call.outcome == "failed":
            self._ctx.sleep(call, t.failed)
            raise Ended("failed")
        if call.outcome == "busy":
            self._ctx.sleep(call, t.busy)
            raise Ended("busy")
        self._ctx.sleep(call, t.setup)
        call.status = "ringing"
        self._callbacks.event(call, "ringing", "ringing")
        timeout = min(number(call.param("Timeout"), DEFAULT_TIMEOUT), MAX_TIMEOUT)
        if call.outcome == "no-answer" or t.ring >= timeout:
            self._ctx.sleep(call, timeout)
            raise Ended("no-answer")
        self._ctx.sleep(call, t.ring)
        self._answer(call)

    def _answer(self, call: Call) -> None:
        call.status = "in-progress"
        call.answer_time = time.time()
        call.answer_clock = call.clock
        detection = call.param("MachineDetection") if not call.param("SendDigits") else None
        verdict, detect_seconds = self._detect(call, detection)
        synchronous = bool(detection) and not truthy(call.param("AsyncAmd"))
        if synchronous:
            # Synchronous AMD: Twilio holds the call until the verdict, then asks for TwiML with AnsweredBy.
            self._ctx.sleep(call, detect_seconds)
            call.answered_by = verdict
        who = f"by {call.answered_by}" if call.answered_by else ("(voicemail)" if call.outcome == "machine" else "")
        self._callbacks.event(call, "answered", f"answered {who}".rstrip())
        if detection and not synchronous:
            self._ctx.timers.call_later(
                detect_seconds / self._ctx.speed, lambda: self._async_amd(call, verdict, detect_seconds)
            )
        twiml = call.param("Twiml")
        if twiml:
            document = self._interpreter.parse(call, Reply(200, twiml, "text/xml"), None)
        else:
            # The request for the call's TwiML is where Twilio sends a synchronous verdict.
            extra = {"AnsweredBy": verdict} if synchronous else {}
            url, method = call.param("Url") or "", call.param("Method") or "POST"
            document = self._interpreter.fetch(call, "flow", url, method, extra)
        self._interpreter.run(call, document)

    def _detect(self, call: Call, detection: str | None) -> tuple[str, float]:
        t = self._ctx.timings
        if call.outcome != "machine":
            return "human", t.amd_human
        if detection == "DetectMessageEnd":
            return "machine_end_beep", t.amd_greeting
        return "machine_start", t.amd_machine_start

    def _async_amd(self, call: Call, verdict: str, seconds: float) -> None:
        if call.ended or self._ctx.stopping:
            return
        call.answered_by = verdict
        self._ctx.log(call, f"answered by {verdict} (async AMD)")
        self._callbacks.amd_callback(call, verdict, seconds)

    def _finish(self, call: Call, status: str) -> None:
        call.status = status
        call.end_time = time.time()
        answered = call.answer_clock is not None
        call.duration = whole_seconds(call.clock - call.answer_clock) if call.answer_clock is not None else 0
        call.sip_response_code = SIP_CODES[status]
        recording = None
        if answered and truthy(call.param("Record")):
            recording = self._callbacks.new_recording(
                call, call.duration, call.answer_time or call.end_time, "OutboundAPI"
            )
            recording.channels = 2 if (call.param("RecordingChannels") or "").lower() == "dual" else 1
        line = f"{status} {call.duration}s" if answered else status
        self._callbacks.event(call, "completed", line, recording=recording)
        if recording is not None and call.param("RecordingStatusCallback"):
            method = (call.param("RecordingStatusCallbackMethod") or "POST").upper()
            self._callbacks.recording_callback(call, recording, call.param("RecordingStatusCallback") or "", method)
        self._callbacks.release_held(call)
