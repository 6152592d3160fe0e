"""A call's asynchronous webhooks: status callbacks (through the fault injector in faults mode), recording and
answering-machine-detection callbacks, delivered off the call's thread in the order they were made.

Faults mode duplicates, delays, reorders and drops status callbacks, as a real carrier's network may. Every fault
decision of a call comes from one random stream derived from the run's seed, the called number and how many calls
to it came before, so a seed replays a run's faults whatever order calls arrive in.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from dataclasses import replace

from sandbox.carrier.context import Context
from sandbox.carrier.model import (
    API_VERSION,
    DIRECTION,
    Call,
    FaultConfig,
    Recording,
    WebhookRecord,
    billed_minutes,
    new_sid,
    rfc2822,
)
from sandbox.carrier.webhooks import Reply

# Status-callback events and the CallStatus each reports (the rest report the call's status at that moment).
_EVENT_STATUS = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress"}


def requested_events(call: Call) -> set[str]:
    """The status-callback events asked for (repeated key, or space/comma separated); `completed` by default."""
    events = {word for value in call.params.get("StatusCallbackEvent", []) for word in value.replace(",", " ").split()}
    return events or {"completed"}


def call_params(call: Call, status: str | None = None) -> dict[str, str]:
    """The parameters Twilio sends about a call in every request (TwiML fetches and callbacks alike).

    `AnsweredBy` is not among them: Twilio documents it on the request to the call's `Url` (synchronous
    detection) and on `AsyncAmdStatusCallback`, and those add it themselves.
    """
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
    if call.parent_call_sid:
        params["ParentCallSid"] = call.parent_call_sid
    return params


class Callbacks:
    """Sends a call's webhooks after its earlier ones, counting them so `Call.done` knows when all are out."""

    def __init__(self, ctx: Context, faults: FaultConfig | None, seed: int) -> None:
        self._ctx = ctx
        self._faults = faults
        self._seed = seed
        self._lock = threading.Lock()
        self._streams: dict[str, random.Random] = {}
        self._calls_to: dict[str, int] = {}
        self._held: dict[str, list[WebhookRecord]] = {}

    def track(self, call: Call) -> None:
        """Give a new call its fault stream (faults mode)."""
        if self._faults is None:
            return
        with self._lock:
            nth = self._calls_to[call.to] = self._calls_to.get(call.to, 0) + 1
            self._streams[call.sid] = random.Random(f"{self._seed}/{call.to}/{nth}")

    def post(self, call: Call, record: WebhookRecord, *, counted: bool = False) -> None:
        """Deliver a webhook off the call's thread, after the call's earlier ones."""
        if not counted:
            with call.cond:
                call.pending += 1

        def done(rec: WebhookRecord, reply: Reply) -> None:
            if not reply.ok:
                self._ctx.log(call, f"webhook {rec.kind} to {rec.url} failed: {rec.error}")
            with call.cond:
                call.pending -= 1
                call.cond.notify_all()

        self._ctx.outbox.submit(call.sid, record, done)

    def event(self, call: Call, event: str, line: str, *, recording: Recording | None = None) -> None:
        """Note a call-progress event and send its status callback, if the call asked for that event."""
        call.events.append({"event": event, "at": time.time(), "clock": call.clock, "status": call.status})
        self._ctx.log(call, line)
        url = call.param("StatusCallback")
        if not url or event not in requested_events(call):
            return
        params = call_params(call, _EVENT_STATUS.get(event, call.status))
        params.update(
            {
                "Timestamp": rfc2822(time.time()) or "",
                "CallbackSource": "call-progress-events",
                "SequenceNumber": str(call.sequence),
            }
        )
        call.sequence += 1
        if event == "completed":  # the call's last event, whatever its status: busy, no-answer, failed, canceled too
            params["CallDuration"] = str(call.duration or 0)
            params["SipResponseCode"] = str(call.sip_response_code)
            if call.status == "completed":  # Twilio adds the billed minutes to a completed call's callback only
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

    def release_held(self, call: Call) -> None:
        """Send the status callbacks held back to be reordered (the call has ended: nothing comes after them)."""
        for held in self._held.pop(call.sid, []):
            self.post(call, held)

    def _status_callback(self, call: Call, record: WebhookRecord) -> None:
        """Send a status callback, through the fault injector in faults mode."""
        call.callbacks.append(record)
        rng = self._streams.get(call.sid)
        if self._faults is None or rng is None:
            self.post(call, record)
            return
        f = self._faults
        event = record.params.get("CallStatus", "")
        if rng.random() < f.drop:
            record.fault = "dropped"
            self._ctx.log(call, f"(fault) dropped the {event} callback")
            return
        copies = [record]
        if rng.random() < f.duplicate:
            duplicate = replace(record, params=dict(record.params), fault="duplicate")
            call.callbacks.append(duplicate)
            copies.append(duplicate)
            self._ctx.log(call, f"(fault) duplicated the {event} callback")
        delayed = rng.random() < f.delay
        reordered = not delayed and rng.random() < f.reorder
        for copy in copies:
            if delayed:
                copy.fault = copy.fault or "delayed"
                with call.cond:
                    call.pending += 1
                delay = rng.uniform(0.1, f.max_delay) / self._ctx.speed
                self._ctx.timers.call_later(delay, functools.partial(self.post, call, copy, counted=True))
            elif reordered:
                copy.fault = copy.fault or "reordered"
                self._held.setdefault(call.sid, []).append(copy)
            else:
                self.post(call, copy)
                self.release_held(call)  # held ones go after this later one
        if delayed:
            self._ctx.log(call, f"(fault) delayed the {event} callback")
        if reordered:
            self._ctx.log(call, f"(fault) holding the {event} callback to reorder it")

    def new_recording(self, call: Call, duration: int, start: float, source: str) -> Recording:
        """Make a recording of the call (its media is served by the REST API)."""
        sid = new_sid("RE")
        url = f"{self._ctx.base_url()}/{API_VERSION}/Accounts/{call.account_sid}/Recordings/{sid}"
        recording = Recording(sid, call.sid, url, duration, start, source)
        call.recordings.append(recording)
        self._ctx.recordings[sid] = recording
        return recording

    def recording_callback(self, call: Call, recording: Recording, url: str, method: str) -> None:
        """Tell `url` the recording is ready."""
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
        self.post(call, WebhookRecord("recording", url, method.upper(), params))

    def amd_callback(self, call: Call, verdict: str, seconds: float) -> None:
        """Post an asynchronous detection verdict to AsyncAmdStatusCallback (when the call gave one)."""
        url = call.param("AsyncAmdStatusCallback")
        if not url:
            return
        params = {
            "CallSid": call.sid,
            "AccountSid": call.account_sid,
            "AnsweredBy": verdict,
            "MachineDetectionDuration": str(round(seconds * 1000)),
        }
        method = (call.param("AsyncAmdStatusCallbackMethod") or "POST").upper()
        self.post(call, WebhookRecord("amd", url, method, params))
