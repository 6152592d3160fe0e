"""Phone numbers as the seed writes them: country code + area code + number, an optional leading '+'."""

from __future__ import annotations

import re

_FORMATTING = re.compile(r"[\s\-().]")
_DIGITS = re.compile(r"\+?[1-9]\d{6,14}")


def to_e164(value: str) -> str | None:
    """The E.164 form of a plausible international number, or None.

    Accepts `12812345678`, `+12812345678` and the usual separators (spaces, dashes, dots,
    parentheses). The country code must come first; the length must be possible for a whole number of that
    country (one possible only when dialled locally, without its area code, is not).
    """
    compact = _FORMATTING.sub("", value)
    if not _DIGITS.fullmatch(compact):
        return None
    candidate = "+" + compact.lstrip("+")
    # Imported on first use: its metadata takes tens of milliseconds to load, and only intake parses numbers.
    import phonenumbers

    try:
        parsed = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        return None
    # Possible as a whole number, not only dialled locally (IS_POSSIBLE_LOCAL_ONLY: `12875574` is a US number
    # without its area code, which a carrier refuses).
    if phonenumbers.is_possible_number_with_reason(parsed) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def time_zones_of(e164: str) -> tuple[str, ...]:
    """The IANA zones a number may be in, from its country and area code; empty when unknown.

    A number whose area spans several zones (a toll-free number, a large country) gives all of them.
    """
    # Imported on first use: the prefix → zone tables are large and most calls never need them.
    import phonenumbers
    from phonenumbers import timezone

    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = timezone.time_zones_for_number(parsed)
    return tuple(z for z in zones if z != timezone.UNKNOWN_TIMEZONE)
