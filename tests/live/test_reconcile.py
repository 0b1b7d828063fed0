"""Reconciliation at start and every --reconcile-every minutes (real mode, in one process, real
ccxt against the local exchange): what the database does not know is reported and left alone;
a reconciliation that cannot finish stops the start with one clear error."""

from __future__ import annotations

import pandas as pd
import pytest

from live.node import LiveNode, LiveSettings, ReconcileError
from live.server_thread import ExchangeThread
from live.setup import Warmup
from store.db import session_scope
from store.models import OrderRecord
from tests.live.helpers import SECRET, market_of, sample
from tests.live.recovery_driver import INTERVAL, SYMBOL, members
from tests.live.test_recovery import FUNDING, stored


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return sample("NXT_BTC-5m.csv.gz", n=40)


@pytest.fixture
def exchange(frame):
    with ExchangeThread(market_of(frame, SYMBOL), dict(FUNDING)) as ex:
        yield ex


def real_node(db: str, url: str, frame: pd.DataFrame) -> LiveNode:
    settings = LiveSettings("binance", url, db, risk=0.001, real=True, reconcile_every=1e-9)
    return LiveNode(settings, members(), Warmup(frames={(SYMBOL, INTERVAL): frame.iloc[:0]}), None)


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
