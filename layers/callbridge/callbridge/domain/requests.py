"""A call request: every parameter of the seed's "Make calls API", validated once for every entry point."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from callbridge.domain.errors import FieldProblem, InvalidRequest, rule_message
from callbridge.domain.metadata import MetadataError, metadata_text, parse_metadata
from callbridge.domain.notifications import callback_url_problem
from callbridge.domain.phones import to_e164
from callbridge.domain.retries import (
    RetryError,
    format_retry_on,
    parse_retry_attempts,
    parse_retry_interval,
    parse_retry_on,
)
from callbridge.domain.scheduling import CallDateError, parse_call_date, zone
from callbridge.domain.voices import SPEAK_LANGUAGES, normalize_language, resolve_voice
from callbridge.domain.windows import WindowError, format_call_days, parse_call_days, parse_call_window

MAX_TEXT = 3000  # Polly's limit for one synthesis; also plenty for <Say>.
MAX_SMS = 1600  # the carrier's limit for one message body
MAX_URL = 2048
CALLBACK_POLICY = "callback_policy"  # validation context key: "public" or "allow-loopback"
ANSWER_OPTIONS = ("answer_play", "answer_speak", "answer_tts", "answer_ivr", "answer_dial_to")
# An IVR menu's code (`answer_ivr`, and the code a menu is stored under: domain/ivr.py).
IVR_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
JSON_OBJECT_PARAMS = ("metadata",)  # a JSON body gives these as objects; a form gives their JSON text

# Modifier → the option it modifies. A modifier alone does nothing, so it is refused.
REQUIRES = {
    "answer_speak_lang": "answer_speak",
    "answer_tts_voice": "answer_tts",
    "answer_dial_from": "answer_dial_to",
    "answer_dial_tone_url": "answer_dial_to",
    "answermachine_speak_lang": "answermachine_speak",
    "answermachine_tts_voice": "answermachine_tts",
    "answermachine_sms_from": "answermachine_sms",
    "timezone": "call_date",
}
# Option → the modifier it cannot do without.
_NEEDS = {
    "answer_speak": "answer_speak_lang",
    "answer_tts": "answer_tts_voice",
    "answermachine_speak": "answermachine_speak_lang",
    "answermachine_tts": "answermachine_tts_voice",
}


def _rule(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _phone(value: str | None) -> str | None:
    if value is None:
        return None
    e164 = to_e164(value)
    if e164 is None:
        raise _rule(
            "phone_number",
            "must be an international phone number: country code, area code and number, e.g. 12812345678",
        )
    return e164


def _url(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_URL:
        raise _rule("url", f"must be a URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise _rule("url", "must be an http:// or https:// URL") from exc
    if (
        parts.scheme.lower() not in ("http", "https")
        or not host
        or any(c.isspace() or not c.isprintable() for c in value)
    ):
        raise _rule("url", "must be an http:// or https:// URL")
    return value


def _text(limit: int):  # type: ignore[no-untyped-def]
    def check(value: str | None) -> str | None:
        if value is not None and len(value) > limit:
            raise _rule("text", f"must be at most {limit} characters")
        return value

    return check


def _language(value: str | None) -> str | None:
    if value is None:
        return None
    code = normalize_language(value)
    if code is None:
        raise _rule("language", "must be one of " + ", ".join(SPEAK_LANGUAGES))
    return code


def _voice(value: str | None) -> str | None:
    if value is None:
        return None
    voice = resolve_voice(value)
    if voice is None:
        raise _rule(
            "voice",
            "must be an Amazon Polly voice id (e.g. Joanna) or a supported IBM-style name (e.g. en-US_AllisonVoice)",
        )
    return voice.polly_id


class CallRequest(BaseModel):
    """The parameters of `POST /pcall/call`, normalized.

    Phone numbers become E.164, languages and `record` their canonical spelling, voices
    Polly voice ids. Blank values count as absent, unknown parameters are refused.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        coerce_numbers_to_str=True,
        str_strip_whitespace=True,
    )

    from_: str | None = Field(None, alias="from", description="Caller ID; defaults to the account's caller id.")
    to: str = Field(description="Number to call: country code + area code + number.")
    call_date: str | None = Field(
        None, description="When to call: 'YYYY-MM-DD HH:MM' in `timezone` (or the account's), or ISO 8601."
    )
    timezone: str | None = Field(None, description="IANA time zone for `call_date` (extension).")
    record: str | None = Field(None, description="YES or NO; defaults to the account's setting.")
    callback_url: str | None = Field(None, description="Receives a POST with the outcome when the call ends.")
    answer_play: str | None = Field(None, description="Audio URL played when a person answers.")
    answer_speak: str | None = Field(None, description="Text spoken by the basic TTS engine.")
    answer_speak_lang: str | None = Field(None, description="Language of answer_speak.")
    answer_tts: str | None = Field(None, description="Text spoken by a premium voice.")
    answer_tts_voice: str | None = Field(None, description="Premium voice of answer_tts.")
    answer_ivr: str | None = Field(None, description="Code of the IVR menu presented to the person.")
    answer_dial_to: str | None = Field(None, description="Number dialed and bridged last.")
    answer_dial_from: str | None = Field(None, description="Caller ID shown to answer_dial_to; defaults to `to`.")
    answer_dial_tone_url: str | None = Field(None, description="Audio heard by `to` while answer_dial_to rings.")
    answermachine_play: str | None = Field(None, description="Audio URL played to voicemail.")
    answermachine_speak: str | None = Field(None, description="Text spoken to voicemail by the basic TTS engine.")
    answermachine_speak_lang: str | None = Field(None, description="Language of answermachine_speak.")
    answermachine_tts: str | None = Field(None, description="Text spoken to voicemail by a premium voice.")
    answermachine_tts_voice: str | None = Field(None, description="Premium voice of answermachine_tts.")
    answermachine_sms: str | None = Field(None, description="SMS sent to `to` when voicemail answers.")
    answermachine_sms_from: str | None = Field(None, description="SMS-capable number of yours to send it from.")
    retry_attempts: str | None = Field(
        None, description="Extra attempts after the first (0-10, default 0).", json_schema_extra={"pattern": r"^\d+$"}
    )
    retry_interval: str | None = Field(
        None,
        description="Seconds from the end of one attempt to the next (30-86400, default 600).",
        json_schema_extra={"pattern": r"^\d+$"},
    )
    retry_on: str | None = Field(
        None, description="Comma-separated: BUSY, NO_ANSWER, FAILED, MACHINE (default BUSY,NO_ANSWER)."
    )
    call_window: str | None = Field(
        None, description="HH:MM-HH:MM in the recipient's local time, e.g. 09:00-20:00 (may wrap midnight)."
    )
    call_days: str | None = Field(
        None, description="Days the window applies: MON-FRI, MON,WED,SAT (default every day)."
    )
    recipient_timezone: str | None = Field(
        None, description="IANA time zone of the recipient; overrides the zone(s) of the number."
    )
    metadata: str | None = Field(
        None,
        description="JSON object of string keys to string values (at most 20 keys, 2,048 bytes); its JSON text in "
        "a form body, an object in a JSON body. Returned with the call and sent in the outcome callback.",
    )

    @model_validator(mode="before")
    @classmethod
    def _blank_is_absent(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data

    _phones = field_validator("from_", "to", "answer_dial_to", "answer_dial_from", "answermachine_sms_from")(_phone)
    _urls = field_validator("callback_url", "answer_play", "answer_dial_tone_url", "answermachine_play")(_url)

    @field_validator("callback_url")
    @classmethod
    def _public_callback_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Only at intake (parse_call_request passes the policy); a stored request is not judged again.
        policy = info.context.get(CALLBACK_POLICY) if isinstance(info.context, Mapping) else None
        if value is not None and policy is not None:
            problem = callback_url_problem(value, allow_loopback=policy == "allow-loopback")
            if problem:
                raise _rule("callback_url", f"must be a public http(s) URL: {problem}")
        return value

    _texts = field_validator("answer_speak", "answer_tts", "answermachine_speak", "answermachine_tts")(_text(MAX_TEXT))
    _sms = field_validator("answermachine_sms")(_text(MAX_SMS))
    _languages = field_validator("answer_speak_lang", "answermachine_speak_lang")(_language)
    _voices = field_validator("answer_tts_voice", "answermachine_tts_voice")(_voice)

    @field_validator("record")
    @classmethod
    def _record(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.upper() not in ("YES", "NO"):
            raise _rule("record", "must be YES or NO")
        return value.upper()

    @field_validator("answer_ivr")
    @classmethod
    def _ivr(cls, value: str | None) -> str | None:
        if value is not None and not IVR_CODE.fullmatch(value):
            raise _rule("ivr_code", "must be 1-64 letters, digits, '-' or '_'")
        return value

    @field_validator("timezone", "recipient_timezone")
    @classmethod
    def _zone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            try:
                zone(value)
            except CallDateError as exc:
                raise _rule(str(info.field_name), str(exc)) from exc
        return value

    @field_validator("retry_attempts")
    @classmethod
    def _retry_attempts(cls, value: str | None) -> str | None:
        return None if value is None else str(_policy(parse_retry_attempts, value, "retry_attempts"))

    @field_validator("retry_interval")
    @classmethod
    def _retry_interval(cls, value: str | None) -> str | None:
        return None if value is None else str(_policy(parse_retry_interval, value, "retry_interval"))

    @field_validator("retry_on")
    @classmethod
    def _retry_on(cls, value: str | None) -> str | None:
        return None if value is None else format_retry_on(_policy(parse_retry_on, value, "retry_on"))

    @field_validator("call_window")
    @classmethod
    def _call_window(cls, value: str | None) -> str | None:
        if value is not None:
            _policy(parse_call_window, value, "call_window")
        return value

    @field_validator("call_days")
    @classmethod
    def _call_days(cls, value: str | None) -> str | None:
        return None if value is None else format_call_days(_policy(parse_call_days, value, "call_days"))

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: str | None) -> str | None:
        return None if value is None else metadata_text(_policy(parse_metadata, value, "metadata"))

    def metadata_object(self) -> dict[str, str] | None:
        """`metadata` as an object (None when not given)."""
        return None if self.metadata is None else parse_metadata(self.metadata)

    @field_validator("call_date")
    @classmethod
    def _call_date(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_call_date(value, "UTC")
            except CallDateError as exc:
                raise _rule("call_date", str(exc)) from exc
        return value

    def present(self) -> dict[str, str]:
        """The parameters given, by their API names."""
        return {k: v for k, v in self.model_dump(by_alias=True).items() if v is not None}


def _policy(parse: Any, value: str, kind: str) -> Any:
    """A policy parameter parsed by its domain rule; its error as this field's rule."""
    try:
        return parse(value)
    except (RetryError, WindowError, MetadataError) as exc:
        raise _rule(kind, str(exc)) from exc


def _cross_field_problems(given: set[str]) -> list[FieldProblem]:
    """The rules between parameters, judged on the names given (so they are reported with any field error)."""
    problems: list[FieldProblem] = []
    if not given.intersection(ANSWER_OPTIONS):
        problems.append(
            FieldProblem("answer_", "at least one answer_ option is required: " + ", ".join(ANSWER_OPTIONS))
        )
    for option, modifier in _NEEDS.items():
        if option in given and modifier not in given:
            problems.append(FieldProblem(modifier, f"required when {option} is given"))
    for modifier, option in REQUIRES.items():
        if modifier in given and option not in given:
            problems.append(FieldProblem(modifier, f"only valid together with {option}"))
    return problems


def _problem(error: Mapping[str, Any]) -> FieldProblem:
    loc = error.get("loc") or ()
    name = str(loc[0]) if loc else "body"
    kind = error.get("type", "")
    name = "from" if name == "from_" and kind != "extra_forbidden" else name
    if kind == "extra_forbidden":
        return FieldProblem(name, "unknown parameter")
    return FieldProblem(name, rule_message(error))


def _context(allow_loopback_callbacks: bool) -> dict[str, str]:
    """The validation context of a request at intake: where its callback_url may point."""
    return {CALLBACK_POLICY: "allow-loopback" if allow_loopback_callbacks else "public"}


def parse_call_request(params: Mapping[str, Any], *, allow_loopback_callbacks: bool = False) -> CallRequest:
    """Validate raw parameters into a CallRequest; raises InvalidRequest naming every broken rule.

    `allow_loopback_callbacks` lets callback_url point at this machine (the sandbox only).
    """
    # Blank counts as absent, as in CallRequest.
    given = {str(k) for k, v in params.items() if v is not None and not (isinstance(v, str) and not v.strip())}
    problems = _cross_field_problems(given)
    try:
        request = CallRequest.model_validate(dict(params), context=_context(allow_loopback_callbacks))
    except ValidationError as exc:
        raise InvalidRequest([_problem(e) for e in exc.errors(include_url=False)] + problems) from exc
    if problems:
        raise InvalidRequest(problems)
    return request


def parameter_problems(params: Mapping[str, Any], *, allow_loopback_callbacks: bool = False) -> list[FieldProblem]:
    """The problems of each parameter on its own: its value breaks its rule, or its name is unknown. Not the rules
    between parameters, nor a required one missing: what is wrong with `params` whatever other parameters a
    request gives with them (a campaign's defaults, whatever each call says)."""
    try:
        CallRequest.model_validate(dict(params), context=_context(allow_loopback_callbacks))
    except ValidationError as exc:
        return [_problem(e) for e in exc.errors(include_url=False) if e.get("loc") and e.get("type") != "missing"]
    return []
