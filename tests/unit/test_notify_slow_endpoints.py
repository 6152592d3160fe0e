"""A slow callback endpoint does not hold up the stream: once an attempt to it took half the timeout or more,
its next first attempts go straight to the queue, until it answers quickly again or the memory runs out."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from callbridge.domain.errors import ServiceUnavailable
from callbridge.domain.notifications import DeliveryFailed, Retry, event_id, was_attempted, was_delivered
from callbridge.logic.notify import Notifier, Result, endpoint_of

from tests.unit.test_notifications import CALLBACK, Clock, FakeAccounts, FakeCalls, FakeQueue, as_store, completed

pytestmark = pytest.mark.disable_socket

SLOW = 5.0
MEMORY = 300.0


class TimedSender:
    """Answers each request with the next (seconds it takes, answer), advancing `clock` by those seconds."""

    def __init__(self, clock: Clock, *answers: tuple[float, int | DeliveryFailed]) -> None:
        self.clock = clock
        self.answers = list(answers)
        self.sent: list[str] = []

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.sent.append(url)
        seconds, answer = self.answers.pop(0)
        self.clock.now += seconds
        if isinstance(answer, DeliveryFailed):
            raise answer
        return answer


def calls_to(*urls: str) -> FakeCalls:
    """Finished calls with a callback, one per URL, callids c0, c1, ..."""
    return FakeCalls(*(completed().model_copy(update={"callid": f"c{i}"}) for i in range(len(urls))))


def setup(
    *answers: tuple[float, int | DeliveryFailed], urls: tuple[str, ...] = (CALLBACK,) * 3
) -> tuple[Notifier, FakeCalls, TimedSender, FakeQueue, Clock]:
    clock, queue = Clock(), FakeQueue()
    calls = calls_to(*urls)
    for i, url in enumerate(urls):
        calls.calls[f"c{i}"].request["callback_url"] = url
    sender = TimedSender(clock, *answers)
    store, accounts = as_store(calls), FakeAccounts()
    notify = Notifier(store, accounts, sender, queue, now=clock, rng=lambda: 1.0, slow_seconds=SLOW, slow_memory=MEMORY)
    return notify, calls, sender, queue, clock


def change(notify: Notifier, calls: FakeCalls, callid: str) -> Result:
    return notify.on_change(None, calls.calls[callid])


def test_after_a_slow_answer_the_next_first_attempt_is_handed_to_the_queue_at_once() -> None:
    notify, calls, sender, queue, clock = setup((SLOW, 204))

    assert change(notify, calls, "c0") is Result.DELIVERED  # answered, but late
    assert change(notify, calls, "c1") is Result.DEFERRED

    assert len(sender.sent) == 1  # nothing was sent from the stream for c1
    first = Retry("c1", event_id(calls.calls["c1"]), attempt=1, first_attempt_at=clock.now)
    assert queue.scheduled == [(first, 0)]
    (deferred,) = calls.attempts("c1")
    assert deferred.detail == {
        "event_id": first.event_id,
        "attempt": 1,
        "reason": "its endpoint was slow lately",
        "result": "deferred",
    }


def test_the_queue_makes_the_deferred_first_attempt_and_a_quick_answer_clears_the_mark() -> None:
    notify, calls, sender, queue, _clock = setup((SLOW + 1, 204), (0.2, 204), (0.1, 204))
    change(notify, calls, "c0")
    assert change(notify, calls, "c1") is Result.DEFERRED
    ((first, _delay),) = queue.scheduled

    assert notify.on_retry(first) is Result.DELIVERED  # from the queue, where slowness holds up nobody
    assert was_delivered(calls.calls["c1"], first.event_id)
    assert change(notify, calls, "c2") is Result.DELIVERED  # quick again: back to the stream

    assert sender.sent == [CALLBACK] * 3
    assert len(queue.scheduled) == 1


def test_a_timed_out_attempt_marks_its_endpoint_slow() -> None:
    notify, calls, sender, queue, _clock = setup((10.0, DeliveryFailed("timed out after 10 s")))

    assert change(notify, calls, "c0") is Result.RETRY
    assert change(notify, calls, "c1") is Result.DEFERRED

    assert len(sender.sent) == 1
    assert [(r.callid, r.attempt, delay) for r, delay in queue.scheduled] == [("c0", 2, 30), ("c1", 1, 0)]


@pytest.mark.parametrize(
    "quick", [(0.01, DeliveryFailed("cannot connect to hooks.example.com: refused")), (0.3, 500), (SLOW - 0.01, 204)]
)
def test_a_quick_answer_or_failure_leaves_the_next_attempt_on_the_stream(
    quick: tuple[float, int | DeliveryFailed],
) -> None:
    notify, calls, sender, _queue, _clock = setup(quick, (0.1, 204))

    change(notify, calls, "c0")
    assert change(notify, calls, "c1") is Result.DELIVERED

    assert len(sender.sent) == 2


def test_the_mark_is_forgotten_after_its_memory() -> None:
    notify, calls, sender, _queue, clock = setup((SLOW, 204), (0.1, 204))
    change(notify, calls, "c0")

    clock.now += MEMORY - 0.001
    assert change(notify, calls, "c1") is Result.DEFERRED
    clock.now += 0.002
    assert change(notify, calls, "c2") is Result.DELIVERED

    assert len(sender.sent) == 2


def test_only_the_slow_endpoint_is_marked_not_other_hosts_or_ports() -> None:
    urls = ("https://slow.example.com/a", "https://fast.example.com/a", "https://slow.example.com:8443/a")
    notify, calls, sender, _queue, _clock = setup((SLOW, 204), (0.1, 204), (0.1, 204), urls=urls)

    change(notify, calls, "c0")
    assert change(notify, calls, "c1") is Result.DELIVERED
    assert change(notify, calls, "c2") is Result.DELIVERED

    assert sender.sent == list(urls)


def test_a_deferred_record_handed_over_again_starts_nothing_new() -> None:
    notify, calls, sender, queue, _clock = setup((SLOW, 204))
    change(notify, calls, "c0")

    assert change(notify, calls, "c1") is Result.DEFERRED
    assert was_attempted(calls.calls["c1"], event_id(calls.calls["c1"]))
    assert change(notify, calls, "c1") is Result.DUPLICATE

    assert len(queue.scheduled) == 1
    assert len(sender.sent) == 1


def test_when_the_queue_is_down_the_deferral_fails_so_the_stream_hands_it_over_again() -> None:
    notify, calls, _sender, queue, _clock = setup((SLOW, 204))
    change(notify, calls, "c0")
    queue.down = True

    with pytest.raises(ServiceUnavailable):
        change(notify, calls, "c1")
    assert calls.attempts("c1") == []  # nothing recorded: the record's next delivery defers it again

    queue.down = False
    assert change(notify, calls, "c1") is Result.DEFERRED


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://h.example.com/x?callid=1", "https://H.EXAMPLE.COM/y?callid=2", True),
        ("https://h.example.com/x", "https://h.example.com:443/x", True),
        ("https://h.example.com/x", "https://h.example.com:8443/x", False),
        ("https://h.example.com/x", "http://h.example.com/x", False),
        ("https://h.example.com/x", "https://i.example.com/x", False),
    ],
)
def test_an_endpoint_is_a_urls_scheme_host_and_port(a: str, b: str, same: bool) -> None:
    assert (endpoint_of(a) == endpoint_of(b)) is same
