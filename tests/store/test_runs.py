"""Backtest runs with trades in one transaction; a run_key is stored once."""

import json

import pandas as pd
from sqlmodel import select

from store.db import session_scope
from store.models import BacktestRun, TradeRecord
from store.runs import completed_run_keys, load_trades, save_backtest_run


def _run(run_id, key):
    return {
        "run_id": run_id,
        "run_key": key,
        "instance_id": None,
        "strategy": "sr_breakout",
        "symbol": "ETH/BTC",
        "interval": "5m",
        "params": {"lookback": 20},
        "start": pd.Timestamp("2018-01-10", tz="UTC"),
        "end": pd.Timestamp("2018-01-30", tz="UTC"),
        "bars": 5760,
        "status": "done",
        "error": None,
        "metrics": {"trades": 2, "sharpe": float("nan")},
        "engine_version": "1",
    }


TRADES = pd.DataFrame(
    {
        "trade_id": [1, 2],
        "strategy": "sr_breakout",
        "symbol": "ETH/BTC",
        "interval": "5m",
        "side": ["long", "short"],
        "entry_time": ["2018-01-10T01:00:00Z", "2018-01-11T01:00:00Z"],
        "entry_price": [0.1, 0.2],
        "exit_time": ["2018-01-10T02:00:00Z", "2018-01-11T03:00:00Z"],
        "exit_price": [0.11, 0.19],
        "quantity": [1.0, 2.0],
        "fees": [0.001, 0.002],
        "pnl": [0.009, 0.018],
        "return_pct": [0.1, 0.05],
        "exit_reason": ["take_profit", "stop_loss"],
    }
)


def test_run_and_trades_saved_once_per_key(db_url):
    save_backtest_run(db_url, _run("r1", "k1"), TRADES)
    save_backtest_run(db_url, _run("r2", "k1"), TRADES)  # same key: no-op
    save_backtest_run(db_url, _run("r3", None), TRADES.iloc[:0])
    assert completed_run_keys(db_url) == {"k1"}
    with session_scope(db_url) as s:
        runs = s.exec(select(BacktestRun).order_by(BacktestRun.id)).all()
        assert [r.id for r in runs] == ["r1", "r3"]
        assert json.loads(runs[0].metrics_json) == {"sharpe": None, "trades": 2}
        assert runs[0].params == {"lookback": 20}
        assert runs[0].start == pd.Timestamp("2018-01-10", tz="UTC")
        assert len(s.exec(select(TradeRecord)).all()) == 2
    trades = load_trades(db_url, "r1")
    assert trades["pnl"].tolist() == [0.009, 0.018]
    assert trades["status"].tolist() == ["CLOSED", "CLOSED"]
    assert trades["exit_reason"].tolist() == ["take_profit", "stop_loss"]


def _failed(run_id, key):
    return {**_run(run_id, key), "status": "failed", "error": "RuntimeError: boom", "metrics": {}}


def test_a_failed_run_is_not_completed_and_its_retry_replaces_it(db_url):
    save_backtest_run(db_url, _failed("r1", "k1"), TRADES.iloc[:1])  # a trade left by the failure
    assert completed_run_keys(db_url) == set()  # failed: run it again
    save_backtest_run(db_url, _failed("r1", "k1"), TRADES.iloc[:0])  # fails again: still one row
    with session_scope(db_url) as s:
        rows = s.exec(select(BacktestRun)).all()
        assert [(r.id, r.status) for r in rows] == [("r1", "failed")]
        assert s.exec(select(TradeRecord)).all() == []  # the old failure's trade went with it
    save_backtest_run(db_url, _run("r1", "k1"), TRADES)  # the retry succeeds
    assert completed_run_keys(db_url) == {"k1"}
    save_backtest_run(db_url, _failed("r9", "k1"), TRADES.iloc[:0])  # done is never overwritten
    with session_scope(db_url) as s:
        rows = s.exec(select(BacktestRun)).all()
        assert [(r.id, r.run_key, r.status, r.error) for r in rows] == [("r1", "k1", "done", None)]
    assert load_trades(db_url, "r1")["trade_id"].tolist() == ["1", "2"]
