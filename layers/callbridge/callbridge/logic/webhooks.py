"""Use cases behind the carrier's webhooks: the call-flow document, status and recording callbacks.

Every webhook that changes a call or acts on it first checks that the request is about the call's own carrier
call (`from_this_call`; for the bridge's second leg, `from_its_second_leg`). A request about another carrier call
(a late one of an earlier attempt, a URL reused by another call) is kept on the timeline as `carrier.ignored`,
changes nothing else, and is answered with a hang-up (the TwiML webhooks) or as usual (the callbacks).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime

from callbridge.carrier.base import Carrier, CarrierError, CreateCall
from callbridge.domain import events
from callbridge.domain.answered import answered_by_label
from callbridge.domain.calls import Call, TimelineEvent, iso
from callbridge.domain.changes import Change, ends
from callbridge.domain.errors import CallNotFound, InvalidRequest
from callbridge.domain.ivr import (
    MAX_STEPS,
    Chosen,
    GiveUp,
    OptOutAction,
    from_snapshot,
    pressed_keys,
    resolve,
    valid_code,
)
from callbridge.domain.progress import (
    SECOND_LEG_DIALING,
    SECOND_LEG_FAILED,
    about_carrier_call,
    apply_sms_status,
    apply_status_callback,
    before_its_carrier_id,
    flow_change,
    from_its_second_leg,
    from_this_call,
    ignored_change,
    ignored_request,
    later_sms_status,
    recording_change,
    status_change,
)
from callbridge.domain.requests import CallRequest
from callbridge.flow.ivr_twiml import render_menu, render_next
from callbridge.flow.twiml import (
    FlowUrls,
    render_answer,
    render_hangup,
    render_hold,
    render_not_bridged,
    render_second_leg,
)
from callbridge.logic.placer import Pacer, WebhookUrls
from callbridge.logic.suppressions import opt_out
from callbridge.logic.updates import update
from callbridge.ports import CallsStore, SuppressionList

# Whether a request is about the call's own carrier call (see the module's docstring).
Belongs = Callable[[Call, Mapping[str, str]], bool]

_SMS_SENDING = "sending"
SECOND_LEG_PACING_SECONDS = 2.0  # + the carrier request: within the webhook's time budget (README)
# The answer_dial_to leg's final statuses that leave `to` alone in the bridge.
_NOT_BRIDGED = frozenset({"busy", "no-answer", "failed", "canceled"})
_IVR_EVENTS = (events.IVR_DIGITS, events.IVR_NO_INPUT)


def _request_of(call: Call) -> CallRequest:
    return CallRequest.model_validate(call.request)


def _gather_position(query: Mapping[str, str]) -> tuple[str, int, int]:
    """(menu, attempt, step) from a gather URL's query string, as flow/ivr_twiml.py wrote it."""
    code, attempt, step = query.get("menu", ""), query.get("try", ""), query.get("step", "")
    if not valid_code(code) or not attempt.isdigit() or not step.isdigit() or not 0 < int(step) <= MAX_STEPS:
        raise InvalidRequest.single("query string", "must be menu=<code>&try=<attempt>&step=<step>")
    return code, int(attempt), int(step)


def _bridged_with_tone(request: CallRequest) -> bool:
    """Whether the call bridges `to` to answer_dial_to through a conference playing a dial tone (the hold webhook)."""
    return bool(request.answer_dial_to and request.answer_dial_tone_url)


def _in_the_call(call: Call, params: Mapping[str, str]) -> bool:
    """`from_this_call` for a request made by the answered call's TwiML (its flow may have answered it before the
    placer wrote the carrier call id)."""
    return from_this_call(call, params, answered=True)


def flow_urls(urls: WebhookUrls, callid: str) -> FlowUrls:
    """The URLs a call's flow document points back to."""
    return FlowUrls(
        gather=urls.route(callid, "gather"),
        dial_action=urls.route(callid, "dial"),
        hold=urls.route(callid, "hold"),
        conference_name=f"callbridge-{callid}",
    )


@dataclass
class Webhooks:
    """Everything the carrier's callbacks need."""

    calls: CallsStore
    carrier: Carrier
    pacer: Pacer | None = None
    sms_from_default: Callable[[Call], str | None] = field(default=lambda _call: None)
    suppressions: SuppressionList | None = None  # where an IVR `opt_out` key puts the called number
    now: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def _stamp(self) -> str:
        return iso(datetime.fromtimestamp(self.now(), UTC))

    def flow(self, callid: str, params: Mapping[str, str], urls: WebhookUrls, attempt: int = 1) -> str:
        """The TwiML for the answered call: the seed's person or machine flow, chosen by AnsweredBy.

        One conditional write keeps the request on the timeline (as part of attempt `attempt`) and moves the
        call to IN_PROGRESS, and returns the call to answer from. A request about another carrier call than the
        call's (another CallSid, or a call never claimed for dialing) is kept on the timeline, changes nothing
        and is hung up: it must not answer a call, send its SMS or leave it IN_PROGRESS for reconciliation.
        """
        label = answered_by_label(params.get("AnsweredBy"))
        call = self._written_if_ours(callid, flow_change(params, self._stamp(), attempt), params, answered=False)
        if call is None:
            self.calls.apply(callid, ignored_change(params, self._stamp(), "flow", attempt))
            return render_hangup()
        request = _request_of(call)
        if call.status.is_final:
            return render_hangup()
        if label == "Machine" and request.answermachine_sms:
            self._send_sms_once(call, request, urls)
        flow = flow_urls(urls, callid)
        ivr = None
        if label == "Person" and request.answer_ivr:
            # The menus the call was accepted with (see logic/ivr.py): later edits never reach it.
            menu = from_snapshot(call.ivr_menus).get(request.answer_ivr)
            ivr = render_menu(request.answer_ivr, menu, flow) if menu else None
        return render_answer(request, label, flow, call.tts_audio, ivr=ivr)

    def _written_if_ours(
        self, callid: str, change: Change, params: Mapping[str, str], *, answered: bool
    ) -> Call | None:
        """Write `change` if the request is `from_this_call` (`answered`: made by the answered call's TwiML), with
        the carrier call id in the write's condition (one request when the placer has written it, as it usually
        has); the call after it, or None if the request is about another carrier call (nothing written)."""
        sid = params.get("CallSid", "")
        for _ in range(2):  # the placer may write the carrier call id between the two tries: then once more
            _, call = self.calls.apply(callid, about_carrier_call(change, sid))
            if call is None:
                raise CallNotFound(callid)
            if call.carrier_call_id == sid:  # written (the change, or its `otherwise`)
                return call
            if not from_this_call(call, params, answered=answered):
                return None
            held, unplaced = self.calls.apply(callid, before_its_carrier_id(change, sid, answered=answered))
            if held and unplaced is not None:
                return unplaced
        return None

    def _updated_if_ours(
        self,
        callid: str,
        params: Mapping[str, str],
        webhook: str,
        belongs: Belongs,
        change: Callable[[Call], Call | None],
    ) -> tuple[Call, bool]:
        """Read the call and write `change` (see `CallsStore.update`) if the request `belongs` to it, else keep the
        request on the timeline as ignored: (the call after it, whether the request was the call's)."""
        stamp = self._stamp()
        ours = [True]

        def decide(c: Call) -> Call | None:
            ours[0] = belongs(c, params)
            return change(c) if ours[0] else ignored_request(c, params, stamp, webhook)

        stored = self.calls.update(callid, decide)
        if stored is None:
            raise CallNotFound(callid)
        return stored, ours[0]

    def gather(self, callid: str, params: Mapping[str, str], query: Mapping[str, str], urls: WebhookUrls) -> str:
        """A key pressed at an IVR menu, or none before its timeout: keep it on the call, answer what follows.

        The gather URL names the menu, the attempt and the step; a request repeated by the carrier for a step
        already kept changes nothing and gets the same answer. One about another carrier call keeps no key, lists
        no number and is hung up.
        """
        code, attempt, step = _gather_position(query)
        pressed = pressed_keys(params.get("Digits", ""))
        stamp = self._stamp()

        def keep(c: Call) -> Call | None:
            if any(e.event in _IVR_EVENTS and e.detail.get("step") == step for e in c.timeline):
                return None
            menu = from_snapshot(c.ivr_menus).get(code)
            resolution = resolve(menu, pressed, attempt) if menu else GiveUp(None)
            at = {"menu": code, "step": step, "attempt": attempt}
            if pressed:
                kind = resolution.action.action if isinstance(resolution, Chosen) else "invalid"
                c = c.model_copy(update={"digits": c.digits + pressed})
                c = c.with_event(stamp, events.IVR_DIGITS, digit=pressed, action=kind, **at)
            else:
                c = c.with_event(stamp, events.IVR_NO_INPUT, **at)
            if isinstance(resolution, GiveUp):
                c = c.with_event(stamp, events.IVR_ENDED, menu=code, reason="invalid" if pressed else "no_input")
            return c

        call, ours = self._updated_if_ours(callid, params, "gather", _in_the_call, keep)
        if not ours or call.status.is_final:
            return render_hangup()
        menus = from_snapshot(call.ivr_menus)
        menu = menus.get(code)
        resolution = resolve(menu, pressed, attempt) if menu else GiveUp(None)
        if isinstance(resolution, Chosen) and isinstance(resolution.action, OptOutAction) and self.suppressions:
            # Listed before the hang-up is answered; a repeated request adds nothing (the first entry stays).
            when = datetime.fromtimestamp(self.now(), UTC)
            opt_out(self.suppressions, call.account_id, call.request["to"], callid, now=when)
        return render_next(resolution, code, menus, _request_of(call), flow_urls(urls, callid), step=step)

    def _send_sms_once(self, call: Call, request: CallRequest, urls: WebhookUrls) -> None:
        """Send the voicemail SMS exactly once, even if the carrier retries the flow webhook."""
        stamp = self._stamp()
        token = f"{_SMS_SENDING}-{secrets.token_hex(4)}"
        mine, _ = self.calls.apply(call.callid, Change(require={"sms_status": None}, set={"sms_status": token}))
        if not mine:
            return
        sender = request.answermachine_sms_from or self.sms_from_default(call) or call.request.get("from", "")
        progress = urls.route(call.callid, "sms-status")
        try:
            result = self.carrier.send_sms(call.request["to"], sender, request.answermachine_sms or "", progress)
        except CarrierError as exc:
            failed = {"status": "failed", "error": str(exc), "from": sender}
            self.calls.update(
                call.callid,
                lambda c: c.model_copy(update={"sms_status": "failed"}).with_event(stamp, events.SMS, **failed),
            )
            return
        event = {"sid": result.sid, "status": result.status, "from": sender}

        def sent(c: Call) -> Call:
            # The carrier's status callbacks may already have moved the SMS further along: never back.
            update = {"sms_sid": c.sms_sid or result.sid, "sms_status": later_sms_status(c.sms_status, result.status)}
            return c.model_copy(update=update).with_event(stamp, events.SMS, **event)

        self.calls.update(call.callid, sent)

    def sms_status(self, callid: str, params: Mapping[str, str]) -> Call:
        """The carrier's message status callback for the voicemail SMS: `sms_status` follows it to delivered."""
        stamp = self._stamp()
        stored = self.calls.update(callid, lambda c: apply_sms_status(c, params, stamp))
        if stored is None:
            raise CallNotFound(callid)
        return stored

    def status(self, callid: str, params: Mapping[str, str], attempt: int | None = None) -> tuple[Call, bool]:
        """Apply a status callback; late, repeated or reordered ones never move the call backwards.

        `attempt`: the attempt it is about, named by the callback URL of a call that may be retried. Such a
        call is read, so that an earlier attempt's callback never touches the current one and the end of an
        attempt can start the next (domain/attempts.py); any other call is written without a read.

        Returns the call and whether this callback ended it (moved it into a final status): told by the write
        itself (the change it chose, or the version it was conditional on), so a repeated callback, or one that
        came after the call ended another way, never ends it again.
        """
        if attempt is None:
            written, stored = self.calls.write(callid, status_change(params, self._stamp()))
            ended = ends(written)
        else:
            stamp = self._stamp()
            updated = update(self.calls, callid, lambda c: apply_status_callback(c, params, stamp, attempt))
            stored, ended = updated.call, updated.ended
        if stored is None:
            raise CallNotFound(callid)
        return stored, ended

    def recording(self, callid: str, params: Mapping[str, str], attempt: int = 1) -> Call:
        """Keep the recording's URL and duration."""
        _, stored = self.calls.apply(callid, recording_change(params, self._stamp(), attempt))
        if stored is None:
            raise CallNotFound(callid)
        return stored

    def dial_ended(self, callid: str, params: Mapping[str, str]) -> str:
        """The <Dial> finished: keep how, then end the call.

        Its CallSid is the call's own (the parent's; DialCallSid names the leg it dialed): one about another
        carrier call sets no dial_status.
        """
        detail = {k: v for k, v in params.items() if k.startswith("Dial")}
        event = TimelineEvent(at=self._stamp(), event=events.DIAL_ENDED, detail=detail)
        change = Change(event=event, set={"dial_status": params.get("DialCallStatus", "")})
        with suppress(CallNotFound):  # a call callbridge does not know: nothing to keep, hung up all the same
            if self._written_if_ours(callid, change, params, answered=True) is None:
                self.calls.apply(callid, ignored_change(params, self._stamp(), "dial"))
        return render_hangup()

    def hold(self, callid: str, params: Mapping[str, str], urls: WebhookUrls) -> str:
        """`to` is waiting in the bridge: dial answer_dial_to now (once) and play the dial tone meanwhile.

        The call waiting is the call's own carrier call: a request about another one dials nothing and is hung up.
        """
        # Random, not the time: two fetches in the same millisecond must not both see their own claim.
        token = f"{SECOND_LEG_DIALING}{secrets.token_hex(4)}"

        def claim(c: Call) -> Call | None:
            if c.second_leg_id is not None or c.status.is_final or not _bridged_with_tone(_request_of(c)):
                return None
            return c.model_copy(update={"second_leg_id": token})

        call, ours = self._updated_if_ours(callid, params, "hold", _in_the_call, claim)
        request = _request_of(call)
        if not ours or call.status.is_final or not _bridged_with_tone(request):  # an ended call bridges nothing
            return render_hangup()
        if call.second_leg_id == token:
            self._dial_second_leg(call, request, urls)
        return render_hold(request.answer_dial_tone_url or "")

    def _dial_second_leg(self, call: Call, request: CallRequest, urls: WebhookUrls) -> None:
        if self.pacer is not None:
            # Wait for a pacing slot, but never past the carrier's webhook timeout (15 s): if none is free soon
            # the bridge is dialed anyway, because `to` is already waiting on the line.
            slot = self.pacer.acquire(self.now(), SECOND_LEG_PACING_SECONDS)
            if slot is not None and slot > self.now():
                self.sleep(slot - self.now())
        stamp = self._stamp()
        # The carrier places this leg from a number the account owns: answer_dial_from, else the number the call
        # itself was placed from (the account's caller id unless the request gave `from`). `to`'s own number,
        # which a plain <Dial> may show, is refused as the From of a new call.
        caller_id = request.answer_dial_from or call.request.get("from") or request.to
        try:
            leg = self.carrier.create_call(
                CreateCall(
                    to=request.answer_dial_to or "",
                    from_=caller_id,
                    url=urls.route(call.callid, "leg"),
                    status_callback=urls.route(call.callid, "leg-status"),
                    status_events=("completed",),
                    machine_detection=None,
                )
            )
            update, event = {"second_leg_id": leg.sid}, {"sid": leg.sid, "from": caller_id}
        except CarrierError as exc:
            update, event = {"second_leg_id": SECOND_LEG_FAILED}, {"error": str(exc), "from": caller_id}
        self.calls.apply(
            call.callid, Change(event=TimelineEvent(at=stamp, event=events.DIAL_SECOND_LEG, detail=event), set=update)
        )
        if update["second_leg_id"] == SECOND_LEG_FAILED:
            self._end_bridge(call.callid, "failed")

    def second_leg(self, callid: str, params: Mapping[str, str]) -> str:
        """The TwiML for the answer_dial_to leg: join `to` in the bridge (a call that is not the leg callbridge
        dialed for this call is hung up)."""
        _, ours = self._updated_if_ours(callid, params, "leg", from_its_second_leg, lambda _c: None)
        return render_second_leg(f"callbridge-{callid}") if ours else render_hangup()

    def second_leg_status(self, callid: str, params: Mapping[str, str]) -> Call:
        """The answer_dial_to leg ended: if it never answered (busy, no answer, failed), take `to` out of the
        bridge with a message instead of leaving them to hear the tone until the time limit. A callback about
        another carrier call than the leg's ends nothing."""
        stamp = self._stamp()
        status = params.get("CallStatus", "")
        detail = {k: params[k] for k in ("CallSid", "CallStatus", "CallDuration", "SipResponseCode") if k in params}

        def keep(c: Call) -> Call:
            return c.with_event(stamp, events.DIAL_SECOND_LEG_STATUS, **detail)

        stored, ours = self._updated_if_ours(callid, params, "leg-status", from_its_second_leg, keep)
        if ours and status in _NOT_BRIDGED:
            return self._end_bridge(callid, status) or stored
        return stored

    def _end_bridge(self, callid: str, leg_status: str) -> Call | None:
        """Once per call: keep why the bridge failed and redirect `to`'s live call to the message and hang-up."""
        stamp = self._stamp()
        token = secrets.token_hex(4)  # a repeated callback must see the claim as someone else's

        def claim(c: Call) -> Call | None:
            if c.dial_status is not None or c.status.is_final:
                return None
            ended = c.model_copy(update={"dial_status": leg_status})
            return ended.with_event(stamp, events.DIAL_NOT_BRIDGED, reason=leg_status, claim=token)

        claimed = self.calls.update(callid, claim)
        won = claimed is not None and any(e.detail.get("claim") == token for e in claimed.timeline)
        if claimed is None or not won or not claimed.carrier_call_id:
            return claimed
        try:
            self.carrier.redirect(claimed.carrier_call_id, render_not_bridged())
        except CarrierError as exc:  # `to` hung up meanwhile: nothing is left to end
            error = str(exc)
            return self.calls.update(callid, lambda c: c.with_event(stamp, events.DIAL_NOT_BRIDGED_ERROR, error=error))
        return claimed

    def fallback(self, callid: str, params: Mapping[str, str]) -> str:
        """The carrier could not fetch or run the call's TwiML: keep why on the timeline, then end the call (a
        request about another carrier call is kept as ignored, not as this call's error)."""
        stamp = self._stamp()
        detail = {k: params[k] for k in ("ErrorCode", "ErrorUrl", "CallStatus") if params.get(k)}

        def keep(c: Call) -> Call:
            return c.with_event(stamp, events.FLOW_ERROR, **detail)

        with suppress(CallNotFound):  # a call callbridge does not know: nothing to keep, hung up all the same
            self._updated_if_ours(callid, params, "fallback", _in_the_call, keep)
        return render_hangup()
