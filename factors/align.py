"""Multi-interval alignment: show higher-interval values on lower-interval bars without lookahead.

A higher-interval bar (open time T, close time T + its interval) becomes visible on the lower
bars whose CLOSE time (open + lower interval) is >= T + higher interval: a 1h bar 10:00-11:00 is
first seen on the 1m bar 10:59 (it closes at 11:00), never on 10:58.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factors.bars import OHLCV, interval_delta
from factors.volatility import FactorError


def _ns(index: pd.Index) -> np.ndarray:
    """Epoch nanoseconds whatever the index resolution (pandas 3 may store us or ms)."""
    return pd.DatetimeIndex(index).as_unit("ns").asi8


def infer_interval(index: pd.DatetimeIndex) -> str:
    """The known interval equal to the most common spacing of `index` (for gappy data too)."""
    from factors.bars import INTERVALS

    if len(index) < 2:
        raise FactorError("cannot infer the bar interval from fewer than 2 bars; pass interval=")
    step = pd.Series(np.diff(_ns(index))).mode().iloc[0]
    for name, delta in INTERVALS.items():
        if delta.value == step:
            return name
    raise FactorError(
        f"bar spacing {pd.Timedelta(int(step))} is not a known interval; pass interval= "
        f"(one of {', '.join(INTERVALS)})"
    )


def resample_bars(bars: pd.DataFrame, interval: str) -> pd.DataFrame:
    """Aggregate bars to `interval` (buckets on the UTC epoch grid, empty buckets dropped).

    A bucket at the end of the data may be incomplete; align_higher never shows it before its
    close time, so that is harmless.
    """
    delta = interval_delta(interval)
    if delta > pd.Timedelta(days=1):
        raise FactorError(f"cannot resample to {interval!r}: intervals above 1d are not supported")
    grouped = bars[list(OHLCV)].groupby(bars.index.floor(delta), sort=True)
    out = grouped.agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    out.index = pd.DatetimeIndex(out.index, name="timestamp")
    return out


def align_higher(
    lower_index: pd.DatetimeIndex,
    lower_interval: str,
    higher: pd.DataFrame,
    higher_interval: str,
) -> pd.DataFrame:
    """Values of `higher` (indexed by its bar open times) as visible at each lower bar's close.

    Each lower bar gets the row of the latest higher bar whose close time <= the lower bar's
    close time; NaN before the first higher bar closed.
    """
    lower_close = _ns(lower_index) + interval_delta(lower_interval).value
    higher_close = _ns(higher.index) + interval_delta(higher_interval).value
    pos = np.searchsorted(higher_close, lower_close, side="right") - 1
    visible = pos >= 0
    out = {}
    for name in higher.columns:
        values = higher[name].to_numpy(dtype=np.float64)
        col = np.full(len(lower_index), np.nan)
        col[visible] = values[pos[visible]]
        out[name] = col
    return pd.DataFrame(out, index=lower_index)
