"""Session helpers shared by the families: a session is one UTC day.

Everything here is causal: the value at bar t depends on bars <= t of the same UTC day only, so
the families stay valid on any interval (1m .. 1h) and on series with missing bars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the helpers call methods of the frames they get
    import numpy as np
    import pandas as pd

MINUTES_PER_DAY = 24 * 60


def _epoch_ns(index: pd.DatetimeIndex) -> np.ndarray:
    # pandas 3 keeps the parsed resolution (s, ms, us, ns): normalise before integer maths.
    return index.as_unit("ns").asi8


def session_key(index: pd.DatetimeIndex) -> np.ndarray:
    """The UTC day of every bar as int64 days since the epoch (a cheap groupby key)."""
    return _epoch_ns(index) // (86_400 * 10**9)


def minute_of_day(index: pd.DatetimeIndex) -> np.ndarray:
    """Minutes since 00:00 UTC of every bar's open time."""
    return (_epoch_ns(index) // (60 * 10**9)) % MINUTES_PER_DAY


def first_in_session(flags: pd.Series) -> pd.Series:
    """True only at the first True of each UTC day: one entry per side per session."""
    flags = flags.fillna(False).astype(bool)
    count = flags.astype("int64").groupby(session_key(flags.index)).cumsum()
    return flags & (count == 1)


def session_cummax(values: pd.Series, mask: np.ndarray) -> pd.Series:
    """Running max of `values` where `mask`, carried forward to the end of each day."""
    key = session_key(values.index)
    running = values.where(mask).groupby(key).cummax()
    return running.groupby(key).ffill()


def session_cummin(values: pd.Series, mask: np.ndarray) -> pd.Series:
    """Running min of `values` where `mask`, carried forward to the end of each day."""
    key = session_key(values.index)
    running = values.where(mask).groupby(key).cummin()
    return running.groupby(key).ffill()
