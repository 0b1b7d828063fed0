"""Conventions for bar frames and intervals shared by every layer.

A bar frame is a pandas DataFrame indexed by the bar OPEN time (DatetimeIndex, UTC, named
"timestamp"), sorted and unique, with float64 columns open, high, low, close, volume.
Messages carry times as int nanoseconds since the epoch (UTC).
"""

from __future__ import annotations

import re

import pandas as pd

from core.errors import UserError
from core.intervals import INTERVAL_NS, interval_ns

OHLCV = ("open", "high", "low", "close", "volume")

# core.intervals' table as Timedeltas (bar-frame arithmetic on DatetimeIndexes).
INTERVALS: dict[str, pd.Timedelta] = {
    name: pd.Timedelta(length, "ns") for name, length in INTERVAL_NS.items()
}

# The intervals every strategy family must be valid on.
TRADING_INTERVALS = ("1m", "3m", "5m", "15m", "1h")


def interval_delta(interval: str) -> pd.Timedelta:
    """Length of one bar of `interval`, e.g. "5m" -> 5 minutes (IntervalError if unknown)."""
    return pd.Timedelta(interval_ns(interval), "ns")


# 2024-01-31, 2024-01-31T12:00, 2024-01-31 12:00:00.5, 2024-01-31T12:00Z, ...+02:00
ISO_8601 = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?"
    r"(Z|[+-]\d{2}(:?\d{2})?)?",
    re.IGNORECASE,
)


class TimeValueError(UserError):
    """A date/time given by a user that cannot be read."""


def parse_utc(value: object, what: str = "time") -> pd.Timestamp | None:
    """A user's date/time as a UTC Timestamp: naive values are UTC, aware ones are converted.

    None, "" (or blanks), NaN and NaT give None. Anything unreadable raises TimeValueError naming
    `what` (e.g. "--start") and showing the accepted form.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and not ISO_8601.fullmatch(value.strip()):
        # pandas would read 01/02/2024 month-first and 13/01/2024 day-first: refuse both
        raise TimeValueError(
            f"{what} {value!r} is not a date/time; use ISO-8601 (year-month-day, never "
            "day-first or month-first) such as 2024-01-31 or 2024-01-31T12:00Z (times without a "
            "zone are UTC)"
        )
    try:
        stamp = pd.Timestamp(value.strip() if isinstance(value, str) else value)
    except (ValueError, TypeError, OverflowError):
        raise TimeValueError(
            f"{what} {value!r} is not a date/time; use ISO-8601 such as 2024-01-31 or "
            "2024-01-31T12:00Z (times without a zone are UTC)"
        ) from None
    if pd.isna(stamp):
        return None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
