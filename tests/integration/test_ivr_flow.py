"""A call walked through IVR menus by the carrier, through functions/webhooks/app.py (signed v2 events, moto).

The test plays the carrier: it reads each TwiML answer and posts to the URL the carrier would (a Gather's action
with `Digits`, or the no-input Redirect), signed over that URL, query string included.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from callbridge.adapters.dynamodb.ivr_menus import DynamoIvrMenus
from callbridge.carrier.signature import compute_signature
from callbridge.domain.calls import Call, CallStatus
from callbridge.domain.errors import InvalidRequest
from callbridge.domain.progress import outcome_fields
from callbridge.logic.ivr import put_menu

from tests.conftest import AccountCredentials, LambdaContext
from tests.integration.fakes import (
    AUTH_TOKEN,
    PUBLIC_API_URL,
    CarrierWebhooks,
    FakeTwilio,
    WebhookResponse,
    calls_store,
    place_now,
    queue_call,
    status_params,
    stored,
)

MAIN = {
    "prompt": {"speak": "Press 1 for sales, 3 to talk to us.", "speak_lang": "en-US"},
    "options": {"1": {"action": "menu", "menu": "sales"}, "3": {"action": "dial", "number": "18323456789"}},
    "timeout": 4,
    "retries": 1,
    "invalid": {"speak": "That is not an option.", "speak_lang": "en-US"},
    "no_input": {"speak": "Are you there?", "speak_lang": "en-US"},
}
SALES = {
    "prompt": {"tts": "Sales. Press 2 to hear our hours.", "tts_voice": "Matthew"},
    "options": {"2": {"action": "say", "speak": "We are open 9 to 5. Goodbye.", "speak_lang": "en-US"}},
}
GREETING = "https://example.com/hello.wav"

Node = tuple[str, dict[str, str], str | None]


@pytest.fixture
def hooks(webhooks_module: Any) -> CarrierWebhooks:
    return CarrierWebhooks(webhooks_module)


@pytest.fixture
def menus(aws: Any, account: AccountCredentials) -> DynamoIvrMenus:
    """The account's menus main → sales, created as PUT /pcall/ivr/{code} creates them."""
    store = DynamoIvrMenus(aws.refs["AccountsTable"])
    now = datetime(2027, 1, 10, 12, tzinfo=UTC)
    put_menu(store, account.account, "sales", SALES, now=now)
    put_menu(store, account.account, "main", MAIN, now=now)
    return store


def verbs(response: WebhookResponse) -> list[Node]:
    assert response.status == 200, response.body
    assert response.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(response.body.encode("utf-8"))  # noqa: S314 - our own handler's output
    return [(v.tag, dict(v.attrib), (v.text or "").strip() or None) for v in root]


def tags(response: WebhookResponse) -> list[str]:
    return [v[0] for v in verbs(response)]


def prompt_of(response: WebhookResponse) -> str:
    """The text or URL inside the document's Gather."""
    root = ET.fromstring(response.body.encode("utf-8"))  # noqa: S314 - our own handler's output
    gather = root.find("Gather")
    assert gather is not None, response.body
    return "".join((child.text or "") for child in gather)


class Carrier:
    """Twilio's side of one answered call: posts to the URLs the TwiML names, signed as Twilio signs them."""

    def __init__(self, hooks: CarrierWebhooks, call: Call, stack: Any = None) -> None:
        self.hooks = hooks
        self.call = call
        self.stack = stack
        self.last: WebhookResponse | None = None
        self._gather_url_of_last_press = ""

    def params(self, **extra: str) -> dict[str, str]:
        return {
            "AccountSid": "AC" + "c0ffee00" * 4,
            "ApiVersion": "2010-04-01",
            "CallSid": self.call.carrier_call_id or "",
            "CallStatus": "in-progress",
            "Direction": "outbound-api",
            "From": self.call.request["from"],
            "To": self.call.request["to"],
            **extra,
        }

    def post(self, url: str, params: dict[str, str], *, signed_url: str | None = None) -> WebhookResponse:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_API_URL
        _, _, _, callid, action = parts.path.split("/")
        event = self.hooks.event(callid, action, params)
        event["rawQueryString"] = parts.query
        if parts.query:
            event["queryStringParameters"] = dict(parse_qsl(parts.query))
        event["headers"]["x-twilio-signature"] = compute_signature(signed_url or url, params, AUTH_TOKEN)
        result = self.hooks.module.lambda_handler(event, LambdaContext())
        body = result.get("body", "")
        if result.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        self.last = WebhookResponse(result["statusCode"], result.get("headers", {}), body)
        return self.last

    def answer(self, answered_by: str = "human") -> WebhookResponse:
        url = f"{PUBLIC_API_URL}/carrier/twilio/{self.call.callid}/flow"
        return self.post(url, self.params(AnsweredBy=answered_by))

    def _gather(self) -> ET.Element:
        assert self.last is not None
        root = ET.fromstring(self.last.body.encode("utf-8"))  # noqa: S314 - our own handler's output
        gather = root.find("Gather")
        assert gather is not None, self.last.body
        return gather

    def press(self, digits: str) -> WebhookResponse:
        """The person presses `digits` at the last document's Gather: Twilio posts them to its action."""
        self._gather_url_of_last_press = self._gather().attrib["action"]
        return self.post(self._gather_url_of_last_press, self.params(Digits=digits))

    def wait(self) -> WebhookResponse:
        """Nobody presses anything: the Gather times out and Twilio follows the Redirect after it."""
        assert self.last is not None
        root = ET.fromstring(self.last.body.encode("utf-8"))  # noqa: S314 - our own handler's output
        redirect = root.find("Redirect")
        assert redirect is not None, self.last.body
        assert redirect.text, self.last.body
        return self.post(redirect.text, self.params())

    def hang_up(self, seq: int = 1) -> Call:
        sid = self.call.carrier_call_id or ""
        url = f"{PUBLIC_API_URL}/carrier/twilio/{self.call.callid}/status"
        self.post(url, status_params(sid, "in-progress", seq))
        assert self.post(url, status_params(sid, "completed", seq + 1, CallDuration="42", Duration="1")).status == 204
        return stored(self.stack, self.call.callid)


def answered_call(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, hooks: CarrierWebhooks, **params: str
) -> Carrier:
    callid = queue_call(aws, account, answer_play=GREETING, answer_ivr="main", **params)
    return Carrier(hooks, place_now(aws, twilio, callid), aws)


def ivr_events(call: Call) -> list[tuple[str, dict[str, Any]]]:
    return [(e.event, e.detail) for e in call.timeline if e.event.startswith("ivr.")]


# --- a two-level menu


def test_a_call_walks_a_two_level_menu_and_keeps_the_digits(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, hooks: CarrierWebhooks, menus: Any
) -> None:
    carrier = answered_call(aws, account, twilio, hooks)

    # the person answers: the greeting, then main (after play, before the end of the seed flow)
    flow = carrier.answer()
    assert tags(flow) == ["Play", "Gather", "Redirect", "Hangup"]
    gather = verbs(flow)[1][1]
    assert (gather["numDigits"], gather["timeout"], gather["finishOnKey"]) == ("1", "4", "")
    assert gather["action"] == f"{PUBLIC_API_URL}/carrier/twilio/{carrier.call.callid}/gather?menu=main&try=0&step=1"
    assert prompt_of(flow) == "Press 1 for sales, 3 to talk to us."

    # 1 at main: the sales menu
    sales = carrier.press("1")
    assert tags(sales) == ["Gather", "Redirect"]
    assert "menu=sales&try=0&step=2" in verbs(sales)[0][1]["action"]
    assert prompt_of(sales) == "Sales. Press 2 to hear our hours."

    # 2 at sales: the message, then the call ends
    end = carrier.press("2")
    assert verbs(end) == [
        ("Say", {"language": "en-US", "voice": "Polly.Joanna"}, "We are open 9 to 5. Goodbye."),
        ("Hangup", {}, None),
    ]

    call = carrier.hang_up()
    assert call.status is CallStatus.COMPLETED
    assert call.answered_by == "Person"
    assert call.digits == "12"
    assert outcome_fields(call)["digits"] == "12"  # what the outcome callback carries
    assert ivr_events(call) == [
        ("ivr.digits", {"menu": "main", "digit": "1", "action": "menu", "step": 1, "attempt": 0}),
        ("ivr.digits", {"menu": "sales", "digit": "2", "action": "say", "step": 2, "attempt": 0}),
    ]


def test_the_api_shows_the_digits_and_the_key_presses(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, hooks: CarrierWebhooks, menus: Any, api: Any
) -> None:
    carrier = answered_call(aws, account, twilio, hooks)
    carrier.answer()
    carrier.press("1")
    carrier.press("2")
    carrier.hang_up()

    call = api.get(f"/pcall/calls/{carrier.call.callid}").data["call"]
    assert call["digits"] == "12"
    assert [(e["event"], e["detail"]["digit"]) for e in call["timeline"] if e["event"] == "ivr.digits"] == [
        ("ivr.digits", "1"),
        ("ivr.digits", "2"),
    ]


def test_no_input_then_a_wrong_key_then_the_seed_flow_goes_on_to_answer_dial_to(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, hooks: CarrierWebhooks, menus: Any
) -> None:
    carrier = answered_call(aws, account, twilio, hooks, answer_dial_to="18005550100")
    assert tags(carrier.answer()) == ["Play", "Gather", "Redirect", "Dial"]

    # nothing pressed: "are you there?", main again (the one retry)
    again = carrier.wait()
    assert verbs(again)[0] == ("Say", {"language": "en-US", "voice": "Polly.Joanna"}, "Are you there?")
    assert "menu=main&try=1&step=2" in verbs(again)[1][1]["action"]

    # a key that is no option, and no retry left: "not an option", then answer_dial_to as the seed orders
    end = carrier.press("7")
    assert verbs(end)[0] == ("Say", {"language": "en-US", "voice": "Polly.Joanna"}, "That is not an option.")
    assert verbs(end)[1][0] == "Dial"
    assert verbs(end)[1][1]["callerId"] == "+17134567890"

    call = stored(aws, carrier.call.callid)
    assert call.digits == "7"
    assert ivr_events(call) == [
        ("ivr.no_input", {"menu": "main", "step": 1, "attempt": 0}),
        ("ivr.digits", {"menu": "main", "digit": "7", "action": "invalid", "step": 2, "attempt": 1}),
        ("ivr.ended", {"menu": "main", "reason": "invalid"}),
    ]


def test_the_dial_option_bridges_and_the_bridge_ends_the_call(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, hooks: CarrierWebhooks, menus: Any
) -> None:
    carrier = answered_call(aws, account, twilio, hooks)
    carrier.answer()

    dial = carrier.press("3")
    assert verbs(dial)[0][0] == "Dial"
    action = verbs(dial)[0][1]["action"]
    assert tags(carrier.post(action, carrier.params(DialCallStatus="completed", DialCallDuration="30"))) == ["Hangup"]

    call = stored(aws, carrier.call.callid)
    assert (call.digits, call.dial_status) == ("3", "completed")


def test_a_key_press_the_carrier_sends_twice_is_kept_once(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, hooks: CarrierWebhooks, menus: Any
) -> None:
    carrier = answered_call(aws, account, twilio, hooks)
    carrier.answer()
    first = carrier.press("1")
    url = verbs(first)[0][1]["action"]

    # Twilio retries a webhook that timed out: the same URL and form again
    carrier.answer()
    carrier.post(url, carrier.params(Digits="2"))
    repeated = carrier.post(url, carrier.params(Digits="2"))

    assert tags(repeated) == ["Say", "Hangup"]
    call = stored(aws, carrier.call.callid)
    assert call.digits == "12"
    assert [d["digit"] for e, d in ivr_events(call) if e == "ivr.digits"] == ["1", "2"]


# --- trust nothing from outside


def test_the_query_string_is_part_of_the_signature(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, hooks: CarrierWebhooks, menus: Any
) -> None:
    carrier = answered_call(aws, account, twilio, hooks)
    flow = carrier.answer()
    signed = verbs(flow)[1][1]["action"]

    # a request signed for menu=main, sent for menu=sales
    forged = carrier.post(signed.replace("menu=main", "menu=sales"), carrier.params(Digits="2"), signed_url=signed)

    assert forged.status == 403
    assert stored(aws, carrier.call.callid).digits == ""


@pytest.mark.parametrize(
    "query", ["", "menu=main", "menu=main&try=x&step=1", "menu=bad%20code&try=0&step=1", "menu=main&try=0&step=0"]
)
def test_a_gather_url_callbridge_did_not_write_is_400(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, hooks: CarrierWebhooks, menus: Any, query: str
) -> None:
    carrier = answered_call(aws, account, twilio, hooks)
    url = f"{PUBLIC_API_URL}/carrier/twilio/{carrier.call.callid}/gather" + (f"?{query}" if query else "")

    assert carrier.post(url, carrier.params(Digits="1")).status == 400
    assert stored(aws, carrier.call.callid).digits == ""


def test_a_gather_for_an_unknown_call_is_404(hooks: CarrierWebhooks, aws: Any, carrier_secret: Any) -> None:
    fake = Call.model_validate(
        {
            "callid": "0123456789abcdef0123456789a",
            "account_id": "x",
            "status": "IN_PROGRESS",
            "created_at": "",
            "updated_at": "",
            "request": {"to": "+17134567890", "from": "+12815550100"},
        }
    )
    carrier = Carrier(hooks, fake)
    url = f"{PUBLIC_API_URL}/carrier/twilio/{fake.callid}/gather?menu=main&try=0&step=1"

    assert carrier.post(url, carrier.params(Digits="1")).status == 404


# --- the menus a call was accepted with


def test_menus_edited_or_deleted_after_the_call_was_accepted_do_not_change_it(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, hooks: CarrierWebhooks, menus: DynamoIvrMenus
) -> None:
    carrier = answered_call(aws, account, twilio, hooks)
    # after acceptance: sales loses its option, main is deleted
    changed = {"prompt": {"speak": "Changed.", "speak_lang": "en-US"}, "options": {"9": {"action": "repeat"}}}
    put_menu(menus, account.account, "sales", changed, now=datetime.now(UTC))
    assert menus.delete_ivr_menu(account.api_key, "main")

    assert prompt_of(carrier.answer()) == "Press 1 for sales, 3 to talk to us."
    assert prompt_of(carrier.press("1")) == "Sales. Press 2 to hear our hours."
    assert tags(carrier.press("2")) == ["Say", "Hangup"]
    assert stored(aws, carrier.call.callid).digits == "12"


def test_a_machine_never_hears_the_menu(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, hooks: CarrierWebhooks, menus: Any
) -> None:
    carrier = answered_call(
        aws, account, twilio, hooks, answermachine_speak="Please call us back.", answermachine_speak_lang="en-US"
    )

    assert tags(carrier.answer("machine_end_beep")) == ["Say", "Hangup"]


# --- opt-out by keypress


def test_an_opt_out_key_lists_the_number_and_hangs_up(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, hooks: CarrierWebhooks
) -> None:
    from callbridge.adapters.suppressions import DynamoSuppressionList

    store = DynamoIvrMenus(aws.refs["AccountsTable"])
    now = datetime(2027, 1, 10, 12, tzinfo=UTC)
    menu = {
        "prompt": {"speak": "Press 9 to stop these calls.", "speak_lang": "en-US"},
        "options": {"9": {"action": "opt_out", "speak": "You will not be called again.", "speak_lang": "en-US"}},
    }
    put_menu(store, account.account, "main", menu, now=now)
    carrier = answered_call(aws, account, twilio, hooks)
    carrier.answer()

    end = carrier.press("9")
    again = carrier.post(carrier._gather_url_of_last_press, carrier.params(Digits="9"))  # the carrier repeats it

    assert verbs(end) == [
        ("Say", {"language": "en-US", "voice": "Polly.Joanna"}, "You will not be called again."),
        ("Hangup", {}, None),
    ]
    assert again.body == end.body
    listed = DynamoSuppressionList(aws.refs["SuppressionsTable"]).get(account.api_key, carrier.call.request["to"])
    assert listed is not None
    assert (listed.reason, listed.callid) == ("opt-out by keypress", carrier.call.callid)
    call = carrier.hang_up()
    assert call.digits == "9"
    assert ivr_events(call) == [
        ("ivr.digits", {"menu": "main", "digit": "9", "action": "opt_out", "step": 1, "attempt": 0})
    ]
    # the next call to that number is refused
    with pytest.raises(InvalidRequest) as refused:
        queue_call(aws, account, answer_play=GREETING)
    assert [(p.field, p.message) for p in refused.value.problems] == [("to", "is on your do-not-call list")]


# --- key presses about another carrier call

MADE_UP = "CA" + "9" * 32


def test_a_key_pressed_in_another_carrier_call_is_not_kept(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, hooks: CarrierWebhooks, menus: Any
) -> None:
    # given: an answered call at its main menu
    carrier = answered_call(aws, account, twilio, hooks)
    carrier.answer()
    url = carrier._gather().attrib["action"]

    # when: a correctly signed press at that URL names another CallSid
    response = carrier.post(url, carrier.params(Digits="1", CallSid=MADE_UP))

    # then: no key kept, only the request, as ignored; and that call is hung up
    call = stored(aws, carrier.call.callid)
    assert (call.digits, ivr_events(call)) == ("", [])
    assert [(e.detail["CallSid"], e.detail["webhook"]) for e in call.timeline if e.event == "carrier.ignored"] == [
        (MADE_UP, "gather")
    ]
    assert verbs(response) == [("Hangup", {}, None)]
    # and: the call's own press at the same step is kept and answered
    assert prompt_of(carrier.post(url, carrier.params(Digits="1"))) == "Sales. Press 2 to hear our hours."
    assert stored(aws, carrier.call.callid).digits == "1"


def test_an_opt_out_key_from_another_carrier_call_lists_nothing(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, hooks: CarrierWebhooks
) -> None:
    from callbridge.adapters.suppressions import DynamoSuppressionList

    # given: an answered call at a menu whose 9 opts out
    menu = {
        "prompt": {"speak": "Press 9 to stop these calls.", "speak_lang": "en-US"},
        "options": {"9": {"action": "opt_out", "speak": "You will not be called again.", "speak_lang": "en-US"}},
    }
    put_menu(DynamoIvrMenus(aws.refs["AccountsTable"]), account.account, "main", menu, now=datetime.now(UTC))
    carrier = answered_call(aws, account, twilio, hooks)
    carrier.answer()
    url = carrier._gather().attrib["action"]
    listed = DynamoSuppressionList(aws.refs["SuppressionsTable"])

    # when: 9 is posted for another carrier call
    response = carrier.post(url, carrier.params(Digits="9", CallSid=MADE_UP))

    # then: the number is not on the do-not-call list, the call has no key, and that call is hung up
    assert listed.get(account.api_key, carrier.call.request["to"]) is None
    assert stored(aws, carrier.call.callid).digits == ""
    assert verbs(response) == [("Hangup", {}, None)]
    # and: the call's own 9 lists it
    carrier.post(url, carrier.params(Digits="9"))
    assert listed.get(account.api_key, carrier.call.request["to"]) is not None


def test_a_key_pressed_before_the_placer_recorded_the_carrier_call_id_is_kept(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, hooks: CarrierWebhooks, menus: Any
) -> None:
    # given: a call answered before the placer's write of its carrier call id landed (and still not written)
    carrier = answered_call(aws, account, twilio, hooks)
    calls_store(aws).update(carrier.call.callid, lambda c: c.model_copy(update={"carrier_call_id": None}))
    carrier.answer()
    assert stored(aws, carrier.call.callid).status is CallStatus.IN_PROGRESS

    # when
    sales = carrier.press("1")

    # then
    assert prompt_of(sales) == "Sales. Press 2 to hear our hours."
    assert stored(aws, carrier.call.callid).digits == "1"
