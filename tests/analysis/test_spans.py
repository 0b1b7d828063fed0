"""Annualised metrics need a minimum sample; gaps of no data count neither as time nor as days."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis.metrics import compute_metrics
from analysis.spans import (
    ANNUALISED_KEYS,
    MIN_ANNUALISED_DAYS,
    MIN_DAILY_RETURNS,
    data_gaps,
    elapsed_days,
)


def _curve(start: str, periods: int, freq: str, growth: float, cash: float = 100.0):
    index = pd.date_range(start, periods=periods, freq=freq, tz="UTC")
    noise = np.where(np.arange(periods) % 3 == 0, -0.5, 1.0) * growth
    return pd.DataFrame({"timestamp": index, "equity": cash * np.cumprod(1 + noise)})


def test_thresholds_are_the_documented_ones() -> None:
    assert (MIN_ANNUALISED_DAYS, MIN_DAILY_RETURNS) == (30.0, 20)


def test_two_and_a_half_days_give_no_annualised_figures_but_a_reason() -> None:
    # 2.5 days of 5m bars rising fast: annualised, this was CAGR 42,801 and sortino 1,258
    eq = _curve("2024-01-01", 720, "5min", 0.001)
    m = compute_metrics(None, eq, 100.0)
    for key in ANNUALISED_KEYS:
        assert m[key] is None, key
    assert m["span_days"] == pytest.approx(719 * 5 / 1440)
    assert m["daily_returns"] == 3
    assert "need >= 30 days of data and >= 20 daily returns" in m["annualised_note"]
    assert "this sample has 2.5 days and 3 daily returns" in m["annualised_note"]
    assert m["total_return"] > 0 and m["max_drawdown"] is not None  # the rest still there
    json.dumps(m, allow_nan=False)


def test_forty_days_give_annualised_figures_and_no_note() -> None:
    eq = _curve("2024-01-01", 40, "1D", 0.001)
    m = compute_metrics(None, eq, 100.0)
    assert m["annualised_note"] is None
    assert all(m[key] is not None for key in ANNUALISED_KEYS)
    assert m["span_days"] == 39.0 and m["daily_returns"] == 40


def test_the_boundary_is_inclusive() -> None:
    at = compute_metrics(None, _curve("2024-01-01", 31, "1D", 0.001), 100.0)
    below = compute_metrics(None, _curve("2024-01-01", 30, "1D", 0.001), 100.0)
    assert at["span_days"] == 30.0 and at["sortino"] is not None
    assert below["span_days"] == 29.0 and below["sortino"] is None


def _two_windows() -> pd.DataFrame:
    """Hourly equity over 40 days, then nothing for ~600 days, then 40 more days; the account
    loses 10 % at the end of the first window and regains it 5 days into the second."""
    first = pd.date_range("2018-01-01", periods=40 * 24, freq="1h", tz="UTC")
    second = pd.date_range("2019-09-01", periods=40 * 24, freq="1h", tz="UTC")
    values = np.full(len(first) + len(second), 100.0)
    values[len(first) - 24 : len(first)] = 90.0  # the last day of window 1 under water
    values[len(first) : len(first) + 5 * 24] = 90.0  # still under for 5 days of window 2
    return pd.DataFrame({"timestamp": first.append(second), "equity": values})


def test_a_gap_of_no_data_is_not_time() -> None:
    eq = _two_windows()
    index = pd.DatetimeIndex(eq["timestamp"])
    gaps = data_gaps(index)
    assert gaps == [(index[40 * 24 - 1], index[40 * 24])]
    m = compute_metrics(None, eq, 100.0)
    # under water from the last hour at 100 of window 1 until back at 100: 24 h of window 1
    # plus 5 days of window 2, NOT the ~600 days in between
    assert m["max_drawdown_duration_days"] == pytest.approx(1 + 5)
    assert m["span_days"] == pytest.approx(2 * (40 - 1 / 24))
    assert m["daily_returns"] == 80  # the days in the gap are no days of zero return
    years = m["span_days"] / 365.25
    assert m["cagr"] == pytest.approx(1.0 ** (1 / years) - 1)
    # without gap handling the same curve would report a drawdown of ~600 days
    calendar = elapsed_days(index, skip_gaps=False)
    assert calendar[-1] > 600


def test_a_missing_daily_bar_is_not_a_gap() -> None:
    eq = _curve("2024-01-01", 40, "1D", 0.001).drop(index=[10]).reset_index(drop=True)
    assert data_gaps(pd.DatetimeIndex(eq["timestamp"])) == []
    m = compute_metrics(None, eq, 100.0)
    assert m["span_days"] == 39.0 and m["daily_returns"] == 40  # the day carries its equity


def test_trades_without_a_curve_have_no_gaps() -> None:
    """Equity rebuilt from trade exits is flat between exits: those weeks are time, not gaps."""
    trades = pd.DataFrame(
        {
            "entry_time": ["2024-01-01T00:00:00Z", "2024-02-20T00:00:00Z"],
            "exit_time": ["2024-01-02T00:00:00Z", "2024-02-21T00:00:00Z"],
            "pnl": [10.0, -5.0],
        }
    )
    m = compute_metrics(trades, None, 1000.0)
    assert m["span_days"] == 51.0 and m["annualised_note"] is None
    assert m["sharpe"] == pytest.approx(
        math.sqrt(365) * np.mean(_daily(51)) / np.std(_daily(51)), rel=1e-9
    )


def _daily(days: int) -> list[float]:
    """Daily returns of the trades above: +1 % on day 2, -5/1010 on day 51, zero otherwise."""
    r = [0.0] * (days + 1)
    r[1] = 0.01
    r[51] = -5 / 1010
    return r


def test_backtest_all_summary_never_ranks_a_short_run_best() -> None:
    from rich.console import Console

    from analysis.report import metrics_table, results_summary_table

    short = compute_metrics(None, _curve("2024-01-01", 720, "5min", 0.001), 100.0)
    long = compute_metrics(None, _curve("2024-01-01", 60, "1D", 0.0001), 100.0)
    assert long["sortino"] is not None and long["sortino"] < 1000
    rows = [
        {"strategy": "sr_breakout", "interval": "5m", "status": "done", **m} for m in (short, long)
    ]
    console = Console(width=200, record=True)
    console.print(results_summary_table(pd.DataFrame(rows)))
    text = console.export_text()
    assert f"{long['sortino']:,.3f}" in text
    assert "1 run(s) have no sortino (too short a sample" in text
    console.print(metrics_table(short))
    text = console.export_text()
    assert "- (too short: 2.5 days and 3 daily returns)" in text
