"""Text report: hand-checked monthly/weekly returns and breakdowns; "-" for undefined values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from analysis.report import analyse, breakdown, fmt, monthly_grid, render
from analysis.trades_io import load_trade_set
from tests.analysis.analysis_data import write_backtest_dir, write_simple_trades


@pytest.fixture
def simple(tmp_path: Path):
    # equity rebuilt: 2 backtests x 1,000 = 2,000 -> 2,100 -> 2,050 (Jan) -> 2,080 -> 2,060 (Feb)
    return load_trade_set(write_simple_trades(tmp_path / "trades.csv"), cash=1000.0)


def test_monthly_and_weekly_returns_by_hand(simple) -> None:
    a = analyse(simple)
    assert a.monthly.to_dict() == pytest.approx({"2024-01": 0.025, "2024-02": 2060 / 2050 - 1})
    assert a.weekly.to_dict() == pytest.approx({"2024-W01": 0.025, "2024-W06": 2060 / 2050 - 1})
    grid = monthly_grid(a.monthly)
    assert grid.loc[2024, "Jan"] == pytest.approx(0.025)
    assert grid.loc[2024, "Year"] == pytest.approx(2060 / 2000 - 1)
    assert grid.loc[2024, "Mar"] != grid.loc[2024, "Mar"]  # NaN: no data that month
    assert a.metrics["total_return"] == pytest.approx(0.03)


def test_breakdowns_by_hand(simple) -> None:
    by_strategy = breakdown(simple.trades, "strategy").set_index("strategy")
    assert by_strategy.loc["sr_breakout", "trades"] == 2
    assert by_strategy.loc["sr_breakout", "total_pnl"] == 130.0
    assert pd.isna(by_strategy.loc["sr_breakout", "profit_factor"])  # no losers: undefined
    assert by_strategy.loc["orb", "win_rate"] == 0.0
    assert by_strategy.loc["orb", "profit_factor"] == 0.0
    by_side = breakdown(simple.trades, "side").set_index("side")
    assert by_side.loc["long", "trades"] == 3
    assert by_side.loc["long", "win_rate"] == pytest.approx(2 / 3)
    assert by_side.loc["long", "profit_factor"] == pytest.approx(130 / 20)
    assert by_side.loc["short", "expectancy"] == -50.0
    by_reason = breakdown(simple.trades, "exit_reason").set_index("exit_reason")
    assert by_reason.loc["stop_loss", "total_pnl"] == -70.0
    assert list(by_reason.index)[0] == "stop_loss"  # most trades first


def test_format_undefined_as_dash() -> None:
    assert fmt("profit_factor", None) == "-"
    assert fmt("sharpe", float("nan")) == "-"
    assert fmt("win_rate", 0.5) == "50.00%"
    assert fmt("trades", 1234) == "1,234"
    assert fmt("expectancy", -3.14159) == "-3.14"


def _table_rows(text: str) -> list[list[str]]:
    """The body rows of every rich table in `text`, as lists of stripped cells."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in text.splitlines()
        if line.strip().startswith("│")
    ]


def test_render_shows_the_hand_computed_values(simple) -> None:
    console = Console(width=200, record=True)
    render(simple, analyse(simple), console)
    text = console.export_text()
    for title in (
        "Metrics",
        "Monthly returns",
        "Weekly returns",
        "By strategy",
        "By symbol",
        "By interval",
        "By side",
        "By exit reason",
        "equity rebuilt",
    ):
        assert title in text, title
    assert "2024-01-01T00:00:00Z .. 2024-02-06T06:00:00Z, 4 trades, initial cash 2,000.00" in text
    rows = _table_rows(text)
    # pnl +100 -50 +30 -20 on 2 x 1,000: equity 2,000 -> 2,100 -> 2,050 | 2,080 -> 2,060
    for metric in (
        ["trades", "4"],
        ["win_rate", "50.00%"],
        ["expectancy", "15.00"],  # 60 / 4
        ["avg_win", "65.00"],
        ["avg_loss", "-35.00"],
        ["profit_factor", "1.857"],  # 130 / 70
        ["total_return", "3.00%"],  # 60 / 2,000
        ["max_drawdown", "2.38%"],  # 50 / 2,100
        ["final_equity", "2,060.00"],
        ["best_month", "2.50%"],  # Jan 2,050 / 2,000 - 1
        ["worst_month", "0.49%"],  # Feb 2,060 / 2,050 - 1
    ):
        assert metric in rows, metric
    assert ["2024", "2.5%", "0.5%", *["-"] * 10, "3.0%"] in rows
    assert ["2024-W01", "2024-01-01", "2.50%"] in rows
    assert ["2024-W06", "2024-02-05", "0.49%"] in rows
    # breakdowns: trades, win %, pnl, expectancy, avg win, avg loss, profit factor, payoff
    assert ["orb", "2", "0.00%", "-70.00", "-35.00", "-", "-35.00", "0.000", "-"] in rows
    assert ["sr_breakout", "2", "100.00%", "130.00", "65.00", "65.00", "-", "-", "-"] in rows
    assert ["long", "3", "66.67%", "110.00", "36.67", "65.00", "-20.00", "6.500", "3.250"] in rows
    assert ["short", "1", "0.00%", "-50.00", "-50.00", "-", "-50.00", "0.000", "-"] in rows
    assert ["stop_loss", "2", "0.00%", "-70.00", "-35.00", "-", "-35.00", "0.000", "-"] in rows
    assert ["ETH/BTC", "4", "50.00%", "60.00", "15.00", "65.00", "-35.00", "1.857", "1.857"] in rows


def test_backtest_directory_report_uses_equity_curve(tmp_path: Path) -> None:
    ts = load_trade_set(write_backtest_dir(tmp_path / "run"))
    a = analyse(ts)
    # the curve dips to 900 between entry and exit: seen only because equity.csv is used
    assert a.metrics["max_drawdown"] == pytest.approx(0.1)
    assert a.metrics["total_return"] == pytest.approx(0.1)
    assert a.notes == []
