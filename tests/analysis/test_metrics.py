"""Every metric against numbers computed by hand, plus the edge cases (no NaN leaks out)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.metrics import (
    CORE_KEYS,
    combine_equity,
    compute_metrics,
    equity_from_trades,
    last_per_day,
    period_returns,
    portfolio_metrics,
)
from analysis.spans import NO_MINIMUM

T = pd.Timestamp


def _equity(rows: list[tuple[str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": [T(ts, tz="UTC") for ts, _ in rows],
            "equity": [v for _, v in rows],
            "cash": [v for _, v in rows],
        }
    )


def _trades(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """(entry_time, exit_time, pnl) rows as the ISO strings of a trades.csv."""
    return pd.DataFrame(
        {
            "entry_time": [a for a, _, _ in rows],
            "exit_time": [b for _, b, _ in rows],
            "pnl": [p for _, _, p in rows],
            "fees": [0.5] * len(rows),
        }
    )


# Initial cash 100. Intraday peak 120 on Sat 2024-03-30, then daily closes 110, 99, 99, 118.8:
# daily returns +0.1, -0.1, 0, +0.2; ISO week 13 (Sat/Sun) and March end at 99 (a loss),
# week 14 and April end at 118.8 (a gain).
EQUITY = _equity(
    [
        ("2024-03-30 12:00", 120.0),
        ("2024-03-30 23:00", 110.0),
        ("2024-03-31 23:00", 99.0),
        ("2024-04-01 23:00", 99.0),
        ("2024-04-02 23:00", 118.8),
    ]
)
# Listed by entry; by exit time the pnls are 10, -5, 0, -3, -2, 8 (T5 exits before T4).
TRADES = _trades(
    [
        ("2024-03-30T12:00:00Z", "2024-03-30T14:00:00Z", 10.0),  # T1
        ("2024-03-30T13:00:00Z", "2024-03-30T20:00:00Z", -5.0),  # T2 overlaps T1: 12-20 = 8h
        ("2024-03-31T00:00:00Z", "2024-03-31T01:00:00Z", 0.0),  # T3: 1h
        ("2024-04-01T00:00:00Z", "2024-04-01T10:00:00Z", -2.0),  # T4: 10h
        ("2024-04-01T05:00:00Z", "2024-04-01T06:00:00Z", -3.0),  # T5 inside T4
        ("2024-04-02T00:00:00Z", "2024-04-02T04:00:00Z", 8.0),  # T6: 4h
    ]
)


@pytest.fixture(scope="module")
def m() -> dict:
    return compute_metrics(TRADES, EQUITY, 100.0, NO_MINIMUM)  # the formulas on 4 days


def test_trade_metrics_by_hand(m: dict) -> None:
    assert m["trades"] == 6
    assert m["wins"] == 2 and m["losses"] == 3
    assert m["win_rate"] == pytest.approx(2 / 6)
    assert m["expectancy"] == pytest.approx(8 / 6)
    assert m["total_pnl"] == pytest.approx(8.0)
    assert m["fees"] == pytest.approx(3.0)
    assert m["avg_win"] == pytest.approx(9.0)
    assert m["avg_loss"] == pytest.approx(-10 / 3)
    assert m["profit_factor"] == pytest.approx(18 / 10)
    assert m["payoff_ratio"] == pytest.approx(9 / (10 / 3))
    # exit order: 10, -5, 0 (ends the streak), -3, -2, 8
    assert m["longest_losing_streak"] == 2
    assert m["longest_winning_streak"] == 1


def test_equity_metrics_by_hand(m: dict) -> None:
    assert m["initial_cash"] == 100.0 and m["final_equity"] == pytest.approx(118.8)
    assert m["total_return"] == pytest.approx(0.188)
    assert m["max_drawdown"] == pytest.approx(1 - 99 / 120)  # intraday peak counts
    assert m["max_drawdown_duration_days"] == pytest.approx(3 + 11 / 24)  # never recovered 120
    # daily returns 0.1, -0.1, 0, 0.2: mean 0.05, population variance 0.0125
    assert m["sharpe"] == pytest.approx(math.sqrt(365) * 0.05 / math.sqrt(0.0125))
    # downside deviation sqrt((0 + 0.01 + 0 + 0) / 4) = 0.05
    assert m["sortino"] == pytest.approx(math.sqrt(365))
    assert m["pct_months_profitable"] == pytest.approx(0.5)
    assert m["pct_weeks_profitable"] == pytest.approx(0.5)
    assert m["best_month"] == pytest.approx(118.8 / 99 - 1)
    assert m["worst_month"] == pytest.approx(99 / 100 - 1)
    span_years = (3 + 11 / 24) / 365.25
    assert m["cagr"] == pytest.approx(1.188 ** (1 / span_years) - 1)
    # union of trade intervals 8 + 1 + 10 + 4 = 23 h over the 83 h span of the curve
    assert m["exposure"] == pytest.approx(23 / 83)
    assert m["volatility"] == pytest.approx(math.sqrt(365) * math.sqrt(0.0125))
    assert m["period_start"] == "2024-03-30T12:00:00Z"
    assert m["period_end"] == "2024-04-02T23:00:00Z"


def assert_strict_json(metrics: dict) -> None:
    """Plain JSON values only (no NaN, no numpy scalars) that read back as the same values."""
    text = json.dumps(metrics, allow_nan=False)
    assert json.loads(text) == metrics
    for key, value in metrics.items():
        assert value is None or type(value) in (int, float, str), (key, type(value))
        assert not isinstance(value, float) or math.isfinite(value), key


def test_all_keys_present_and_json_strict(m: dict) -> None:
    assert set(CORE_KEYS) <= set(m)
    assert_strict_json(m)
    assert m["initial_cash"] == 100.0 and m["final_equity"] == 118.8
    assert type(m["trades"]) is int and type(m["longest_losing_streak"]) is int


# nothing happened: every value is known without computing anything (None where undefined)
NOTHING = {
    "trades": 0,
    "wins": 0,
    "losses": 0,
    "longest_losing_streak": 0,
    "longest_winning_streak": 0,
    "total_return": 0.0,
    "total_pnl": 0.0,
    "fees": 0.0,
    "win_rate": None,
    "expectancy": None,
    "avg_win": None,
    "avg_loss": None,
    "profit_factor": None,
    "payoff_ratio": None,
    "sortino": None,
    "sharpe": None,
}


def test_recovered_drawdown_duration_and_no_false_duration_on_rises() -> None:
    eq = _equity(
        [
            ("2024-01-01 00:00", 100.0),
            ("2024-01-02 00:00", 110.0),  # a plain rise is no drawdown
            ("2024-01-03 00:00", 100.0),
            ("2024-01-05 00:00", 110.0),  # back at the peak after 3 days
            ("2024-01-06 00:00", 120.0),
        ]
    )
    out = compute_metrics(None, eq, 100.0)
    assert out["max_drawdown_duration_days"] == pytest.approx(3.0)
    assert out["max_drawdown"] == pytest.approx(1 - 100 / 110)


def test_days_without_rows_carry_equity() -> None:
    curve = EQUITY.set_index("timestamp")["equity"].drop(EQUITY["timestamp"][3])
    daily = period_returns(curve, 100.0, "day")
    # 2024-04-01 has no row: equity stays 99, return 0
    assert daily.round(10).tolist() == [0.1, -0.1, 0.0, 0.2]


def test_no_trades_no_equity() -> None:
    out = compute_metrics(None, None)
    no_curve = dict.fromkeys(
        (
            "max_drawdown",
            "max_drawdown_duration_days",
            "pct_months_profitable",
            "pct_weeks_profitable",
            "exposure",
            "cagr",
            "best_month",
            "worst_month",
            "volatility",
            "period_start",
            "period_end",
        ),
    )
    too_short = {
        "span_days": 0.0,
        "daily_returns": 0,
        "annualised_note": (
            "sharpe, sortino, cagr and volatility need >= 30 days of data and >= 20 daily returns; "
            "this sample has 0.0 days and 0 daily returns"
        ),
    }
    assert out == {
        **NOTHING,
        **no_curve,
        **too_short,
        "initial_cash": 10_000.0,
        "final_equity": 10_000.0,
    }
    assert_strict_json(out)


def test_no_trades_flat_curve() -> None:
    eq = _equity([("2024-01-01", 1000.0), ("2024-01-02", 1000.0), ("2024-01-03", 1000.0)])
    no_trades = pd.DataFrame(columns=["entry_time", "exit_time", "pnl"])
    out = compute_metrics(no_trades, eq, 1000.0, NO_MINIMUM)
    assert out["trades"] == 0 and out["win_rate"] is None and out["profit_factor"] is None
    assert out["total_return"] == 0.0 and out["max_drawdown"] == 0.0
    assert out["sharpe"] is None and out["sortino"] is None  # zero variance, no downside
    assert out["pct_months_profitable"] == 0.0 and out["exposure"] == 0.0
    assert out["cagr"] == 0.0
    flat = dict.fromkeys(
        (
            "max_drawdown",
            "max_drawdown_duration_days",
            "pct_months_profitable",
            "pct_weeks_profitable",
            "exposure",
            "cagr",
            "best_month",
            "worst_month",
            "volatility",
        ),
        0.0,
    )
    assert out == {
        **NOTHING,
        **flat,
        "initial_cash": 1000.0,
        "final_equity": 1000.0,
        "period_start": "2024-01-01T00:00:00Z",
        "period_end": "2024-01-03T00:00:00Z",
        "span_days": 2.0,
        "daily_returns": 3,
        "annualised_note": None,
    }
    assert_strict_json(out)


def test_only_winners() -> None:
    tr = _trades(
        [
            ("2024-01-01T00:00:00Z", "2024-01-01T12:00:00Z", 100.0),
            ("2024-01-02T00:00:00Z", "2024-01-02T12:00:00Z", 50.0),
            ("2024-01-03T00:00:00Z", "2024-01-03T12:00:00Z", 150.0),
        ]
    )
    out = compute_metrics(tr, None, 1000.0, NO_MINIMUM)
    assert out["win_rate"] == 1.0 and out["avg_loss"] is None
    assert out["profit_factor"] is None and out["payoff_ratio"] is None  # no losses: undefined
    assert out["longest_losing_streak"] == 0 and out["longest_winning_streak"] == 3
    assert out["max_drawdown"] == 0.0 and out["max_drawdown_duration_days"] == 0.0
    # daily returns 0.1, 50/1100, 150/1150: no downside -> sortino undefined, sharpe defined
    assert out["sortino"] is None
    r = [0.1, 50 / 1100, 150 / 1150]
    mean = sum(r) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / 3)
    assert out["sharpe"] == pytest.approx(math.sqrt(365) * mean / std)
    assert out["total_return"] == pytest.approx(0.3)
    assert_strict_json(out)


def test_only_losers() -> None:
    tr = _trades(
        [
            ("2024-01-01T00:00:00Z", "2024-01-01T12:00:00Z", -100.0),
            ("2024-01-02T00:00:00Z", "2024-01-02T12:00:00Z", -100.0),
        ]
    )
    out = compute_metrics(tr, None, 1000.0, NO_MINIMUM)
    assert out["win_rate"] == 0.0 and out["avg_win"] is None and out["avg_loss"] == -100.0
    assert out["profit_factor"] == 0.0 and out["payoff_ratio"] is None
    assert out["longest_losing_streak"] == 2
    assert out["max_drawdown"] == pytest.approx(0.2)
    assert out["pct_months_profitable"] == 0.0 and out["pct_weeks_profitable"] == 0.0
    # daily returns -0.1, -1/9: sortino = sqrt(365)*mean/sqrt(mean(r^2))
    r = [-0.1, -1 / 9]
    assert out["sortino"] == pytest.approx(
        math.sqrt(365) * (sum(r) / 2) / math.sqrt(sum(x * x for x in r) / 2)
    )
    assert_strict_json(out)


def test_one_day_of_data() -> None:
    tr = _trades([("2024-01-01T01:00:00Z", "2024-01-01T13:00:00Z", 10.0)])
    eq = _equity([("2024-01-01 00:00", 1000.0), ("2024-01-01 12:00", 1005.0)])
    out = compute_metrics(tr, eq, 1000.0)
    assert out["sharpe"] is None and out["sortino"] is None  # one daily return
    assert out["pct_months_profitable"] == 1.0 and out["pct_weeks_profitable"] == 1.0
    assert out["total_return"] == pytest.approx(0.005)
    assert out["exposure"] == pytest.approx(12 / 13)  # span runs to the later exit
    assert_strict_json(out)


def test_single_row_equity_and_wiped_out_account() -> None:
    out = compute_metrics(None, _equity([("2024-01-01", 500.0)]), None)
    assert out["initial_cash"] == 500.0 and out["total_return"] == 0.0 and out["cagr"] is None
    out = compute_metrics(None, _equity([("2024-01-01", 100.0), ("2024-01-03", 0.0)]), 100.0)
    assert out["max_drawdown"] == 1.0 and out["total_return"] == -1.0 and out["cagr"] is None
    assert_strict_json(out)


def test_equity_from_trades_by_hand() -> None:
    tr = _trades(
        [
            ("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", 10.0),
            ("2024-01-01T06:00:00Z", "2024-01-02T00:00:00Z", -4.0),  # same exit time: one row
            ("2024-01-03T00:00:00Z", "2024-01-04T00:00:00Z", 5.0),
        ]
    )
    eq = equity_from_trades(tr, 100.0)
    assert eq["timestamp"].tolist() == [
        T("2024-01-01", tz="UTC"),
        T("2024-01-02", tz="UTC"),
        T("2024-01-04", tz="UTC"),
    ]
    assert eq["equity"].tolist() == [100.0, 106.0, 111.0]
    out = compute_metrics(tr, None, 100.0)  # the same curve is built inside
    assert out["final_equity"] == 111.0 and out["period_start"] == "2024-01-01T00:00:00Z"


def test_portfolio_is_combined_trades_and_summed_equity() -> None:
    a_eq = _equity([("2024-01-01", 100.0), ("2024-01-02", 110.0), ("2024-01-03", 90.0)])
    b_eq = _equity([("2024-01-02", 100.0), ("2024-01-03", 130.0)])
    combined = combine_equity([a_eq, b_eq], [100.0, 100.0])
    # b counts with its initial cash before its first row
    assert combined["equity"].tolist() == [200.0, 210.0, 220.0]
    a_tr = _trades([("2024-01-01T00:00:00Z", "2024-01-03T00:00:00Z", -10.0)])
    b_tr = _trades([("2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z", 30.0)])
    out = portfolio_metrics([a_tr, b_tr], [a_eq, b_eq], [100.0, 100.0])
    assert out["trades"] == 2 and out["win_rate"] == 0.5 and out["profit_factor"] == 3.0
    assert out["initial_cash"] == 200.0 and out["total_return"] == pytest.approx(0.1)
    assert out["max_drawdown"] == 0.0
    # without curves the same portfolio is rebuilt from trade exits
    out = portfolio_metrics([a_tr, b_tr], [None, None], [100.0, 100.0])
    assert out["final_equity"] == 220.0


def test_datetime_columns_accepted_as_well_as_strings() -> None:
    tr = TRADES.copy()
    tr["entry_time"] = pd.to_datetime(tr["entry_time"], utc=True)
    tr["exit_time"] = pd.to_datetime(tr["exit_time"]).dt.tz_localize(None)
    assert compute_metrics(tr, EQUITY, 100.0) == compute_metrics(TRADES, EQUITY, 100.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=200),
    st.sampled_from(["ns", "us", "ms"]),
    st.sampled_from(["UTC", None]),
    st.booleans(),
)
def test_last_per_day_is_the_groupby_it_replaces(
    gaps_min: list[int], unit: str, tz: str | None, with_nan: bool
) -> None:
    """Minutes apart (days without rows, times before 1970 included), any unit and zone, a NaN:
    the same Series as `curve.groupby(curve.index.floor("D")).last()`, index and name too."""
    start = -3_000 * 86_400 * 10**9
    ns = start + np.cumsum(np.array(gaps_min, dtype=np.int64)) * 60 * 10**9
    index = pd.DatetimeIndex(ns, tz=tz).as_unit(unit).rename("timestamp")
    values = np.random.default_rng(len(ns)).random(len(ns))
    if with_nan:
        values[len(values) // 2] = np.nan
    curve = pd.Series(values, index=index, name="equity")
    expected = curve.groupby(index.floor("D")).last()
    pd.testing.assert_series_equal(last_per_day(curve), expected)
