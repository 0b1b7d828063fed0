"""A batch's orders go out concurrently (live/venues/batches.py, the broker's handle_batch): each
instance's messages in order, the instances side by side, a bar alone, the events in the input's
order. Against the local exchange (real ccxt) with every REST request delayed (`latency_ms`,
localexchange/faults.py): the exchange counts the requests it holds at once. Hand-computed: a
market buy of 4 (the least above the minimum notional of 1) at the open 0.5 fills at 0.5 with a
fee of 0.1 % of 2 = 0.002."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest

import live.venues.broker as broker_module
from actors.messages import (
    CancelOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
    replace,
)
from core.vocabulary import OrderKind, OrderRole, OrderSide
from live.venues.batches import InFlight, run_steps
from live.venues.broker import CcxtBroker
from live.venues.outcomes import CallSettings
from localexchange.faults import FaultPlan, FaultSpec
from localexchange.replay import ReplayMarket
from localexchange.server_thread import ExchangeThread
from tests.live.helpers import KEY, SECRET, bars

SYMBOL, OTHER, INTERVAL, MS = "CCX/BTC", "CCY/BTC", "5m", 1_000_000
FAST = CallSettings(timeout_ms=5000, recv_window_ms=2000, margin_ms=100, backoff_s=(0.05, 0.2))
FEE = 0.002  # 0.1 % of 4 x 0.5


class Counted:
    """The local exchange's REST requests in flight (arrived, not yet answered), per path."""

    def __init__(self, ex: ExchangeThread) -> None:
        self.now = self.most = 0
        self.paths: list[str] = []
        faults = ex.exchange._fault_middleware
        handle = faults.handle

        async def counting(request, handler):
            self.paths.append(request.path)
            self.now += 1
            self.most = max(self.most, self.now)
            try:
                return await handle(request, handler)
            finally:
                self.now -= 1

        faults.handle = counting


@contextlib.contextmanager
def slow_exchange(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ExchangeThread, Counted]]:
    """The local exchange on a free loopback port, every REST request held 100-300 ms (seeded:
    answers come back in another order than the requests went out); stopped on leaving."""
    monkeypatch.setenv("RAYTRADER_BINANCE_API_KEY", KEY)
    monkeypatch.setenv("RAYTRADER_BINANCE_API_SECRET", SECRET)
    market = ReplayMarket()
    for symbol in (SYMBOL, OTHER):
        market.add(symbol, INTERVAL, bars([(0.5, 0.5, 0.5, 0.5)] * 8))
        market.limits[symbol] = (1.0, 1.0)  # LOT_SIZE: whole units
    market.start_at(None)
    plan = FaultPlan(FaultSpec(latency_ms=(100.0, 300.0)), seed=3)
    with ExchangeThread(market, {"BTC": 100.0}, faults=plan) as ex:
        ex.step(3)
        yield ex, Counted(ex)


@pytest.fixture
def exchange(monkeypatch):
    with slow_exchange(monkeypatch) as pair:
        yield pair


def order(ex: ExchangeThread, oid: int, who: str, kind=OrderKind.MARKET, **kw) -> SubmitOrder:
    ts = ex.exchange.market.now_ms * MS
    side, role = kw.pop("side", OrderSide.BUY), kw.pop("role", OrderRole.ENTRY)
    symbol, qty = kw.pop("symbol", SYMBOL), kw.pop("quantity", 4.0)
    return SubmitOrder(ts, oid, who, symbol, side, qty, kind, role, **kw)


def run(ex: ExchangeThread, batches: list[list], in_flight: int | None = None) -> list[list]:
    """Each batch through one broker (started and stopped here): the events of each."""

    async def go() -> list[list]:
        routes = {f"#{k}": (SYMBOL, INTERVAL) for k in range(20)}
        broker = CcxtBroker("binance", ex.url, routes, None, calls=FAST)
        if in_flight is not None:
            broker._in_flight = InFlight(in_flight)
        await broker.start()
        try:
            return [await broker.handle_batch(batch) for batch in batches]
        finally:
            await broker.stop()

    return asyncio.run(go())


def bought(msg: SubmitOrder, fill_ts: int) -> list:
    return [OrderAccepted(msg.ts, msg.order_id), OrderFilled(fill_ts, msg.order_id, 0.5, 4.0, FEE)]


def test_ten_instances_orders_are_at_the_exchange_at_once_and_answered_in_input_order(
    exchange,
) -> None:
    ex, counted = exchange
    batch = [order(ex, 100 + k, f"#{k}") for k in range(10)]
    counted.paths.clear()
    counted.most = 0
    (events,) = run(ex, [batch])
    fill_ts = ex.exchange.market.now_ms * MS  # filled at the open of the bar in progress
    assert events == [e for msg in batch for e in bought(msg, fill_ts)]
    assert counted.most == 10  # all ten held by the exchange at once (sequential: 1)
    # each fee from the order's own answer: no request for the account's trades
    assert "/api/v3/myTrades" not in counted.paths
    assert counted.paths.count("/api/v3/order") == 10


def test_requests_in_flight_are_bounded(exchange) -> None:
    ex, counted = exchange
    batch = [order(ex, 200 + k, f"#{k}") for k in range(8)]
    counted.most = 0
    (events,) = run(ex, [batch], in_flight=3)
    assert counted.most == 3
    assert [type(e) for e in events] == [OrderAccepted, OrderFilled] * 8


def replacement_batches(ex: ExchangeThread) -> tuple[list[list], SubmitOrder]:
    """#0 holds 10 coins offered at 0.75; one batch then cancels that offer and offers them at
    0.7 (a spot sell locks the coins: the new offer is refused while the old one rests), beside
    entries of five other instances on another symbol (on this one they would buy coins the new
    offer could sell, whichever arrived first)."""
    buy = order(ex, 1, "#0", quantity=10.0)
    old = order(ex, 2, "#0", OrderKind.LIMIT, side=OrderSide.SELL, quantity=10.0, price=0.75)
    old = replace(old, role=OrderRole.TAKE_PROFIT, active_from=1)
    new = replace(old, order_id=3, price=0.7, active_from=2)
    others = [order(ex, 10 + k, f"#{k}", symbol=OTHER) for k in range(1, 6)]
    return [[buy], [old], [CancelOrder(old.ts, 2, "replaced"), new, *others]], new


def test_a_cancel_and_its_replacement_keep_their_order(exchange) -> None:
    ex, _counted = exchange
    batches, new = replacement_batches(ex)
    events = run(ex, batches)[2]
    fill_ts = ex.exchange.market.now_ms * MS
    entries = [e for msg in batches[2][2:] for e in bought(msg, fill_ts)]
    assert events == [OrderCancelled(new.ts, 2, "replaced"), *entries, OrderAccepted(new.ts, 3)]


def test_a_replacement_sent_before_its_cancel_is_caught(exchange, monkeypatch) -> None:
    """The deliberately broken broker: each chain's steps in reverse (the new offer before the
    cancel of the old one). The exchange refuses the new offer, and the check above fails."""
    ex, _counted = exchange

    async def reversed_steps(steps, after=None):
        return await run_steps(steps[::-1], after)

    monkeypatch.setattr(broker_module, "run_steps", reversed_steps)
    batches, new = replacement_batches(ex)
    events = run(ex, batches)[2]
    refused = [e for e in events if e.order_id == 3]
    assert len(refused) == 1 and type(refused[0]) is OrderRejected
    assert OrderAccepted(new.ts, 3) not in events


def test_chains_keep_their_order_bars_run_alone_and_results_come_in_step_order() -> None:
    log: list[str] = []

    def step(name: str, delay: float):
        async def work() -> list[str]:
            log.append(f"+{name}")
            await asyncio.sleep(delay)
            log.append(f"-{name}")
            return [name]

        return work

    steps = [
        ("a", step("a1", 0.03)),
        ("b", step("b1", 0.01)),
        ("a", step("a2", 0.0)),
        (None, step("bar", 0.01)),
        ("b", step("b2", 0.0)),
    ]
    stretches: list[int] = []
    out = asyncio.run(run_steps(steps, lambda: stretches.append(len(log))))
    assert out == ["a1", "b1", "a2", "bar", "b2"]
    # a1 and b1 together; a2 only after a1; the bar after both chains and alone; then b2
    assert log == ["+a1", "+b1", "-b1", "-a1", "+a2", "-a2", "+bar", "-bar", "+b2", "-b2"]
    assert stretches == [6, 8, 10]


def test_a_failing_step_lets_the_other_chains_finish_then_raises() -> None:
    done: list[str] = []

    async def fails() -> list:
        raise RuntimeError("boom")

    async def slow() -> list:
        await asyncio.sleep(0.02)
        done.append("b")
        return ["b"]

    async def never() -> list:
        done.append("after")
        return []

    steps = [("a", fails), ("b", slow), ("a", never), (None, never)]
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(run_steps(steps))
    assert done == ["b"]  # b finished; a's next step and the bar after never ran
