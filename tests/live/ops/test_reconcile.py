"""Reconciliation at start and every --reconcile-every minutes (real mode, in one process, real
ccxt against the local exchange): what the database does not know is reported and left alone;
a reconciliation that cannot finish stops the start with one clear error."""

from __future__ import annotations

import contextlib

import ccxt
import pandas as pd
import pytest

from actors.messages import SubmitOrder
from live.node import LiveSettings, ReconcileError
from live.session import LiveSession
from live.setup import Warmup
from live.venues.outcomes import CallSettings
from localexchange.server_thread import ExchangeThread
from store.db import session_scope
from store.models import OrderRecord
from tests.live.helpers import SECRET, market_of, sample
from tests.live.ops.test_recovery import FUNDING, stored
from tests.live.recovery_driver import INTERVAL, SYMBOL, members


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return sample("NXT_BTC-5m.csv.gz", n=40)


@pytest.fixture
def exchange(frame):
    with ExchangeThread(market_of(frame, SYMBOL), dict(FUNDING)) as ex:
        yield ex


# a short recvWindow: an order not found at a restart is final after 0.4 s, not 6 s (and no
# limiter: bars are stepped far faster than real time, tests/live/recovery_driver.py)
FAST = CallSettings(
    timeout_ms=2_000, recv_window_ms=300, margin_ms=100, backoff_s=(0.05, 0.2), rate_limit=False
)


def real_session(db: str, url: str, frame: pd.DataFrame) -> LiveSession:
    """Real mode in one process, bars handed in, nothing warmed (an audit at every housekeeping)."""
    settings = LiveSettings(
        "binance", url, db, risk=0.001, real=True, reconcile_every=1e-9, calls=FAST
    )
    warm = Warmup(frames={(SYMBOL, INTERVAL): frame.iloc[:0]})
    return LiveSession(settings, members(), warm=warm)


def test_an_exchange_order_the_database_does_not_know_is_reported_and_left(
    exchange, frame, sqlite_url, monkeypatch
) -> None:
    from live.venues.ccxt_clients import rest_client

    monkeypatch.setenv("RAYTRADER_BINANCE_API_KEY", "foreign")
    monkeypatch.setenv("RAYTRADER_BINANCE_API_SECRET", SECRET)
    exchange.step(3)
    client = rest_client("binance", exchange.url, ("foreign", SECRET))
    mine = client.create_order(SYMBOL, "limit", "buy", 100.0, 1e-6, {"clientOrderId": "by-hand"})
    session = real_session(sqlite_url, exchange.url, frame).start()
    node = session.node
    try:
        assert any("by-hand" in w and "not in the database" in w for w in node.warnings)
        assert not any("the account holds" in w for w in node.warnings)  # no NXT yet
        assert client.fetch_order(mine["id"], SYMBOL)["status"] == "open"  # untouched
        # the periodic audit (every --reconcile-every minutes) finds a fill made by hand
        hand = client.create_order(SYMBOL, "market", "buy", 10.0, None, {"clientOrderId": "x-2"})
        node.housekeeping()
        assert any(f"of order {hand['id']} " in w and "left untouched" in w for w in node.warnings)
        assert not any("rt-" in w for w in node.warnings)  # its own orders are never reported
    finally:
        session.stop()
    with real_session(sqlite_url, exchange.url, frame) as again:  # sees coins it did not buy
        warnings = again.take_warnings()
    assert any(
        "the account holds 10 NXT, the open trades in the database 0" in w for w in warnings
    ), warnings


def test_reconciliation_that_cannot_finish_stops_the_start_with_one_error(
    exchange, frame, sqlite_url, monkeypatch
) -> None:
    monkeypatch.setenv("RAYTRADER_BINANCE_API_KEY", "broken")
    monkeypatch.setenv("RAYTRADER_BINANCE_API_SECRET", SECRET)
    label = members()[0].label
    with session_scope(sqlite_url) as session:  # an open order on a market the exchange lacks
        session.add(
            OrderRecord(
                id="rt-0-1-en-0",
                strategy=label,
                exchange="binance",
                symbol="DOGE/BTC",
                side="buy",
                quantity=1.0,
                status="SUBMITTED",
                exchange_order_id="7",
            )
        )
    session = real_session(sqlite_url, exchange.url, frame)
    with pytest.raises(ReconcileError, match="reconciliation with binance failed before trading"):
        session.start()
    _orders, trades = stored(sqlite_url)
    account = exchange.exchange.engine.accounts.get("broken")
    assert trades == [] and (account is None or account.orders == {})  # nothing was traded


def drive_until(session: LiveSession, ex: ExchangeThread, condition) -> None:
    """Close bars one at a time at the exchange and deliver them until `condition()`."""
    from tests.live.recovery_driver import STEP_MS, _bar

    last = -1
    while not condition():
        assert ex.step(1), "the data ended first"
        rows = node_client(ex).fetch_ohlcv(SYMBOL, INTERVAL, last + 1, 1000)
        closed = [r for r in rows if r[0] + STEP_MS <= ex.exchange.market.now_ms]
        session.deliver([_bar(r) for r in closed])
        last = int(closed[-1][0]) if closed else last


def node_client(ex: ExchangeThread):
    from live.venues.ccxt_clients import rest_client

    return rest_client("binance", ex.url, ("lost", SECRET))


def test_a_stop_and_target_cancelled_behind_our_back_are_placed_again(
    exchange, frame, sqlite_url, monkeypatch
) -> None:
    monkeypatch.setenv("RAYTRADER_BINANCE_API_KEY", "lost")
    monkeypatch.setenv("RAYTRADER_BINANCE_API_SECRET", SECRET)
    with real_session(sqlite_url, exchange.url, frame) as session:
        drive_until(
            session, exchange, lambda: any(t["status"] == "ACTIVE" for t in session.trades())
        )
    client = node_client(exchange)
    legs = client.fetch_open_orders(SYMBOL)
    assert {o["clientOrderId"].split("-")[3] for o in legs} == {"sl", "tp"}
    for leg in legs:  # by hand (an OCO list goes as a whole: its sibling is gone already)
        with contextlib.suppress(ccxt.BaseError):
            client.cancel_order(leg["id"], SYMBOL)
    assert client.fetch_open_orders(SYMBOL) == []
    real_session(sqlite_url, exchange.url, frame).start().stop()
    placed = client.fetch_open_orders(SYMBOL)
    orders, trades = stored(sqlite_url)
    rows = {r["id"]: r for r in orders}
    assert len(placed) == len(legs)
    assert {o["id"] for o in placed}.isdisjoint({o["id"] for o in legs})
    for old in legs:  # the cancelled ones are marked so, the new ones stored under their own ids
        assert rows[old["clientOrderId"]]["status"] == "CANCELLED"
    active = {t["trade_id"]: t for t in trades if t["status"] == "ACTIVE"}
    for new in placed:
        row = rows[new["clientOrderId"]]
        assert row["status"] == "SUBMITTED" and row["exchange_order_id"] == str(new["id"])
        assert row["quantity"] == active[row["parent_id"]]["quantity"]
    assert {rows[o["clientOrderId"]]["role"] for o in placed} == {"stop_loss", "take_profit"}


def test_reconcile_decides_from_typed_reports_alone() -> None:
    """No exchange, no broker: each stored order against a hand-made report of it."""
    from actors.messages import (
        OrderAccepted,
        OrderCancelled,
        OrderFilled,
        OrderRejected,
        SubmitOrder,
    )
    from live.ops.reconcile import reconcile
    from live.venues.reports import OrderStatus, OrderStatusReport

    def order(oid: int, kind: str, role: str, trade: int | None) -> SubmitOrder:
        return SubmitOrder(
            10 * oid, oid, "#1 s", SYMBOL, "sell", 1.0, kind, role, 2.0, None, 0, trade, trade
        )

    def report(eid: str, status: OrderStatus, filled_ts: int = 0) -> OrderStatusReport:
        return OrderStatusReport(eid, None, SYMBOL, status, 77, filled_ts, 2.0, 1.0, 0.1)

    stop, target = order(1, "stop", "stop_loss", 5), order(2, "limit", "take_profit", 5)
    lost_stop, lost_target = order(3, "stop", "stop_loss", 6), order(4, "limit", "take_profit", 6)
    entry, exit_leg, orphan = (
        order(5, "market", "entry", None),
        order(6, "stop", "stop_loss", 7),
        order(7, "limit", "take_profit", None),
    )
    stored = [
        ("c1", "e1", stop),
        ("c2", None, target),  # found by its client id: adopted
        ("c3", "e3", lost_stop),
        ("c4", "e4", lost_target),
        ("c5", None, entry),
        ("c6", None, exit_leg),
        ("c7", "e7", orphan),
    ]
    reports = [
        report("e1", OrderStatus.CLOSED, filled_ts=500),
        report("e2", OrderStatus.EXPIRED),  # the OCO sibling of the filled stop
        report("e3", OrderStatus.CANCELED),
        report("e4", OrderStatus.CANCELED),
        None,  # an entry that never left: refused
        None,  # an exit that never left: sent now
        report("e7", OrderStatus.OPEN),  # a leg of a trade already closed: cancelled
    ]
    plan = reconcile(stored, reports)
    assert plan.client_ids == {k: f"c{k}" for k in range(1, 8)}
    assert plan.adopted == [("c2", "e2")] and plan.resend == [exit_leg]
    assert plan.cancels == [("e7", SYMBOL)] and plan.resting == [] and plan.timed == []
    assert plan.lost == [lost_stop, lost_target]  # trade 6: nothing filled, no exit on its way
    accepted = [e.order_id for e in plan.events if type(e) is OrderAccepted]
    assert accepted == [1, 2, 3, 4, 7]
    rest = [(type(e), e.order_id) for e in plan.events if type(e) is not OrderAccepted]
    assert rest == [
        (OrderRejected, 5),  # at its own time (50), after ...
        (OrderCancelled, 7),  # ... (70) the orphan leg
        (OrderCancelled, 2),  # at the exchange's update (77)
        (OrderCancelled, 3),
        (OrderCancelled, 4),
        (OrderFilled, 1),  # the fill at its time (500)
    ]


# -- a NEW / UNKNOWN entry at a restart: asked for by client id, never sent again -------------
ENTRY_CID = "rt-0a0b0c0d-1700000000000-en-0"


def stored_entry(db: str, status: str) -> None:
    """An entry row as a crash leaves it: stored, its exchange id not (never sent, or its
    answer lost)."""
    with session_scope(db) as session:
        session.add(
            OrderRecord(
                id=ENTRY_CID,
                strategy=members()[0].label,
                exchange="binance",
                symbol=SYMBOL,
                side="buy",
                quantity=100.0,
                status=status,
                role="entry",
                created_at=pd.Timestamp("2023-11-14T22:13:20Z").to_pydatetime(),
            )
        )


def check_never_sent(db: str, client) -> None:
    """The entry ends REJECTED and no order exists at the exchange for it (nor any other)."""
    rows = {r["id"]: r for r in stored(db)[0]}
    assert rows[ENTRY_CID]["status"] == "REJECTED", rows[ENTRY_CID]
    assert "never reached the exchange" in rows[ENTRY_CID]["reason"]
    assert client.fetch_orders(SYMBOL) == [], "the entry was sent at the restart"


@pytest.mark.parametrize("status", ["NEW", "UNKNOWN"])
def test_an_entry_the_exchange_never_saw_is_rejected_at_a_restart_not_sent(
    exchange, frame, sqlite_url, monkeypatch, status
) -> None:
    monkeypatch.setenv("RAYTRADER_BINANCE_API_KEY", "lost")
    monkeypatch.setenv("RAYTRADER_BINANCE_API_SECRET", SECRET)
    exchange.step(3)
    stored_entry(sqlite_url, status)
    real_session(sqlite_url, exchange.url, frame).start().stop()
    check_never_sent(sqlite_url, node_client(exchange))


def test_the_never_sent_check_fails_when_the_entry_is_sent_again(
    exchange, frame, sqlite_url, monkeypatch
) -> None:
    """The mutation the probe found unpinned: a restart that re-sends a NEW entry."""
    import live.node
    from live.ops import reconcile as reconcile_module

    def resend_entries(stored, reports, filled=None):
        plan = reconcile_module.reconcile(stored, reports, filled)
        plan.resend += [m for (_c, _e, m), r in zip(stored, reports, strict=True) if r is None]
        plan.events = [e for e in plan.events if type(e).__name__ != "OrderRejected"]
        return plan

    monkeypatch.setattr(live.node, "reconcile", resend_entries)
    monkeypatch.setenv("RAYTRADER_BINANCE_API_KEY", "lost")
    monkeypatch.setenv("RAYTRADER_BINANCE_API_SECRET", SECRET)
    exchange.step(3)
    stored_entry(sqlite_url, "NEW")
    real_session(sqlite_url, exchange.url, frame).start().stop()
    with pytest.raises(AssertionError):
        check_never_sent(sqlite_url, node_client(exchange))


@pytest.mark.parametrize("status", ["NEW", "UNKNOWN"])
def test_an_entry_the_exchange_got_is_adopted_at_a_restart(
    exchange, frame, sqlite_url, monkeypatch, status
) -> None:
    """The crash came after the request left (or its answer was lost): found by client id."""
    monkeypatch.setenv("RAYTRADER_BINANCE_API_KEY", "lost")
    monkeypatch.setenv("RAYTRADER_BINANCE_API_SECRET", SECRET)
    exchange.step(3)
    stored_entry(sqlite_url, status)
    client = node_client(exchange)
    placed = client.create_order(SYMBOL, "market", "buy", 100.0, None, {"clientOrderId": ENTRY_CID})
    real_session(sqlite_url, exchange.url, frame).start().stop()
    orders, trades = stored(sqlite_url)
    row = {r["id"]: r for r in orders}[ENTRY_CID]
    assert row["status"] == "FILLED" and row["exchange_order_id"] == str(placed["id"])
    assert [(t["trade_id"], t["status"], t["quantity"]) for t in trades] == [
        (ENTRY_CID, "ACTIVE", 100.0)
    ]
    assert [o["clientOrderId"] for o in client.fetch_orders(SYMBOL)] == [ENTRY_CID]  # once


def test_replaced_legs_are_committed_before_they_are_sent(sqlite_url) -> None:
    """replace_lost_legs writes the new rows in one committed transaction before it returns the
    orders to send (write-ahead); without its commit the rows are not there yet."""
    from actors.order_manager import OrderManager, TradeState
    from actors.order_store import SqlOrderStore
    from live.ops.recovery import Restored, replace_lost_legs

    def rows_after(flush: bool) -> set[str]:
        store = SqlOrderStore(sqlite_url, exchange="binance", stable=True, autocommit=False)
        if not flush:
            store.flush = lambda: None  # the mutation: nothing committed before the send
        manager = OrderManager(store)
        trade = TradeState(1, -1, "#1 s", SYMBOL, INTERVAL, "long", 100.0, 10**18, 1e-6, 0.0)
        restored = Restored(trades=[trade])
        lost = [
            SubmitOrder(
                10**18,
                1,
                "#1 s",
                SYMBOL,
                "sell",
                100.0,
                "stop",
                "stop_loss",
                5e-7,
                None,
                10**18,
                1,
                1,
            ),
        ]
        sent = replace_lost_legs(manager, restored, lost, 2 * 10**18)
        assert len(sent) == 1 and sent[0].kind == "stop"
        return {r["id"] for r in stored(sqlite_url)[0]}

    assert rows_after(flush=False) == set()  # the check can fail
    committed = rows_after(flush=True)
    assert len(committed) == 1 and next(iter(committed)).endswith("-sl-0")
