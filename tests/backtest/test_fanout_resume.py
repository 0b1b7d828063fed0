"""A `backtest --all` whose runs are all stored: no Ray, no bars loaded, the same outputs."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from backtest import fanout
from backtest.fanout import run_all
from backtest.run import BacktestConfig
from backtest.runkeys import data_range
from factors.synthetic import random_walk_bars
from store import bars as bar_store
from store.bars import bar_range, load_bars, save_bars
from store.instances import add_instance, list_instances
from tests.ray_local import local_test_ray

GRID = ["lookback=10,20", "sl_pct=0.01,0.02"]


@pytest.fixture
def grid_db(sqlite_url: str) -> str:
    """Two 5m series with an sr_breakout instance each on 5m, one also on 15m (resampled)."""
    for seed, symbol in ((1, "AAA/USDT"), (2, "BBB/USDT")):
        save_bars(sqlite_url, "binance", symbol, "5m", random_walk_bars(1_500, "5m", seed=seed))
        add_instance(sqlite_url, "sr_breakout", "binance", symbol, "5m", {"lookback": 20})
    add_instance(sqlite_url, "sr_breakout", "binance", "AAA/USDT", "15m", {"lookback": 20})
    return sqlite_url


@pytest.mark.ray
def test_an_all_stored_resume_starts_no_ray_loads_only_what_it_cannot_count(
    grid_db, tmp_path, monkeypatch
) -> None:
    import ray

    out = tmp_path / "out"
    with local_test_ray():
        first = run_all(grid_db, out, grid=GRID)
    assert (first.total, first.done, first.skipped) == (12, 12, 0)
    results_first = (out / "results.csv").read_text()
    trades_first = (out / "trades.csv").read_bytes()
    assert not ray.is_initialized()

    def no_ray(*args, **kwargs):
        raise AssertionError("an all-stored resume must not start Ray")

    loaded: list[str] = []

    def counted_load(url, exchange, symbol, interval, start=None, end=None):
        loaded.append(f"{symbol} {interval}")
        return load_bars(url, exchange, symbol, interval, start=start, end=end)

    monkeypatch.setattr("cluster.ray_setup.ray_session", no_ray)
    monkeypatch.setattr(fanout, "_run_on_ray", no_ray)
    monkeypatch.setattr(bar_store, "load_bars", counted_load)
    again = run_all(grid_db, out, grid=GRID)
    assert (again.total, again.done, again.skipped) == (12, 0, 12)
    assert not ray.is_initialized()
    assert loaded == ["AAA/USDT 15m"]  # only the resampled series: 5m ones are counted in SQL
    assert (out / "trades.csv").read_bytes() == trades_first
    # results.csv is the same but for node_ip, which names the Ray node of runs computed now
    before = pd.read_csv(io.StringIO(results_first), dtype=str)
    after = pd.read_csv(out / "results.csv", dtype=str)
    assert (before["node_ip"] == "127.0.0.2").all() and after["node_ip"].isna().all()
    pd.testing.assert_frame_equal(before.drop(columns="node_ip"), after.drop(columns="node_ip"))
    third_out = tmp_path / "third"
    run_all(grid_db, third_out, grid=GRID)
    assert (third_out / "results.csv").read_bytes() == (out / "results.csv").read_bytes()
    assert (third_out / "trades.csv").read_bytes() == trades_first


def test_the_counted_range_is_the_loaded_one(db_url: str) -> None:
    bars = random_walk_bars(2_000, "5m", seed=3)
    save_bars(db_url, "binance", "AAA/USDT", "5m", bars.drop(bars.index[100:140]))
    bounds = [
        (None, None),
        ("2024-01-02", None),
        (None, "2024-01-03T10:07"),
        (bars.index[150], bars.index[900]),
    ]
    for start, end in bounds:
        counted = bar_range(db_url, "binance", "AAA/USDT", "5m", start, end)
        loaded = load_bars(db_url, "binance", "AAA/USDT", "5m", start, end)
        assert counted == data_range(loaded)
    # resampled on the fly or nothing in range: the caller loads (and gets load_bars' error)
    assert bar_range(db_url, "binance", "AAA/USDT", "15m") is None
    assert bar_range(db_url, "binance", "AAA/USDT", "5m", "2030-01-01") is None


def test_run_keys_from_counted_ranges_equal_those_from_loaded_bars(grid_db: str) -> None:
    instances = list_instances(grid_db)
    summary = fanout.FanoutSummary()
    frames: dict = {}
    ranges = fanout._series_ranges(grid_db, instances, None, None, summary, frames)
    loaded = {
        key: data_range(load_bars(grid_db, *key))
        for key in {(i.exchange, i.symbol, i.interval) for i in instances}
    }
    assert ranges == loaded and list(frames) == [("binance", "AAA/USDT", "15m")]
    grid = fanout.parse_grid(GRID)
    config = BacktestConfig()
    counted_keys = [s.run_key for s in fanout._build_specs(instances, grid, ranges, config)]
    loaded_keys = [s.run_key for s in fanout._build_specs(instances, grid, loaded, config)]
    assert counted_keys == loaded_keys and len(counted_keys) == 12
