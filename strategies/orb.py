"""Open range breakout: trade the first break of the UTC session's opening range."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas loads when signals run, not when the class is listed
    import pandas as pd

from strategies.base import Range, RecentBars, SignalRow, Strategy
from strategies.newest import bars_per_day, first_today, minutes_today
from strategies.session import (
    MINUTES_PER_DAY,
    first_in_session,
    minute_of_day,
    session_cummax,
    session_cummin,
)


@dataclass(frozen=True)
class OrbParams:
    range_minutes: int = 30  # the opening range: bars opening in the first N minutes of the day
    entry_cutoff_minutes: int = 1200  # no new entries on bars opening at/after this UTC minute
    sl_pct: float = 0.01
    tp_pct: float = 0.02
    range_stop: float = 0.0  # > 0: stop distance = range_stop x range width (overrides sl_pct)
    exit_on_opposite: bool = True  # close a long when the close falls below the range low
    max_bars: int = 0  # time exit after N bars held (0: none; the session end always applies)
    allow_long: bool = True
    allow_short: bool = False


class OpenRangeBreakout(Strategy):
    """Enter on the first close beyond the opening range of the UTC day, once per side per day.

    range_high/low = max high / min low of the day's bars opening before `range_minutes`
    (on 1h bars with 30 minutes: the first bar). After the range, a long enters at the first
    bar of the day whose close > range_high (short: close < range_low) and opens before
    `entry_cutoff_minutes`. Positions close at the session end, by the brackets, after
    `max_bars`, or (exit_on_opposite) when the close crosses the other side of the range.
    """

    name = "orb"
    family = "open_range_breakout"
    summary = "first close beyond the UTC day's opening range; one entry per side; session exit"
    Params = OrbParams
    session_exit = True
    param_space = {
        "range_minutes": Range(1, 1439),
        "entry_cutoff_minutes": Range(2, 1440),
        "sl_pct": Range(0.0, 0.5),
        "tp_pct": Range(0.0, 0.5),
        "range_stop": Range(0.0, 5.0),
        "exit_on_opposite": Range(choices=(False, True)),
        "max_bars": Range(0, 500),
        "allow_long": Range(choices=(False, True)),
        "allow_short": Range(choices=(False, True)),
    }

    def validate(self) -> None:
        p = self.params
        self.require(0 < p.range_minutes < MINUTES_PER_DAY, "range_minutes", "in 1..1439")
        self.require(
            p.range_minutes < p.entry_cutoff_minutes <= MINUTES_PER_DAY,
            "entry_cutoff_minutes",
            "greater than range_minutes and at most 1440",
        )
        for key in ("sl_pct", "tp_pct"):
            self.require(0 <= getattr(p, key) < 1, key, "in [0, 1)")
        self.require(p.range_stop >= 0, "range_stop", ">= 0")
        self.require(p.max_bars >= 0, "max_bars", ">= 0")

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        p = self.params
        minute = minute_of_day(bars.index)
        in_range = minute < p.range_minutes
        range_high = session_cummax(bars["high"], in_range)
        range_low = session_cummin(bars["low"], in_range)
        close = bars["close"]
        above = (close > range_high) & ~in_range
        below = (close < range_low) & ~in_range
        can_enter = minute < p.entry_cutoff_minutes
        out = pd.DataFrame(
            {
                "enter_long": first_in_session(above & can_enter),
                "enter_short": first_in_session(below & can_enter),
                "exit_long": below & p.exit_on_opposite,
                "exit_short": above & p.exit_on_opposite,
            },
            index=bars.index,
        )
        if p.range_stop > 0:
            out["stop_distance"] = p.range_stop * (range_high - range_low)
        return out

    def newest_signals(self, bars: RecentBars) -> SignalRow:
        import numpy as np

        p = self.params
        s = bars.day_start
        minute = minutes_today(bars)
        in_range = minute < p.range_minutes
        range_high = np.fmax.accumulate(np.where(in_range, bars.high[s:], np.nan))
        range_low = np.fmin.accumulate(np.where(in_range, bars.low[s:], np.nan))
        close = bars.close[s:]
        above = (close > range_high) & ~in_range
        below = (close < range_low) & ~in_range
        can_enter = minute < p.entry_cutoff_minutes
        stop = p.range_stop * (float(range_high[-1]) - float(range_low[-1]))
        return SignalRow(
            first_today(above & can_enter),
            bool(below[-1]) and p.exit_on_opposite,
            first_today(below & can_enter),
            bool(above[-1]) and p.exit_on_opposite,
            stop if p.range_stop > 0 else None,
        )

    def history_bars(self, interval_ns: int) -> int:
        return bars_per_day(interval_ns)  # the session resets everything at 00:00 UTC
