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
