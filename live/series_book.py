"""The bars of one live series in numpy, shared by every strategy host of that series in a process.

A live host used to rebuild a pandas frame and recompute its strategy over up to 20,000 bars on
every bar; 100 instances cost seconds per bar. The book keeps the series once per Ray actor:
- a preallocated buffer of the last `keep` bars (open time in int ns, OHLCV in float64); when
  full, the newest `keep` rows move to the front (amortised O(1) per bar);
- one row per UTC day present in the WHOLE history (first open, max high, min low, last close),
  so daily context (previous days' range, 14-day ATR) never depends on how many bars are kept;
- `day_start`: the buffer row of the current UTC day's first bar (session families);
- `memo`: values computed at most once per bar (or per day) and shared by the hosts, e.g. the
  signal row of two instances with the same strategy class and parameters.
Appending is idempotent per bar, so each host of the group may append the bar it receives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from core.intervals import DAY_NS, interval_ns
from factors.bars import OHLCV
from factors.daily import daily_bars


class SeriesBook:
    def __init__(self, warm: pd.DataFrame, interval: str, keep: int) -> None:
        self.step = interval_ns(interval)
        self.keep = max(1, keep)
        tail = warm.iloc[-self.keep :]
        self.n = len(tail)
        self.base = len(warm) - self.n  # absolute index (from the history start) of row 0
        capacity = 2 * self.keep + 1
        self.ns = np.zeros(capacity, dtype=np.int64)
        self.ns[: self.n] = pd.DatetimeIndex(tail.index).as_unit("ns").asi8
        self.cols = np.zeros((5, capacity), dtype=np.float64)  # open, high, low, close, volume
        for k, name in enumerate(OHLCV):
            self.cols[k, : self.n] = tail[name].to_numpy(np.float64)
        daily = daily_bars(warm) if len(warm) else pd.DataFrame(columns=["open"])
        self.days: list[int] = [int(d.value // DAY_NS) for d in pd.DatetimeIndex(daily.index)]
        self.day_rows = (
            [
                list(map(float, r))
                for r in daily[["open", "high", "low", "close"]].to_numpy(np.float64)
            ]
            if len(daily)
            else []
        )
        self.day_start = self._find_day_start()
        self.version = 0
        self._memo: dict[Any, Any] = {}
        self._memo_version = 0
        self._day_memo: dict[Any, Any] = {}
        self._day_memo_day: int | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Ray hands numpy arrays over zero-copy and read-only: the buffer must be writable
        self.__dict__.update(state)
        self.ns, self.cols = self.ns.copy(), self.cols.copy()

    # -- reading ------------------------------------------------------------------------------
    @property
    def open(self) -> np.ndarray:
        return self.cols[0, : self.n]

    @property
    def high(self) -> np.ndarray:
        return self.cols[1, : self.n]

    @property
    def low(self) -> np.ndarray:
        return self.cols[2, : self.n]

    @property
    def close(self) -> np.ndarray:
        return self.cols[3, : self.n]

    @property
    def open_ns(self) -> np.ndarray:
        return self.ns[: self.n]

    def last_ts(self) -> int | None:
        return int(self.ns[self.n - 1]) if self.n else None

    def total(self) -> int:
        """Bars in the whole history (warm-up and live), kept or not."""
        return self.base + self.n

    def frame(self, rows: int) -> pd.DataFrame:
        """The last `rows` bars as a bar frame (the generic, full-recompute path)."""
        lo = max(0, self.n - rows)
        index = pd.DatetimeIndex(pd.to_datetime(self.ns[lo : self.n], utc=True), name="timestamp")
        return pd.DataFrame(
            {name: self.cols[k, lo : self.n].copy() for k, name in enumerate(OHLCV)}, index=index
        )

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """`compute()` once per bar and key, shared by every host of this book."""
        if self._memo_version != self.version:
            self._memo, self._memo_version = {}, self.version
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def memo_day(self, key: Any, compute: Callable[[], Any]) -> Any:
        """`compute()` once per UTC day and key (values fixed for the day, e.g. prev_day_*)."""
        day = self.days[-1] if self.days else None
        if self._day_memo_day != day:
            self._day_memo, self._day_memo_day = {}, day
        if key not in self._day_memo:
            self._day_memo[key] = compute()
        return self._day_memo[key]

    # -- writing ------------------------------------------------------------------------------
    def require(self, keep: int) -> None:
        """Keep at least `keep` bars from now on (the buffer grows; rows already gone stay gone)."""
        if keep <= self.keep:
            return
        capacity = 2 * keep + 1
        ns = np.zeros(capacity, dtype=np.int64)
        cols = np.zeros((5, capacity), dtype=np.float64)
        ns[: self.n], cols[:, : self.n] = self.ns[: self.n], self.cols[:, : self.n]
        self.ns, self.cols, self.keep = ns, cols, keep

    def append(self, ts: int, row: tuple[float, float, float, float, float]) -> bool:
        """Add the bar opening at `ts`; False (nothing changed) when it is not after the last."""
        if self.n and ts <= self.ns[self.n - 1]:
            return False
        if self.n == len(self.ns):
            drop = self.n - self.keep
            self.ns[: self.keep] = self.ns[drop : self.n]
            self.cols[:, : self.keep] = self.cols[:, drop : self.n]
            self.n, self.base = self.keep, self.base + drop
            self.day_start = max(0, self.day_start - drop)
        self.ns[self.n] = ts
        self.cols[:, self.n] = row
        self.n += 1
        self.version += 1
        self._add_to_day(ts, row)
        return True

    def _add_to_day(self, ts: int, row: tuple[float, float, float, float, float]) -> None:
        day = ts // DAY_NS
        if self.days and self.days[-1] == day:
            d = self.day_rows[-1]
            d[1], d[2], d[3] = max(d[1], row[1]), min(d[2], row[2]), row[3]
            return
        self.days.append(day)
        self.day_rows.append([row[0], row[1], row[2], row[3]])
        self.day_start = self.n - 1

    def _find_day_start(self) -> int:
        if not self.n:
            return 0
        day = self.ns[: self.n] // DAY_NS
        return int(np.searchsorted(day, day[-1], "left"))
