"""What a CSV cell may start with once a spreadsheet opens the file: text, never a formula.

Excel, LibreOffice and Google Sheets run a cell that starts with `=`, `+`, `-` or `@` (and, after a tab or a
carriage return, whatever follows) as a formula: `=HYPERLINK(...)` in a metadata value would become a link, and
older Excel runs `=cmd|' /C calc'!A0`. As OWASP's "CSV Injection" advises, such a cell is written with a
leading `'`, which spreadsheets read as "this is text" and do not show. A plain number, signed or not
(`+12812345670`, `-5`, `3.5`), is no formula and stays as it is, so phone numbers and amounts are unchanged.
"""

from __future__ import annotations

import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def spreadsheet_safe(value: object) -> str:
    """`value` as a CSV cell a spreadsheet shows as text: `'` before a cell that would start a formula."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text
