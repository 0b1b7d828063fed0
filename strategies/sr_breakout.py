"""Support/resistance breakout: the reference strategy of docs/design.md#the-reference-strategy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas loads when signals run, not when the class is listed
    import pandas as pd

from strategies.base import Range, RecentBars, SignalRow, Strategy
from strategies.newest import max_before, min_before


@dataclass(frozen=True)
class SRBreakoutParams:
    lookback: int = 20
    sl_pct: float = 0.01
    tp_pct: float = 0.02
    allow_short: bool = False


class SRBreakout(Strategy):
    """Enter when the close breaks the highest high (lowest low) of the previous `lookback` bars.

    resistance_t = max(high[t-lookback .. t-1]); support_t = min(low[t-lookback .. t-1]).
    Exits by the brackets only (plus end of data).
    """

    name = "sr_breakout"
    family = "support_resistance_breakout"
    summary = "close breaks the high/low of the previous N bars; exits by brackets"
    Params = SRBreakoutParams
    param_space = {
        "lookback": Range(1, 400),
        "sl_pct": Range(0.0, 0.5),
        "tp_pct": Range(0.0, 0.5),
        "allow_short": Range(choices=(False, True)),
    }

    def validate(self) -> None:
        self.require(self.params.lookback >= 1, "lookback", ">= 1")
        for key in ("sl_pct", "tp_pct"):
            self.require(0 <= getattr(self.params, key) < 1, key, "in [0, 1)")

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        n = self.params.lookback
        resistance = bars["high"].shift(1).rolling(n, min_periods=n).max()
        if self.params.allow_short:
            support = bars["low"].shift(1).rolling(n, min_periods=n).min()
            enter_short = bars["close"] < support
        else:  # the rolling minimum is half the cost of these signals: skip it when unused
            enter_short = pd.Series(False, index=bars.index)
        return pd.DataFrame(
            {"enter_long": bars["close"] > resistance, "enter_short": enter_short},
            index=bars.index,
        )

    def newest_signals(self, bars: RecentBars) -> SignalRow:
        n = self.params.lookback
        close = float(bars.close[-1])
        enter_short = self.params.allow_short and close < min_before(bars.low, n)
        return SignalRow(close > max_before(bars.high, n), False, enter_short, False)

    def history_bars(self, interval_ns: int) -> int:
        return self.params.lookback + 2
