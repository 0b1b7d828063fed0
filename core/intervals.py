"""Bar intervals and their length in nanoseconds, in plain ints.

Here rather than in factors/bars.py (which builds its pandas Timedeltas from this table) so that
the live actors that only do interval arithmetic on message times (the bar stream, the portfolio)
never import pandas: each of their Ray processes would pay about a second of CPU at start.
"""

from __future__ import annotations

from core.errors import UserError

MINUTE_NS = 60 * 10**9

# Intervals the system knows, with their length. Keys are ccxt's spelling.
INTERVAL_NS: dict[str, int] = {
    "1m": MINUTE_NS,
    "3m": 3 * MINUTE_NS,
    "5m": 5 * MINUTE_NS,
    "15m": 15 * MINUTE_NS,
    "30m": 30 * MINUTE_NS,
    "1h": 60 * MINUTE_NS,
    "4h": 240 * MINUTE_NS,
    "1d": 1440 * MINUTE_NS,
}
DAY_NS = INTERVAL_NS["1d"]  # a UTC day: daily statistics, day boundaries, daily limits


class IntervalError(UserError):
    """An interval name the system does not know."""


def interval_ns(interval: str) -> int:
    """Length of one bar of `interval` in nanoseconds, e.g. "1m" -> 60_000_000_000."""
    try:
        return INTERVAL_NS[interval]
    except KeyError:
        known = ", ".join(INTERVAL_NS)
        raise IntervalError(f"unknown interval {interval!r}; use one of: {known}") from None
