"""Partial fills end to end: the order manager (with the SQL store) and the ccxt broker (the real
ccxt client) against the local exchange with `partial_fill=1` (localexchange/faults.py: every
resting limit a bar reaches fills only in part while it can). Hand-computed: a long of 10 at 0.5
with a stop at 0.25 and a target at 0.625 (LOT_SIZE step 1, fee 0.1 %):
- bar 4 reaches the target: seed 10 fills 4 of 10 at 0.625, the exchange expires the stop;
  the rest (6) gets a new stop and target at the same levels, under new client order ids;
- bar 6 reaches the target again: 2 of the 6 fill at 0.625; again re-placed, for 4;
- bar 8 falls through the stop: the last 4 sell at 0.25 (the open is above it);
pnl = 4*0.625 + 2*0.625 + 4*0.25 - 10*0.5 - fees (0.1 % of each fill) = -0.25975."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Iterator

import pandas as pd
import pytest
from sqlmodel import select

from actors.messages import (
    BarClosed,
    CancelOrder,
    CloseTrade,
    ExitSpec,
    OpenTrade,
    OrderFilled,
    OrderPartiallyFilled,
    SubmitOrder,
    TradeClosed,
)
from actors.order_manager import OrderManager
from actors.order_store import SqlOrderStore
from core.vocabulary import OrderRole, OrderStatus, Side, TradeStatus
from live.venues.broker import CcxtBroker
from live.venues.ccxt_clients import rest_client
from live.venues.outcomes import CallSettings
from localexchange.faults import FaultPlan, FaultSpec
from localexchange.replay import ReplayMarket
from localexchange.server_thread import ExchangeThread
from store.db import session_scope
from store.models import OrderRecord, TradeRecord
from tests.live.helpers import SECRET

SYMBOL, INTERVAL, LABEL, KEY, SEED = "PFX/BTC", "5m", "#1 partial", "partial", 10
MS = 1_000_000
FAST = CallSettings(timeout_ms=2000, recv_window_ms=300, margin_ms=100, backoff_s=(0.05, 0.2))
FEE = 0.001
# (open, high, low, close) per 5m bar; bars 0-2 are history, the entry fills at bar 3's open
BARS = [(0.5, 0.5, 0.5, 0.5)] * 4 + [
    (0.5, 0.75, 0.5, 0.5),  # 4: the target (0.625) is reached: a part fills
    (0.5, 0.5, 0.5, 0.5),  # 5: nothing: the remainder rests, protected
    (0.5, 0.75, 0.5, 0.5),  # 6: the target again: a part of the remainder
    (0.5, 0.5, 0.5, 0.5),  # 7
    (0.5, 0.5, 0.125, 0.25),  # 8: through the stop (0.25): the rest is sold there
    (0.25, 0.25, 0.25, 0.25),  # 9
]
PARTS = [(4.0, 0.625), (2.0, 0.625)]  # seed 10's parts of the target, then the stop's 4
LAST = (4.0, 0.25)


def frame() -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(BARS), freq="5min", tz="UTC", name="timestamp")
    data = pd.DataFrame(BARS, index=index, columns=["open", "high", "low", "close"])
    return data.assign(volume=1000.0)


@contextlib.contextmanager
def partial_exchange(monkeypatch: pytest.MonkeyPatch) -> Iterator[ExchangeThread]:
    """The local exchange on a free loopback port, filling resting limits in part (seed 10),
    three bars closed; stopped on leaving (also on failure)."""
    monkeypatch.setenv("RAYTRADER_BINANCE_API_KEY", KEY)
    monkeypatch.setenv("RAYTRADER_BINANCE_API_SECRET", SECRET)
    market = ReplayMarket()
    market.add(SYMBOL, INTERVAL, frame())
    market.limits[SYMBOL] = (1.0, 1.0)  # LOT_SIZE: whole units
    market.start_at(None)
    plan = FaultPlan(FaultSpec(partial_fill=1.0), seed=SEED)
    with ExchangeThread(market, {"BTC": 100.0}, faults=plan) as ex:
        ex.step(3)
        yield ex


@pytest.fixture
def exchange(monkeypatch):
    with partial_exchange(monkeypatch) as ex:
        yield ex


class Loop:
    """The live node's routing, in miniature: the order manager's orders go to the broker after
    its store committed (write-ahead), the broker's events back to the order manager."""

    def __init__(self, db: str, broker: CcxtBroker) -> None:
        self.store = SqlOrderStore(db, stable=True, exchange="binance", autocommit=False)
        self.manager = OrderManager(self.store)
        self.broker = broker
        self.events: list = []

    async def deliver(self, messages: list) -> None:
        while messages:
            out: list = []
            for msg in messages:  # orders placed again at a restart go straight out
                orders = (SubmitOrder, CancelOrder)
                out.extend([msg] if type(msg) in orders else self.manager.handle(msg))
            self.store.flush()  # before anything it emitted can be sent
            self.events.extend([*messages, *out])
            orders = [m for m in out if type(m) in (SubmitOrder, CancelOrder)]
            messages = await self.broker.handle_batch(orders) if orders else []

    async def bar(self, ex: ExchangeThread) -> None:
        ex.step(1)
        now = ex.exchange.market.now_ms * MS
        bar = BarClosed(now, SYMBOL, INTERVAL, now - 300_000 * MS, 0.5, 0.5, 0.5, 0.5, 1.0)
        await self.deliver(await self.broker.handle_batch([bar]))


def scenario(
    ex: ExchangeThread,
    db: str,
    bars: int,
    patch: Callable | None = None,
    then: Callable | None = None,
) -> Loop:
    async def go() -> Loop:
        broker = CcxtBroker("binance", ex.url, {LABEL: (SYMBOL, INTERVAL)}, db, calls=FAST)
        if patch is not None:
            patch(broker)
        await broker.start()
        loop = Loop(db, broker)
        try:
            ts = ex.exchange.market.now_ms * MS
            exits = ExitSpec(stop_distance=0.25, target_distance=0.125)
            await loop.deliver([OpenTrade(ts, 1, LABEL, SYMBOL, INTERVAL, Side.LONG, 10.0, exits)])
            for _ in range(bars):
                await loop.bar(ex)
            if then is not None:
                await then(loop)
        finally:
            await broker.stop()
        return loop

    return asyncio.run(go())


def rows(db: str) -> tuple[list[OrderRecord], list[TradeRecord]]:
    with session_scope(db) as session:
        orders = session.exec(select(OrderRecord).order_by(OrderRecord.created_at)).all()
        trades = session.exec(select(TradeRecord)).all()
        return list(orders), list(trades)


def mismatches(ex: ExchangeThread, db: str) -> list[str]:
    """The database against the exchange (through the real ccxt client): every order's filled
    quantity, the open trade's remaining position protected by a stop of that size, the
    account's coins all in the database's open trades."""
    client = rest_client("binance", ex.url, (KEY, SECRET))
    at_exchange = {o["clientOrderId"]: o for o in client.fetch_orders(SYMBOL)}
    orders, trades = rows(db)
    out = []
    for row in orders:
        held = at_exchange.get(row.id)
        if held is not None and float(held["filled"]) != row.filled_quantity:
            out.append(f"{row.id}: filled {row.filled_quantity}, exchange {held['filled']}")
    open_qty = math.fsum(
        t.quantity - (t.exited_quantity or 0.0) for t in trades if t.status == TradeStatus.ACTIVE
    )
    coins = float(client.fetch_balance()["total"].get("PFX") or 0.0)
    if coins != open_qty:
        out.append(f"the account holds {coins} PFX, the open trades {open_qty}")
    stops = [o for o in at_exchange.values() if o["status"] == "open" and o["type"] != "limit"]
    stop_qty = math.fsum(float(o["amount"]) - float(o["filled"]) for o in stops)
    if open_qty and stop_qty != open_qty:
        out.append(f"the open position {open_qty} has stops for {stop_qty}")
    return out


def test_a_partly_filled_target_leaves_the_rest_protected(exchange, sqlite_url) -> None:
    loop = scenario(exchange, sqlite_url, bars=3)  # bars 3, 4 and 5 closed
    assert mismatches(exchange, sqlite_url) == []
    parts = [e for e in loop.events if type(e) is OrderPartiallyFilled]
    assert [(p.quantity, p.price) for p in parts] == [PARTS[0]]
    orders, trades = rows(sqlite_url)
    (trade,) = trades
    assert (trade.status, trade.quantity, trade.exited_quantity) == (TradeStatus.ACTIVE, 10.0, 4.0)
    by_role = {}
    for row in orders:
        by_role.setdefault(row.role, []).append(row)
    old_tp, new_tp = by_role["take_profit"]
    assert (old_tp.status, old_tp.filled_quantity, old_tp.avg_fill_price) == (
        OrderStatus.CANCELLED,
        4.0,
        0.625,
    )
    assert old_tp.fee == pytest.approx(4 * 0.625 * FEE, rel=1e-12)
    old_sl, new_sl = by_role["stop_loss"]
    assert old_sl.status == OrderStatus.CANCELLED and old_sl.filled_quantity == 0.0
    # the remainder: a new stop and target of 6 at the same levels, under new client ids
    for new, old in ((new_sl, old_sl), (new_tp, old_tp)):
        assert (new.status, new.quantity) == (OrderStatus.SUBMITTED, 6.0)
        assert (new.stop_price, new.price) == (old.stop_price, old.price)
        assert new.id != old.id and new.exchange_order_id
    client = rest_client("binance", exchange.url, (KEY, SECRET))
    stop = client.fetch_order(new_sl.exchange_order_id, SYMBOL)
    assert (stop["status"], stop["amount"], stop["stopPrice"]) == ("open", 6.0, 0.25)
    cids = [o["clientOrderId"] for o in client.fetch_orders(SYMBOL)]
    assert len(cids) == len(set(cids)) == 5  # entry, 2 legs, 2 legs again: none sent twice


def test_the_trade_closes_flat_with_the_exact_sum_of_its_parts(exchange, sqlite_url) -> None:
    loop = scenario(exchange, sqlite_url, bars=7)
    assert mismatches(exchange, sqlite_url) == []
    parts = [(e.quantity, e.price) for e in loop.events if type(e) is OrderPartiallyFilled]
    assert parts == PARTS
    (last,) = [e for e in loop.events if type(e) is OrderFilled and e.price == LAST[1]]
    assert (last.quantity, last.price) == LAST
    _orders, (trade,) = rows(sqlite_url)
    exits = [*PARTS, LAST]
    fees = [10 * 0.5 * FEE, *(q * p * FEE for q, p in exits)]
    pnl = math.fsum([*(q * p for q, p in exits), -10 * 0.5, *(-f for f in fees)])
    # by hand: 2.5 + 1.25 + 1.0 - 5.0 = -0.25; fees 0.005 + 0.0025 + 0.00125 + 0.001 = 0.00975
    assert pnl == pytest.approx(-0.25975, abs=1e-15)
    assert (trade.status, trade.exit_reason, trade.exited_quantity) == (
        TradeStatus.CLOSED,
        "stop_loss",
        10.0,
    )
    assert trade.pnl == pnl  # exactly: each part's proceeds and fee summed with math.fsum
    assert trade.exit_price == pytest.approx((6 * 0.625 + 4 * 0.25) / 10, rel=1e-15)
    assert trade.fees == pytest.approx(math.fsum(fees), rel=1e-12)
    client = rest_client("binance", exchange.url, (KEY, SECRET))
    assert not client.fetch_open_orders(SYMBOL)  # flat: nothing left resting


def test_treating_the_first_part_as_the_whole_fill_fails_the_check(exchange, sqlite_url) -> None:
    """The broken broker: a part reported as the order's fill (the trade closes at the first
    part; the rest of the position is at the exchange, unprotected and unknown)."""

    def broken(broker: CcxtBroker) -> None:
        new_parts = broker._new_parts

        async def as_full(oid, rest):
            events = await new_parts(oid, rest)
            return [OrderFilled(e.ts, e.order_id, e.price, e.quantity, e.fee) for e in events]

        broker._new_parts = as_full

    scenario(exchange, sqlite_url, bars=3, patch=broken)
    found = mismatches(exchange, sqlite_url)
    assert any("the account holds 6.0 PFX, the open trades 0" in m for m in found), found


def test_an_exit_at_market_sells_only_what_a_late_part_left(exchange, sqlite_url) -> None:
    """Bar 6 fills 2 of the rest's 6 before the exit by signal cancels the target (not yet
    polled): the cancel reads the part, the market exit sells the 4 left at bar 7's open (0.5)."""

    async def exit_by_signal(loop: Loop) -> None:
        exchange.step(1)  # bar 6 closes: the exchange fills 2 of 6; the broker has not polled
        ts = exchange.exchange.market.now_ms * MS
        await loop.deliver([CloseTrade(ts, 1, OrderRole.SIGNAL)])

    loop = scenario(exchange, sqlite_url, bars=3, then=exit_by_signal)
    assert mismatches(exchange, sqlite_url) == []
    assert [(e.quantity, e.price) for e in loop.events if type(e) is OrderPartiallyFilled] == PARTS
    (closed,) = [e for e in loop.events if type(e) is TradeClosed]
    # by hand: 2.5 + 1.25 + 4 * 0.5 - 5.0 = 0.75; fees 0.005 + 0.0025 + 0.00125 + 0.002
    assert closed.pnl == pytest.approx(0.73925, abs=1e-15)
    assert (closed.exit_reason, closed.quantity) == (OrderRole.SIGNAL, 10.0)
    client = rest_client("binance", exchange.url, (KEY, SECRET))
    assert not client.fetch_open_orders(SYMBOL)
    assert float(client.fetch_balance()["total"].get("PFX") or 0.0) == 0.0  # flat
