"""Support/resistance breakout: the reference strategy of DESIGN.md section 7."""

from dataclasses import dataclass

import pandas as pd

from strategies.base import Strategy, StrategyError


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

    def validate(self) -> None:
        if self.params.lookback < 1:
            raise StrategyError(f"sr_breakout: lookback must be >= 1, got {self.params.lookback}")
        for key in ("sl_pct", "tp_pct"):
            value = getattr(self.params, key)
            if not 0 <= value < 1:
                raise StrategyError(f"sr_breakout: {key} must be in [0, 1), got {value}")

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        n = self.params.lookback
        resistance = bars["high"].shift(1).rolling(n, min_periods=n).max()
        support = bars["low"].shift(1).rolling(n, min_periods=n).min()
        return pd.DataFrame(
            {
                "enter_long": bars["close"] > resistance,
                "enter_short": (bars["close"] < support) & self.params.allow_short,
            },
            index=bars.index,
        )
