"""The do-not-call mark against moto: listing raises it on the carrier line, a slot reservation returns it, and the
placer looks the list up at the claim only when a number may have been listed since the call's intake check."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from callbridge.adapters.aws import client as aws_client
from callbridge.adapters.pacing import LINE_KEY, MARK, DynamoPacer, ListingMark
from callbridge.adapters.suppressions import DynamoSuppressionList
from callbridge.domain.calls import CallStatus
from callbridge.domain.errors import ServiceUnavailable
from callbridge.domain.suppressions import CLOCK_MARGIN_SECONDS, SUPPRESSED, Suppression
from callbridge.logic.placer import Placement, Placer, WebhookUrls

from tests.conftest import AccountCredentials
from tests.integration.fakes import PUBLIC_API_URL, FakeClock, FakeTwilio, calls_store, moto_stack, queue_call, stored

NUMBER = "+17134567890"  # queue_call's default `to`
ENTRY = Suppression(number=NUMBER, reason="", created_at="")


@pytest.fixture
def aws() -> Iterator[Any]:
    yield from moto_stack()


@pytest.fixture
def suppression_reads() -> Iterator[list[dict[str, Any]]]:
    """Every GetItem on the do-not-call list through the functions' shared DynamoDB client."""
    seen: list[dict[str, Any]] = []

    def spy(params: dict[str, Any], **_kwargs: Any) -> None:
        if "Suppressions" in str(params.get("TableName")):
            seen.append(dict(params))

    # the list's adapter shares a client with a larger connection pool (its bulk reads run on threads)
    clients = [aws_client("dynamodb"), DynamoSuppressionList("any")._db()]
    for shared in clients:
        shared.meta.events.register("provide-client-params.dynamodb.GetItem", spy, unique_id="test-dnc-read-spy")
    yield seen
    for shared in clients:
        shared.meta.events.unregister("provide-client-params.dynamodb.GetItem", unique_id="test-dnc-read-spy")


def stored_mark(stack: Any) -> float | None:
    item = aws_client("dynamodb").get_item(TableName=stack.refs["PacingTable"], Key=LINE_KEY).get("Item", {})
    return float(item[MARK]["N"]) if MARK in item else None


def the_list(stack: Any, at: float | None = None) -> DynamoSuppressionList:
    mark = ListingMark(stack.refs["PacingTable"], clock=(lambda: at) if at is not None else time.time)
    return DynamoSuppressionList(stack.refs["SuppressionsTable"], mark=mark)


def listed_long_ago(stack: Any) -> float:
    """The list last gained a number well before now (beyond the clocks' margin); now."""
    now = time.time()
    ListingMark(stack.refs["PacingTable"], clock=lambda: now - 10 * CLOCK_MARGIN_SECONDS).raise_to_now()
    return now


def placer(stack: Any, carrier: FakeTwilio, clock: FakeClock) -> Placer:
    return Placer(
        calls=calls_store(stack),
        carrier=carrier.client(clock.now),
        pacer=DynamoPacer(stack.refs["PacingTable"], 10),
        urls=WebhookUrls(PUBLIC_API_URL),
        suppressions=DynamoSuppressionList(stack.refs["SuppressionsTable"]),
        now=clock.now,
        sleep=clock.sleep,
    )


def test_a_reservation_on_a_line_without_a_mark_sets_it_to_its_own_time(aws: Any) -> None:
    # a new line (or one from before the mark) does not know what was listed: calls accepted before it look again
    pacer = DynamoPacer(aws.refs["PacingTable"], 10)
    assert pacer.acquire(1_800_000_000.0) is not None
    assert pacer.listed_at == stored_mark(aws) == 1_800_000_000.0
    # later reservations keep it, and return it whichever kind of write took the slot (idle line, then busy)
    assert pacer.acquire(1_800_000_100.0) is not None
    assert pacer.acquire(1_800_000_100.0) is not None
    assert pacer.listed_at == stored_mark(aws) == 1_800_000_000.0


def test_listing_raises_the_mark_and_the_next_reservation_returns_it(aws: Any) -> None:
    pacer = DynamoPacer(aws.refs["PacingTable"], 10)
    assert pacer.acquire(1_800_000_000.0) is not None
    assert the_list(aws, at=1_800_000_050.0).add("acct", ENTRY)
    assert stored_mark(aws) == 1_800_000_050.0
    assert pacer.acquire(1_800_000_060.0) is not None
    assert pacer.listed_at == 1_800_000_050.0


def test_the_mark_never_goes_back(aws: Any) -> None:
    ListingMark(aws.refs["PacingTable"], clock=lambda: 1_800_000_050.0).raise_to_now()
    ListingMark(aws.refs["PacingTable"], clock=lambda: 1_800_000_040.0).raise_to_now()  # a slower host's clock
    assert stored_mark(aws) == 1_800_000_050.0


@pytest.mark.parametrize("how", ["add", "put", "add_many"])
def test_every_listing_raises_the_mark_even_of_a_number_listed_already(aws: Any, how: str) -> None:
    # a listing whose mark failed is retried by its client, and the retry finds the number listed: it must raise it
    for at in (1_800_000_010.0, 1_800_000_020.0):
        listing = the_list(aws, at=at)
        if how == "add_many":
            listing.add_many("acct", [ENTRY])
        else:
            getattr(listing, how)("acct", ENTRY)
        assert stored_mark(aws) == at


def test_a_list_built_to_be_read_refuses_to_list(aws: Any) -> None:
    reader = DynamoSuppressionList(aws.refs["SuppressionsTable"])
    with pytest.raises(RuntimeError, match="read only"):
        reader.add("acct", ENTRY)


def test_a_call_checked_at_intake_after_the_last_listing_is_claimed_without_a_look_up(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, suppression_reads: list[dict[str, Any]]
) -> None:
    # given: the list last gained a number well before the call was accepted (and checked) by the intake
    now = listed_long_ago(aws)
    callid = queue_call(aws, account)
    assert stored(aws, callid).dnc_checked
    reads_at_intake = len(suppression_reads)

    # when: the placer claims and places it
    result = placer(aws, twilio, FakeClock(now + 1)).place(callid)

    # then: placed with no second look-up
    assert result.placement is Placement.PLACED
    assert len(suppression_reads) == reads_at_intake


def test_a_number_listed_after_the_intake_check_is_looked_up_and_never_dialed(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, suppression_reads: list[dict[str, Any]]
) -> None:
    callid = queue_call(aws, account)
    reads_at_intake = len(suppression_reads)
    the_list(aws).add(account.api_key, ENTRY)

    result = placer(aws, twilio, FakeClock(time.time() + 1)).place(callid)

    assert result.placement is Placement.SKIPPED
    assert len(suppression_reads) == reads_at_intake + 1
    call = stored(aws, callid)
    assert (call.status, call.error_code) == (CallStatus.CANCELED, SUPPRESSED)
    assert twilio.creates == []


def test_a_call_not_checked_at_intake_is_looked_up_whatever_the_mark(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, suppression_reads: list[dict[str, Any]]
) -> None:
    # a campaign's calls are checked when the campaign is created, not when each call is written: no shortcut
    now = listed_long_ago(aws)
    callid = queue_call(aws, account)
    store = calls_store(aws)
    store.update(callid, lambda c: c.model_copy(update={"dnc_checked": False}))
    reads_before = len(suppression_reads)

    assert placer(aws, twilio, FakeClock(now + 1)).place(callid).placement is Placement.PLACED
    assert len(suppression_reads) == reads_before + 1


class OnePartition:
    """DynamoDB's batch requests to one partition key that takes `per_second` writes a second (a burst of a tenth
    of a second's worth at most): what it cannot take comes back unprocessed, as DynamoDB's answer does."""

    def __init__(self, table: str, per_second: float) -> None:
        self.table, self.per_second = table, per_second
        self.tokens, self.at = per_second / 10, time.monotonic()
        self.written: set[str] = set()
        self.lock = threading.Lock()

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        return {"Responses": {self.table: []}}

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        requests = RequestItems[self.table]
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.per_second / 10, self.tokens + (now - self.at) * self.per_second)
            self.at = now
            taken = min(len(requests), int(self.tokens))
            self.tokens -= taken
            self.written.update(r["PutRequest"]["Item"]["sk"]["S"] for r in requests[:taken])
        return {"UnprocessedItems": {self.table: requests[taken:]} if taken < len(requests) else {}}


def entries(count: int) -> list[Suppression]:
    return [Suppression(number=f"+1281{n:07d}", reason="", created_at="") for n in range(count)]


def test_a_bulk_listing_waits_out_a_busy_partition_and_lists_every_number(aws: Any) -> None:
    # given: a partition that takes 2,000 writes a second, and 1,000 numbers (40 batches on 8 threads at once)
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    partition = OnePartition("Suppressions", per_second=2000)
    mark = ListingMark(aws.refs["PacingTable"])
    bulk = DynamoSuppressionList("Suppressions", mark=mark, dynamodb=partition, rng=random.Random(seed))
    # when they are listed
    added = bulk.add_many("acct", entries(1000))
    # then: each batch came back for what was left, after a pause, until every number was written
    assert added == 1000
    assert len(partition.written) == 1000
    assert stored_mark(aws) is not None


def test_numbers_listed_before_a_503_raise_the_mark(aws: Any) -> None:
    # given: a partition so busy that most batches are never fully taken within the rounds a listing makes
    partition = OnePartition("Suppressions", per_second=50)
    bulk = DynamoSuppressionList(
        "Suppressions", mark=ListingMark(aws.refs["PacingTable"]), dynamodb=partition, sleep=lambda _s: None
    )
    # when a bulk listing gives up
    with pytest.raises(ServiceUnavailable):
        bulk.add_many("acct", entries(1000))
    # then: the numbers it did list are on the list, and placers will look them up at the claim
    assert partition.written
    assert stored_mark(aws) is not None
