"""TwiML documents as data: the verbs under <Response>, with their attributes, text and nested nouns."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any


class TwimlError(ValueError):
    """The document is not TwiML (Twilio error 12100, document parse failure)."""


@dataclass(frozen=True)
class Verb:
    """One TwiML element: a verb of <Response>, or a noun nested in a verb."""

    name: str
    attrs: dict[str, str]
    text: str
    children: tuple[Verb, ...] = ()

    def attr(self, name: str, default: str = "") -> str:
        """An attribute's value (TwiML attribute names are case-sensitive)."""
        return self.attrs.get(name, default)

    def as_record(self) -> dict[str, Any]:
        """A plain-dict view for the call's verb log."""
        record: dict[str, Any] = {"verb": self.name, "attrs": dict(self.attrs), "text": self.text}
        if self.children:
            record["children"] = [child.as_record() for child in self.children]
        return record


def _element(node: ET.Element) -> Verb:
    children = tuple(_element(child) for child in node)
    return Verb(name=node.tag, attrs=dict(node.attrib), text=(node.text or "").strip(), children=children)


def parse_twiml(document: str | bytes) -> list[Verb]:
    """The verbs of a TwiML document, in order. An empty body is an empty <Response>."""
    if not document.strip():
        return []
    try:
        # The sandbox parses documents from its own webhooks; expat neither fetches external
        # entities nor lets entity expansion run away, which is all the hardening this needs.
        root = ET.fromstring(document)  # noqa: S314
    except ET.ParseError as exc:
        raise TwimlError(f"document parse failure: {exc}") from exc
    if root.tag != "Response":
        raise TwimlError(f"root element is <{root.tag}>, not <Response>")
    return [_element(child) for child in root]
