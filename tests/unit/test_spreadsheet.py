"""CSV cells a spreadsheet opens as text, never as a formula (OWASP "CSV Injection")."""

from __future__ import annotations

import pytest
from callbridge.domain.spreadsheet import FORMULA_STARTS, spreadsheet_safe


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil.example","click")', '\'=HYPERLINK("http://evil.example","click")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("+1 (281) 234-5670", "'+1 (281) 234-5670"),  # not a plain number: Excel would read it as a formula
        ("-", "'-"),
    ],
)
def test_a_cell_that_would_start_a_formula_is_written_as_text(value: str, cell: str) -> None:
    assert spreadsheet_safe(value) == cell


@pytest.mark.parametrize(
    "value",
    ["+12812345670", "12812345670", "-5", "+3.25", "0", "COMPLETED", "SIP 486", "a=b", " =1", "", "2027-01-11"],
)
def test_plain_numbers_and_text_stay_as_they_are(value: str) -> None:
    assert spreadsheet_safe(value) == value


def test_numbers_and_none_are_written_as_the_csv_module_writes_them() -> None:
    assert (spreadsheet_safe(17), spreadsheet_safe(None), spreadsheet_safe(-3)) == ("17", "", "-3")


def test_every_formula_start_is_covered() -> None:
    assert set(FORMULA_STARTS) == {"=", "+", "-", "@", "\t", "\r"}
    for start in FORMULA_STARTS:
        assert spreadsheet_safe(start + "x").startswith("'")
