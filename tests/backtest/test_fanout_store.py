"""`backtest --all` ships a batch's trades as one frame (BatchOutcomes) and stores the batch in
one transaction: the stored rows are those of storing each run with its own labelled trades."""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd

from backtest import fanout_io
from backtest.run import BacktestConfig, run_backtest
from store.bar_files import read_bar_file
from store.runs import RUN_INDEX, completed_run_keys, load_runs, load_trades, save_backtest_run
from strategies.sr_breakout import SRBreakout

DATA = Path(__file__).resolve().parents[2] / "data" / "sample" / "ETH_BTC-5m.csv.gz"


def _outcomes() -> tuple[list[dict], list[pd.DataFrame | None]]:
    """Three real runs, the middle one failed (no trades), labelled with a user file's name."""
    bars, _ = read_bar_file(DATA, "5m")
    outcomes, trades = [], []
    for i, lookback in enumerate((10, None, 30)):
        result = None
        if lookback is not None:
            result = run_backtest(
                SRBreakout(lookback=lookback), bars, "ETH/BTC", "5m", BacktestConfig()
            )
        run = {
            "run_id": f"run{i}",
            "run_key": f"key{i}",
            "instance_id": i,
            "strategy": "mine.py:Mine",
            "symbol": "ETH/BTC",
            "interval": "5m",
            "params": {"lookback": lookback},
            "start": bars.index[0],
            "end": bars.index[-1],
            "bars": len(bars),
            "status": "done" if result else "failed",
            "error": None if result else "ValueError: boom",
            "metrics": dict(result.metrics) if result else {},
            "engine_version": "t",
        }
        outcomes.append({"run": run})
        trades.append(None if result is None else result.trades)
    return outcomes, trades


def test_one_frame_per_batch_stores_what_one_frame_per_run_did(tmp_path) -> None:
    outcomes, trades = _outcomes()
    frame = fanout_io.batch_trades(trades, ["mine.py:Mine"] * 3)
    assert sorted(set(frame[RUN_INDEX])) == [0, 2]  # the failed run has none
    assert set(frame["strategy"]) == {"mine.py:Mine"}  # the instance's name, not the class's
    batch = pickle.loads(pickle.dumps(fanout_io.BatchOutcomes(outcomes, frame)))  # as Ray ships
    assert len(batch) == 3 and [o["run"]["run_id"] for o in batch] == ["run0", "run1", "run2"]
    url, old = f"sqlite:///{tmp_path / 'batch.db'}", f"sqlite:///{tmp_path / 'per_run.db'}"
    fanout_io.store_batch(url, batch)
    fanout_io.store_batch(url, batch)  # a batch stored twice: each run still once
    for outcome, run_trades in zip(outcomes, trades, strict=True):
        labelled = None if run_trades is None else run_trades.assign(strategy="mine.py:Mine")
        save_backtest_run(old, outcome["run"], labelled)  # the previous path, run by run
    assert completed_run_keys(url) == completed_run_keys(old) == {"key0", "key2"}

    def runs(at: str) -> pd.DataFrame:  # created_at differs, and so its order among ties
        return load_runs(at).drop(columns="created_at").sort_values("id", ignore_index=True)

    pd.testing.assert_frame_equal(runs(url), runs(old))
    for run_id in ("run0", "run1", "run2"):
        pd.testing.assert_frame_equal(load_trades(url, run_id), load_trades(old, run_id))
    assert len(load_trades(url, "run0")) == outcomes[0]["run"]["metrics"]["trades"] > 0


def test_a_list_of_outcomes_with_their_own_trades_is_stored_too(tmp_path) -> None:
    outcomes, trades = _outcomes()
    url = f"sqlite:///{tmp_path / 'list.db'}"
    fanout_io.store_batch(url, [{**o, "trades": t} for o, t in zip(outcomes, trades, strict=True)])
    assert completed_run_keys(url) == {"key0", "key2"}
    assert len(load_trades(url, "run2")) == len(trades[2])
