"""IVR menus (the seed's `answer_ivr`): a prompt, options keyed by DTMF digit, retries; and what a key press means.

A menu is stored per account under a code and validated here once, for every entry point. The decision of what
happens after a key press (or none) is `resolve`, a pure function; rendering it as TwiML is flow/ivr_twiml.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from callbridge.domain import json_objects
from callbridge.domain.errors import FieldProblem, InvalidRequest, rule_message
from callbridge.domain.phones import to_e164
from callbridge.domain.requests import IVR_CODE, MAX_TEXT, _url
from callbridge.domain.voices import SPEAK_LANGUAGES, normalize_language, resolve_voice

DIGITS = "0123456789*#"
MAX_OPTIONS = len(DIGITS)  # one option per key of the keypad
MAX_TWIML = 4000  # characters: Twilio's limit for an inline TwiML document; every menu document stays under it
MAX_LINKED_MENUS = 20  # menus one call can reach from its answer_ivr (they are copied into the call)
MAX_MENUS = 100  # menus per account
MAX_STEPS = 100  # menu presentations in one call; then the seed flow goes on (no endless repeat loops)
MAX_BODY = 64 * 1024
ACTIONS = ("say", "dial", "menu", "repeat", "opt_out")


def _rule(kind: str, message: str, field: str | None = None) -> PydanticCustomError:
    """A broken rule; `field` names the part of the model it is about (model-level rules only)."""
    return PydanticCustomError(kind, message, {"field": field} if field else None)


def valid_code(code: str) -> bool:
    """Whether `code` is a possible IVR menu code (1-64 letters, digits, '-' or '_')."""
    return bool(IVR_CODE.fullmatch(code))


def _code(value: str) -> str:
    if not valid_code(value):
        raise _rule("ivr_code", "must be 1-64 letters, digits, '-' or '_'")
    return value


def _key(value: str) -> str:
    if len(value) != 1 or value not in DIGITS:
        raise _rule("digit", "options are keyed by one key of the keypad: 0-9, * or #")
    return value


def _number(value: Any) -> Any:
    # pydantic takes true and false for 1 and 0: a JSON boolean is no count of seconds or retries.
    if isinstance(value, bool):
        raise _rule("int_type", "must be a whole number")
    return value


Code = Annotated[str, AfterValidator(_code)]
Key = Annotated[str, AfterValidator(_key)]
WholeNumber = Annotated[int, BeforeValidator(_number)]


def _check_prompt(prompt: Any, *, required: bool) -> None:
    """A prompt's fields: exactly one (not `required`: at most one) of play, speak and tts, each with its
    modifier (speak_lang, tts_voice), and no modifier without its option."""
    given = [name for name in ("play", "speak", "tts") if getattr(prompt, name)]
    if len(given) > 1 or (required and not given):
        quantity = "exactly one" if required else "at most one"
        raise _rule("prompt", f"give {quantity} of play, speak (with speak_lang) or tts (with tts_voice)")
    for option, modifier in (("speak", "speak_lang"), ("tts", "tts_voice")):
        if getattr(prompt, option) and not getattr(prompt, modifier):
            raise _rule("prompt", f"required with {option}", field=modifier)
        if getattr(prompt, modifier) and not getattr(prompt, option):
            raise _rule("prompt", f"only valid together with {option}", field=modifier)


class Prompt(BaseModel):
    """What the person hears: exactly one of an audio URL, basic TTS text in a vendor language, or premium TTS."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    play: str | None = Field(None, description="URL of MP3/WAV audio to play.")
    speak: str | None = Field(None, max_length=MAX_TEXT, description="Text for the basic TTS engine.")
    speak_lang: str | None = Field(None, description="Language of `speak`: " + ", ".join(SPEAK_LANGUAGES) + ".")
    tts: str | None = Field(None, max_length=MAX_TEXT, description="Text for a premium voice.")
    tts_voice: str | None = Field(
        None,
        description="Premium voice of `tts`: a Polly voice id, or a vendor IBM-style name such as en-US_AllisonVoice.",
    )

    _play = field_validator("play")(_url)

    @field_validator("speak_lang")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = normalize_language(value)
        if code is None:
            raise _rule("language", "must be one of " + ", ".join(SPEAK_LANGUAGES))
        return code

    @field_validator("tts_voice")
    @classmethod
    def _voice(cls, value: str | None) -> str | None:
        if value is None:
            return None
        voice = resolve_voice(value)
        if voice is None:
            raise _rule(
                "voice",
                "must be an Amazon Polly voice id (e.g. Joanna) or a vendor IBM-style name (e.g. en-US_AllisonVoice)",
            )
        return voice.polly_id

    @model_validator(mode="after")
    def _exactly_one(self) -> Prompt:
        _check_prompt(self, required=True)
        return self

    def as_prompt(self) -> Prompt:
        """Just the prompt (a `say` action is a prompt and its kind)."""
        return Prompt(
            play=self.play, speak=self.speak, speak_lang=self.speak_lang, tts=self.tts, tts_voice=self.tts_voice
        )


class SayAction(Prompt):
    """Play, speak or read a message, then hang up."""

    action: Literal["say"]


class DialAction(BaseModel):
    """Dial a number and bridge the person to it; the call ends when that leg does."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    action: Literal["dial"]
    number: str = Field(description="Number to dial: country code + area code + number.")
    caller_id: str | None = Field(None, description="Caller ID shown to `number`; defaults to the called person's.")

    @field_validator("number", "caller_id")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        e164 = to_e164(value)
        if e164 is None:
            raise _rule("phone_number", "must be an international phone number: country code, area code and number")
        return e164


class MenuAction(BaseModel):
    """Go to another menu of the account (or this one, which starts it over with fresh retries)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    action: Literal["menu"]
    menu: Code = Field(description="Code of the menu to go to.")


class RepeatAction(BaseModel):
    """Present this menu again (retries start over)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["repeat"]


class OptOutAction(Prompt):
    """Put the called number on the account's do-not-call list, say the prompt if there is one, hang up."""

    action: Literal["opt_out"]

    @model_validator(mode="after")
    def _exactly_one(self) -> OptOutAction:  # the prompt is optional here: at most one
        _check_prompt(self, required=False)
        return self

    def confirmation(self) -> Prompt | None:
        """What the person hears before the call hangs up, if anything."""
        return self.as_prompt() if (self.play or self.speak or self.tts) else None


Action = Annotated[SayAction | DialAction | MenuAction | RepeatAction | OptOutAction, Field(discriminator="action")]


class IvrMenu(BaseModel):
    """An IVR menu: a prompt, what each key does, and how long and how often to wait for one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: Prompt = Field(description="Heard when the menu is presented; a key press interrupts it.")
    options: dict[Key, Action] = Field(
        min_length=1, max_length=MAX_OPTIONS, description="Key (0-9, *, #) → what pressing it does."
    )
    timeout: WholeNumber = Field(5, ge=1, le=60, description="Seconds to wait for a key after the prompt.")
    retries: WholeNumber = Field(
        2, ge=0, le=5, description="How often the menu is presented again after no or a wrong key."
    )
    invalid: Prompt | None = Field(None, description="Heard after a key that is not an option.")
    no_input: Prompt | None = Field(None, description="Heard when no key was pressed before the timeout.")

    def targets(self) -> set[str]:
        """Codes of the other menus this one leads to."""
        return {o.menu for o in self.options.values() if isinstance(o, MenuAction)}


@dataclass(frozen=True)
class StoredMenu:
    """A menu as the account keeps it."""

    code: str
    menu: IvrMenu
    created_at: str
    updated_at: str

    def public(self) -> dict[str, Any]:
        """The menu as the API shows it."""
        menu = self.menu.model_dump(mode="json", exclude_none=True)
        menu["options"] = {key: {"action": o["action"], **o} for key, o in menu["options"].items()}
        return {"code": self.code, **menu, "created_at": self.created_at, "updated_at": self.updated_at}


def _location(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p != "[key]"]
    # A discriminated union puts the action's tag in the path: options.1.say.speak → options.1.speak.
    if len(parts) >= 3 and parts[0] == "options" and parts[2] in ACTIONS:
        del parts[2]
    return ".".join(parts) or "body"


def _problem(error: Mapping[str, Any]) -> FieldProblem:
    loc = tuple(error.get("loc") or ())
    field = (error.get("ctx") or {}).get("field")
    name = _location((*loc, field) if field else loc)
    kind = error.get("type", "")
    if name == "options" and kind in ("too_short", "too_long"):
        return FieldProblem(name, f"must have 1-{MAX_OPTIONS} options")
    if kind == "model_attributes_type":  # an option that is no object
        return FieldProblem(name, "must be a JSON object with an action: one of " + ", ".join(ACTIONS))
    if kind == "extra_forbidden":
        return FieldProblem(name, "unknown field")
    if kind == "union_tag_invalid":
        return FieldProblem(name + ".action", "must be one of " + ", ".join(ACTIONS))
    if kind == "union_tag_not_found":
        return FieldProblem(name + ".action", "required: one of " + ", ".join(ACTIONS))
    return FieldProblem(name, rule_message(error))


def parse_menu(data: Any) -> IvrMenu:
    """Validate a menu (a JSON object, or its text); raises InvalidRequest naming every field that is wrong.

    In the text, a key given more than once (`options.1.number`, say) is one of those problems.
    """
    if isinstance(data, bytes | str):
        if len(data) > MAX_BODY:
            raise InvalidRequest.single("body", f"must be at most {MAX_BODY} bytes")
        try:
            data = json_objects.loads(data)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise InvalidRequest.single("body", "must be a JSON object (UTF-8)") from exc
    if not isinstance(data, Mapping):
        raise InvalidRequest.single("body", "must be a JSON object")
    repeated = json_objects.repeated_problems(data)
    try:
        menu = IvrMenu.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidRequest(repeated + [_problem(e) for e in exc.errors(include_url=False)]) from exc
    if repeated:
        raise InvalidRequest(repeated)
    return menu


# --- what a key press means ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chosen:
    """The key is an option: do its action."""

    action: SayAction | DialAction | MenuAction | RepeatAction | OptOutAction


@dataclass(frozen=True)
class Retry:
    """No key, or a key that is no option, with retries left: say `prompt` (if any), present the menu again."""

    prompt: Prompt | None
    attempt: int  # the attempt the menu is presented for next (1 = the first retry)


@dataclass(frozen=True)
class GiveUp:
    """No key, or a wrong one, and no retries left: say `prompt` (if any), then the rest of the seed flow."""

    prompt: Prompt | None


Resolution = Chosen | Retry | GiveUp


def resolve(menu: IvrMenu, pressed: str, attempt: int) -> Resolution:
    """What follows `pressed` (empty: nothing before the timeout) on `attempt` (0 = first presentation)."""
    option = menu.options.get(pressed) if pressed else None
    if option is not None:
        return Chosen(option)
    prompt = menu.invalid if pressed else menu.no_input
    if attempt < menu.retries:
        return Retry(prompt, attempt + 1)
    return GiveUp(prompt)


def pressed_keys(raw: str) -> str:
    """The keypad keys in a carrier's `Digits` (anything else dropped; at most 8 kept)."""
    return "".join(c for c in raw if c in DIGITS)[:8]


def reachable(code: str, menus: Mapping[str, IvrMenu]) -> tuple[set[str], set[str]]:
    """(menus reachable from `code` that exist in `menus`, codes they lead to that do not)."""
    seen: set[str] = set()
    missing: set[str] = set()
    todo = [code]
    while todo:
        current = todo.pop()
        if current in seen or current in missing:
            continue
        menu = menus.get(current)
        if menu is None:
            missing.add(current)
            continue
        seen.add(current)
        todo.extend(sorted(menu.targets()))
    return seen, missing


def snapshot(menus: Mapping[str, IvrMenu]) -> dict[str, dict[str, Any]]:
    """Menus as a call keeps them (plain JSON values)."""
    return {code: menu.model_dump(mode="json", exclude_none=True) for code, menu in menus.items()}


def from_snapshot(data: Mapping[str, Any]) -> dict[str, IvrMenu]:
    """The menus a call keeps; one that no longer validates is left out (the flow then goes on without it)."""
    menus: dict[str, IvrMenu] = {}
    for code, value in data.items():
        try:
            menus[code] = IvrMenu.model_validate(value)
        except ValidationError:
            continue
    return menus
