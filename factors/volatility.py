"""Volatility factors: true range, ATR and the N-bar range, vectorized over a whole bar frame.

Every value at bar t depends only on bars <= t. Window sums are computed per window (a direct
dot product over exactly the N values of the window), so a value never carries float error from
bars before its window and truncating the data cannot change it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.errors import UserError


class FactorError(UserError):
    """A factor request that cannot be computed (bad window length, missing columns...)."""


def check_window(n: int, name: str, minimum: int = 1) -> int:
    """Validate a window length and return it as a plain int."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise FactorError(
            f"{name}: window length must be an integer >= {minimum}, got {n!r}; "
            f"use e.g. {name}_{max(minimum, 10)}"
        )
    return int(n)


def window_sum(values: np.ndarray, n: int) -> np.ndarray:
    """Sum of the last n values at each position (NaN before a full window).

    np.correlate computes every window as its own dot product, so the result at t depends only on
    values[t-n+1 .. t] (a cumulative sum would carry rounding from the series start and leave
    tiny non-zero residues in flat windows).
    """
    out = np.full(len(values), np.nan)
    if len(values) >= n:
        out[n - 1 :] = np.correlate(values, np.ones(n), "valid")
    return out


def _column(bars: pd.DataFrame, name: str) -> np.ndarray:
    try:
        return bars[name].to_numpy(dtype=np.float64)
    except KeyError:
        raise FactorError(
            f"bar frame has no {name!r} column (columns: {list(bars.columns)}); "
            "a bar frame needs open, high, low, close, volume"
        ) from None


def true_range(bars: pd.DataFrame) -> pd.Series:
    """max(high - low, |high - prev close|, |low - prev close|); the first bar is high - low."""
    high, low, close = _column(bars, "high"), _column(bars, "low"), _column(bars, "close")
    prev_close = np.empty_like(close)
    prev_close[:1] = np.nan
    prev_close[1:] = close[:-1]
    # fmax ignores the NaN previous close of the first bar.
    tr = np.fmax(high - low, np.fmax(np.abs(high - prev_close), np.abs(low - prev_close)))
    return pd.Series(tr, index=bars.index, name="true_range")


def atr(bars: pd.DataFrame, n: int = 14) -> pd.Series:
    """Average true range: simple mean of the true range over the last n bars (NaN before n)."""
    n = check_window(n, "atr")
    tr = true_range(bars).to_numpy()
    return pd.Series(window_sum(tr, n) / n, index=bars.index, name=f"atr_{n}")


def range_n(bars: pd.DataFrame, n: int) -> pd.Series:
    """(max high - min low) / close over the last n bars including t (NaN before n bars)."""
    n = check_window(n, "range")
    high = pd.Series(_column(bars, "high"), index=bars.index)
    low = pd.Series(_column(bars, "low"), index=bars.index)
    # Rolling max/min are exact (no arithmetic), so they are lookahead-safe as they stand.
    span = high.rolling(n, min_periods=n).max() - low.rolling(n, min_periods=n).min()
    return (span / _column(bars, "close")).rename(f"range_{n}")
