"""Who answered a call: the carrier's answering-machine-detection verdict in the seed's words.

Pure (no pydantic), so the TwiML renderer can import it without the domain models.
"""

from __future__ import annotations

PERSON = "Person"
MACHINE = "Machine"
# Twilio's AnsweredBy verdicts that mean voicemail, a machine or a fax; human, unknown and no verdict mean a person.
# The detection webhooks send the detailed verdicts; a call fetched from the REST API (reconciliation) reports only
# `human` or `machine` in its `answered_by`.
MACHINE_VERDICTS = frozenset(
    {"machine", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"}
)


def is_machine(verdict: str | None) -> bool:
    """Whether a carrier's AnsweredBy verdict means a machine (case and surrounding spaces ignored)."""
    return (verdict or "").strip().lower() in MACHINE_VERDICTS


def answered_by_label(verdict: str | None) -> str:
    """Twilio's AnsweredBy as the seed words it: "Machine" for voicemail, machines and fax, else "Person"."""
    return MACHINE if is_machine(verdict) else PERSON
