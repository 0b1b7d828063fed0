"""Conventions for bar frames and intervals shared by every layer.

A bar frame is a pandas DataFrame indexed by the bar OPEN time (DatetimeIndex, UTC, named
"timestamp"), sorted and unique, with float64 columns open, high, low, close, volume.
Messages carry times as int nanoseconds since the epoch (UTC).
"""

from __future__ import annotations

import pandas as pd

OHLCV = ("open", "high", "low", "close", "volume")

# Intervals the system knows, with their length. Keys are ccxt's spelling.
INTERVALS: dict[str, pd.Timedelta] = {
    "1m": pd.Timedelta(minutes=1),
    "3m": pd.Timedelta(minutes=3),
    "5m": pd.Timedelta(minutes=5),
    "15m": pd.Timedelta(minutes=15),
    "30m": pd.Timedelta(minutes=30),
    "1h": pd.Timedelta(hours=1),
    "4h": pd.Timedelta(hours=4),
    "1d": pd.Timedelta(days=1),
}

# The intervals every strategy family must be valid on.
TRADING_INTERVALS = ("1m", "3m", "5m", "15m", "1h")


class IntervalError(ValueError):
    """An interval name the system does not know."""


def interval_delta(interval: str) -> pd.Timedelta:
    """Length of one bar of `interval`, e.g. "5m" -> 5 minutes."""
    try:
        return INTERVALS[interval]
    except KeyError:
        known = ", ".join(INTERVALS)
        raise IntervalError(f"unknown interval {interval!r}; use one of: {known}") from None


def interval_ns(interval: str) -> int:
    return int(interval_delta(interval).value)
