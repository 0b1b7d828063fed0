"""Backtest runs with trades in one transaction; a run_key is stored once."""

import json

import pandas as pd
import pytest
from sqlmodel import select

from store.db import session_scope
from store.models import BacktestRun, TradeRecord
from store.runs import (
    RUN_INDEX,
    completed_run_keys,
    load_trades,
    save_backtest_batch,
    save_backtest_run,
)


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


# -- a batch of runs in one transaction (backtest --all) ------------------------------------------
def _tagged(*per_run: pd.DataFrame) -> pd.DataFrame:
    """The trades of a batch's runs in one frame, tagged with the run's position."""
    frames = [t.assign(**{RUN_INDEX: i}) for i, t in enumerate(per_run) if len(t)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({RUN_INDEX: []})


def _stored(url):
    """Every run (id, key, status) and trade (run, trade, pnl) stored, in a stable order."""
    with session_scope(url) as s:
        runs = [(r.id, r.run_key, r.status) for r in s.exec(select(BacktestRun))]
        trades = [(t.run_id, t.trade_id, t.pnl) for t in s.exec(select(TradeRecord))]
    return sorted(runs, key=str), sorted(trades, key=str)


def _trade_table(url, run_id):
    return load_trades(url, run_id).drop(columns=["id"])


def test_a_batch_stores_the_same_rows_as_run_by_run(db_url, tmp_path):
    batch = [_run("r1", "k1"), _failed("r2", "k2"), _run("r3", None), _run("r4", "k4")]
    trades = [TRADES, TRADES.iloc[:0], TRADES.iloc[:1], TRADES.iloc[1:]]
    save_backtest_batch(db_url, batch, _tagged(*trades))
    other = f"sqlite:///{tmp_path / 'per_run.db'}"
    for run, frame in zip(batch, trades, strict=True):
        save_backtest_run(other, run, frame)
    assert _stored(db_url) == _stored(other)
    for run_id in ("r1", "r3", "r4"):
        pd.testing.assert_frame_equal(_trade_table(db_url, run_id), _trade_table(other, run_id))
    assert completed_run_keys(db_url) == {"k1", "k4"}


def test_a_batch_stored_twice_stores_each_run_once(db_url):
    batch = [_run("r1", "k1"), _run("r2", "k2")]
    save_backtest_batch(db_url, batch, _tagged(TRADES, TRADES))
    save_backtest_batch(db_url, batch, _tagged(TRADES, TRADES))
    runs, trades = _stored(db_url)
    assert runs == [("r1", "k1", "done"), ("r2", "k2", "done")]
    assert len(trades) == 4


def test_a_failed_key_is_replaced_and_a_done_one_kept(db_url):
    save_backtest_run(db_url, _failed("r1", "k1"), TRADES.iloc[:1])  # a trade left by the failure
    save_backtest_run(db_url, _run("r2", "k2"), TRADES)
    batch = [_run("r1", "k1"), _failed("r9", "k2"), _run("r3", "k3")]
    save_backtest_batch(db_url, batch, _tagged(TRADES.iloc[1:], TRADES.iloc[:0], TRADES))
    runs, trades = _stored(db_url)
    assert runs == [("r1", "k1", "done"), ("r2", "k2", "done"), ("r3", "k3", "done")]
    assert load_trades(db_url, "r1")["trade_id"].tolist() == ["2"]  # the failure's trade went
    assert len(trades) == 1 + 2 + 2


def test_within_a_batch_a_key_is_stored_as_if_run_by_run(sqlite_url):
    batch = [_failed("a", "k1"), _run("b", "k1"), _failed("c", "k1"), _run("d", "k2")]
    save_backtest_batch(sqlite_url, batch, _tagged(TRADES.iloc[:1], TRADES, TRADES, TRADES))
    runs, trades = _stored(sqlite_url)
    assert runs == [("b", "k1", "done"), ("d", "k2", "done")]  # the retry replaced the failure
    assert sorted(t[0] for t in trades) == ["b", "b", "d", "d"]


def test_an_error_in_the_middle_of_a_batch_leaves_none_of_it(db_url, monkeypatch):
    """Ctrl-C after the run rows were inserted, before the trades: nothing of the batch stays."""
    from store import runs as store_runs

    def interrupted(*_args):
        raise KeyboardInterrupt

    batch = [_run("r1", "k1"), _run("r2", "k2")]
    with monkeypatch.context() as patch:
        patch.setattr(store_runs, "_batch_trade_rows", interrupted)
        with pytest.raises(KeyboardInterrupt):
            save_backtest_batch(db_url, batch, _tagged(TRADES, TRADES))
    assert _stored(db_url) == ([], [])
    save_backtest_batch(db_url, batch, _tagged(TRADES, TRADES))  # the next --all redoes it
    assert completed_run_keys(db_url) == {"k1", "k2"}


def test_the_interruption_check_catches_run_by_run_storing(sqlite_url, monkeypatch):
    """Deliberately broken: one transaction per run (the old way), interrupted at the second
    run, leaves the first stored; the check above would fail on it."""
    from store import runs as store_runs

    real = store_runs._trade_rows

    def second_interrupted(run, trades):
        if run["run_id"] == "r2":
            raise KeyboardInterrupt
        return real(run, trades)

    monkeypatch.setattr(store_runs, "_trade_rows", second_interrupted)
    with pytest.raises(KeyboardInterrupt):
        for run in (_run("r1", "k1"), _run("r2", "k2")):
            save_backtest_run(sqlite_url, run, TRADES)
    assert _stored(sqlite_url) != ([], [])  # a partial batch: what the batch path rules out


def test_a_key_stored_by_another_driver_meanwhile_falls_back_run_by_run(db_url, monkeypatch):
    """A race: the key check sees nothing, but another driver stored k1 before our insert. The
    IntegrityError rolls the batch back and it is stored run by run: nothing lost or doubled."""
    from store import runs as store_runs

    save_backtest_run(db_url, _run("other", "k1"), TRADES)
    monkeypatch.setattr(store_runs, "_claim_keys", lambda _conn, runs: list(range(len(runs))))
    batch = [_run("r2", "k2"), _run("r1", "k1"), _run("r3", "k3")]
    save_backtest_batch(db_url, batch, _tagged(TRADES, TRADES, TRADES.iloc[:1]))
    runs, trades = _stored(db_url)
    assert runs == [("other", "k1", "done"), ("r2", "k2", "done"), ("r3", "k3", "done")]
    assert sorted(t[0] for t in trades) == ["other", "other", "r2", "r2", "r3"]


def test_a_batch_is_one_select_and_two_inserts(db_url):
    """All trades of a batch in one executemany, whatever the number of runs."""
    from sqlalchemy import event

    from store.db import get_engine

    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement.split()[0].upper())

    engine = get_engine(db_url)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        batch = [_run(f"r{i}", f"k{i}") for i in range(20)]
        save_backtest_batch(db_url, batch, _tagged(*[TRADES] * 20))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [s for s in statements if s in ("SELECT", "INSERT", "DELETE")] == [
        "SELECT",
        "INSERT",
        "INSERT",
    ]
    assert len(_stored(db_url)[1]) == 40
