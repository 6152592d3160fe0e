"""Every timeline event has one name, defined in domain/events.py; the console says each event and status in words."""

from __future__ import annotations

import re
from pathlib import Path

from callbridge.domain import events
from callbridge.logic.notify import Result

NAMES = {name: value for name, value in vars(events).items() if name.isupper()}
CONSOLE = Path(events.__file__).parent.parent / "static" / "console" / "console.js"
LAYER = Path(events.__file__).parent.parent


def test_each_event_name_is_defined_once() -> None:
    assert len(set(NAMES.values())) == len(NAMES), NAMES


def test_the_console_describes_every_event_in_words() -> None:
    cases = re.findall(r'^\s*case "([a-z_.]+)":', CONSOLE.read_text(encoding="utf-8"), flags=re.M)
    assert len(cases) == len(set(cases)), sorted(c for c in cases if cases.count(c) > 1)  # one description each
    assert set(NAMES.values()) <= set(cases), set(NAMES.values()) - set(cases)


def test_the_console_says_each_result_a_callback_attempt_records() -> None:
    # every result the notifier keeps on a `callback` event reads in words, not as "Callback attempt N"
    recorded = set(Result) - {Result.IGNORED, Result.DUPLICATE}  # these two send and record nothing
    said = set(re.findall(r'd\.result === "([a-z_]+)"', CONSOLE.read_text(encoding="utf-8")))
    assert {str(r) for r in recorded} <= said, {str(r) for r in recorded} - said


def test_no_module_writes_an_event_name_of_its_own() -> None:
    # a timeline event is written as TimelineEvent(event=...) or call.with_event(at, ...): always with a name from
    # domain/events.py (or the `event` a helper that writes any event was given), never a literal or a constant
    # of another module's
    written = re.compile(r"(TimelineEvent\([^()]*?event=|(?<!def )with_event\([^,()]+, )([^,()]+)")
    found = {
        f"{path.relative_to(LAYER)}: {match.group(2)}"
        for path in LAYER.rglob("*.py")
        for match in written.finditer(path.read_text(encoding="utf-8"))
        if not re.fullmatch(r"events\.[A-Z_]+|event", match.group(2).strip())
    }
    assert found == set()


def test_the_console_names_and_filters_every_call_status() -> None:
    # every status a call can have reads in words and can be filtered on (RETRY_WAIT read as its raw name once)
    from callbridge.domain.calls import CallStatus

    source = CONSOLE.read_text(encoding="utf-8")
    listed = re.search(r"^const STATUSES = \[([^\]]*)\];", source, flags=re.M)
    words = re.search(r"^const STATUS_WORDS = \{(.*?)\};", source, flags=re.M | re.S)
    assert listed is not None
    assert words is not None
    statuses = {status.value for status in CallStatus}
    assert set(re.findall(r'"([A-Z_]+)"', listed.group(1))) == statuses
    assert statuses <= set(re.findall(r"\b([A-Z_]+):", words.group(1)))


def test_the_console_cancels_a_call_not_dialed_and_hangs_up_one_at_the_carrier() -> None:
    # the console's two sets are the API's rule: what is not dialed yet (UNCLAIMED) is cancelled, every other
    # call not final is at the carrier and hung up; no status is in both, none left out
    from callbridge.domain.calls import UNCLAIMED, CallStatus

    source = CONSOLE.read_text(encoding="utf-8")

    def listed(name: str) -> set[str]:
        found = re.search(rf"^const {name} = new Set\(\[([^\]]*)\]\);", source, flags=re.M)
        assert found is not None, name
        return set(re.findall(r'"([A-Z_]+)"', found.group(1)))

    assert listed("NOT_DIALED") == {status.value for status in UNCLAIMED}
    assert listed("AT_CARRIER") == {s.value for s in CallStatus if not s.is_final and s not in UNCLAIMED}
