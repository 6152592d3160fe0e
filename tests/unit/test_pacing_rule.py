"""Pacing by design: requests that leave at most LATE_AFTER after their slot never exceed CPS in any second.

Pure arithmetic over the slot grid (no AWS): whatever the CPS, the slots taken and each request's lateness
within the allowance, the busiest 1-s window holds at most CPS requests. And a placer that wakes later than
that takes a new slot instead of sending.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from callbridge.adapters.carrier_client import CurrentCarrier
from callbridge.adapters.pacing import HEADROOM, LATE_AFTER
from callbridge.adapters.secrets import CarrierCredentials
from callbridge.carrier.base import CarrierCall, CreateCall, SmsResult
from callbridge.carrier.twilio import TwilioClient
from callbridge.domain.calls import Call, CallStatus
from callbridge.domain.changes import Change, apply
from callbridge.logic.placer import Placement, Placer, WebhookUrls
from hypothesis import given, settings
from hypothesis import strategies as st


def busiest_second(times: list[float]) -> int:
    ordered = sorted(times)
    return max(sum(1 for t in ordered if start <= t < start + 1) for start in ordered)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    cps=st.integers(1, 50),
    gaps=st.lists(st.integers(1, 3), min_size=1, max_size=120),
    lateness=st.lists(st.floats(0, 1), min_size=120, max_size=120),
)
def test_requests_within_the_allowance_never_exceed_cps_in_any_second(
    cps: int, gaps: list[int], lateness: list[float]
) -> None:
    interval = 1 / (cps * HEADROOM)
    slots = [sum(gaps[: n + 1]) for n in range(len(gaps))]  # distinct slots, as the pacer hands them out
    times = [s * interval + late * LATE_AFTER for s, late in zip(slots, lateness, strict=False)]

    assert busiest_second(times) <= cps


def test_the_allowance_is_what_the_headroom_leaves() -> None:
    # 5 % headroom: a request may leave up to 52 ms after its slot; the allowance keeps half of that for the
    # network's jitter on the way to the carrier
    assert HEADROOM == 0.95
    assert 0.025 < LATE_AFTER <= (1 / 0.95 - 1) / 2


class ListPacer:
    """Hands out the slots of a 1-s grid in order (as PacingTable's counter does)."""

    late_after = LATE_AFTER
    listed_at: float | None = None  # the do-not-call mark: not known, so the claim looks the number up

    def __init__(self) -> None:
        self.taken: list[int] = []

    def acquire(self, now: float, horizon: float | None = None) -> float | None:
        slot = max(math.ceil(now), (self.taken[-1] + 1) if self.taken else 0)
        self.taken.append(slot)
        return float(slot)


class OversleepingClock:
    """Sleeps `late` seconds longer than asked the first time, then exactly."""

    def __init__(self, start: float, late: float) -> None:
        self.t = start
        self.late = late

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds + self.late
        self.late = 0.0


class MemoryCalls:
    def __init__(self, call: Call) -> None:
        self.call = call

    def apply(self, callid: str, change: Change) -> tuple[bool, Call | None]:
        held, after = apply(self.call, change)
        self.call = after or self.call
        return held, after or self.call

    def get(self, callid: str) -> Call | None:
        return self.call

    def update(self, callid: str, change: Callable[[Call], Call | None], attempts: int = 8) -> Call | None:
        raise AssertionError("no read-modify-write on the happy path")


class RecordingCarrier:
    def __init__(self, clock: OversleepingClock) -> None:
        self.clock = clock
        self.sent: list[float] = []
        self.readied: list[float] = []

    def ready(self) -> None:
        self.readied.append(self.clock.now())

    def create_call(self, call: CreateCall) -> CarrierCall:
        self.sent.append(self.clock.now())
        return CarrierCall(sid="CA1", status="queued")

    def fetch_call(self, sid: str) -> CarrierCall | None:
        return None

    def hangup(self, sid: str) -> None: ...

    def cancel(self, sid: str) -> None: ...

    def send_sms(self, to: str, from_: str, body: str, status_callback: str | None = None) -> SmsResult:
        raise AssertionError


def queued_call() -> Call:
    at = "2027-01-10T12:00:00.000Z"
    return Call(
        callid="c1",
        account_id="a",
        status=CallStatus.QUEUED,
        created_at=at,
        updated_at=at,
        request={"to": "+17134567890", "from": "+12815550100", "answer_play": "https://example.com/a.wav"},
    )


def placer_with(late: float) -> tuple[Placer, ListPacer, RecordingCarrier]:
    clock = OversleepingClock(100.5, late)
    pacer = ListPacer()
    carrier = RecordingCarrier(clock)
    placer = Placer(
        calls=MemoryCalls(queued_call()),  # type: ignore[arg-type]
        carrier=carrier,  # type: ignore[arg-type]
        pacer=pacer,
        urls=WebhookUrls("https://api.example.com"),
        now=clock.now,
        sleep=clock.sleep,
    )
    return placer, pacer, carrier


def test_a_placer_that_wakes_within_the_allowance_sends_in_its_slot() -> None:
    placer, pacer, carrier = placer_with(late=LATE_AFTER / 2)

    assert placer.place("c1").placement is Placement.PLACED
    assert pacer.taken == [101]
    assert carrier.sent == [101 + LATE_AFTER / 2]


def test_the_carrier_is_made_ready_before_the_placer_waits_for_its_slot() -> None:
    # given a placer whose slot begins half a second from now
    placer, _pacer, carrier = placer_with(late=0.0)

    assert placer.place("c1").placement is Placement.PLACED

    # then its carrier client was readied (credentials read, client built) before the wait, not after it
    assert carrier.readied == [100.5]
    assert carrier.sent == [101]


def test_a_placer_that_wakes_too_late_takes_a_new_slot_instead_of_sending() -> None:
    placer, pacer, carrier = placer_with(late=0.3)

    assert placer.place("c1").placement is Placement.PLACED
    assert pacer.taken == [101, 102]  # slot 101 is left unused
    assert carrier.sent == [102]


class GridPacer:
    """PacingTable's counter in memory: slots of 1/(CPS × HEADROOM) s, handed out in order, never in the past."""

    late_after = LATE_AFTER
    listed_at: float | None = None  # the do-not-call mark: not known, so the claim looks the number up

    def __init__(self, cps: int) -> None:
        self.interval = 1 / (cps * HEADROOM)
        self.next = 0

    def acquire(self, now: float, horizon: float | None = None) -> float | None:
        slot = max(math.ceil(now / self.interval), self.next)
        self.next = slot + 1
        return slot * self.interval


class ReleasingCalls(MemoryCalls):
    """Also lets a placer put its claim back (a call whose slot could not be kept goes back on the queue)."""

    def update(self, callid: str, change: Callable[[Call], Call | None], attempts: int = 8) -> Call | None:
        self.call = change(self.call) or self.call
        return self.call


class LoadedClock:
    """A busy machine: every sleep overshoots by a random wake-up delay, and now and then reading the carrier
    secret (its cache expired) takes a random while too, after the placer's own check of its slot."""

    def __init__(self, start: float, rng: random.Random) -> None:
        self.t = start
        self.rng = rng

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        # mostly on time; one wake-up in five up to 400 ms late
        self.t += seconds + self.rng.uniform(0, 0.4 if self.rng.random() < 0.2 else 0.02)

    def credentials(self, secret_id: str) -> CarrierCredentials:
        if self.rng.random() < 0.2:  # the cached secret expired: this read goes to Secrets Manager
            self.t += self.rng.uniform(0, 0.3)
        return CarrierCredentials("AC" + "0" * 32, "token")


@pytest.mark.parametrize("cps", [1, 2, 5])
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_requests_reach_the_carrier_within_cps_however_late_placers_wake(cps: int, seed: int) -> None:
    # given a backlog drained by placers on a loaded machine, sending through the real Twilio client
    print(f"seed={seed} cps={cps}")
    rng = random.Random(seed)
    clock = LoadedClock(1000.3, rng)
    arrivals: list[float] = []

    def twilio(request: httpx.Request) -> httpx.Response:
        arrivals.append(clock.t)  # the carrier counts a request when it arrives
        return httpx.Response(201, json={"sid": f"CA{len(arrivals):032d}", "status": "queued"})

    def client(credentials: CarrierCredentials, base_url: str) -> TwilioClient:
        http = httpx.Client(transport=httpx.MockTransport(twilio))
        return TwilioClient(
            credentials.account_sid, credentials.auth_token, base_url=base_url, http=http, now=clock.now
        )

    carrier = CurrentCarrier("carrier", "https://api.twilio.test", credentials=clock.credentials, factory=client)
    pacer = GridPacer(cps)
    placed = 0
    for n in range(60):
        placer = Placer(
            calls=ReleasingCalls(queued_call()),  # type: ignore[arg-type]
            carrier=carrier,
            pacer=pacer,
            urls=WebhookUrls("https://api.example.com"),
            now=clock.now,
            sleep=clock.sleep,
        )
        # when each call is placed
        result = placer.place("c1")
        placed += result.placement is Placement.PLACED
        assert result.placement in (Placement.PLACED, Placement.RETRY), f"call {n}"

    # then no 1-s window at the carrier holds more than CPS requests, and the backlog still drains
    print(f"{placed} of 60 calls placed at their first delivery")
    assert placed == len(arrivals) > 0
    assert busiest_second(arrivals) <= cps, f"seed={seed}: {sorted(round(t - 1000, 3) for t in arrivals)}"


class SlowClaims(MemoryCalls):
    """A loaded machine: the claim's write takes `seconds`, longer than the allowance after a slot."""

    def __init__(self, clock: OversleepingClock, seconds: float) -> None:
        super().__init__(queued_call())
        self.clock = clock
        self.seconds = seconds

    def apply(self, callid: str, change: Change) -> tuple[bool, Call | None]:
        self.clock.t += self.seconds
        return super().apply(callid, change)


class CountingGridPacer(GridPacer):
    """Also counts the slots taken; on a loaded machine (`clock` given) each reservation takes `seconds`."""

    def __init__(self, cps: int, clock: OversleepingClock | None = None, seconds: float = 0.0) -> None:
        super().__init__(cps)
        self.taken: list[float] = []
        self.clock = clock
        self.seconds = seconds

    def acquire(self, now: float, horizon: float | None = None) -> float | None:
        slot = super().acquire(now, horizon)
        self.taken.append(slot or 0.0)
        if self.clock is not None:
            self.clock.t += self.seconds
        return slot


class SlowCarrierStart(RecordingCarrier):
    """A carrier client whose first readying (the secret read, the client built) takes `seconds`."""

    def __init__(self, clock: OversleepingClock, seconds: float) -> None:
        super().__init__(clock)
        self.first = seconds

    def ready(self) -> None:
        self.clock.t += self.first
        self.first = 0.0
        super().ready()


@dataclass
class Loaded:
    """One placer at 50 calls a second on a loaded machine: its clock, its slow writes, the slots it took and
    what it sent."""

    clock: OversleepingClock
    calls: SlowClaims
    pacer: CountingGridPacer
    carrier: SlowCarrierStart
    placer: Placer

    def place_next(self) -> Placement:
        self.calls.call = queued_call()
        return self.placer.place("c1").placement


def loaded(claim: float, reservation: float = 0.0, carrier_start: float = 0.0) -> Loaded:
    """A placer whose claim takes `claim` seconds, each reservation `reservation`, and whose carrier client takes
    `carrier_start` to build on its first call."""
    clock = OversleepingClock(100.0, 0.0)
    calls = SlowClaims(clock, claim)
    pacer = CountingGridPacer(50, clock, reservation)
    carrier = SlowCarrierStart(clock, carrier_start)
    placer = Placer(
        calls=calls,  # type: ignore[arg-type]
        carrier=carrier,  # type: ignore[arg-type]
        pacer=pacer,
        urls=WebhookUrls("https://api.example.com"),
        now=clock.now,
        sleep=clock.sleep,
    )
    return Loaded(clock, calls, pacer, carrier, placer)


def test_a_placer_whose_writes_outlast_the_allowance_asks_its_slots_that_far_ahead() -> None:
    # given a loaded machine, where a reservation takes 40 ms and a claim 80 ms (the allowance after a slot is
    # 26 ms), at 50 calls a second
    machine = loaded(claim=0.08, reservation=0.04)
    pacer, carrier = machine.pacer, machine.carrier
    slots_per_call = []
    for _ in range(5):
        before = len(pacer.taken)
        # when it places one call after another
        assert machine.place_next() is Placement.PLACED
        slots_per_call.append(len(pacer.taken) - before)
        # each request leaves within the allowance after the slot it was sent in
        assert pacer.taken[-1] <= carrier.sent[-1] <= pacer.taken[-1] + LATE_AFTER

    # then the first calls' slots passed during their writes and they took others; once the placer had seen its
    # writes slow twice, each call asked for a slot beginning after its writes would be done, and sent in it
    assert min(slots_per_call[:2]) > 1
    assert slots_per_call[2:] == [1, 1, 1]


def test_a_one_off_wait_before_a_send_does_not_hold_the_next_calls_back() -> None:
    # given a placer whose carrier client takes 1.5 s to build on its first call, at 50 calls a second
    machine = loaded(claim=0.0, carrier_start=1.5)
    for _ in range(2):
        asked = machine.clock.now()
        # when it places two calls
        assert machine.place_next() is Placement.PLACED

    # then the second call's slot was asked for right away, not 1.5 s ahead: it went out within a slot or two
    assert machine.carrier.sent[-1] - asked < LATE_AFTER + 2 * machine.pacer.interval


def test_a_slow_spell_is_forgotten_once_the_writes_are_quick_again() -> None:
    # given a placer whose claims took 300 ms for a while (a loaded machine)
    machine = loaded(claim=0.3)
    for _ in range(3):
        assert machine.place_next() is Placement.PLACED

    # when, ten seconds later, a claim is quick again
    machine.clock.t += 10.0
    machine.calls.seconds = 0.0
    asked = machine.clock.now()
    assert machine.place_next() is Placement.PLACED

    # then its slot was asked for as on a quiet machine, not 300 ms ahead
    assert machine.carrier.sent[-1] - asked < LATE_AFTER + 2 * machine.pacer.interval
