"""The carrier's webhooks through functions/webhooks/app.py, as API Gateway (HTTP API, payload v2) hands them over.

Every request is signed the way Twilio signs it, with the auth token the handler reads from the CarrierSecret in
moto; Twilio's REST API (the SMS and the dial-tone bridge's second leg) is a MockTransport.
"""

from __future__ import annotations

import base64
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

import pytest
from callbridge.adapters.aws import client as aws_client
from callbridge.carrier.signature import compute_signature
from callbridge.domain.calls import Call, CallStatus
from callbridge.logic.placer import WebhookUrls
from callbridge.logic.webhooks import Webhooks

from tests.conftest import AccountCredentials, LambdaContext, json_log_lines, load_event, make_account
from tests.integration.fakes import (
    API_HOST,
    AUTH_TOKEN,
    CarrierRequest,
    CarrierWebhooks,
    FakeClock,
    FakeTwilio,
    WebhookResponse,
    calls_store,
    moto_stack,
    place_now,
    queue_call,
    raw_item,
    status_params,
    stored,
    twilio_error,
)


@pytest.fixture
def aws() -> Iterator[Any]:
    """The template's stack in moto, built faster than the shared fixture (see fakes.moto_stack)."""
    yield from moto_stack()


PLAY = "https://example.com/file.mp3"
SPEAK = "Hello, this is your reminder."
TTS = "This text will be read it when file.mp3 ends"
DIAL_TO = "18323456789"
MACHINE_PLAY = "https://example.com/voicemail.wav"
MACHINE_SPEAK = "It is a message for your voicemail"
SMS = "Sorry we missed you. Call us back at 281-555-0100."
TONE = "https://example.com/ringback.wav"
HOOKS = f"https://{API_HOST}/carrier/twilio"

Node = tuple[str, dict[str, str], str | None, list[Any]]


def verbs(response: WebhookResponse) -> list[Node]:
    """The verbs of the TwiML document in a 200 answer."""
    assert response.status == 200, response.body
    assert response.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(response.body.encode("utf-8"))  # noqa: S314 - our own handler's output
    assert root.tag == "Response"
    return [shape(child) for child in root]


def shape(element: ET.Element) -> Node:
    text = element.text.strip() if element.text and element.text.strip() else None
    return (element.tag, dict(element.attrib), text, [shape(child) for child in element])


def flow_params(call: Call, answered_by: str) -> dict[str, str]:
    """What Twilio posts to the flow URL once detection has decided (synchronous AMD)."""
    return {
        "AccountSid": "AC" + "c0ffee00" * 4,
        "ApiVersion": "2010-04-01",
        "AnsweredBy": answered_by,
        "CallSid": call.carrier_call_id or "",
        "CallStatus": "in-progress",
        "Called": call.request["to"],
        "Caller": call.request["from"],
        "Direction": "outbound-api",
        "From": call.request["from"],
        "MachineDetectionDuration": "4200",
        "To": call.request["to"],
    }


@pytest.fixture
def hooks(webhooks_module: ModuleType) -> CarrierWebhooks:
    return CarrierWebhooks(webhooks_module)


@pytest.fixture
def sms_account(accounts_store: Any) -> AccountCredentials:
    return make_account(accounts_store, sms_from="12815550199")


def a_placed_call(aws: Any, account: AccountCredentials, twilio: FakeTwilio, **params: str) -> Call:
    call = place_now(aws, twilio, queue_call(aws, account, **params))
    twilio.requests.clear()
    return call


# --- the flow


def test_a_person_hears_the_answer_options_in_the_seed_order(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a placed call with every person option but IVR, and machine options that must not be heard
    call = a_placed_call(
        aws,
        account,
        twilio,
        answer_dial_to=DIAL_TO,
        answer_tts=TTS,
        answer_tts_voice="Joanna",
        answer_speak=SPEAK,
        answer_speak_lang="en-GB",
        answer_play=PLAY,
        answermachine_speak=MACHINE_SPEAK,
        answermachine_speak_lang="en-US",
    )

    # when: a person answers
    response = hooks.post(call.callid, "flow", flow_params(call, "human"))

    # then: play, speak, TTS, then dial (last), back to this API's dial action
    assert verbs(response) == [
        ("Play", {}, PLAY, []),
        ("Say", {"language": "en-GB", "voice": "Polly.Amy"}, SPEAK, []),
        ("Say", {"voice": "Polly.Joanna"}, TTS, []),
        (
            "Dial",
            {"callerId": "+17134567890", "action": f"{HOOKS}/{call.callid}/dial"},
            None,
            [("Number", {}, "+18323456789", [])],
        ),
    ]
    flow = [e.detail for e in stored(aws, call.callid).timeline if e.event == "flow"]
    assert flow == [
        {"label": "Person", "AnsweredBy": "human", "CallStatus": "in-progress", "MachineDetectionDuration": "4200"}
    ]
    assert twilio.requests == []


def test_a_machine_gets_the_voicemail_and_one_sms_even_if_the_flow_comes_twice(
    hooks: CarrierWebhooks, aws: Any, sms_account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a placed call with person and machine options, an SMS among them
    call = a_placed_call(
        aws,
        sms_account,
        twilio,
        answer_play=PLAY,
        answermachine_play=MACHINE_PLAY,
        answermachine_speak=MACHINE_SPEAK,
        answermachine_speak_lang="en-US",
        answermachine_sms=SMS,
    )

    # when: the voicemail greeting ends, and Twilio (having timed out) asks for the flow again
    first = hooks.post(call.callid, "flow", flow_params(call, "machine_end_beep"))
    second = hooks.post(call.callid, "flow", flow_params(call, "machine_end_beep"))

    # then: the machine flow both times, and one SMS from the account's SMS number
    machine: list[tuple[str, dict[str, str], str | None, list[Any]]] = [
        ("Play", {}, MACHINE_PLAY, []),
        ("Say", {"language": "en-US", "voice": "Polly.Joanna"}, MACHINE_SPEAK, []),
        ("Hangup", {}, None, []),
    ]
    assert verbs(first) == machine
    assert verbs(second) == machine
    (sms,) = twilio.messages
    assert sms.form == [
        ("To", "+17134567890"),
        ("From", "+12815550199"),
        ("Body", SMS),
        ("StatusCallback", f"{HOOKS}/{call.callid}/sms-status"),
    ]
    assert len(twilio.requests) == 1
    after = stored(aws, call.callid)
    assert after.sms_sid is not None
    assert after.sms_sid.startswith("SM")
    assert after.sms_status == "queued"


def sms_callback(sid: str, status: str) -> dict[str, str]:
    """A message status callback as Twilio posts it."""
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "c0ffee00" * 4,
        "MessageStatus": status,
        "SmsStatus": status,
        "To": "+17134567890",
        "From": "+12815550199",
        "ApiVersion": "2010-04-01",
    }


def test_sms_status_follows_the_carriers_callbacks_to_delivered_in_any_order(
    hooks: CarrierWebhooks, aws: Any, sms_account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a voicemail whose SMS the carrier accepted (queued)
    call = a_placed_call(aws, sms_account, twilio, answer_play=PLAY, answermachine_sms=SMS)
    hooks.post(call.callid, "flow", flow_params(call, "machine_end_beep"))
    sid = stored(aws, call.callid).sms_sid or ""

    # when: its status callbacks arrive late, repeated and out of order, with one about another message
    for status in ("delivered", "sent", "delivered", "queued"):
        assert hooks.post(call.callid, "sms-status", sms_callback(sid, status)).status == 204
    hooks.post(call.callid, "sms-status", sms_callback("SM" + "9" * 32, "failed"))

    # then: delivered, and every callback on the timeline
    after = stored(aws, call.callid)
    assert (after.sms_sid, after.sms_status) == (sid, "delivered")
    assert [e.detail["MessageStatus"] for e in after.timeline if e.event == "sms.status"] == [
        "delivered",
        "sent",
        "delivered",
        "queued",
        "failed",
    ]


def test_an_undelivered_sms_says_so(
    hooks: CarrierWebhooks, aws: Any, sms_account: AccountCredentials, twilio: FakeTwilio
) -> None:
    call = a_placed_call(aws, sms_account, twilio, answer_play=PLAY, answermachine_sms=SMS)
    hooks.post(call.callid, "flow", flow_params(call, "machine_end_beep"))
    sid = stored(aws, call.callid).sms_sid or ""

    hooks.post(call.callid, "sms-status", sms_callback(sid, "sent"))
    hooks.post(call.callid, "sms-status", {**sms_callback(sid, "undelivered"), "ErrorCode": "30003"})

    after = stored(aws, call.callid)
    assert after.sms_status == "undelivered"
    assert [e.detail.get("ErrorCode") for e in after.timeline if e.event == "sms.status"] == [None, "30003"]


def test_the_sms_goes_from_answermachine_sms_from_when_given(
    hooks: CarrierWebhooks, aws: Any, sms_account: AccountCredentials, twilio: FakeTwilio
) -> None:
    call = a_placed_call(
        aws, sms_account, twilio, answer_play=PLAY, answermachine_sms=SMS, answermachine_sms_from="12815550177"
    )

    response = hooks.post(call.callid, "flow", flow_params(call, "machine_end_silence"))

    assert verbs(response) == [("Hangup", {}, None, [])]
    (sms,) = twilio.messages
    assert sms.get("From") == "+12815550177"


def test_a_person_never_triggers_the_voicemail_sms(
    hooks: CarrierWebhooks, aws: Any, sms_account: AccountCredentials, twilio: FakeTwilio
) -> None:
    call = a_placed_call(aws, sms_account, twilio, answer_play=PLAY, answermachine_sms=SMS)

    response = hooks.post(call.callid, "flow", flow_params(call, "human"))

    assert verbs(response) == [("Play", {}, PLAY, []), ("Hangup", {}, None, [])]
    assert twilio.requests == []
    assert stored(aws, call.callid).sms_status is None


# --- signatures


def forged(callid: str, action: str, params: dict[str, str]) -> dict[str, str | None]:
    """Signatures a forger could send: none, the wrong key, another URL, other parameters."""
    tampered = {**params, "CallStatus": "completed", "CallDuration": "3600"}
    return {
        "missing": None,
        "empty": "",
        "garbage": "not-a-signature",
        "wrong token": compute_signature(f"{HOOKS}/{callid}/{action}", params, "guessed-token"),
        "other call": compute_signature(f"{HOOKS}/{'0' * 27}/{action}", params, AUTH_TOKEN),
        "other params": compute_signature(f"{HOOKS}/{callid}/{action}", tampered, AUTH_TOKEN),
        "http scheme": compute_signature(f"http://{API_HOST}/carrier/twilio/{callid}/{action}", params, AUTH_TOKEN),
    }


def test_requests_without_a_valid_signature_are_refused_and_change_nothing(
    hooks: CarrierWebhooks, aws: Any, sms_account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a placed call that has a machine SMS and a dial-tone bridge to trigger
    call = a_placed_call(
        aws,
        sms_account,
        twilio,
        answer_dial_to=DIAL_TO,
        answer_dial_tone_url=TONE,
        answermachine_sms=SMS,
    )
    params = status_params(call.carrier_call_id or "", "completed", 3, CallDuration="60", AnsweredBy="machine_end_beep")
    params |= {"RecordingUrl": "https://api.twilio.com/x/RE1", "DialCallStatus": "completed"}
    before = raw_item(aws, call.callid)
    actions = ["flow", "status", "recording", "dial", "hold", "leg-status", "fallback", "sms-status"]

    for action in actions:
        for name, signature in forged(call.callid, action, params).items():
            # when
            response = hooks.post(call.callid, action, params, signature=signature)

            # then: 403, and the stored call is exactly as it was; nothing went to the carrier
            assert response.status == 403, (action, name)
            assert raw_item(aws, call.callid) == before, (action, name)
    assert twilio.requests == []

    # and: the same requests properly signed are accepted (the forgeries failed only for their signatures)
    for action in actions:
        assert hooks.post(call.callid, action, params).status in (200, 204), action
    after = stored(aws, call.callid)
    assert after.status is CallStatus.COMPLETED
    assert after.recording_url == "https://api.twilio.com/x/RE1"
    assert after.dial_status == "completed"
    assert after.sms_status == "queued"


def test_an_unsigned_form_body_that_is_not_base64_is_still_checked(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: API Gateway passing the form as plain text, signed for other parameters
    call = a_placed_call(aws, account, twilio)
    params = status_params(call.carrier_call_id or "", "busy", 2, CallDuration="0", SipResponseCode="486")
    event = hooks.event(call.callid, "status", params)
    event["body"] = "CallStatus=completed&CallDuration=3600"
    event["isBase64Encoded"] = False
    before = raw_item(aws, call.callid)

    result = hooks.module.lambda_handler(event, LambdaContext())

    assert result["statusCode"] == 403
    assert raw_item(aws, call.callid) == before


# --- status, recording and dial callbacks


def test_status_callbacks_complete_the_call_with_its_outcome(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a placed call
    call = a_placed_call(aws, account, twilio)
    sid = call.carrier_call_id or ""

    # when: Twilio reports its progress, the answer before the ringing, and the end twice
    seen = []
    for params in [
        status_params(sid, "initiated", 0),
        status_params(sid, "in-progress", 2, AnsweredBy="human"),
        status_params(sid, "ringing", 1),
        status_params(sid, "completed", 5, CallDuration="32", Duration="1", AnsweredBy="human", SipResponseCode="200"),
        status_params(sid, "completed", 5, CallDuration="32", Duration="1", AnsweredBy="human", SipResponseCode="200"),
    ]:
        response = hooks.post(call.callid, "status", params)
        assert response.status == 204
        assert response.body == ""
        seen.append(stored(aws, call.callid).status)

    # then
    assert seen == [
        CallStatus.DIALING,
        CallStatus.IN_PROGRESS,
        CallStatus.IN_PROGRESS,
        CallStatus.COMPLETED,
        CallStatus.COMPLETED,
    ]
    done = stored(aws, call.callid)
    assert done.answered_by == "Person"
    assert done.billed_seconds == 32
    assert done.started_at == "2027-01-10T12:00:00.000Z"
    assert done.answered_at == "2027-01-10T12:00:20.000Z"
    assert done.ended_at == "2027-01-10T12:00:50.000Z"
    assert done.error_code is None


def test_the_sample_status_event(
    hooks: CarrierWebhooks, aws: Any, sms_account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: events/webhook_status.json's form (a completed call answered by a person), for a placed call
    call = a_placed_call(aws, sms_account, twilio)
    sample = load_event("webhook_status.json")
    params = dict(parse_qsl(base64.b64decode(sample["body"]).decode()))
    assert sample["isBase64Encoded"] is True
    params["CallSid"] = call.carrier_call_id or ""  # the sample's call is this one

    # when
    response = hooks.post(call.callid, "status", params)

    # then
    assert response.status == 204
    done = stored(aws, call.callid)
    assert done.status is CallStatus.COMPLETED
    assert (done.answered_by, done.billed_seconds) == ("Person", 32)
    assert done.ended_at == "2026-11-26T14:34:12.000Z"


def test_a_machine_answered_call_completes_as_answered_by_machine(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    call = a_placed_call(aws, account, twilio)
    sid = call.carrier_call_id or ""

    for params in [
        status_params(sid, "completed", 4, CallDuration="18", AnsweredBy="machine_end_beep"),
        status_params(sid, "in-progress", 2, AnsweredBy="machine_end_beep"),
    ]:
        assert hooks.post(call.callid, "status", params).status == 204

    done = stored(aws, call.callid)
    assert (done.status, done.answered_by, done.billed_seconds) == (CallStatus.COMPLETED, "Machine", 18)


def test_a_busy_number(hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio) -> None:
    call = a_placed_call(aws, account, twilio)
    sid = call.carrier_call_id or ""

    for params in [
        status_params(sid, "busy", 2, CallDuration="0", SipResponseCode="486"),
        status_params(sid, "ringing", 1),
    ]:
        assert hooks.post(call.callid, "status", params).status == 204

    done = stored(aws, call.callid)
    assert (done.status, done.answered_by, done.billed_seconds) == (CallStatus.BUSY, "", 0)
    assert (done.error_code, done.error_desc) == ("SIP 486", "the number was busy")


def test_a_final_status_absorbs_a_later_different_one(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a call the carrier reported busy
    call = a_placed_call(aws, account, twilio)
    sid = call.carrier_call_id or ""
    busy_params = status_params(sid, "busy", 2, CallDuration="0", SipResponseCode="486")
    assert hooks.post(call.callid, "status", busy_params).status == 204
    busy = stored(aws, call.callid)
    assert busy.status is CallStatus.BUSY

    # when: a completed callback about the same carrier call comes late
    late = status_params(sid, "completed", 9, CallDuration="40", AnsweredBy="human", SipResponseCode="200")
    response = hooks.post(call.callid, "status", late)

    # then: accepted and kept on the timeline; the status and outcome are still the busy call's
    assert response.status == 204
    after = stored(aws, call.callid)
    assert after.timeline[-1].detail["CallStatus"] == "completed"
    outcome = ("status", "answered_by", "billed_seconds", "answered_at", "ended_at", "error_code", "error_desc")
    assert [getattr(after, f) for f in outcome] == [getattr(busy, f) for f in outcome]


def test_the_recording_callback_keeps_the_recording_url(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    call = a_placed_call(aws, account, twilio, record="YES")
    url = "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE" + "a" * 32
    params = {
        "AccountSid": "AC" + "c0ffee00" * 4,
        "CallSid": call.carrier_call_id or "",
        "RecordingSid": "RE" + "a" * 32,
        "RecordingUrl": url,
        "RecordingStatus": "completed",
        "RecordingDuration": "31",
        "RecordingChannels": "1",
        "RecordingStartTime": "Sun, 10 Jan 2027 12:00:20 +0000",
        "RecordingSource": "OutboundAPI",
    }

    response = hooks.post(call.callid, "recording", params)

    assert response.status == 204
    after = stored(aws, call.callid)
    assert after.recording_url == url
    assert after.status is CallStatus.DIALING  # a recording says nothing about the call's state


def test_a_recording_callback_naming_another_call_sid_is_kept_and_changes_nothing(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a placed call that records, and a correctly signed recording callback naming a made-up CallSid
    call = a_placed_call(aws, account, twilio, record="YES")
    made_up = "CA" + "9" * 32
    params = {
        "AccountSid": "AC" + "c0ffee00" * 4,
        "CallSid": made_up,
        "RecordingSid": "RE" + "b" * 32,
        "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE" + "b" * 32,
        "RecordingStatus": "completed",
        "RecordingDuration": "31",
    }

    # when
    response = hooks.post(call.callid, "recording", params)

    # then: accepted and kept on the timeline; no recording, and the call is as it was
    assert response.status == 204
    after = stored(aws, call.callid)
    assert after.timeline[-1].event == "carrier.recording"
    assert after.timeline[-1].detail["CallSid"] == made_up
    assert (after.status, after.recording_url, after.answered_by) == (call.status, None, "")


def test_the_dial_action_keeps_how_the_bridge_ended_and_hangs_up(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    call = a_placed_call(aws, account, twilio, answer_dial_to=DIAL_TO)
    params = {
        "AccountSid": "AC" + "c0ffee00" * 4,
        "CallSid": call.carrier_call_id or "",
        "CallStatus": "in-progress",
        "DialCallStatus": "no-answer",
        "DialCallSid": "CA" + "d" * 32,
        "DialCallDuration": "0",
    }

    response = hooks.post(call.callid, "dial", params)

    assert verbs(response) == [("Hangup", {}, None, [])]
    after = stored(aws, call.callid)
    assert after.dial_status == "no-answer"
    dial = [e.detail for e in after.timeline if e.event == "dial.ended"]
    assert dial == [{"DialCallStatus": "no-answer", "DialCallSid": "CA" + "d" * 32, "DialCallDuration": "0"}]


def test_an_unknown_call_is_404(hooks: CarrierWebhooks, aws: Any, carrier_secret: dict[str, str]) -> None:
    callid = "0" * 27
    response = hooks.post(callid, "status", status_params("CA" + "0" * 32, "ringing", 1))

    assert response.status == 404


# --- the dial-tone bridge


def hold_params(call: Call) -> dict[str, str]:
    """What Twilio posts to a conference's waitUrl."""
    return {
        "AccountSid": "AC" + "c0ffee00" * 4,
        "CallSid": call.carrier_call_id or "",
        "ConferenceSid": "CF" + "e" * 32,
        "FriendlyName": f"callbridge-{call.callid}",
        "QueuePosition": "1",
        "QueueTime": "0",
        "AvgQueueTime": "0",
        "CurrentQueueSize": "1",
    }


def test_the_hold_music_dials_the_second_leg_once_even_when_fetched_twice(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a call that bridges `to` to answer_dial_to with a dial tone
    call = a_placed_call(
        aws,
        account,
        twilio,
        answer_play=PLAY,
        answer_dial_to=DIAL_TO,
        answer_dial_from="12812345678",
        answer_dial_tone_url=TONE,
    )
    person = verbs(hooks.post(call.callid, "flow", flow_params(call, "human")))
    assert person[-1][0] == "Dial"
    assert person[-1][3][0][1]["waitUrl"] == f"{HOOKS}/{call.callid}/hold"

    # when: the conference fetches its waitUrl twice
    first = hooks.post(call.callid, "hold", hold_params(call))
    second = hooks.post(call.callid, "hold", hold_params(call))

    # then: the tone both times, and one create-call for the second leg
    tone: list[tuple[str, dict[str, str], str | None, list[Any]]] = [("Play", {"loop": "0"}, TONE, [])]
    assert verbs(first) == tone
    assert verbs(second) == tone
    (leg,) = twilio.creates
    assert leg.form == [
        ("To", "+18323456789"),
        ("From", "+12812345678"),
        ("Url", f"{HOOKS}/{call.callid}/leg"),
        ("Method", "POST"),
        ("StatusCallback", f"{HOOKS}/{call.callid}/leg-status"),
        ("StatusCallbackMethod", "POST"),
        ("StatusCallbackEvent", "completed"),
        ("Timeout", "45"),
    ]
    after = stored(aws, call.callid)
    assert after.second_leg_id == "CA" + f"{2:032x}"
    # and: the second leg, once answered, joins the conference
    leg_flow = hooks.post(call.callid, "leg", {"CallSid": after.second_leg_id, "CallStatus": "in-progress"})
    assert verbs(leg_flow) == [
        (
            "Dial",
            {},
            None,
            [
                (
                    "Conference",
                    {"startConferenceOnEnter": "true", "endConferenceOnExit": "true", "beep": "false"},
                    f"callbridge-{call.callid}",
                    [],
                )
            ],
        )
    ]


def test_a_hold_fetch_arriving_while_the_second_leg_is_being_dialed_does_not_dial_again(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: two webhook containers with the same clock reading (two requests in one millisecond)
    call = a_placed_call(aws, account, twilio, answer_dial_to=DIAL_TO, answer_dial_tone_url=TONE)
    clock = FakeClock(time.time())
    urls = WebhookUrls(f"https://{API_HOST}")
    one = Webhooks(calls=calls_store(aws), carrier=twilio.client(), now=clock.now, sleep=clock.sleep)
    two = Webhooks(calls=calls_store(aws), carrier=twilio.client(), now=clock.now, sleep=clock.sleep)
    documents: list[str] = []

    def meanwhile(_request: CarrierRequest) -> None:
        # the carrier has not answered the first create yet when the second fetch comes in
        twilio.on_create = None
        documents.append(two.hold(call.callid, hold_params(call), urls))

    twilio.on_create = meanwhile

    # when
    documents.append(one.hold(call.callid, hold_params(call), urls))

    # then: both play the tone; only one second leg was dialed
    assert len(documents) == 2
    assert len(twilio.creates) == 1
    assert stored(aws, call.callid).second_leg_id == twilio_sid(2)  # the call itself was CA...1


def test_without_answer_dial_from_the_second_leg_comes_from_the_number_the_call_came_from(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a dial-tone bridge without answer_dial_from, on an account whose caller id is +12815550100
    call = a_placed_call(aws, account, twilio, answer_dial_to=DIAL_TO, answer_dial_tone_url=TONE)

    # when
    hooks.post(call.callid, "hold", hold_params(call))

    # then: the carrier is asked to call from the account's number, never from `to`'s own (Twilio refuses that)
    (leg,) = twilio.creates
    assert leg.get("From") == call.request["from"] == "+12815550100"
    assert leg.get("From") != call.request["to"]


def redirected_twiml(twilio: FakeTwilio) -> list[tuple[str, str]]:
    return [(r.path.rsplit("/", 1)[1].removesuffix(".json"), r.get("Twiml") or "") for r in twilio.updates]


NOT_BRIDGED = [
    (
        "Say",
        {"language": "en-US", "voice": "Polly.Joanna"},
        "Sorry, the person you are calling is not available. Goodbye.",
    ),
    ("Hangup", {}, None),
]


def twiml_verbs(document: str) -> list[tuple[str, dict[str, str], str | None]]:
    return [(e.tag, dict(e.attrib), (e.text or "").strip() or None) for e in ET.fromstring(document)]  # noqa: S314


def test_a_second_leg_the_carrier_refuses_ends_the_first_with_a_message(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a bridge whose answer_dial_from the carrier does not accept
    call = a_placed_call(
        aws, account, twilio, answer_dial_to=DIAL_TO, answer_dial_from="12815550177", answer_dial_tone_url=TONE
    )
    twilio.answers_to["+18323456789"] = [
        twilio_error(400, 21210, "The source phone number provided is not yet verified")
    ]

    # when: `to` reaches the bridge and the hold music asks for the second leg
    hooks.post(call.callid, "hold", hold_params(call))

    # then: `to`'s live call is redirected to a message and a hang-up, and the call says why
    ((sid, twiml),) = redirected_twiml(twilio)
    assert sid == call.carrier_call_id
    assert twiml_verbs(twiml) == NOT_BRIDGED
    after = stored(aws, call.callid)
    assert (after.second_leg_id, after.dial_status) == ("failed", "failed")
    assert [e.detail["reason"] for e in after.timeline if e.event == "dial.not_bridged"] == ["failed"]


def a_dialed_bridge(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> tuple[Call, str]:
    """A dial-tone bridge whose hold music was fetched, so its second leg was dialed; the call and the leg's sid."""
    call = a_placed_call(aws, account, twilio, answer_dial_to=DIAL_TO, answer_dial_tone_url=TONE)
    hooks.post(call.callid, "hold", hold_params(call))
    return call, stored(aws, call.callid).second_leg_id or ""


@pytest.mark.parametrize("leg_status", ["busy", "no-answer", "failed"])
def test_a_second_leg_that_is_busy_or_unanswered_ends_the_first_once(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio, leg_status: str
) -> None:
    # given: the second leg was dialed
    call, leg_sid = a_dialed_bridge(hooks, aws, account, twilio)

    # when: its final status arrives, and the carrier repeats it
    params = {"CallSid": leg_sid, "CallStatus": leg_status, "CallDuration": "0", "AccountSid": "AC" + "0" * 32}
    first = hooks.post(call.callid, "leg-status", params)
    second = hooks.post(call.callid, "leg-status", params)

    # then: one redirect of the first leg to the message, and the reason on the call
    assert (first.status, second.status) == (204, 204)
    ((sid, twiml),) = redirected_twiml(twilio)
    assert sid == call.carrier_call_id
    assert twiml_verbs(twiml) == NOT_BRIDGED
    after = stored(aws, call.callid)
    assert after.dial_status == leg_status
    assert [e.detail["CallStatus"] for e in after.timeline if e.event == "dial.second_leg.status"] == [leg_status] * 2


def test_a_second_leg_that_talked_and_hung_up_changes_nothing(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    call, leg_sid = a_dialed_bridge(hooks, aws, account, twilio)

    hooks.post(call.callid, "leg-status", {"CallSid": leg_sid, "CallStatus": "completed", "CallDuration": "42"})

    assert twilio.updates == []
    assert stored(aws, call.callid).dial_status is None


def test_the_fallback_url_keeps_the_carriers_error_on_the_timeline_and_hangs_up(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    call = a_placed_call(aws, account, twilio, answer_play=PLAY)
    params = {"CallSid": call.carrier_call_id or "", "ErrorCode": "13321", "ErrorUrl": f"{HOOKS}/{call.callid}/flow"}

    response = hooks.post(call.callid, "fallback", params)

    assert verbs(response) == [("Hangup", {}, None, [])]
    (error,) = [e.detail for e in stored(aws, call.callid).timeline if e.event == "flow.error"]
    assert error == {"ErrorCode": "13321", "ErrorUrl": f"{HOOKS}/{call.callid}/flow"}


def twilio_sid(n: int) -> str:
    return f"CA{n:032x}"


def emitted_metrics(out: str) -> dict[str, float]:
    """Metric values from the handler's EMF lines on stdout (what CloudWatch would record)."""
    found: dict[str, float] = {}
    for line in out.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        record = json.loads(line)
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = record[metric["Name"]]
                found[metric["Name"]] = found.get(metric["Name"], 0) + (
                    sum(value) if isinstance(value, list) else value
                )
    return found


def test_a_refused_signature_is_counted_for_the_403_rate_alarm(
    hooks: CarrierWebhooks,
    aws: Any,
    account: AccountCredentials,
    twilio: FakeTwilio,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: a status callback signed with another token
    call = a_placed_call(aws, account, twilio)
    params = status_params(call.carrier_call_id or "", "completed", 2)
    event = hooks.event(call.callid, "status", params, signature="bm90IGEgc2lnbmF0dXJl")
    capsys.readouterr()

    result = hooks.module.lambda_handler(event, LambdaContext())

    assert result["statusCode"] == 403
    out = capsys.readouterr().out
    assert emitted_metrics(out) == {"CarrierRequestsRejected": 1}
    # under the namespace and the one dimension the alarm reads: service = the stack's name, as the template sets it
    env = aws.environment("WebhooksFunction")
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            for directive in record["_aws"]["CloudWatchMetrics"]:
                assert directive["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"] == "callbridge"
                assert directive["Dimensions"] == [["service"]]
            assert record["service"] == env["POWERTOOLS_SERVICE_NAME"] == aws.prefix


def test_a_completed_call_is_counted_as_completed_for_the_dashboard(
    hooks: CarrierWebhooks,
    aws: Any,
    account: AccountCredentials,
    twilio: FakeTwilio,
    capsys: pytest.CaptureFixture[str],
) -> None:
    call = a_placed_call(aws, account, twilio)
    capsys.readouterr()

    result = hooks.module.lambda_handler(
        hooks.event(call.callid, "status", status_params(call.carrier_call_id or "", "completed", 2, CallDuration="7")),
        LambdaContext(),
    )

    assert result["statusCode"] == 204
    counted = emitted_metrics(capsys.readouterr().out)
    assert counted.get("CallsCompleted") == 1
    assert counted.get("CallsAnsweredByPerson", 0) + counted.get("CallsAnsweredByMachine", 0) == 1


def test_every_line_of_a_carrier_request_names_its_call(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: two placed calls
    first = a_placed_call(aws, account, twilio)
    second = a_placed_call(aws, account, twilio)

    with json_log_lines(hooks.module) as lines:
        # when: a status callback for the first, a forged one for it, then a status callback for the second
        ok = hooks.module.lambda_handler(
            hooks.event(first.callid, "status", status_params(first.carrier_call_id or "", "ringing", 1)),
            LambdaContext(),
        )
        params = status_params(first.carrier_call_id or "", "completed", 2)
        forged = hooks.event(first.callid, "status", params, signature="bm90IGEgc2lnbmF0dXJl")
        refused = hooks.module.lambda_handler(forged, LambdaContext())
        hooks.module.lambda_handler(
            hooks.event(second.callid, "status", status_params(second.carrier_call_id or "", "ringing", 1)),
            LambdaContext(),
        )

    # then: each line carries the callid of its own request (a refusal's too), and the request's correlation_id
    assert ok["statusCode"] == 204
    assert refused["statusCode"] == 403
    by_message = [(line["message"], line.get("callid"), line.get("action")) for line in lines]
    assert by_message == [
        ("carrier request", first.callid, "status"),
        ("rejected a carrier request with a bad signature", first.callid, "status"),
        ("carrier request", second.callid, "status"),
    ]
    assert lines[0]["carrier_status"] == "ringing"
    assert all(line["correlation_id"] for line in lines)


# --- rotating the auth token (docs/runbook.md)


def put_carrier_secret(aws: Any, secret: dict[str, str]) -> None:
    """Store a new carrier secret and let the handler see it, as if its cache (CACHE_SECONDS) had expired."""
    from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS  # type: ignore[attr-defined]
    from callbridge.adapters.aws import client

    client("secretsmanager").put_secret_value(SecretId=aws.refs["CarrierSecret"], SecretString=json.dumps(secret))
    for provider in DEFAULT_PROVIDERS.values():
        provider.clear_cache()


def test_during_a_token_rotation_signatures_with_the_previous_token_still_count(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio, carrier_secret: dict[str, str]
) -> None:
    # given: a placed call, then the secret rotated to a new token with the old one kept as previous
    call = a_placed_call(aws, account, twilio)
    new_token = "0123456789abcdef0123456789abcdef"
    put_carrier_secret(aws, {**carrier_secret, "auth_token": new_token, "previous_auth_token": AUTH_TOKEN})
    path = f"/carrier/twilio/{call.callid}/status"

    def status(seq: int, token: str) -> int:
        params = status_params(call.carrier_call_id or "", "ringing", seq)
        signature = compute_signature(f"https://{API_HOST}{path}", params, token)
        event = hooks.event(call.callid, "status", params, signature=signature)
        return int(hooks.module.lambda_handler(event, LambdaContext())["statusCode"])

    # then: the carrier may sign with either token until the new one is promoted; nothing else counts
    assert status(1, AUTH_TOKEN) == 204
    assert status(2, new_token) == 204
    assert status(3, "ffffffffffffffffffffffffffffffff") == 403

    # when: the rotation is finished (the previous token removed from the secret)
    put_carrier_secret(aws, {**carrier_secret, "auth_token": new_token})

    # then: the old token no longer counts
    assert status(4, AUTH_TOKEN) == 403
    assert status(5, new_token) == 204


def test_a_status_callback_about_another_carrier_call_changes_nothing(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a placed call, and a correctly signed final callback naming a made-up CallSid
    call = a_placed_call(aws, account, twilio)
    made_up = {"CallSid": "CA" + "9" * 32, "CallStatus": "completed", "CallDuration": "30", "AnsweredBy": "human"}

    # when
    response = hooks.post(call.callid, "status", made_up)

    # then: accepted and kept on the timeline, and the call is as it was
    assert response.status == 204
    after = stored(aws, call.callid)
    assert (after.status, after.billed_seconds, after.answered_by) == (call.status, 0, "")
    assert after.timeline[-1].detail.get("CallSid") == "CA" + "9" * 32


# --- flow requests about another carrier call


def test_a_flow_request_with_a_made_up_call_sid_never_answers_a_call_not_placed(
    hooks: CarrierWebhooks, aws: Any, sms_account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a call due in 2027 (never claimed for dialing), with a voicemail SMS; and a correctly signed flow
    # request naming a made-up CallSid, as if a machine had answered it
    callid = queue_call(aws, sms_account, call_date="2027-06-01 10:00", answermachine_sms=SMS)
    before = stored(aws, callid)
    assert before.status is CallStatus.SCHEDULED
    forged = {"CallSid": "CA" + "9" * 32, "CallStatus": "in-progress", "AnsweredBy": "machine_start"}

    # when
    response = hooks.post(callid, "flow", forged)

    # then: that carrier call is hung up; the request is on the timeline, and the call is as it was: not in
    # progress (reconciliation would end it never_placed), no one answered, no SMS sent
    assert verbs(response) == [("Hangup", {}, None, [])]
    after = stored(aws, callid)
    assert after.timeline[-1].detail["CallSid"] == "CA" + "9" * 32
    assert (after.status, after.answered_by, after.answered_at) == (CallStatus.SCHEDULED, "", None)
    assert twilio.requests == []


def test_a_flow_request_about_another_carrier_call_changes_a_placed_call_in_nothing(
    hooks: CarrierWebhooks, aws: Any, sms_account: AccountCredentials, twilio: FakeTwilio
) -> None:
    call = a_placed_call(aws, sms_account, twilio, answermachine_sms=SMS)
    forged = {**flow_params(call, "machine_end_beep"), "CallSid": "CA" + "9" * 32}

    response = hooks.post(call.callid, "flow", forged)

    assert verbs(response) == [("Hangup", {}, None, [])]
    after = stored(aws, call.callid)
    assert (after.status, after.answered_by, after.answered_at) == (CallStatus.DIALING, "", None)
    assert twilio.requests == []
    # and: the call's own flow request is answered as ever
    assert verbs(hooks.post(call.callid, "flow", flow_params(call, "human")))[0][0] == "Play"


def test_a_flow_request_before_the_placer_recorded_the_carrier_call_id_is_answered(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a call claimed for dialing whose carrier call id is not written yet (the carrier answered the flow
    # before the placer's write landed)
    call = a_placed_call(aws, account, twilio)
    calls_store(aws).update(call.callid, lambda c: c.model_copy(update={"carrier_call_id": None}))

    response = hooks.post(call.callid, "flow", flow_params(call, "human"))

    assert verbs(response)[0][0] == "Play"
    assert stored(aws, call.callid).status is CallStatus.IN_PROGRESS
    # and: its CallSid is the call's carrier call id, so the final status callback ends the call even if the
    # placer's write never lands (the placer died after the carrier accepted the call)
    sid = call.carrier_call_id or ""
    assert stored(aws, call.callid).carrier_call_id == sid
    hooks.post(call.callid, "status", status_params(sid, "completed", 5, CallDuration="30", AnsweredBy="human"))
    assert stored(aws, call.callid).status is CallStatus.COMPLETED


@pytest.mark.parametrize(
    ("status", "sip", "ends"), [("busy", "486", CallStatus.BUSY), ("no-answer", "480", CallStatus.NO_ANSWER)]
)
def test_a_final_status_callback_before_the_placer_recorded_the_carrier_call_id_ends_the_call(
    hooks: CarrierWebhooks,
    aws: Any,
    account: AccountCredentials,
    twilio: FakeTwilio,
    status: str,
    sip: str,
    ends: CallStatus,
) -> None:
    # given: a call claimed for dialing whose carrier call id is not written yet (the carrier gave up on the number
    # before the placer's write landed, or the placer died after the carrier accepted the call)
    call = a_placed_call(aws, account, twilio)
    calls_store(aws).update(call.callid, lambda c: c.model_copy(update={"carrier_call_id": None}))
    sid = call.carrier_call_id or ""

    hooks.post(call.callid, "status", status_params(sid, status, 2, CallDuration="0", SipResponseCode=sip))

    # then: the call ends now (not DIALING until reconciliation ends it never_placed), its CallSid kept as its id
    after = stored(aws, call.callid)
    assert (after.status, after.carrier_call_id, after.error_code) == (ends, sid, f"SIP {sip}")
    # and: a callback naming another carrier call from then on changes nothing
    hooks.post(call.callid, "status", status_params("CA" + "9" * 32, "completed", 3, CallDuration="30"))
    assert stored(aws, call.callid).status is ends


@contextmanager
def dynamodb_operations() -> Iterator[list[str]]:
    """The names of the DynamoDB operations the functions' shared client makes within the block, in order."""
    operations: list[str] = []

    def count(model: Any, **_kwargs: Any) -> None:
        operations.append(model.name)

    client = aws_client("dynamodb")
    client.meta.events.register("before-call.dynamodb", count)
    try:
        yield operations
    finally:
        client.meta.events.unregister("before-call.dynamodb", count)


def test_the_flow_request_of_a_placed_call_is_one_conditional_write_with_no_read(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a placed call (its carrier call id written), and every DynamoDB request counted from here
    call = a_placed_call(aws, account, twilio)
    with dynamodb_operations() as operations:
        # when the carrier asks for its TwiML
        response = hooks.post(call.callid, "flow", flow_params(call, "human"))

    # then: answered, with the CallSid checked by the write's own condition rather than a read before it
    assert verbs(response)[0][0] == "Play"
    assert stored(aws, call.callid).status is CallStatus.IN_PROGRESS
    assert [op for op in operations if op in ("GetItem", "UpdateItem")] == ["UpdateItem"]


# --- every other webhook about another carrier call: kept as ignored, changes nothing, hung up

MADE_UP = "CA" + "9" * 32


def ignored(call: Call) -> list[dict[str, Any]]:
    """The requests kept on the call's timeline as about another carrier call."""
    return [e.detail for e in call.timeline if e.event == "carrier.ignored"]


def dial_params(sid: str, status: str = "no-answer") -> dict[str, str]:
    """What Twilio posts to a <Dial>'s action: the CallSid is the parent call's, DialCallSid the leg's."""
    return {
        "AccountSid": "AC" + "c0ffee00" * 4,
        "CallSid": sid,
        "CallStatus": "in-progress",
        "DialCallStatus": status,
        "DialCallSid": "CA" + "d" * 32,
        "DialCallDuration": "0",
    }


def test_a_dial_action_about_another_carrier_call_sets_no_dial_status(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a placed call that dials answer_dial_to, and a correctly signed dial action naming another CallSid
    call = a_placed_call(aws, account, twilio, answer_dial_to=DIAL_TO)

    # when
    response = hooks.post(call.callid, "dial", dial_params(MADE_UP))

    # then: hung up; kept on the timeline as ignored, and no dial_status or dial.ended
    assert verbs(response) == [("Hangup", {}, None, [])]
    after = stored(aws, call.callid)
    assert after.dial_status is None
    assert [e.event for e in after.timeline if e.event == "dial.ended"] == []
    assert [(d["CallSid"], d["webhook"]) for d in ignored(after)] == [(MADE_UP, "dial")]
    # and: the call's own dial action is kept as ever
    hooks.post(call.callid, "dial", dial_params(call.carrier_call_id or ""))
    assert stored(aws, call.callid).dial_status == "no-answer"


def test_the_dial_action_of_a_placed_call_is_one_conditional_write_with_no_read(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    call = a_placed_call(aws, account, twilio, answer_dial_to=DIAL_TO)
    with dynamodb_operations() as operations:
        hooks.post(call.callid, "dial", dial_params(call.carrier_call_id or "", "completed"))

    # the CallSid is checked by the write's own condition, not by a read before it
    assert stored(aws, call.callid).dial_status == "completed"
    assert [op for op in operations if op in ("GetItem", "UpdateItem", "PutItem")] == ["UpdateItem"]


def test_a_hold_fetch_about_another_carrier_call_dials_no_second_leg(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a dial-tone bridge, and its waitUrl requested for another carrier call
    call = a_placed_call(aws, account, twilio, answer_dial_to=DIAL_TO, answer_dial_tone_url=TONE)

    # when
    response = hooks.post(call.callid, "hold", {**hold_params(call), "CallSid": MADE_UP})

    # then: hung up, nothing dialed, and the second leg is still the call's to dial
    assert verbs(response) == [("Hangup", {}, None, [])]
    assert twilio.creates == []
    after = stored(aws, call.callid)
    assert after.second_leg_id is None
    assert [(d["CallSid"], d["webhook"]) for d in ignored(after)] == [(MADE_UP, "hold")]
    # and: the call's own hold fetch dials it
    assert verbs(hooks.post(call.callid, "hold", hold_params(call)))[0][0] == "Play"
    assert len(twilio.creates) == 1


def test_a_hold_fetch_for_a_call_that_has_ended_dials_no_second_leg(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a dial-tone bridge whose call the carrier reported completed
    call = a_placed_call(aws, account, twilio, answer_dial_to=DIAL_TO, answer_dial_tone_url=TONE)
    sid = call.carrier_call_id or ""
    hooks.post(call.callid, "status", status_params(sid, "completed", 5, CallDuration="3", AnsweredBy="human"))

    # when: its waitUrl is fetched late
    response = hooks.post(call.callid, "hold", hold_params(call))

    # then: hung up, and no second leg dialed or claimed
    assert verbs(response) == [("Hangup", {}, None, [])]
    assert twilio.creates == []
    assert stored(aws, call.callid).second_leg_id is None


def leg_status(sid: str, status: str) -> dict[str, str]:
    """The second leg's final status callback."""
    return {"CallSid": sid, "CallStatus": status, "CallDuration": "0", "AccountSid": "AC" + "0" * 32}


def test_a_second_leg_status_about_another_carrier_call_ends_no_bridge(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: the second leg was dialed
    call, leg_sid = a_dialed_bridge(hooks, aws, account, twilio)
    own = call.carrier_call_id or ""

    # when: "busy" callbacks naming a made-up CallSid, and the first leg's own (not the second leg's)
    responses = [hooks.post(call.callid, "leg-status", leg_status(sid, "busy")) for sid in (MADE_UP, own)]

    # then: accepted, kept as ignored; `to` is not taken out of the bridge
    assert [r.status for r in responses] == [204, 204]
    assert twilio.updates == []
    after = stored(aws, call.callid)
    assert after.dial_status is None
    assert [e for e in after.timeline if e.event == "dial.second_leg.status"] == []
    assert [(d["CallSid"], d["webhook"]) for d in ignored(after)] == [
        (MADE_UP, "leg-status"),
        (own, "leg-status"),
    ]
    # and: the leg's own callback ends the bridge
    hooks.post(call.callid, "leg-status", leg_status(leg_sid, "busy"))
    assert len(twilio.updates) == 1
    assert stored(aws, call.callid).dial_status == "busy"


def test_a_second_leg_fetch_about_another_carrier_call_does_not_join_the_bridge(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a dial-tone bridge whose second leg is not dialed yet
    call = a_placed_call(aws, account, twilio, answer_dial_to=DIAL_TO, answer_dial_tone_url=TONE)
    leg = {"AccountSid": "AC" + "c0ffee00" * 4, "CallStatus": "in-progress", "Direction": "outbound-api"}

    # when: its leg URL asked for by a made-up call, before and after the second leg was dialed
    before = hooks.post(call.callid, "leg", {**leg, "CallSid": MADE_UP})
    hooks.post(call.callid, "hold", hold_params(call))
    after = hooks.post(call.callid, "leg", {**leg, "CallSid": MADE_UP})

    # then: hung up both times, never put in `to`'s conference
    assert verbs(before) == verbs(after) == [("Hangup", {}, None, [])]
    assert [d["webhook"] for d in ignored(stored(aws, call.callid))] == ["leg", "leg"]
    # and: the leg callbridge dialed joins it
    own = hooks.post(call.callid, "leg", {**leg, "CallSid": stored(aws, call.callid).second_leg_id or ""})
    assert verbs(own)[0][0] == "Dial"


def test_a_second_leg_answered_before_its_id_was_written_joins_the_bridge(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: the hold webhook claimed the second leg and has not written the carrier's sid for it yet
    call = a_placed_call(aws, account, twilio, answer_dial_to=DIAL_TO, answer_dial_tone_url=TONE)
    calls_store(aws).update(call.callid, lambda c: c.model_copy(update={"second_leg_id": "pending-0a1b2c3d"}))

    # when: the leg, answered already, asks for its TwiML
    response = hooks.post(call.callid, "leg", {"AccountSid": "AC" + "c0ffee00" * 4, "CallSid": twilio_sid(7)})

    # then: it joins `to`
    assert verbs(response)[0][0] == "Dial"
    assert ignored(stored(aws, call.callid)) == []


def test_a_fallback_about_another_carrier_call_is_not_kept_as_the_calls_error(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    call = a_placed_call(aws, account, twilio, answer_play=PLAY)
    params = {"CallSid": MADE_UP, "ErrorCode": "11200", "ErrorUrl": f"{HOOKS}/{call.callid}/flow"}

    response = hooks.post(call.callid, "fallback", params)

    assert verbs(response) == [("Hangup", {}, None, [])]
    after = stored(aws, call.callid)
    assert [e for e in after.timeline if e.event == "flow.error"] == []
    assert [(d["CallSid"], d["webhook"]) for d in ignored(after)] == [(MADE_UP, "fallback")]


def test_requests_made_before_the_placer_recorded_the_carrier_call_id_still_act_on_the_call(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a call the carrier answered before the placer's write of its carrier call id landed
    call = a_placed_call(aws, account, twilio, answer_dial_to=DIAL_TO, answer_dial_tone_url=TONE)
    calls_store(aws).update(call.callid, lambda c: c.model_copy(update={"carrier_call_id": None}))
    assert verbs(hooks.post(call.callid, "flow", flow_params(call, "human")))[-1][0] == "Dial"
    assert stored(aws, call.callid).status is CallStatus.IN_PROGRESS

    # when: its hold music and then its dial action come (the placer's write still not landed)
    hold = hooks.post(call.callid, "hold", hold_params(call))
    hooks.post(call.callid, "dial", dial_params(call.carrier_call_id or "", "completed"))

    # then: both acted on the call
    assert verbs(hold)[0][0] == "Play"
    assert len(twilio.creates) == 1
    after = stored(aws, call.callid)
    assert after.dial_status == "completed"
    assert ignored(after) == []


def test_late_requests_of_an_earlier_attempt_change_nothing_in_the_live_one(
    hooks: CarrierWebhooks, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a dial-tone bridge retried once after a machine answered; its second attempt placed and answered
    call = a_placed_call(
        aws, account, twilio, answer_dial_to=DIAL_TO, answer_dial_tone_url=TONE, retry_attempts="1", retry_on="MACHINE"
    )
    first = call.carrier_call_id or ""
    ended = status_params(first, "completed", 3, CallDuration="20", AnsweredBy="machine_end_beep")
    assert hooks.post(call.callid, "status", ended, query="attempt=1").status == 204
    assert stored(aws, call.callid).status is CallStatus.RETRY_WAIT
    now = "2020-01-01T00:00:00.000Z"  # due, and its message sent by the scheduler
    calls_store(aws).update(call.callid, lambda c: c.model_copy(update={"next_attempt_at": now, "dispatched_at": now}))
    second = place_now(aws, twilio, call.callid)
    assert (second.attempt, second.carrier_call_id) == (2, twilio_sid(2))
    answered = {**flow_params(second, "human"), "CallSid": twilio_sid(2)}
    assert verbs(hooks.post(call.callid, "flow", answered, query="attempt=2"))[-1][0] == "Dial"
    twilio.requests.clear()
    before = stored(aws, call.callid)

    # when: the first attempt's requests come late
    answers = [
        hooks.post(call.callid, "hold", {**hold_params(call), "CallSid": first}),
        hooks.post(call.callid, "dial", dial_params(first, "completed")),
        hooks.post(call.callid, "fallback", {"CallSid": first, "ErrorCode": "11200"}),
    ]

    # then: each hung up and kept as ignored; the live attempt has no second leg, dial status or error
    assert [verbs(a) for a in answers] == [[("Hangup", {}, None, [])]] * 3
    assert twilio.requests == []
    after = stored(aws, call.callid)
    assert (after.status, after.second_leg_id, after.dial_status) == (CallStatus.IN_PROGRESS, None, None)
    assert [e for e in after.timeline if e.event == "flow.error"] == []
    assert [(d["CallSid"], d["webhook"]) for d in ignored(after)[len(ignored(before)) :]] == [
        (first, "hold"),
        (first, "dial"),
        (first, "fallback"),
    ]
