"""Use cases: an account's IVR menus (PUT/GET/DELETE /pcall/ivr/{code}, GET /pcall/ivr), and the menus a call takes.

A call copies its answer_ivr menu, and every menu that one leads to, when it is accepted (`menus_for_call`).
Editing or deleting a menu later changes calls accepted after that, never the ones already accepted: a scheduled
call plays the menus it was accepted with. So deleting a menu is never refused because of calls; it is refused
(409) only while another menu of the account still leads to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from callbridge.domain.accounts import Account
from callbridge.domain.calls import iso
from callbridge.domain.errors import Conflict, FieldProblem, InvalidRequest, IvrMenuNotFound
from callbridge.domain.ivr import (
    MAX_LINKED_MENUS,
    MAX_MENUS,
    IvrMenu,
    MenuAction,
    StoredMenu,
    parse_menu,
    reachable,
    valid_code,
)
from callbridge.flow.ivr_twiml import size_problems
from callbridge.ports import IvrMenuStore


class MenuReader(Protocol):
    def get_ivr_menu(self, account_id: str, code: str) -> StoredMenu | None: ...


def _checked_code(code: str) -> str:
    if not valid_code(code):
        raise InvalidRequest.single("code", "must be 1-64 letters, digits, '-' or '_'")
    return code


def put_menu(
    store: IvrMenuStore,
    account: Account,
    code: str,
    body: bytes | str | Mapping[str, Any],
    *,
    now: datetime,
    refused: Sequence[FieldProblem] = (),
) -> dict[str, Any]:
    """Create or replace menu `code`; raises InvalidRequest naming each field that is wrong.

    Besides the menu's own rules: every `menu` option must lead to a menu of this account (or to this one),
    the menus reachable from it stay within MAX_LINKED_MENUS, an account keeps at most MAX_MENUS, and every
    document the menu renders stays within the carrier's TwiML limit. `refused`: problems the caller found in
    the query before (see InvalidRequest.gathering); they, the code's and the body's own are reported together.
    """
    found = InvalidRequest.gathering(refused)
    found.checked(lambda: _checked_code(code), code)
    menu = found.checked(lambda: parse_menu(body), None)
    if found.problems or menu is None:
        raise found
    existing = {m.code: m for m in store.list_ivr_menus(account.api_key)}
    problems: list[FieldProblem] = []
    if code not in existing and len(existing) >= MAX_MENUS:
        problems.append(FieldProblem("code", f"an account keeps at most {MAX_MENUS} menus; delete one first"))
    for key, option in sorted(menu.options.items()):
        if isinstance(option, MenuAction) and option.menu != code and option.menu not in existing:
            problems.append(
                FieldProblem(f"options.{key}.menu", f"unknown menu {option.menu!r}: create it first, or use this one")
            )
    if not problems:
        menus = {c: m.menu for c, m in existing.items()} | {code: menu}
        linked, _ = reachable(code, menus)
        if len(linked) > MAX_LINKED_MENUS:
            message = f"leads to {len(linked)} menus (counting menus of menus); at most {MAX_LINKED_MENUS}"
            problems.append(FieldProblem("options", message))
    problems.extend(size_problems(code, menu))
    if problems:
        raise InvalidRequest(problems)
    before = existing.get(code)
    stored = StoredMenu(code=code, menu=menu, created_at=before.created_at if before else iso(now), updated_at=iso(now))
    store.put_ivr_menu(account.api_key, stored)
    return {"menu": stored.public(), "created": before is None}


def get_menu(store: IvrMenuStore, account: Account, code: str) -> dict[str, Any]:
    """One menu of the account; another account's is not found."""
    stored = store.get_ivr_menu(account.api_key, code) if valid_code(code) else None
    if stored is None:
        raise IvrMenuNotFound(code)
    return {"menu": stored.public()}


def list_menus(store: IvrMenuStore, account: Account) -> dict[str, Any]:
    """Every menu of the account, by code."""
    return {"menus": [m.public() for m in store.list_ivr_menus(account.api_key)]}


def delete_menu(store: IvrMenuStore, account: Account, code: str) -> dict[str, Any]:
    """Delete a menu. Calls already accepted keep their copy; a menu another menu leads to is a Conflict."""
    existing = {m.code: m for m in store.list_ivr_menus(account.api_key)} if valid_code(code) else {}
    if code not in existing:
        raise IvrMenuNotFound(code)
    users = sorted(c for c, m in existing.items() if c != code and code in m.menu.targets())
    if users:
        raise Conflict(f"menu {code!r} is an option of menu(s) {', '.join(users)}: change or delete those first")
    if not store.delete_ivr_menu(account.api_key, code):
        raise IvrMenuNotFound(code)
    return {"deleted": code}


def menus_for_call(store: MenuReader, account_id: str, code: str) -> dict[str, IvrMenu]:
    """Menu `code` and every menu it leads to, for a call to keep; InvalidRequest (answer_ivr) if one is missing."""
    found: dict[str, IvrMenu] = {}
    todo = [code]
    while todo:
        current = todo.pop(0)
        if current in found:
            continue
        stored = store.get_ivr_menu(account_id, current)
        if stored is None:
            message = (
                f"unknown IVR menu code {code!r} for this account"
                if current == code
                else f"menu {code!r} leads to menu {current!r}, which does not exist"
            )
            raise InvalidRequest.single("answer_ivr", message)
        found[current] = stored.menu
        if len(found) > MAX_LINKED_MENUS:
            raise InvalidRequest.single("answer_ivr", f"menu {code!r} leads to more than {MAX_LINKED_MENUS} menus")
        todo.extend(sorted(stored.menu.targets() - found.keys()))
    return found
