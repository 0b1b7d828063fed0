"""Recovery pieces, in one process (no Ray): a dry run stopped dead and restarted trades exactly
like one that never stopped; marks are written; reconciliation reports what the database does
not know and stops the start with one clear error when it cannot finish."""

from __future__ import annotations

import pandas as pd
import pytest

from actors.messages import BarClosed
from live.node import LiveNode, LiveSettings, ReconcileError
from live.server_thread import ExchangeThread
from live.setup import Warmup
from store.db import session_scope
from store.models import OrderRecord
from tests.live.helpers import SECRET, market_of, sample
from tests.live.recovery_driver import INTERVAL, SYMBOL, members
from tests.live.test_recovery import FUNDING, stored

KEY = (SYMBOL, INTERVAL)
N = 100
STEP_NS = 300 * 10**9


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return sample("NXT_BTC-5m.csv.gz", n=N)


def bars(frame: pd.DataFrame, lo: int, hi: int) -> list[BarClosed]:
    opens = pd.DatetimeIndex(frame.index).as_unit("ns").asi8
    return [BarClosed(int(opens[i]) + STEP_NS, SYMBOL, INTERVAL, int(opens[i]), *map(float, row))
            for i, row in zip(range(lo, hi), frame.iloc[lo:hi].itertuples(index=False), strict=True)]  # fmt: skip


def dry_node(db: str, frame: pd.DataFrame, k: int) -> LiveNode:
    warm = Warmup(frames={KEY: frame.iloc[:k]})
    node = LiveNode(LiveSettings("binance", None, db, risk=0.001), members(), warm, None)
    node.start(stream=False)
    return node


def outcome(db: str) -> list[tuple]:
    _orders, trades = stored(db)
    return sorted((t["strategy"], t["entry_time"], t["entry_price"], t["quantity"], t["status"],
                   t["exit_time"], t["exit_price"], t["exit_reason"]) for t in trades)  # fmt: skip


def test_dry_run_killed_with_a_trade_open_resumes_from_its_records(frame, tmp_path) -> None:
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    node = dry_node(whole, frame, 0)
    node.deliver(bars(frame, 0, N))
    expected = outcome(whole)
    assert len(expected) >= 6
    # stop dead (no stop(), nothing flushed on the way out) while a trade and its legs are open
    trade = next(t for t in expected if t[4] == "CLOSED" and t[5] - t[1] >= pd.Timedelta("10min"))
    k = int(frame.index.get_loc(trade[1])) + 1
    split = f"sqlite:///{tmp_path / 'split.db'}"
    first = dry_node(split, frame, 0)
    first.deliver(bars(frame, 0, k))
    assert any(t["status"] == "ACTIVE" for t in first.trades())
    second = dry_node(split, frame, k)
    assert second.restored.trades and second.restored.orders  # open trade, resting legs
    resting = second.runtime.query("exchange", "exchange", "open_orders")
    assert len(resting) == len(second.restored.orders)
    second.deliver(bars(frame, k, N))
    assert outcome(split) == expected
    second.write_marks()  # the trades still open get their mark at the last close
    _orders, trades = stored(split)
    last = float(frame["close"].iloc[-1])
    for t in (t for t in trades if t["status"] == "ACTIVE"):
        assert t["mark_price"] == last and t["marked_at"] is not None
        assert t["unrealised_pnl"] == pytest.approx(t["quantity"] * (last - t["entry_price"]))


@pytest.fixture
def exchange(frame):
    with ExchangeThread(market_of(frame, SYMBOL), dict(FUNDING)) as ex:
        yield ex


def real_node(db: str, url: str, frame: pd.DataFrame) -> LiveNode:
    settings = LiveSettings("binance", url, db, risk=0.001, real=True, reconcile_every=1e-9)
    return LiveNode(settings, members(), Warmup(frames={KEY: frame.iloc[:0]}), None)


def test_an_exchange_order_the_database_does_not_know_is_reported_and_left(exchange, frame, sqlite_url,
                                                                           monkeypatch) -> None:  # fmt: skip
    from live.ccxt_clients import rest_client

    monkeypatch.setenv("RAYTRADER_BINANCE_API_KEY", "foreign")
    monkeypatch.setenv("RAYTRADER_BINANCE_API_SECRET", SECRET)
    exchange.step(3)
    client = rest_client("binance", exchange.url, ("foreign", SECRET))
    mine = client.create_order(SYMBOL, "limit", "buy", 100.0, 1e-6, {"clientOrderId": "by-hand"})
    node = real_node(sqlite_url, exchange.url, frame)
    node.start(stream=False)
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
        node.stop()
    again = real_node(sqlite_url, exchange.url, frame)  # a restart sees coins it did not buy
    again.start(stream=False)
    again.stop()
    assert any("the account holds 10 NXT, the open trades in the database 0" in w
               for w in again.warnings), again.warnings  # fmt: skip


def test_reconciliation_that_cannot_finish_stops_the_start_with_one_error(exchange, frame, sqlite_url,
                                                                          monkeypatch) -> None:  # fmt: skip
    monkeypatch.setenv("RAYTRADER_BINANCE_API_KEY", "broken")
    monkeypatch.setenv("RAYTRADER_BINANCE_API_SECRET", SECRET)
    label = members()[0].label
    with session_scope(sqlite_url) as session:  # an open order on a market the exchange lacks
        session.add(OrderRecord(id="rt-0-1-en-0", strategy=label, exchange="binance",
                                symbol="DOGE/BTC", side="buy", quantity=1.0,
                                status="SUBMITTED", exchange_order_id="7"))  # fmt: skip
    node = real_node(sqlite_url, exchange.url, frame)
    with pytest.raises(ReconcileError, match="reconciliation with binance failed before trading"):
        node.start(stream=False)
    _orders, trades = stored(sqlite_url)
    account = exchange.exchange.engine.accounts.get("broken")
    assert trades == [] and (account is None or account.orders == {})  # nothing was traded
