"""Reversal breakout: after an extended move, the close breaks back through a recent swing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas loads when signals run, not when the class is listed
    import pandas as pd

from strategies.base import Range, RecentBars, SignalRow, Strategy
from strategies.newest import NAN, max_before, min_before


@dataclass(frozen=True)
class ReversalBreakoutParams:
    lookback: int = 30  # bars over which the extended move is measured
    swing: int = 5  # the recent swing: high/low of the previous N bars
    move_atr: float = 3.0  # extended = the move from the lookback extreme >= move_atr x ATR
    atr_n: int = 14
    sl_pct: float = 0.01
    tp_pct: float = 0.02
    stop_atr: float = 0.0  # > 0: stop distance = stop_atr x ATR_t (overrides sl_pct)
    target_atr: float = 0.0  # > 0: target distance = target_atr x ATR_t (overrides tp_pct)
    swing_exit: bool = False  # close a long when the close breaks the recent swing low
    max_bars: int = 0  # time exit after N bars held (0: none)
    allow_long: bool = True
    allow_short: bool = False


class ReversalBreakout(Strategy):
    """Fade an exhausted move once price breaks back through its most recent swing.

    Long at t when the previous bar closed at least move_atr x ATR_{t-1} below the highest
    high of bars t-lookback .. t-1 (an extended fall) and close_t > max(high[t-swing .. t-1]).
    Short mirrors (a rise from the lowest low; close_t < min(low[t-swing .. t-1])). Exits by the
    brackets (percent or ATR), `max_bars`, and with swing_exit a close beyond the opposite swing.
    """

    name = "reversal_breakout"
    family = "reversal_breakout"
    summary = "after an extended move (k x ATR), close breaks back through the recent swing"
    Params = ReversalBreakoutParams
    factors = ("atr",)
    param_space = {
        "lookback": Range(2, 300),
        "swing": Range(1, 100),
        "move_atr": Range(0.01, 10.0),
        "atr_n": Range(1, 100),
        "sl_pct": Range(0.0, 0.5),
        "tp_pct": Range(0.0, 0.5),
        "stop_atr": Range(0.0, 10.0),
        "target_atr": Range(0.0, 10.0),
        "swing_exit": Range(choices=(False, True)),
        "max_bars": Range(0, 500),
        "allow_long": Range(choices=(False, True)),
        "allow_short": Range(choices=(False, True)),
    }

    def validate(self) -> None:
        p = self.params
        self.require(p.swing >= 1, "swing", ">= 1")
        self.require(p.lookback > p.swing, "lookback", f"greater than swing ({p.swing})")
        self.require(p.atr_n >= 1, "atr_n", ">= 1")
        self.require(p.move_atr > 0, "move_atr", "> 0")
        for key in ("sl_pct", "tp_pct"):
            self.require(0 <= getattr(p, key) < 1, key, "in [0, 1)")
        for key in ("stop_atr", "target_atr"):
            self.require(getattr(p, key) >= 0, key, ">= 0")
        self.require(p.max_bars >= 0, "max_bars", ">= 0")

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        from factors.volatility import atr

        p = self.params
        high, low, close = bars["high"], bars["low"], bars["close"]
        atr_t = atr(bars, p.atr_n)
        reach = p.move_atr * atr_t.shift(1)
        prev_close = close.shift(1)
        fell = high.shift(1).rolling(p.lookback, min_periods=p.lookback).max() - prev_close
        rose = prev_close - low.shift(1).rolling(p.lookback, min_periods=p.lookback).min()
        swing_high = high.shift(1).rolling(p.swing, min_periods=p.swing).max()
        swing_low = low.shift(1).rolling(p.swing, min_periods=p.swing).min()
        out = pd.DataFrame(
            {
                "enter_long": (fell >= reach) & (close > swing_high),
                "enter_short": (rose >= reach) & (close < swing_low),
                "exit_long": (close < swing_low) & p.swing_exit,
                "exit_short": (close > swing_high) & p.swing_exit,
            },
            index=bars.index,
        )
        if p.stop_atr > 0:
            out["stop_distance"] = p.stop_atr * atr_t
        if p.target_atr > 0:
            out["target_distance"] = p.target_atr * atr_t
        return out

    def newest_signals(self, bars: RecentBars) -> SignalRow:
        p = self.params
        high, low, close = bars.high, bars.low, bars.close
        c = float(close[-1])
        atr_prev, atr_now = atr_last_two(bars, p.atr_n)
        reach = p.move_atr * atr_prev
        prev_close = float(close[-2]) if len(close) >= 2 else NAN
        fell = max_before(high, p.lookback) - prev_close
        rose = prev_close - min_before(low, p.lookback)
        swing_high, swing_low = max_before(high, p.swing), min_before(low, p.swing)
        return SignalRow(
            (fell >= reach) and (c > swing_high),
            (c < swing_low) and p.swing_exit,
            (rose >= reach) and (c < swing_low),
            (c > swing_high) and p.swing_exit,
            p.stop_atr * atr_now if p.stop_atr > 0 else None,
            p.target_atr * atr_now if p.target_atr > 0 else None,
        )

    def history_bars(self, interval_ns: int) -> int:
        p = self.params
        return max(p.lookback, p.swing, p.atr_n + 1) + 3


def atr_last_two(bars: RecentBars, n: int) -> tuple[float, float]:
    """(ATR_{t-1}, ATR_t) as factors.volatility.atr computes them over the whole history."""
    import numpy as np

    from factors.volatility import window_sum

    lo = max(0, bars.n - n - 2)
    high, low, close = bars.high[lo:], bars.low[lo:], bars.close[lo:]
    prev = np.empty_like(close)
    prev[0] = np.nan  # right at the history's first bar (lo == 0), as true_range has it
    prev[1:] = close[:-1]
    # when lo > 0, row lo's true range is wrong (its previous close is cut off) but it is in
    # neither window: they cover the last n + 1 rows of the n + 2 taken.
    tr = np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))
    sums = window_sum(tr, n) / n
    atr_now = float(sums[-1])
    atr_prev = float(sums[-2]) if len(sums) >= 2 else float("nan")
    return atr_prev, atr_now
