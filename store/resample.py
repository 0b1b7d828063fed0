"""Resample bars to a coarser interval: UTC-aligned buckets, complete buckets only.

A bucket of the target interval starts at a multiple of its length since the Unix epoch (so a
1h bar starts at :00, a 1d bar at 00:00 UTC). It is emitted only when every constituent bar is
present: a bucket with a missing bar (exchange outage, or the still-open bucket at the end of
the data) is dropped, never filled or emitted short. open = first open, high = max, low = min,
close = last close, volume = sum.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factors.bars import OHLCV, interval_delta
from store.validate import BarDataError, arrays_to_frame, frame_arrays


def interval_ratio(source: str, target: str) -> int:
    """How many `source` bars make one `target` bar; BarDataError unless it divides evenly."""
    small, big = interval_delta(source), interval_delta(target)
    if big <= small or big % small != pd.Timedelta(0):
        raise BarDataError(
            f"cannot resample {source} to {target}: the target interval must be a whole "
            f"multiple of the source interval (e.g. 1m -> 3m, 5m, 15m, 1h, 1d)"
        )
    return int(big // small)


def resample_bars(frame: pd.DataFrame, source: str, target: str) -> pd.DataFrame:
    """Bars of `target` built from a sorted bar frame of `source`; incomplete buckets dropped."""
    ratio = interval_ratio(source, target)
    return resample_by_length(frame, ratio, int(interval_delta(target).value // 1_000_000))


def resample_by_length(frame: pd.DataFrame, ratio: int, step: int) -> pd.DataFrame:
    """resample_bars for a target `step` ms long made of `ratio` source bars (an interval the
    system does not name, e.g. the local exchange's 2h)."""
    ts, cols = frame_arrays(frame)
    if len(ts) == 0:
        return arrays_to_frame(ts, cols)
    bucket = ts // step
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    counts = np.diff(np.r_[starts, len(ts)])
    ends = starts + counts - 1
    out = {
        "open": cols["open"][starts],
        "high": np.maximum.reduceat(cols["high"], starts),
        "low": np.minimum.reduceat(cols["low"], starts),
        "close": cols["close"][ends],
        "volume": np.add.reduceat(cols["volume"], starts),
    }
    complete = counts == ratio  # unique sorted input: ratio bars <=> no bar missing
    out_ts = bucket[starts][complete] * step
    return arrays_to_frame(out_ts, {c: out[c][complete] for c in OHLCV})
