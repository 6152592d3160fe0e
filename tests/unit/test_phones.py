"""Phone numbers as the seed writes them: country code first, an optional '+'."""

from __future__ import annotations

import pytest
from callbridge.domain.phones import to_e164
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("value", "e164"),
    [
        ("12812345678", "+12812345678"),
        ("+12812345678", "+12812345678"),
        ("1 281 234 5678", "+12812345678"),
        ("1-281-234-5678", "+12812345678"),
        ("+1 (281) 234.5678", "+12812345678"),
        ("442079460000", "+442079460000"),
        ("5511912345678", "+5511912345678"),
    ],
)
def test_plausible_international_numbers(value: str, e164: str) -> None:
    assert to_e164(value) == e164


@pytest.mark.parametrize(
    "value",
    [
        "",
        "+",
        "123",  # too short
        "2812345678",  # US number without its country code: 281 is no country
        "02079460000",  # national format
        "00442079460000",  # international prefix instead of '+'
        "1281234567890123",  # too long
        "12875574",  # a US number without its area code: possible only when dialled locally
        "4420712345",  # a London number short of its last digits: the same
        "++12812345678",
        "12812345678 ext 5",
        "phone",
    ],
)
def test_implausible_numbers(value: str) -> None:
    assert to_e164(value) is None


@given(st.text(max_size=30))
def test_to_e164_never_raises_and_returns_e164(value: str) -> None:
    result = to_e164(value)

    assert result is None or (result.startswith("+") and result[1:].isdigit() and len(result) <= 16)
