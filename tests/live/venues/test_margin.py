"""Shorts on the local exchange's cross margin market, through the unmodified ccxt clients and the
real-mode broker; spot refuses them. One server for the module, on a free loopback port."""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt
import pandas as pd
import pytest
from typer.testing import CliRunner

from actors.messages import BarClosed, OrderAccepted, OrderFilled, OrderRejected, SubmitOrder
from actors.weighted_portfolio import PortfolioMember
from commands.errors import UserError
from live.node import LiveSettings
from live.session import LiveSession
from live.venues.broker import CcxtBroker
from live.venues.ccxt_clients import rest_client
from live.venues.margin import MarginClient, check_market, for_market, short_refusal
from localexchange.server_thread import ExchangeThread
from strategies.registry import make_strategy
from tests.live.helpers import SECRET, T0, bars, market_of, sample
from tests.live.test_parity import FILE as PARITY_FILE
from tests.live.test_parity import RISK, _iso, backtest_trades
from tests.live.test_parity import SYMBOL as PARITY_SYMBOL
from tests.ray_local import RAY_KEY

MS = 1_000_000
STEP_NS = 300 * 10**9
# a 4-bar pattern, repeated: phase 0 quiet at 100; phase 1 opens at 100 and touches 94 and 111;
# phase 2 gaps down to 90; phase 3 drifts. Each test first steps to the phase it starts at.
PATTERN = [(100, 101, 99, 100), (100, 111, 94, 100), (90, 92, 88, 91), (91, 93, 90, 92)]
FUNDING = {"BTC": 1000.0}  # no ETH: on spot, selling ETH would be a short
CROSS = {"marginMode": "cross"}
SYMBOL = "ETH/BTC"


@pytest.fixture(scope="module")
def exchange():
    with ExchangeThread(market_of(bars(PATTERN * 16)), FUNDING) as ex:
        yield ex


def align(ex: ExchangeThread, phase: int) -> int:
    """Step until the bar in progress is at `phase` of the pattern; returns its index."""
    series = ex.exchange.market.finest(SYMBOL)
    while series.forming() % len(PATTERN) != phase:
        ex.step(1)
    return series.forming()


def client(ex: ExchangeThread, key: str):
    c = rest_client("binance", ex.url, (key, SECRET))
    c.load_markets()
    return c


def margin_balance(c) -> tuple[float, ...]:
    """(ETH free, used, debt, BTC free, used, debt) of the key's margin account."""
    b = c.fetch_balance(CROSS)
    return tuple(b[a][k] for a in ("ETH", "BTC") for k in ("free", "used", "debt"))


# -- the exchange: ccxt binance with marginMode cross ----------------------------------------------
def test_a_short_borrows_its_coins_and_the_stop_repays_them(exchange) -> None:
    c = client(exchange, "short-stop")
    align(exchange, 0)  # bar in progress opens at 100
    entry = c.create_order(
        SYMBOL, "market", "sell", 2.0, None, {**CROSS, "sideEffectType": "MARGIN_BUY"}
    )
    assert entry["status"] == "closed" and entry["price"] == 100.0
    assert entry["info"]["marginBuyBorrowAsset"] == "ETH"
    assert entry["info"]["marginBuyBorrowAmount"] == "2"
    # 2 ETH borrowed and sold: 1000 + 200 - 0.2 fee
    assert margin_balance(c) == (0.0, 0.0, 2.0, 1199.8, 0.0, 0.0)
    assert c.fetch_balance()["BTC"]["free"] == 1000.0  # the spot wallet is apart
    c.sapiPostMarginOrderOco(
        {
            "symbol": "ETHBTC",
            "side": "BUY",
            "quantity": "2",
            "price": "95",
            "stopPrice": "110",
            "sideEffectType": "AUTO_REPAY",
            "stopClientOrderId": "m-sl",
            "limitClientOrderId": "m-tp",
        }
    )
    # one lock for both legs: 2 x 110 x 1.001 (the stop leg, the dearer one)
    assert margin_balance(c)[3:] == pytest.approx((979.58, 220.22, 0.0))
    exchange.step(1)  # phase 0 closes inside 99..101: nothing
    assert len(c.fetch_open_orders(SYMBOL, None, None, CROSS)) == 2
    exchange.step(1)  # phase 1 touches 111 and 94: the stop first, at 110; the target expires
    orders = {o["clientOrderId"]: o for o in c.fetch_orders(SYMBOL, None, None, CROSS)}
    assert orders["m-sl"]["status"] == "closed" and orders["m-sl"]["average"] == 110.0
    assert orders["m-tp"]["status"] == "expired"
    # bought back at 110 (220 + 0.22 fee) and the 2 ETH repaid: no debt, loss 20.42 BTC
    assert margin_balance(c) == pytest.approx((0.0, 0.0, 0.0, 979.58, 0.0, 0.0))
    trades = c.fetch_my_trades(SYMBOL, None, None, CROSS)
    assert [(t["side"], t["price"], t["amount"]) for t in trades] == [
        ("sell", 100.0, 2.0),
        ("buy", 110.0, 2.0),
    ]


def test_a_short_closed_by_its_target(exchange) -> None:
    c = client(exchange, "short-target")
    align(exchange, 1)  # bar in progress opens at 100, then touches 94 (and 111)
    c.create_order(SYMBOL, "market", "sell", 1.0, None, {**CROSS, "sideEffectType": "MARGIN_BUY"})
    c.sapiPostMarginOrderOco(
        {
            "symbol": "ETHBTC",
            "side": "BUY",
            "quantity": "1",
            "price": "95",
            "stopPrice": "115",
            "sideEffectType": "AUTO_REPAY",
        }
    )
    exchange.step(1)  # 111 < 115: the stop stays; 94 <= 95: the target buys at 95
    # 1000 + 100 - 0.1, then - 95 - 0.095; 1 ETH repaid
    assert margin_balance(c) == pytest.approx((0.0, 0.0, 0.0, 1004.805, 0.0, 0.0))
    assert c.fetch_open_orders(SYMBOL, None, None, CROSS) == []


def test_cancelling_an_order_that_borrowed_repays_the_loan(exchange) -> None:
    c = client(exchange, "cancel-repays")
    align(exchange, 0)
    stop = c.create_order(
        SYMBOL,
        "market",
        "sell",
        2.0,
        None,
        {**CROSS, "stopLossPrice": 90.0, "sideEffectType": "MARGIN_BUY"},
    )
    assert margin_balance(c)[:3] == (0.0, 2.0, 2.0)  # borrowed when placed, locked for the stop
    c.cancel_order(stop["id"], SYMBOL, CROSS)
    assert margin_balance(c) == (0.0, 0.0, 0.0, 1000.0, 0.0, 0.0)


def test_a_short_on_spot_is_refused_for_insufficient_balance(exchange) -> None:
    c = client(exchange, "spot-short")
    with pytest.raises(ccxt.InsufficientFunds, match="insufficient balance"):  # Binance's -2010
        c.create_order(SYMBOL, "market", "sell", 1.0)
    # on margin too, an order that does not ask to borrow cannot sell coins it lacks
    with pytest.raises(ccxt.InsufficientFunds, match="insufficient balance"):
        c.create_order(SYMBOL, "market", "sell", 1.0, None, CROSS)
    assert margin_balance(c) == (0.0, 0.0, 0.0, 1000.0, 0.0, 0.0)


def test_borrowing_is_limited_to_twice_the_net_equity(exchange) -> None:
    """The broken case: a loan past the limit is refused and nothing changes."""
    c = client(exchange, "borrow-limit")
    align(exchange, 0)  # price 100; net equity 1000 BTC: debts up to 2000 BTC = 20 ETH
    with pytest.raises(ccxt.ExchangeError, match="exceed maximum borrow amount"):
        c.create_order(
            SYMBOL, "market", "sell", 20.5, None, {**CROSS, "sideEffectType": "MARGIN_BUY"}
        )
    assert margin_balance(c) == (0.0, 0.0, 0.0, 1000.0, 0.0, 0.0)
    c.create_order(SYMBOL, "market", "sell", 20.0, None, {**CROSS, "sideEffectType": "MARGIN_BUY"})
    assert margin_balance(c)[:3] == (0.0, 0.0, 20.0)
    # a manual repayment needs the coins: none are free
    with pytest.raises(ccxt.ExchangeError, match="Balance is not enough"):
        c.sapiPostMarginBorrowRepay({"asset": "ETH", "amount": "1", "type": "REPAY"})


def test_a_spot_buy_oco_has_its_stop_above(exchange) -> None:
    """Binance's OCO names its legs by position: a buy's stop is the upper one."""
    c = client(exchange, "spot-buy-oco")
    align(exchange, 0)
    c.privatePostOrderListOco(
        {
            "symbol": "ETHBTC",
            "side": "BUY",
            "quantity": "1",
            "aboveType": "STOP_LOSS",
            "aboveStopPrice": "110",
            "aboveClientOrderId": "b-sl",
            "belowType": "LIMIT_MAKER",
            "belowPrice": "95",
            "belowClientOrderId": "b-tp",
        }
    )
    assert c.fetch_balance()["BTC"]["used"] == pytest.approx(110 * 1.001)
    exchange.step(2)  # phase 1 touches 111 and 94: the stop buys at 110, the limit expires
    orders = {o["clientOrderId"]: o["status"] for o in c.fetch_orders(SYMBOL)}
    assert orders == {"b-sl": "closed", "b-tp": "expired"}
    assert c.fetch_balance()["ETH"]["free"] == 1.0


def test_spot_orders_take_no_side_effect(exchange) -> None:
    c = client(exchange, "spot-side-effect")
    with pytest.raises(ccxt.BadRequest, match="sideEffectType"):
        c.create_order(SYMBOL, "market", "sell", 1.0, None, {"sideEffectType": "MARGIN_BUY"})


# -- the broker on each market ---------------------------------------------------------------------
def submit(
    ts: int,
    oid: int,
    side: str,
    kind: str,
    role: str,
    qty: float,
    price: float | None = None,
    trade: int | None = None,
) -> SubmitOrder:
    return SubmitOrder(
        ts, oid, "inst", SYMBOL, side, qty, kind, role, price, oco=trade, trade_id=trade
    )


def bar_closed(index: int) -> BarClosed:
    o, h, low, c = PATTERN[index % len(PATTERN)]
    open_ns = T0.value + index * STEP_NS
    return BarClosed(open_ns + STEP_NS, SYMBOL, "5m", open_ns, o, h, low, c, 1.0)


async def started(ex: ExchangeThread, market: str, key: str, monkeypatch) -> CcxtBroker:
    monkeypatch.setenv("RAYTRADER_BINANCE_API_KEY", key)
    monkeypatch.setenv("RAYTRADER_BINANCE_API_SECRET", SECRET)
    broker = CcxtBroker("binance", ex.url, {"inst": (SYMBOL, "5m")}, market=market)
    await broker.start()
    return broker


async def short_with_bracket(
    broker: CcxtBroker, ex: ExchangeThread, stop: float, target: float
) -> tuple[int, int, list]:
    """At the next phase-0 bar: a market short of 2 (order 1), then its stop (2) and target (3)
    as trade 1's legs. (bar index, its time, the broker's events so far)."""
    i = align(ex, 0)
    ts = T0.value + i * STEP_NS
    events = await broker.handle_batch([submit(ts, 1, "sell", "market", "entry", 2.0)])
    legs = [
        submit(ts, 2, "buy", "stop", "stop_loss", 2.0, stop, trade=1),
        submit(ts, 3, "buy", "limit", "take_profit", 2.0, target, trade=1),
    ]
    return i, ts, events + await broker.handle_batch(legs)


def test_the_broker_trades_a_short_with_stop_and_target_on_margin(exchange, monkeypatch) -> None:
    async def scenario() -> tuple[list, list, dict]:
        broker = await started(exchange, "margin", "broker-margin", monkeypatch)
        try:
            i, _ts, events = await short_with_bracket(broker, exchange, 110.0, 95.0)
            for k in (i, i + 1):  # phase 0 touches nothing; phase 1: the stop fills at 110
                exchange.step(1)
                events += await broker.handle_batch([bar_closed(k)])
            balance = await broker.client.fetch_balance()
            return events, broker.client.last_http_response, balance
        finally:
            await broker.stop()

    events, _raw, balance = asyncio.run(scenario())
    fills = [(e.order_id, e.price, e.quantity) for e in events if type(e) is OrderFilled]
    assert fills == [(1, 100.0, 2.0), (2, 110.0, 2.0)]
    assert [e.order_id for e in events if type(e) is OrderAccepted] == [1, 2, 3]
    assert (balance["ETH"]["debt"], balance["ETH"]["total"]) == (0.0, 0.0)  # repaid
    assert balance["BTC"]["free"] == pytest.approx(1000 + 200 - 0.2 - 220 - 0.22)
    state = exchange.exchange.engine
    assert state.accounts.get("broker-margin") is None  # nothing touched the spot wallet
    orders = state.margin_accounts["broker-margin"].orders.values()
    assert [(o.type, o.side, o.status) for o in orders] == [
        ("MARKET", "SELL", "FILLED"),
        ("STOP_LOSS", "BUY", "FILLED"),
        ("LIMIT_MAKER", "BUY", "EXPIRED"),
    ]
    assert {o.side_effect for o in orders} == {"AUTO_BORROW_REPAY"}


def test_on_spot_the_broker_refuses_a_short_and_trades_on(exchange, monkeypatch) -> None:
    async def scenario() -> tuple[list, Exception | None, dict]:
        broker = await started(exchange, "spot", "broker-spot", monkeypatch)
        try:
            i = align(exchange, 0)
            ts = T0.value + i * STEP_NS
            events = await broker.handle_batch([submit(ts, 1, "sell", "market", "entry", 1.0)])
            events += await broker.handle_batch([submit(ts, 2, "buy", "market", "entry", 1.0)])
            legs = [
                submit(ts, 3, "sell", "stop", "stop_loss", 1.0, 95.0, trade=1),
                submit(ts, 4, "sell", "limit", "take_profit", 1.0, 110.0, trade=1),
            ]
            events += await broker.handle_batch(legs)  # one OCO: one lock of the 1 ETH
            refused = None
            try:  # a second resting sell of the same coin: the balance check refuses it
                await broker.client.create_order(SYMBOL, "limit", "sell", 1.0, 120.0)
            except ccxt.InsufficientFunds as exc:
                refused = exc
            for k in (i, i + 1):  # phase 1 touches both: the stop first, at 95
                exchange.step(1)
                events += await broker.handle_batch([bar_closed(k)])
            return events, refused, await broker.client.fetch_balance()
        finally:
            await broker.stop()

    events, refused, balance = asyncio.run(scenario())
    rejected = [(e.order_id, e.reason) for e in events if type(e) is OrderRejected]
    assert rejected == [(1, "short on spot market ETH/BTC: use --market margin")]
    assert refused is not None and "insufficient balance" in str(refused)
    fills = [(e.order_id, e.price) for e in events if type(e) is OrderFilled]
    assert fills == [(2, 100.0), (3, 95.0)]
    assert balance["BTC"]["free"] == pytest.approx(1000 - 100 - 0.1 + 95 - 0.095)
    assert balance["ETH"]["total"] == 0.0
    assert exchange.exchange.engine.margin_accounts.get("broker-spot") is None


def test_market_kinds() -> None:
    assert check_market("margin") == "margin"
    with pytest.raises(ValueError, match="--market must be one of spot, margin"):
        check_market("futures")
    entry = submit(0, 1, "sell", "market", "entry", 1.0)
    assert short_refusal("margin", entry) is None
    assert short_refusal("spot", submit(0, 2, "sell", "market", "signal", 1.0)) is None  # an exit
    assert isinstance(for_market(object(), "margin"), MarginClient)


# -- real mode on Ray: a short-capable family on margin trades like the backtest -----------------
REAL_N = 50  # the first 50 NXT/BTC 5m bars: sr_breakout shorts (a stop, a target) and a long


@pytest.fixture(scope="module")
def ray_margin(ray_shared):
    # the session's Ray: the broker reads its keys in the Ray worker, there RAY_KEY
    return ray_shared


@pytest.fixture(scope="module")
def real_runs(ray_margin, tmp_path_factory) -> dict[str, Any]:
    """sr_breakout with shorts, in real mode, on margin and on spot at once: two live nodes (one
    API key: its margin and its spot accounts) on one local exchange, stepped bar by bar."""
    frame = sample(PARITY_FILE, n=REAL_N)
    member = PortfolioMember(
        "sr-short", make_strategy("sr_breakout", {"allow_short": True}), PARITY_SYMBOL, "5m"
    )
    tmp = tmp_path_factory.mktemp("real")
    sessions: dict[str, LiveSession] = {}
    with ExchangeThread(market_of(frame, PARITY_SYMBOL), {"BTC": 10.0}) as ex:
        try:
            for market in ("margin", "spot"):
                db_url = f"sqlite:///{tmp / market}.db"
                settings = LiveSettings(
                    "binance",
                    ex.url,
                    db_url,
                    risk=float(RISK),
                    quiet_s=1.0,
                    real=True,
                    market=market,
                )
                sessions[market] = LiveSession(settings, [member], ray_module=ray_margin)
                sessions[market].start()
            for k in range(1, REAL_N):  # one bar at a time: orders reach the bar in progress
                ex.step(1)
                for session in sessions.values():
                    session.wait_for_bars(k, timeout=60)
            out = {m: (s.trades(), s.orders()) for m, s in sessions.items()}
        finally:
            for session in sessions.values():
                session.stop()
    return {**out, "engine": ex.exchange.engine, "frame": frame, "tmp": tmp}


@pytest.mark.ray
def test_real_mode_shorts_on_margin_trade_like_the_backtest(real_runs) -> None:
    records, _orders = real_runs["margin"]
    frame, engine = real_runs["frame"], real_runs["engine"]
    expected = backtest_trades("sr_breakout", {"allow_short": True}, frame, real_runs["tmp"])
    last_seen = frame.index[REAL_N - 2]
    expected = expected[
        (expected.exit_reason != "end_of_data") & (pd.to_datetime(expected.exit_time) <= last_seen)
    ]
    assert {"long", "short"} <= set(expected.side) and len(expected) >= 3
    got = sorted((t for t in records if t["status"] == "CLOSED"), key=lambda t: t["entry_ts"])
    live = [(_iso(t["entry_ts"]), _iso(t["exit_ts"]), t["side"], t["exit_reason"]) for t in got]
    back = [(r.entry_time, r.exit_time, r.side, r.exit_reason) for r in expected.itertuples()]
    assert live == back
    for t, r in zip(got, expected.itertuples(), strict=True):  # prices at 8 decimals (tick)
        assert t["entry_price"] == pytest.approx(r.entry_price, abs=2e-8)
        assert t["exit_price"] == pytest.approx(r.exit_price, abs=2e-8)
    acct = engine.margin_accounts[RAY_KEY]
    assert {o.side_effect for o in acct.orders.values()} == {"AUTO_BORROW_REPAY"}
    open_trades = [t for t in records if t["status"] == "ACTIVE"]
    if not any(t["side"] == "short" for t in open_trades):  # every short closed: all repaid
        assert acct.debts.get("NXT", 0.0) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.ray
def test_real_mode_on_spot_refuses_the_shorts_and_trades_on(real_runs) -> None:
    records, orders = real_runs["spot"]
    refused = [o for o in orders if o["role"] == "entry" and o["side"] == "sell"]
    assert len(refused) >= 2  # the shorts of the margin run (and re-signals while flat)
    assert {(o["status"], o["reason"]) for o in refused} == {
        ("REJECTED", "short on spot market NXT/BTC: use --market margin")
    }
    closed = [(t["side"], t["exit_reason"]) for t in records if t["status"] == "CLOSED"]
    assert closed == [("long", "stop_loss")]  # the long after them still traded
    spot = real_runs["engine"].accounts[RAY_KEY].orders.values()
    assert {o.side_effect for o in spot} == {"NO_SIDE_EFFECT"}
    sells = [o.type for o in spot if o.side == "SELL"]
    assert sells == ["STOP_LOSS", "LIMIT_MAKER"]  # the long's OCO exit only


def test_an_unknown_market_is_refused_before_anything_runs() -> None:
    from cli import app

    result = CliRunner().invoke(app, ["live", "--market", "futures"])
    assert isinstance(result.exception, UserError)  # cli.py main: one `error:` line, exit 2
    assert (
        str(result.exception)
        == "--market must be spot or margin, got 'futures'; shorts need margin"
    )


def test_the_broker_closes_a_short_by_signal_cancelling_its_legs(exchange, monkeypatch) -> None:
    async def scenario() -> tuple[list, dict]:
        broker = await started(exchange, "margin", "broker-signal-exit", monkeypatch)
        try:
            i, ts, events = await short_with_bracket(broker, exchange, 115.0, 85.0)
            exchange.step(1)  # phase 0: nothing touched
            events += await broker.handle_batch([bar_closed(i)])
            exit_ = submit(ts + STEP_NS, 4, "buy", "market", "signal", 2.0, trade=1)
            events += await broker.handle_batch([exit_])  # at the open of phase 1: 100
            return events, await broker.client.fetch_balance()
        finally:
            await broker.stop()

    events, balance = asyncio.run(scenario())
    assert [(e.order_id, e.price) for e in events if type(e) is OrderFilled] == [
        (1, 100.0),
        (4, 100.0),
    ]
    assert (balance["ETH"]["debt"], balance["ETH"]["total"]) == (0.0, 0.0)
    assert balance["BTC"]["free"] == pytest.approx(1000 + 200 - 0.2 - 200 - 0.2)
    assert balance["BTC"]["used"] == 0.0  # the OCO's lock went with its cancel
    orders = exchange.exchange.engine.margin_accounts["broker-signal-exit"].orders.values()
    assert [o.status for o in orders] == ["FILLED", "CANCELED", "CANCELED", "FILLED"]


def test_every_client_url_points_at_the_local_exchange(exchange) -> None:
    """Nothing can leave the machine: margin (/sapi) and every other API family are rehosted."""

    def urls(tree) -> list[str]:
        if isinstance(tree, dict):
            return [u for v in tree.values() for u in urls(v)]
        return [tree] if isinstance(tree, str) else []

    rest = client(exchange, "urls")
    found = urls(rest.urls["api"])
    assert f"{exchange.url}/sapi/v1" in found
    ws_base = exchange.url.replace("http", "ws", 1)
    assert all(u.startswith((exchange.url, ws_base)) for u in found), found
