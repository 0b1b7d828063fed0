"""Trend day: an early, strong and one-sided move, held to the end of the UTC day."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas loads when signals run, not when the class is listed
    import pandas as pd

from strategies.base import Range, RecentBars, SignalRow, Strategy
from strategies.newest import NAN, bars_per_day, first_today, kahan_sum, minutes_today
from strategies.session import MINUTES_PER_DAY, first_in_session, minute_of_day, session_key


@dataclass(frozen=True)
class TrendDayParams:
    decision_minutes: int = 120  # judge the day at the first bar opening at/after this minute
    min_move: float = 0.005  # |close / day_open - 1| at the decision bar
    min_r2: float = 0.6  # R^2 of the day's closes against time at the decision bar
    sl_pct: float = 0.01
    tp_pct: float = 0.0  # held to the session end by default: no profit target
    exit_on_reversal: bool = True  # close a long when the close falls back below the day's open
    max_bars: int = 0  # time exit after N bars held (0: none; the session end always applies)
    allow_long: bool = True
    allow_short: bool = False


def session_r2(bars: pd.DataFrame, day_open: pd.Series) -> pd.Series:
    """R^2 of the day's closes against their time of day, over the day's bars so far.

    A straight one-sided day scores near 1, a choppy one near 0. Unlike an efficiency ratio,
    R^2 of a random walk does not shrink with the number of bars, so one threshold serves 1m
    and 1h alike. Running sums per day keep it causal (NaN until two bars differ).
    """
    import pandas as pd

    key = session_key(bars.index)
    x = pd.Series(minute_of_day(bars.index) / 60.0, index=bars.index)
    y = bars["close"] / day_open - 1.0
    sums = pd.DataFrame({"n": 1.0, "x": x, "y": y, "xx": x * x, "yy": y * y, "xy": x * y})
    s = sums.groupby(key).cumsum()
    var_x = s["xx"] - s["x"] ** 2 / s["n"]
    var_y = s["yy"] - s["y"] ** 2 / s["n"]
    cov = s["xy"] - s["x"] * s["y"] / s["n"]
    ok = (var_x > 1e-12) & (var_y > 1e-18)
    return (cov**2 / (var_x * var_y)).where(ok).clip(0.0, 1.0)


class TrendDay(Strategy):
    """Join a day that trends early: a large move from the open along a straight path.

    At the first bar of the UTC day opening at or after `decision_minutes`: move = close /
    day_open - 1 and trendiness = R^2 of the day's closes so far against their time of day.
    Long when move >= min_move and R^2 >= min_r2; short when move <= -min_move and R^2 >=
    min_r2. Held to the session end; also exits by the brackets, `max_bars`, and with
    exit_on_reversal when the close crosses back through the day's open.
    """

    name = "trend_day"
    family = "trend_day"
    summary = "early strong one-sided move from the day open (high R^2); held to the day end"
    Params = TrendDayParams
    factors = ("day_open",)
    session_exit = True
    param_space = {
        "decision_minutes": Range(1, 1439),
        "min_move": Range(1e-5, 0.05),
        "min_r2": Range(0.0, 1.0),
        "sl_pct": Range(0.0, 0.5),
        "tp_pct": Range(0.0, 0.5),
        "exit_on_reversal": Range(choices=(False, True)),
        "max_bars": Range(0, 500),
        "allow_long": Range(choices=(False, True)),
        "allow_short": Range(choices=(False, True)),
    }

    def validate(self) -> None:
        p = self.params
        self.require(0 < p.decision_minutes < MINUTES_PER_DAY, "decision_minutes", "in 1..1439")
        self.require(0 < p.min_move < 1, "min_move", "in (0, 1)")
        self.require(0 <= p.min_r2 <= 1, "min_r2", "in [0, 1]")
        for key in ("sl_pct", "tp_pct"):
            self.require(0 <= getattr(p, key) < 1, key, "in [0, 1)")
        self.require(p.max_bars >= 0, "max_bars", ">= 0")

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        from factors.daily import daily_context

        p = self.params
        day_open = daily_context(bars)["day_open"]
        close = bars["close"]
        move = close / day_open - 1
        r2 = session_r2(bars, day_open)
        decision = first_in_session(
            pd.Series(minute_of_day(bars.index) >= p.decision_minutes, index=bars.index)
        )
        strong = decision & (r2 >= p.min_r2)
        return pd.DataFrame(
            {
                "enter_long": strong & (move >= p.min_move),
                "enter_short": strong & (move <= -p.min_move),
                "exit_long": (close < day_open) & p.exit_on_reversal,
                "exit_short": (close > day_open) & p.exit_on_reversal,
            },
            index=bars.index,
        )

    def newest_signals(self, bars: RecentBars) -> SignalRow:
        p = self.params
        day_open = float(bars.open[bars.day_start])
        close = float(bars.close[-1])
        move = close / day_open - 1
        decision = first_today(minutes_today(bars) >= p.decision_minutes)
        # R^2 is the same for every instance of the series: computed once a bar
        strong = decision and bars.memo("session_r2", lambda: newest_session_r2(bars)) >= p.min_r2
        return SignalRow(
            strong and move >= p.min_move,
            (close < day_open) and p.exit_on_reversal,
            strong and move <= -p.min_move,
            (close > day_open) and p.exit_on_reversal,
        )

    def history_bars(self, interval_ns: int) -> int:
        return bars_per_day(interval_ns)  # the session resets everything at 00:00 UTC


def newest_session_r2(bars: RecentBars) -> float:
    """session_r2 at the newest bar, from Kahan sums over the day (as pandas' cumsum)."""
    import numpy as np

    s = bars.day_start
    day_open = float(bars.open[s])
    x = minutes_today(bars) / 60.0
    y = bars.close[s:] / day_open - 1.0
    sums = np.array([kahan_sum(v) for v in (np.ones(len(x)), x, y, x * x, y * y, x * y)])
    n, sx, sy, sxx, syy, sxy = (sums[k : k + 1] for k in range(6))
    var_x = sxx - sx**2 / n
    var_y = syy - sy**2 / n
    cov = sxy - sx * sy / n
    if not (var_x[0] > 1e-12 and var_y[0] > 1e-18):
        return NAN
    return float(np.clip(cov**2 / (var_x * var_y), 0.0, 1.0)[0])
