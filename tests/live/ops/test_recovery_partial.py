"""A restart after a partial fill (live/ops/recovery.py, live/ops/reconcile.py) ends in the state
a run without one reaches: the filled quantities from the exchange, the rest of the position
protected by a stop of its size, no order sent twice, the same pnl. The scenario and its checks
are tests/live/venues/test_partial_fills.py's (seed 10: 4 of 10 fill at bar 4)."""

from __future__ import annotations

import asyncio
import time

import pytest

from actors.messages import CancelOrder, OrderPartiallyFilled
from actors.order_manager import REPLACED
from core.vocabulary import OrderStatus, TradeStatus
from live.ops.reconcile import reconcile
from live.ops.recovery import adopt_into, load_state, replace_lost_legs
from live.venues.broker import CcxtBroker
from live.venues.ccxt_clients import rest_client
from live.venues.outcomes import wall_ms
from tests.live.helpers import SECRET
from tests.live.venues.test_partial_fills import (
    FAST,
    INTERVAL,
    KEY,
    LABEL,
    SYMBOL,
    Loop,
    mismatches,
    partial_exchange,
    rows,
    scenario,
)

PNL = -0.25975  # the run without a restart (test_partial_fills.py, by hand)


@pytest.fixture
def exchange(monkeypatch):
    with partial_exchange(monkeypatch) as ex:
        yield ex


def restart(ex, db: str, bars: int) -> Loop:
    """What `live --real` does at a start (live/node.py): load, reconcile through the broker,
    apply the plan, hand the events to a fresh order manager; then `bars` more bars."""

    async def go() -> Loop:
        restored = load_state(db, "binance", [LABEL], dry_run=False)
        broker = CcxtBroker("binance", ex.url, {LABEL: (SYMBOL, INTERVAL)}, db, calls=FAST)
        await broker.start()
        try:
            stored = restored.submits()
            queries = [(m.symbol, eid, cid) for cid, eid, m in stored]
            final_ms = wall_ms() + FAST.recv_window_ms + FAST.margin_ms
            reports = await broker.order_reports(queries, final_ms)
            plan = reconcile(stored, reports, restored.filled)
            broker.resume(plan.client_ids, plan.resting, plan.timed)
            if plan.cancels:
                await broker.cancel_orders(plan.cancels)
            broker.record(plan.adopted)
            events = list(plan.events)
            if plan.resend:
                events += await broker.handle_batch(plan.resend)
            loop = Loop(db, broker)
            adopt_into(loop.manager, restored)
            fresh = replace_lost_legs(loop.manager, restored, plan.lost, time.time_ns())
            await loop.deliver(events)
            await loop.deliver(fresh)
            for _ in range(bars):
                await loop.bar(ex)
        finally:
            await broker.stop()
        return loop

    return asyncio.run(go())


def placed_once(ex) -> list[str]:
    client = rest_client("binance", ex.url, (KEY, SECRET))
    cids = [o["clientOrderId"] for o in client.fetch_orders(SYMBOL)]
    assert len(cids) == len(set(cids)), f"a client order id placed twice: {cids}"
    return cids


def rest_protected(ex, db: str) -> None:
    orders, (trade,) = rows(db)
    assert (trade.status, trade.exited_quantity) == (TradeStatus.ACTIVE, 4.0)
    first_tp = next(o for o in orders if o.role == "take_profit")
    assert (first_tp.filled_quantity, first_tp.avg_fill_price) == (4.0, 0.625)
    stops = [o for o in orders if o.role == "stop_loss" and o.status == OrderStatus.SUBMITTED]
    assert [(o.quantity, o.stop_price) for o in stops] == [(6.0, 0.25)]
    client = rest_client("binance", ex.url, (KEY, SECRET))
    stop = client.fetch_order(stops[0].exchange_order_id, SYMBOL)
    assert (stop["status"], stop["amount"]) == ("open", 6.0)
    assert len(placed_once(ex)) == 5  # entry, its two legs, the rest's two legs
    assert mismatches(ex, db) == []


def test_a_part_filled_while_down_is_applied_and_the_rest_protected(exchange, sqlite_url):
    scenario(exchange, sqlite_url, bars=1)  # the entry and its bracket rest
    exchange.step(1)  # down: bar 4 fills 4 of 10 of the target, the stop expires
    restart(exchange, sqlite_url, bars=1)
    rest_protected(exchange, sqlite_url)
    restart(exchange, sqlite_url, bars=5)  # and again, to the end: the same pnl
    (_orders, (trade,)) = rows(sqlite_url)
    assert (trade.status, trade.exited_quantity, trade.pnl) == (TradeStatus.CLOSED, 10.0, PNL)
    placed_once(exchange)
    assert mismatches(exchange, sqlite_url) == []


def test_two_parts_filled_while_down_leave_one_stop_for_the_rest(exchange, sqlite_url):
    """Bars 4 and 6 fill 4, then 2 of the target while down: both parts are applied at the
    restart, each re-placing the rest; the legs for 6 are replaced before they leave, so only
    the stop and target for the last 4 are placed."""
    scenario(exchange, sqlite_url, bars=1)
    exchange.step(3)  # down: bar 4 fills 4 of 10, bar 6 2 of the 6 left
    loop = restart(exchange, sqlite_url, bars=1)
    parts = [(e.quantity, e.price) for e in loop.events if type(e) is OrderPartiallyFilled]
    assert parts == [(4.0, 0.625), (2.0, 0.625)]
    orders, (trade,) = rows(sqlite_url)
    assert (trade.status, trade.exited_quantity) == (TradeStatus.ACTIVE, 6.0)
    stops = [o for o in orders if o.role == "stop_loss" and o.status == OrderStatus.SUBMITTED]
    assert [(o.quantity, o.stop_price) for o in stops] == [(4.0, 0.25)]
    assert len(placed_once(exchange)) == 5  # entry, its legs, the last rest's legs
    assert mismatches(exchange, sqlite_url) == []


class Killed(Exception):
    pass


def test_a_kill_after_the_part_was_stored_sends_nothing_twice(exchange, sqlite_url) -> None:
    """Killed after the part and the rest's new legs were committed (NEW), before the cancel of
    the old legs and the new legs were sent: the restart cancels the old target, places the new
    legs under their stored ids, and the rest is protected once."""

    def kill_before_sending(broker: CcxtBroker) -> None:
        handle = broker.handle_batch

        async def handle_batch(messages):
            if any(type(m) is CancelOrder and m.reason == REPLACED for m in messages):
                raise Killed
            return await handle(messages)

        broker.handle_batch = handle_batch

    with pytest.raises(Killed):
        scenario(exchange, sqlite_url, bars=2, patch=kill_before_sending)
    orders, _trades = rows(sqlite_url)
    assert sorted(o.status for o in orders if o.role == "stop_loss") == ["NEW", "SUBMITTED"]
    restart(exchange, sqlite_url, bars=1)
    rest_protected(exchange, sqlite_url)


def test_reconcile_applies_only_the_parts_the_database_does_not_have() -> None:
    """Hand-made reports: a target stored with 4 filled, reported closed after 4 + 2 + 4 (three
    trades): its fill is the last 6 (the average of 2 @ 0.625 and 4 @ 0.7)."""
    from actors.messages import OrderFilled, OrderPartiallyFilled, SubmitOrder
    from live.venues.reports import MS, FillPart, OrderStatusReport
    from live.venues.reports import OrderStatus as At

    tp = SubmitOrder(
        5, 2, LABEL, SYMBOL, "sell", 10.0, "limit", "take_profit", 0.625, None, 0, 1, 1
    )
    parts = (
        FillPart(4.0, 0.625, 0.0025, 1000),
        FillPart(2.0, 0.625, 0.00125, 2000),
        FillPart(4.0, 0.7, 0.0028, 3000),
    )
    closed = OrderStatusReport(
        "9", "rt-tp", SYMBOL, At.CLOSED, 3000 * MS, 3000 * MS, 0.6625, 10.0, 0.00655, parts
    )
    plan = reconcile([("rt-tp", "9", tp)], [closed], {2: 4.0})
    (fill,) = [e for e in plan.events if type(e) is OrderFilled]
    assert (fill.quantity, fill.price) == (6.0, (2 * 0.625 + 4 * 0.7) / 6)
    assert fill.fee == 0.00125 + 0.0028 and plan.lost == []
    # still open with 6 filled: the new part (2) is applied and it rests again
    still = OrderStatusReport("9", "rt-tp", SYMBOL, At.OPEN, 2000 * MS, filled=6.0, parts=parts[:2])
    plan = reconcile([("rt-tp", "9", tp)], [still], {2: 4.0})
    assert [(e.quantity, e.ts) for e in plan.events if type(e) is OrderPartiallyFilled] == [
        (2.0, 2000 * MS)
    ]
    assert plan.resting == [("9", tp)] and plan.cancels == []
    # open, nothing new: replaced already (its rest's legs were stored with the part): cancelled
    same = OrderStatusReport("9", "rt-tp", SYMBOL, At.OPEN, 1000 * MS, filled=4.0, parts=parts[:1])
    plan = reconcile([("rt-tp", "9", tp)], [same], {2: 4.0})
    assert plan.cancels == [("9", SYMBOL)] and plan.resting == []
