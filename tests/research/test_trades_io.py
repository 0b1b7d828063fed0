"""Reading and validating trades files: one clear error per problem."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from research.trades_io import TradesFileError, load_trade_set, read_trades
from tests.research.analysis_data import write_backtest_dir, write_simple_trades


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
