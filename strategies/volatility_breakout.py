"""Volatility breakout: the day's open +/- k x the previous days' volatility."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas loads when signals run, not when the class is listed
    import pandas as pd

from core.intervals import DAY_NS
from strategies.base import Range, RecentBars, SignalRow, Strategy
from strategies.newest import bars_per_day, first_today
from strategies.session import first_in_session

BASES = ("range", "atr")


@dataclass(frozen=True)
class VolatilityBreakoutParams:
    k: float = 0.5  # breakout distance = k x basis
    basis: str = "range"  # "range": previous day's high - low; "atr": 14-day ATR of past days
    sl_pct: float = 0.01
    tp_pct: float = 0.02
    stop_k: float = 0.0  # > 0: stop distance = stop_k x basis (overrides sl_pct)
    exit_at_open: bool = False  # close a long when the close falls back below the day's open
    session_exit: bool = True  # close at the end of the UTC day the position opened in
    max_bars: int = 0  # time exit after N bars held (0: none)
    allow_long: bool = True
    allow_short: bool = False


class VolatilityBreakout(Strategy):
    """Enter when the close breaks the day's open by k x the previous day's range (or ATR).

    distance = k x (prev_day_high - prev_day_low) with basis=range, k x prev_day_atr with
    basis=atr, both from completed days only. Long at the first bar of the UTC day whose
    close > day_open + distance; short at the first close < day_open - distance. Exits: the
    session end (session_exit), brackets, `max_bars`, and with exit_at_open a close back
    through the day's open.
    """

    name = "volatility_breakout"
    family = "volatility_breakout"
    summary = "close breaks day open +/- k x previous day range or ATR; one entry per side per day"
    Params = VolatilityBreakoutParams
    factors = ("day_open", "prev_day_range", "prev_day_close", "prev_day_atr")
    param_space = {
        "k": Range(0.001, 3.0),
        "basis": Range(choices=BASES),
        "sl_pct": Range(0.0, 0.5),
        "tp_pct": Range(0.0, 0.5),
        "stop_k": Range(0.0, 5.0),
        "exit_at_open": Range(choices=(False, True)),
        "session_exit": Range(choices=(False, True)),
        "max_bars": Range(0, 500),
        "allow_long": Range(choices=(False, True)),
        "allow_short": Range(choices=(False, True)),
    }

    def validate(self) -> None:
        p = self.params
        self.require(p.k > 0, "k", "> 0")
        self.require(p.basis in BASES, "basis", "one of " + ", ".join(BASES))
        for key in ("sl_pct", "tp_pct"):
            self.require(0 <= getattr(p, key) < 1, key, "in [0, 1)")
        self.require(p.stop_k >= 0, "stop_k", ">= 0")
        self.require(p.max_bars >= 0, "max_bars", ">= 0")

    def basis(self, bars: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        """(day_open, basis in price units) per bar, from daily_context (causal)."""
        from factors.daily import daily_context

        ctx = daily_context(bars)
        if self.params.basis == "atr":
            basis = ctx["prev_day_atr"]
        else:  # prev_day_range is a fraction of the previous close
            basis = ctx["prev_day_range"] * ctx["prev_day_close"]
        return ctx["day_open"], basis

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        p = self.params
        day_open, basis = self.basis(bars)
        distance = p.k * basis
        close = bars["close"]
        out = pd.DataFrame(
            {
                "enter_long": first_in_session(close > day_open + distance),
                "enter_short": first_in_session(close < day_open - distance),
                "exit_long": (close < day_open) & p.exit_at_open,
                "exit_short": (close > day_open) & p.exit_at_open,
            },
            index=bars.index,
        )
        if p.stop_k > 0:
            out["stop_distance"] = p.stop_k * basis
        return out

    def newest_signals(self, bars: RecentBars) -> SignalRow:
        p = self.params
        # the daily context is fixed for the day and the same for every instance: once a day
        ctx = bars.memo_day(("day_context", bars.days[-1]), lambda: newest_day_context(bars))
        if p.basis == "atr":
            basis = ctx["prev_day_atr"]
        else:
            basis = ctx["prev_day_range"] * ctx["prev_day_close"]
        distance = p.k * basis
        day_open = ctx["day_open"]
        close = bars.close[bars.day_start :]
        c = float(close[-1])
        return SignalRow(
            first_today(close > day_open + distance),
            (c < day_open) and p.exit_at_open,
            first_today(close < day_open - distance),
            (c > day_open) and p.exit_at_open,
            p.stop_k * basis if p.stop_k > 0 else None,
        )

    def history_bars(self, interval_ns: int) -> int:
        return bars_per_day(interval_ns)  # today's bars; the previous days come from day_rows


def newest_day_context(bars: RecentBars) -> dict[str, float]:
    """daily_context at the current day, on one row per day (the previous 17 days and today).

    Only per-day aggregates enter prev_day_* and day_open; the 14-day ATR needs 15 completed
    days (a true range uses the day before), so 17 rows are more than enough.
    """
    import numpy as np
    import pandas as pd

    from factors.daily import daily_context

    days, rows = bars.days[-18:], bars.day_rows[-18:]
    index = pd.DatetimeIndex(pd.to_datetime(np.array(days, dtype=np.int64) * DAY_NS, utc=True))
    values = np.array(rows, dtype=np.float64)
    frame = pd.DataFrame(
        {
            "open": values[:, 0],
            "high": values[:, 1],
            "low": values[:, 2],
            "close": values[:, 3],
            "volume": 0.0,
        },
        index=index,
    )
    last = daily_context(frame).iloc[-1]
    return {
        k: float(last[k]) for k in ("day_open", "prev_day_range", "prev_day_close", "prev_day_atr")
    }
