"""numpy helpers of the families' `newest_signals`: pandas' rolling and session operations at the
newest bar of a `RecentBars` only.

Every float is computed with the same operations in the same order as the pandas code it
stands for (rolling max/min are exact; sums go through the same functions; pandas' groupby
cumsum is Kahan-compensated, so `kahan_sum` is too), so values are equal, not close. They only
call methods of the arrays they get: importing this module loads no numpy (listing strategies
stays light), and the families import these helpers once, not on every bar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.intervals import DAY_NS

if TYPE_CHECKING:
    import numpy as np

    from strategies.base import RecentBars

NAN = float("nan")
MINUTE_NS = 60 * 10**9


def first_today(flags: np.ndarray) -> bool:
    """session.first_in_session at the newest bar of a day's flags: it is True, no earlier one."""
    return bool(flags[-1]) and not bool(flags[:-1].any())


def max_before(values: np.ndarray, n: int) -> float:
    """values.shift(1).rolling(n, min_periods=n).max() at the newest bar."""
    i = len(values) - 1
    return float(values[i - n : i].max()) if i >= n else NAN


def min_before(values: np.ndarray, n: int) -> float:
    """values.shift(1).rolling(n, min_periods=n).min() at the newest bar."""
    i = len(values) - 1
    return float(values[i - n : i].min()) if i >= n else NAN


def minutes_today(bars: RecentBars) -> np.ndarray:
    """session.minute_of_day of the current UTC day's bars."""
    return (bars.open_ns[bars.day_start :] // MINUTE_NS) % 1440


def kahan_sum(values: np.ndarray) -> float:
    """The last value of pandas' groupby cumsum over `values` (Kahan-compensated)."""
    total = comp = 0.0
    for v in values.tolist():
        y = v - comp
        t = total + y
        comp = t - total - y
        total = t
    return total


def bars_per_day(interval_ns: int) -> int:
    """The most bars one UTC day can hold, plus the newest and one spare."""
    return DAY_NS // interval_ns + 2
