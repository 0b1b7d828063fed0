"""Daily context for intraday bars: the previous UTC day's range, return, gap and ATR.

Days are the UTC calendar days present in the data. A day's values become visible only once
that day closed, i.e. from the first bar of the next day present in the data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factors.volatility import FactorError, window_sum

DAILY_ATR_DAYS = 14

DAILY_COLUMNS = (
    "prev_day_high",
    "prev_day_low",
    "prev_day_close",
    "prev_day_range",
    "prev_day_return",
    "day_gap",
    "prev_day_atr",
    "day_open",
    "bar_of_day",
)


def _day_codes(index: pd.Index) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Position of each bar's UTC day among the days present, and those days."""
    if not isinstance(index, pd.DatetimeIndex):
        raise FactorError(
            "daily context needs a DatetimeIndex of bar open times (UTC); "
            "load bars with store.bars.load_bars or a bar file reader"
        )
    days = index.tz_convert("UTC") if index.tz is not None else index.tz_localize("UTC")
    codes, uniques = pd.factorize(days.floor("D"), sort=True)
    return codes, pd.DatetimeIndex(uniques)


def daily_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """One row per UTC day present: first open, max high, min low, last close, bar count."""
    codes, days = _day_codes(bars.index)
    grouped = bars[["open", "high", "low", "close"]].groupby(codes, sort=True)
    daily = grouped.agg({"open": "first", "high": "max", "low": "min", "close": "last"})
    daily["bars"] = grouped.size()
    daily.index = days.rename("day")
    return daily


def _daily_values(daily: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-day values known at the START of each day (everything from completed days)."""
    high, low = daily["high"].to_numpy(), daily["low"].to_numpy()
    close, open_ = daily["close"].to_numpy(), daily["open"].to_numpy()
    prev_close = np.concatenate([[np.nan], close[:-1]])
    tr = np.fmax(high - low, np.fmax(np.abs(high - prev_close), np.abs(low - prev_close)))
    atr = window_sum(tr, DAILY_ATR_DAYS) / DAILY_ATR_DAYS

    def prev(values: np.ndarray) -> np.ndarray:
        return np.concatenate([[np.nan], values[:-1]])

    prev_prev_close = prev(prev_close)
    return {
        "prev_day_high": prev(high),
        "prev_day_low": prev(low),
        "prev_day_close": prev_close,
        "prev_day_range": prev((high - low) / close),
        "prev_day_return": prev_close / prev_prev_close - 1.0,
        "day_gap": open_ / prev_close - 1.0,
        "prev_day_atr": prev(atr),
        "day_open": open_,
    }


def daily_context(bars: pd.DataFrame) -> pd.DataFrame:
    """Daily context aligned to the intraday index (columns: DAILY_COLUMNS).

    prev_day_* describe the previous UTC day present in the data; prev_day_return is its
    close-to-close return; day_gap = today's first open / previous close - 1; prev_day_atr = mean
    daily true range of the last 14 completed days; day_open = today's first open; bar_of_day =
    0-based count of bars since today's first bar.
    """
    columns: dict[str, np.ndarray] = {}
    if len(bars):
        codes, _ = _day_codes(bars.index)
        per_day = _daily_values(daily_bars(bars))
        columns = {name: values[codes] for name, values in per_day.items()}
        starts = np.flatnonzero(np.diff(codes, prepend=-1))
        first_of_day = starts[codes]
        columns["bar_of_day"] = (np.arange(len(bars)) - first_of_day).astype(np.int64)
    else:
        columns = {name: np.empty(0) for name in DAILY_COLUMNS}
    return pd.DataFrame(columns, index=bars.index)[list(DAILY_COLUMNS)]
