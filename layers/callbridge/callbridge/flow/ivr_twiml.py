"""IVR menus as TwiML. Pure functions: no I/O, the same menu and step always render the same document.

A menu is presented as `<Gather>` (one key, `#` and `*` included) around its prompt, followed by a `<Redirect>` to
the same gather URL: the carrier follows it only when no key came before the timeout, so the webhook sees "no
input". The gather URL names the menu, the attempt (0 = first presentation, then one per retry) and the step (the
how-manieth presentation in this call), so the webhook knows where the key was pressed and a repeated request is
recognised.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from callbridge.domain.errors import FieldProblem
from callbridge.domain.ivr import (
    MAX_STEPS,
    MAX_TWIML,
    Chosen,
    DialAction,
    IvrMenu,
    MenuAction,
    OptOutAction,
    Prompt,
    Resolution,
    Retry,
    SayAction,
)
from callbridge.flow.twiml import FlowUrls, _document, _element, append_after_ivr, say_speech, say_tts

if TYPE_CHECKING:  # rendering only reads the request's attributes
    from callbridge.domain.requests import CallRequest

# Size checks assume webhook URLs this long (an execute-api host is about 60; custom domains are longer).
_WORST_BASE = "https://" + "h" * 150 + "/carrier/twilio/" + "c" * 27
WORST_URLS = FlowUrls(
    gather=f"{_WORST_BASE}/gather",
    dial_action=f"{_WORST_BASE}/dial",
    hold=f"{_WORST_BASE}/hold",
    conference_name="callbridge-" + "c" * 27,
)
_WORST_CALLED = "+" + "9" * 15


def gather_url(base: str, code: str, attempt: int, step: int) -> str:
    """Where the Gather of menu `code` posts the key (and its Redirect posts nothing)."""
    return f"{base}?{urlencode({'menu': code, 'try': attempt, 'step': step})}"


def _prompt(parent: ET.Element, prompt: Prompt | None) -> None:
    if prompt is None:
        return
    if prompt.play:
        _element(parent, "Play", prompt.play)
    elif prompt.speak:
        say_speech(parent, prompt.speak, prompt.speak_lang)
    elif prompt.tts:
        say_tts(parent, prompt.tts, prompt.tts_voice)


def _present(root: ET.Element, code: str, menu: IvrMenu, urls: FlowUrls, attempt: int, step: int) -> None:
    url = gather_url(urls.gather, code, attempt, step)
    gather = _element(
        root,
        "Gather",
        None,
        input="dtmf",
        numDigits="1",
        finishOnKey="",  # '#' is a key like any other here, not "done"
        timeout=str(menu.timeout),
        action=url,
        method="POST",
    )
    _prompt(gather, menu.prompt)
    _element(root, "Redirect", url, method="POST")


def render_menu(
    code: str, menu: IvrMenu, urls: FlowUrls, *, attempt: int = 0, step: int = 1, lead: Prompt | None = None
) -> str:
    """Menu `code` presented (after `lead`, e.g. "that is not an option"), as a TwiML document."""
    root = ET.Element("Response")
    _prompt(root, lead)
    _present(root, code, menu, urls, attempt, step)
    return _document(root)


def render_next(
    resolution: Resolution,
    code: str,
    menus: Mapping[str, IvrMenu],
    request: CallRequest,
    urls: FlowUrls,
    *,
    step: int,
) -> str:
    """The document that follows presentation `step` of menu `code`, as `resolution` decided.

    A `say` option speaks and hangs up; `opt_out` says its prompt, if any, and hangs up;
    `dial` bridges the person to its number; `menu` and `repeat` present a
    menu afresh; a retry says the invalid or no-input prompt and presents the menu again; giving up (or a
    target menu the call does not know, or too many steps) goes on with the seed flow: answer_dial_to, else
    hang up.
    """
    root = ET.Element("Response")
    if isinstance(resolution, Chosen):
        action = resolution.action
        if isinstance(action, OptOutAction):  # the number is listed by the webhook (logic/webhooks.py)
            _prompt(root, action.confirmation())
            ET.SubElement(root, "Hangup")
        elif isinstance(action, SayAction):
            _prompt(root, action.as_prompt())
            ET.SubElement(root, "Hangup")
        elif isinstance(action, DialAction):
            _dial(root, action, request.to, urls)
        else:
            target = action.menu if isinstance(action, MenuAction) else code
            menu = menus.get(target)
            if menu is not None and step < MAX_STEPS:
                _present(root, target, menu, urls, 0, step + 1)
            else:
                append_after_ivr(root, request, urls)
    elif isinstance(resolution, Retry) and step < MAX_STEPS and code in menus:
        _prompt(root, resolution.prompt)
        _present(root, code, menus[code], urls, resolution.attempt, step + 1)
    else:
        _prompt(root, resolution.prompt)
        append_after_ivr(root, request, urls)
    return _document(root)


def _dial(root: ET.Element, action: DialAction, called: str, urls: FlowUrls) -> None:
    # Like answer_dial_from, the caller id defaults to the number of the person who was called.
    dial = _element(root, "Dial", None, callerId=action.caller_id or called, action=urls.dial_action)
    _element(dial, "Number", action.number)


def size_problems(code: str, menu: IvrMenu) -> list[FieldProblem]:
    """The parts of `menu` whose TwiML would go over the carrier's MAX_TWIML characters, with long webhook URLs."""
    problems: list[FieldProblem] = []
    # the largest numbers a document carries: a presentation is rendered with step + 1 <= MAX_STEPS
    step, attempt = MAX_STEPS, 5
    plain = len(render_menu(code, menu, WORST_URLS, attempt=attempt, step=step))
    if plain > MAX_TWIML:
        problems.append(_too_big("prompt", plain))
    else:
        for name in ("invalid", "no_input"):
            lead: Prompt | None = getattr(menu, name)
            size = len(render_menu(code, menu, WORST_URLS, attempt=attempt, step=step, lead=lead)) if lead else 0
            if size > MAX_TWIML:
                problems.append(_too_big(name, size))
    for key, action in sorted(menu.options.items()):
        if isinstance(action, SayAction | DialAction | OptOutAction):
            root = ET.Element("Response")
            if isinstance(action, OptOutAction):
                _prompt(root, action.confirmation())
                ET.SubElement(root, "Hangup")
            elif isinstance(action, SayAction):
                _prompt(root, action.as_prompt())
                ET.SubElement(root, "Hangup")
            else:
                _dial(root, action, _WORST_CALLED, WORST_URLS)
            size = len(_document(root))
            if size > MAX_TWIML:
                problems.append(_too_big(f"options.{key}", size))
    return problems


def _too_big(name: str, size: int) -> FieldProblem:
    return FieldProblem(
        name, f"renders {size} characters of TwiML; the carrier's limit is {MAX_TWIML}: make the text shorter"
    )
