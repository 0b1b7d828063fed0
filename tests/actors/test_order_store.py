"""Write-through SQL order store (live) holds what the in-memory store holds."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select

from actors.kernel import run_kernel
from actors.order_store import SqlOrderStore, order_rows
from backtest.run import BacktestConfig
from factors.synthetic import random_walk_bars
from store.db import get_engine
from store.models import OrderRecord, TradeRecord
from strategies.sr_breakout import SRBreakout


def test_sql_store_writes_every_order_and_trade_through(db_url) -> None:
    bars = random_walk_bars(400, "1m", seed=5, volatility=0.004)
    strategy = SRBreakout(allow_short=True, lookback=10)
    store = SqlOrderStore(db_url, prefix="live1", exchange="binance")
    out = run_kernel(strategy, bars, "X", "1m", BacktestConfig(), "fast", order_store=store)
    memory = run_kernel(strategy, bars, "X", "1m", BacktestConfig(), "fast")
    assert out.orders == memory.orders and out.trades == memory.trades
    with get_engine(db_url).connect() as conn:
        orders = pd.DataFrame(conn.execute(select(OrderRecord.__table__)).mappings().all())
        trades = pd.DataFrame(conn.execute(select(TradeRecord.__table__)).mappings().all())
    assert len(orders) == len(memory.orders) and len(trades) == len(memory.trades) >= 3
    by_id = orders.set_index("id")
    for record in memory.orders:
        row = by_id.loc[f"live1:{record['order_id']}"]
        assert row["status"] == record["status"] and row["role"] == record["role"]
        assert row["exchange"] == "binance"
    # every bracket leg and exit points at its trade's entry order, as the bulk rows do
    bulk = {r["id"]: r["parent_id"] for r in order_rows(memory.orders, "live1")}
    legs = orders[orders["role"] != "entry"]
    assert len(legs) >= 3 and legs["parent_id"].notna().all()
    assert {i: by_id.loc[i, "parent_id"] for i in legs["id"]} == {i: bulk[i] for i in legs["id"]}
    assert set(trades["status"]) == {"CLOSED"}
    expected = sorted(t["pnl"] for t in memory.trades)
    assert sorted(trades["pnl"]) == expected


def _order(order_id: int, role: str = "entry", status: str = "NEW", trade_id=None, ts: int = 0):
    from actors.order_manager import OrderState

    side = "buy" if role == "entry" else "sell"
    return OrderState(
        order_id,
        "#1 x",
        "ETH/BTC",
        side,
        "market" if role == "entry" else "stop",
        role,
        1.0,
        None if role == "entry" else 0.9,
        trade_id,
        7,
        ts or 1_700_000_000_000_000_000,
        status,
    )


def test_live_store_ids_are_client_order_ids_written_once_per_flush(db_url) -> None:
    from actors.order_manager import TradeState
    from actors.order_store import client_order_id, order_key

    store = SqlOrderStore(db_url, exchange="binance", stable=True, autocommit=False)
    entry = _order(1)
    store.put_order(entry)
    with get_engine(db_url).connect() as conn:  # nothing written before the flush
        assert conn.execute(select(OrderRecord.__table__)).all() == []
    store.flush()
    cid = client_order_id(order_key("#1 x", "buy", "entry", None), entry.created_ts, "entry")
    # the broker writes the exchange's id; the store's later writes keep it
    with get_engine(db_url).begin() as conn:
        table = OrderRecord.__table__
        conn.execute(table.update().where(table.c.id == cid).values(exchange_order_id="42"))
    entry.status, entry.fill_price, entry.fill_ts = "FILLED", 1.0, entry.created_ts + 300 * 10**9
    store.put_order(entry)
    trade = TradeState(1, 7, "#1 x", "ETH/BTC", "5m", "long", 1.0, entry.fill_ts, 1.0, 0.001)
    entry.trade_id = 1
    store.put_trade(trade)
    leg = _order(2, "stop_loss", trade_id=1, ts=entry.fill_ts)
    store.put_order(leg)
    store.flush()
    with get_engine(db_url).connect() as conn:
        rows = {r.id: r for r in conn.execute(select(OrderRecord.__table__)).all()}
        trades = conn.execute(select(TradeRecord.__table__)).all()
    assert rows[cid].status == "FILLED" and rows[cid].exchange_order_id == "42"
    leg_id = client_order_id(
        order_key("#1 x", "sell", "stop_loss", entry.fill_ts), leg.created_ts, "stop_loss"
    )
    assert rows[leg_id].parent_id == cid and rows[leg_id].status == "NEW"
    assert len(trades) == 1 and trades[0].trade_id == cid and trades[0].status == "ACTIVE"
    # a second session derives the same ids: nothing is stored twice under another name
    again = SqlOrderStore(db_url, exchange="binance", stable=True, autocommit=False)
    assert again.order_id_of(_order(5)) == cid


OLD_TRADES = (
    "CREATE TABLE trades (id {pk}, run_id VARCHAR(64), trade_id VARCHAR(64) NOT NULL, "
    "instance_id INTEGER, strategy VARCHAR(128), exchange VARCHAR(64), symbol VARCHAR(64) NOT "
    "NULL, interval VARCHAR(8), side VARCHAR(8) NOT NULL, status VARCHAR(16), entry_time {ts} "
    "NOT NULL, entry_price FLOAT NOT NULL, exit_time {ts}, exit_price FLOAT, quantity FLOAT NOT "
    "NULL, fees FLOAT, pnl FLOAT, return_pct FLOAT, exit_reason VARCHAR(32))"
)
OLD_ROW = (
    "INSERT INTO trades (trade_id, symbol, side, entry_time, entry_price, quantity) "
    "VALUES ('old', 'X', 'long', '2024-01-01 00:00:00', 1.0, 2.0)"
)


def test_an_older_database_gets_the_new_columns_at_connect(db_url) -> None:
    """A database made before the live marks columns existed still opens and works."""
    from sqlalchemy import create_engine, text

    from store.db import dispose_engines

    dispose_engines()
    raw = create_engine(db_url)
    sqlite = db_url.startswith("sqlite")
    with raw.begin() as conn:  # the trades table as an earlier version made it
        conn.execute(text("DROP TABLE IF EXISTS trades"))
        conn.execute(
            text(
                OLD_TRADES.format(
                    pk="INTEGER PRIMARY KEY" if sqlite else "SERIAL PRIMARY KEY",
                    ts="DATETIME" if sqlite else "TIMESTAMP WITH TIME ZONE",
                )
            )
        )
        conn.execute(text(OLD_ROW))
    raw.dispose()
    with get_engine(db_url).connect() as conn:
        row = conn.execute(select(TradeRecord.__table__)).mappings().one()
    assert row["trade_id"] == "old" and row["mark_price"] is None and "marked_at" in row
