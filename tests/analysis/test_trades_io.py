"""Reading and validating trades files: one clear error per problem."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.trades_io import TradesFileError, load_trade_set, read_trades
from tests.analysis.analysis_data import write_backtest_dir, write_simple_trades


def test_reads_full_trades_file(tmp_path: Path) -> None:
    trades = read_trades(write_simple_trades(tmp_path / "trades.csv"))
    assert len(trades) == 4
    assert str(trades["entry_time"].dtype).startswith("datetime64") and trades["pnl"].sum() == 60
    assert trades["entry_time"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")


def test_minimal_user_file_gets_defaults(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("Entry_Time,exit_time,PnL\n2024-01-01 10:00,2024-01-01T12:00:00+02:00,5\n")
    trades = read_trades(path)
    assert trades["strategy"].tolist() == ["-"] and trades["fees"].tolist() == [0.0]
    assert trades["exit_time"].iloc[0] == pd.Timestamp("2024-01-01T10:00", tz="UTC")


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("", "is empty"),
        ("entry_time,exit_time,pnl\n", "no trades"),
        ("entry_time,pnl\n2024-01-01,5\n", "missing column(s) exit_time"),
        ("entry_time,exit_time,pnl\n2024-01-01,yesterday,5\n", "row 2: exit_time 'yesterday'"),
        (
            "entry_time,exit_time,pnl\n2024-01-01,2024-01-02,5\n2024-01-03,2024-01-04,abc\n",
            "row 3: pnl 'abc' is not a number",
        ),
        ("entry_time,exit_time,pnl\n2024-01-02,2024-01-01,5\n", "is before entry_time"),
    ],
)
def test_malformed_files_give_one_clear_line(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(TradesFileError) as info:
        read_trades(path)
    message = str(info.value)
    assert fragment in message and str(path) in message and "\n" not in message


def test_missing_file_and_directory_without_trades(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_trade_set(tmp_path / "nope.csv")
    with pytest.raises(TradesFileError, match="has no trades.csv"):
        load_trade_set(tmp_path)


def test_trades_file_rebuilds_equity_per_backtest(tmp_path: Path) -> None:
    ts = load_trade_set(write_simple_trades(tmp_path / "trades.csv"), cash=1000.0)
    # two strategies (sr_breakout, orb) on one symbol/interval: 2 backtests x 1,000
    assert ts.equity is None and ts.initial_cash == 2000.0
    assert "rebuilt" in ts.notes[0] and "2 backtests" in ts.notes[0]


def test_backtest_directory_uses_equity_and_results_cash(tmp_path: Path) -> None:
    ts = load_trade_set(write_backtest_dir(tmp_path / "run"))
    assert ts.equity is not None and len(ts.equity) == 4
    assert ts.initial_cash == 1000.0 and ts.notes == [] and len(ts.trades) == 1


def _fanout_dir(tmp_path: Path, run_ids: list[str]) -> Path:
    """A `backtest --all` directory: combined trades of runs a1 (sr_breakout) and b2 (orb), and a
    results.csv listing `run_ids` (the last one failed)."""
    out = tmp_path / "all"
    out.mkdir()
    trades = pd.read_csv(write_simple_trades(tmp_path / "simple.csv"))
    trades["params"] = "{}"
    trades["run_id"] = ["a1" if s == "sr_breakout" else "b2" for s in trades["strategy"]]
    trades.to_csv(out / "trades.csv", index=False)
    status = ["done"] * (len(run_ids) - 1) + ["failed"]
    pd.DataFrame({"run_id": run_ids, "status": status}).to_csv(out / "results.csv", index=False)
    return out


def test_fanout_directory_counts_cash_for_every_done_run(tmp_path: Path) -> None:
    """Runs without trades still had their cash: 4 done runs (2 with trades) x 1,000."""
    out = _fanout_dir(tmp_path, ["a1", "b2", "c3", "d4", "e5"])
    for source in (out, out / "trades.csv"):
        ts = load_trade_set(source, cash=1000.0)
        assert ts.initial_cash == 4000.0 and ts.cash_per_run == 1000.0
        assert "4 backtests in results.csv x 1,000.00" in ts.notes[0]


def test_results_csv_of_other_runs_is_ignored(tmp_path: Path) -> None:
    out = _fanout_dir(tmp_path, ["a1", "x9", "y8"])  # b2's trades are not in it
    assert load_trade_set(out, cash=1000.0).initial_cash == 2000.0  # one per instance
