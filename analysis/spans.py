"""The time a curve had data, and when annualised figures mean something.

A few days of data annualised give absurd numbers (a 2.5-day run showed CAGR 42,801 and sortino
1,258), so sharpe, sortino, cagr and volatility are left undefined (None) below a minimum sample,
with the reason in the metrics (`annualised_note`):
- MIN_ANNUALISED_DAYS: the time with data, first to last equity row, gaps of no data excluded;
- MIN_DAILY_RETURNS: UTC days with at least one equity row (daily returns behind the ratios).

A gap of no data is a step between two consecutive rows of an equity curve longer than DATA_GAP
and than GAP_STEPS typical (median) steps, in a curve that has one row per bar (a backtest's equity.csv, a portfolio over two data windows
21 months apart). Such a gap is not time the strategy traded: it counts neither in the span, nor
in a drawdown's duration, nor as days of zero return. An equity curve rebuilt from trade exits
(no bar rows) has no gaps: between two exits the equity did not move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_ANNUALISED_DAYS = 30.0  # calendar days with data
MIN_DAILY_RETURNS = 20  # UTC days with at least one equity row
DATA_GAP = pd.Timedelta(days=1)  # longer stretches without a bar row are gaps of no data...
GAP_STEPS = 10  # ...when also longer than this many median steps (a missing daily bar is not)
ANNUALISED_KEYS = ("sharpe", "sortino", "cagr", "volatility")


@dataclass(frozen=True)
class AnnualiseMinimum:
    """Below either threshold the annualised metrics are None (with a note saying why)."""

    days: float = MIN_ANNUALISED_DAYS
    daily_returns: int = MIN_DAILY_RETURNS


DEFAULT_MINIMUM = AnnualiseMinimum()
NO_MINIMUM = AnnualiseMinimum(0.0, 0)  # formulas only (hand-computed tests)


def gap_steps(index: pd.DatetimeIndex) -> np.ndarray:
    """Bool per step between consecutive rows (len - 1): True where the step is a data gap."""
    if len(index) < 2:
        return np.zeros(0, dtype=bool)
    steps = np.diff(pd.DatetimeIndex(index).as_unit("ns").asi8)
    return steps > gap_threshold_ns(steps)


def gap_threshold_ns(steps: np.ndarray) -> float:
    """The step length (ns) above which a step is a gap of no data."""
    typical = float(np.median(steps)) if len(steps) else 0.0
    return max(float(DATA_GAP.value), GAP_STEPS * typical)


def elapsed_days(index: pd.DatetimeIndex, skip_gaps: bool) -> np.ndarray:
    """Days since the first row at each row; with skip_gaps the data gaps count as zero time."""
    if len(index) == 0:
        return np.zeros(0)
    ns = pd.DatetimeIndex(index).as_unit("ns").asi8
    steps = np.diff(ns).astype(np.float64)
    if skip_gaps:
        steps[steps > gap_threshold_ns(steps)] = 0.0
    return np.concatenate(([0.0], np.cumsum(steps))) / pd.Timedelta(days=1).value


def data_gaps(index: pd.DatetimeIndex) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """(last row before, first row after) of every data gap."""
    index = pd.DatetimeIndex(index)
    where = np.flatnonzero(gap_steps(index))
    return [(index[i], index[i + 1]) for i in where]


def outside_gaps(days: pd.DatetimeIndex, index: pd.DatetimeIndex) -> np.ndarray:
    """Bool per calendar day (UTC midnight): False for days wholly inside a gap of no data."""
    keep = np.ones(len(days), dtype=bool)
    for before, after in data_gaps(index):
        keep &= ~((days > before.floor("D")) & (days < after.floor("D")))
    return keep


def annualised_note(span_days: float, daily_returns: int, minimum: AnnualiseMinimum) -> str | None:
    """Why the annualised metrics are undefined, or None when the sample is long enough."""
    if span_days >= minimum.days and daily_returns >= minimum.daily_returns:
        return None
    return (
        f"sharpe, sortino, cagr and volatility need >= {minimum.days:g} days of data and >= "
        f"{minimum.daily_returns} daily returns; this sample has {span_days:.1f} days and "
        f"{daily_returns} daily returns"
    )


def short_reason(note: str | None) -> str:
    """The note in a few words for a table cell, e.g. "2.5 days < 30"."""
    if not note:
        return ""
    has = note.split("this sample has ", 1)[-1]
    return f"too short: {has}"


def exposure(trades: pd.DataFrame, curve: pd.Series) -> float | None:
    """Share of the curve's time span covered by at least one open trade (overlaps count once)."""
    if curve.empty or trades.empty:
        return 0.0 if not curve.empty else None
    start = min(curve.index[0], trades["entry_time"].min())
    end = max(curve.index[-1], trades["exit_time"].max())
    span = (end - start).value
    if span <= 0:
        return None
    # int ns on both sides: parsed times may carry another unit (s, us) than the Timedelta
    entries = trades["entry_time"].dt.as_unit("ns").astype("int64")
    exits = trades["exit_time"].dt.as_unit("ns").astype("int64")
    intervals = sorted(zip(entries, exits, strict=True))
    covered, cur_start, cur_end = 0, None, None
    for a, b in intervals:
        if cur_end is None or a > cur_end:
            covered += 0 if cur_end is None else cur_end - cur_start
            cur_start, cur_end = a, b
        else:
            cur_end = max(cur_end, b)
    covered += cur_end - cur_start
    return covered / span


def max_drawdown_duration(curve: pd.Series, elapsed: np.ndarray | None = None) -> float | None:
    """Longest time in days from a peak until equity is back at it (or until the end of data).

    elapsed: days since the first row at each row (spans.elapsed_days: gaps of no data removed);
    None -> calendar time. Vectorized: a backtest curve has one row per bar.
    """
    if curve.empty:
        return None
    values = curve.to_numpy(dtype=float)
    days = elapsed if elapsed is not None else elapsed_days(curve.index, skip_gaps=False)
    under = values < np.maximum.accumulate(values)
    if not under.any():
        return 0.0
    step = np.diff(np.concatenate(([0], under.astype(np.int8), [0])))
    starts = np.flatnonzero(step == 1)  # first row under water; the peak is the row before
    ends = np.flatnonzero(step == -1)  # first row back at the peak (len(values) = never)
    end_days = days[np.minimum(ends, len(values) - 1)]
    return float((end_days - days[starts - 1]).max())
