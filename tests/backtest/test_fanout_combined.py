"""fanout_io.combined_trades (a column at a time) writes the same trades CSV bytes as the per-run
frames it replaced (concat_trades(run_trades(...))), on awkward stored trades too."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from backtest import fanout_io

T0 = pd.Timestamp("2024-01-01T00:00Z")


def trades_frame(count: int, open_last: bool, seed: int) -> pd.DataFrame:
    """`count` trades, stored out of entry order, two with the same entry time; the last one
    still open (no exit) when `open_last`."""
    rng = np.random.default_rng(seed)
    entries = [T0 + pd.Timedelta(minutes=5 * int(m)) for m in rng.permutation(count)]
    if count > 2:
        entries[1] = entries[0]  # pyramiding: two entries on the same bar
    frame = pd.DataFrame(
        {
            "trade_id": [str(i + 1) for i in range(count)],
            "side": ["long" if i % 2 else "short" for i in range(count)],
            "entry_time": entries,
            "entry_price": rng.uniform(0.01, 1e5, count),
            "exit_time": [e + pd.Timedelta(minutes=15) for e in entries],
            "exit_price": rng.uniform(0.01, 1e5, count),
            "quantity": rng.uniform(1e-6, 10, count),
            "fees": rng.uniform(0, 1, count),
            "pnl": rng.normal(0, 100, count),
            "return_pct": rng.normal(0, 1, count),
            "exit_reason": ["take_profit" if i % 3 else "stop_loss" for i in range(count)],
        }
    )
    if open_last:
        last = frame.index[-1]
        frame["exit_time"] = frame["exit_time"].astype(object)
        for name in ("exit_time", "exit_price", "pnl", "return_pct", "exit_reason"):
            frame.loc[last, name] = None
    return frame


@pytest.fixture
def stored(db_url: str):
    """Six runs: with trades, with an open trade, without trades, all-open; returns the specs in
    an order other than the stored one."""
    shapes = [(7, False), (5, True), (0, False), (9, False), (1, True), (4, True)]
    specs = []
    for i, (count, open_last) in enumerate(shapes):
        run = {
            "run_id": f"run{i}",
            "run_key": f"key{i}",
            "instance_id": None,
            "strategy": "sr_breakout",
            "symbol": "ETH/BTC" if i % 2 else "LTC/BTC",
            "interval": "5m",
            "params": {"lookback": 10 + i, "sl_pct": 0.01 * (i + 1)},
            "start": T0,
            "end": T0 + pd.Timedelta(days=1),
            "bars": 288,
            "status": "done",
            "error": None,
            "metrics": {"trades": count},
            "engine_version": "test",
        }
        fanout_io.store_batch(db_url, [{"run": run, "trades": trades_frame(count, open_last, i)}])
        specs.append(SimpleNamespace(run_key=f"key{i}"))
    return db_url, [specs[k] for k in (3, 0, 5, 2, 1, 4)]


def test_combined_trades_write_the_bytes_of_the_per_run_frames(stored, tmp_path) -> None:
    url, specs = stored
    runs = fanout_io.load_runs(url, [s.run_key for s in specs])
    new, old = tmp_path / "new.csv", tmp_path / "old.csv"
    fanout_io.combined_trades(url, runs).to_csv(new, index=False)
    fanout_io.concat_trades(fanout_io.run_trades(url, runs)).to_csv(old, index=False)
    assert new.read_bytes() == old.read_bytes()
    text = new.read_text()
    assert text.count("\n") == 1 + 7 + 5 + 9 + 1 + 4
    assert ",,,," in text  # an open trade: empty exit time, price, pnl, return and reason


def test_trades_csv_is_the_same_with_and_without_separate(stored, tmp_path) -> None:
    url, specs = stored
    _, plain = fanout_io.write_combined(url, tmp_path / "plain", specs, {})
    _, separate = fanout_io.write_combined(url, tmp_path / "separate", specs, {}, separate=True)
    assert plain.read_bytes() == separate.read_bytes()


def test_no_trades_at_all_is_the_header_alone(sqlite_url: str, tmp_path) -> None:
    runs = [SimpleNamespace(id="nothing")]
    new = fanout_io.combined_trades(sqlite_url, runs)
    old = fanout_io.concat_trades({})
    assert new.to_csv(index=False) == old.to_csv(index=False)
