r"""A complete user strategy: EMA crossover with ATR brackets and a time exit.

Run it:   python cli.py backtest --strategy examples/ema_cross.py:EmaCross \
              --data data/sample/ETH_BTC-5m.csv.gz --symbol ETH/BTC --interval 5m \
              --param fast=8 --param allow_short=true --out out/ema_cross
List it:  python cli.py strategies list --strategy examples/ema_cross.py:EmaCross
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from factors.volatility import atr
from strategies.base import Strategy


@dataclass(frozen=True)
class EmaCrossParams:
    # Every parameter has a type and a default; `--param fast=8` overrides it from the CLI.
    fast: int = 12
    slow: int = 48
    atr_n: int = 14
    stop_atr: float = 2.0  # stop loss 2 x ATR from the entry (0: use sl_pct)
    target_atr: float = 4.0  # take profit 4 x ATR from the entry (0: use tp_pct)
    sl_pct: float = 0.0  # percent brackets, used when the ATR ones are off
    tp_pct: float = 0.0
    max_bars: int = 288  # time exit: one day of 5m bars (0: none)
    allow_short: bool = False


class EmaCross(Strategy):
    """Long when the fast EMA crosses above the slow one, short (if allowed) on the cross down.

    A position also closes on the opposite cross (an exit signal), by its ATR brackets, or
    after max_bars bars.
    """

    name = "ema_cross"  # shown in trades.csv and results.json
    family = "trend_following"
    summary = "fast/slow EMA crossover; ATR brackets; exit on the opposite cross"
    Params = EmaCrossParams

    def validate(self) -> None:
        p = self.params
        self.require(p.fast >= 1, "fast", ">= 1")
        self.require(p.slow > p.fast, "slow", f"greater than fast ({p.fast})")
        self.require(p.atr_n >= 1, "atr_n", ">= 1")
        self.require(p.stop_atr >= 0 and p.target_atr >= 0, "stop_atr", ">= 0 (and target_atr)")
        self.require(p.max_bars >= 0, "max_bars", ">= 0")

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        close = bars["close"]
        # ewm(adjust=False) is recursive over past bars only: the value at t uses bars <= t.
        above = (
            close.ewm(span=p.fast, adjust=False).mean()
            > close.ewm(span=p.slow, adjust=False).mean()
        )
        warm = pd.Series(range(len(bars)), index=bars.index) >= p.slow  # skip the warm-up
        was_above = above.shift(1, fill_value=False).astype(bool)
        was_below = (~above).shift(1, fill_value=False).astype(bool)
        cross_up = above & was_below & warm
        cross_down = ~above & was_above & warm
        out = pd.DataFrame(
            {
                "enter_long": cross_up,
                "exit_long": cross_down,
                "enter_short": cross_down,  # dropped by the base class unless allow_short
                "exit_short": cross_up,
            },
            index=bars.index,
        )
        # Optional per-bar brackets in price units, known at t; they override sl_pct/tp_pct.
        volatility = atr(bars, p.atr_n)
        if p.stop_atr > 0:
            out["stop_distance"] = p.stop_atr * volatility
        if p.target_atr > 0:
            out["target_distance"] = p.target_atr * volatility
        return out
