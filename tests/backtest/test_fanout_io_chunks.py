"""The combined trades CSV of `backtest --all`, written a chunk of runs at a time (the driver
never holds every trade), is byte for byte the CSV of all runs at once."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from backtest import fanout_io
from backtest.run import BacktestConfig, run_backtest
from store.bar_files import read_bar_file
from strategies.sr_breakout import SRBreakout

DATA = Path(__file__).resolve().parents[2] / "data" / "sample" / "ETH_BTC-5m.csv.gz"


@pytest.fixture(scope="module")
def stored_runs(tmp_path_factory):
    """Five real backtests stored in a SQLite file; the last one stored without trades (so the
    last chunk of two runs is empty)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'runs.db'}"
    bars, _ = read_bar_file(DATA, "5m")
    specs = []
    for i, lookback in enumerate((10, 20, 30, 50, 60)):
        result = run_backtest(
            SRBreakout(lookback=lookback), bars, "ETH/BTC", "5m", BacktestConfig()
        )
        spec = SimpleNamespace(run_key=f"key{i}", run_id=f"run{i}", family="sr_breakout")
        run = {
            "run_id": spec.run_id,
            "run_key": spec.run_key,
            "instance_id": None,
            "strategy": "sr_breakout",
            "symbol": "ETH/BTC",
            "interval": "5m",
            "params": result.params,
            "start": result.start,
            "end": result.end,
            "bars": result.bars,
            "status": "done",
            "error": None,
            "metrics": result.metrics,
            "engine_version": "test",
        }
        trades = result.trades if i < 4 else result.trades.iloc[0:0]
        fanout_io.store_batch(url, [{"run": run, "trades": trades}])
        specs.append(spec)
    return url, specs


def test_chunked_trades_csv_equals_one_pass(tmp_path, stored_runs, monkeypatch) -> None:
    url, specs = stored_runs
    _, whole = fanout_io.write_combined(url, tmp_path / "whole", specs, {})
    monkeypatch.setattr(fanout_io, "TRADES_CHUNK_RUNS", 2)
    _, chunked = fanout_io.write_combined(url, tmp_path / "chunked", specs, {})
    assert chunked.read_bytes() == whole.read_bytes()
    trades = pd.read_csv(whole)
    assert trades["run_id"].nunique() == 4
    assert list(trades.columns[-2:]) == ["params", "run_id"]


def test_chunked_separate_dirs_match_the_combined_file(tmp_path, stored_runs, monkeypatch):
    url, specs = stored_runs
    monkeypatch.setattr(fanout_io, "TRADES_CHUNK_RUNS", 2)
    _, combined = fanout_io.write_combined(url, tmp_path, specs, {}, separate=True)
    files = sorted((tmp_path / "runs").glob("*/trades.csv"))
    assert len(files) == len(specs)
    joined = pd.concat([pd.read_csv(f, dtype=str) for f in files], ignore_index=True)
    whole = pd.read_csv(combined, dtype=str)
    key = ["run_id", "trade_id"]
    assert joined.sort_values(key, ignore_index=True).equals(
        whole.sort_values(key, ignore_index=True)
    )
