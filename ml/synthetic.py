"""Generated markets with a known answer, for the proof tests, the benchmark and the demo.

`planted_market`: a random walk where every breakout above the high of the previous `lookback`
bars is followed by `hold` bars of drift (a later breakout replaces it). With `effect=True` the drift is up when the breakout
bar closes in the first half of the UTC day (hour < 12) and down otherwise, so sr_breakout's
trades win exactly when the time-of-day feature says so. With `effect=False` the drift's sign
is a coin flip, independent of anything a model can see: no model can beat chance there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factors.bars import interval_delta


def planted_market(
    n: int = 20_000,
    interval: str = "5m",
    effect: bool = True,
    seed: int = 0,
    lookback: int = 20,
    hold: int = 30,
    drift: float = 0.0002,
    volatility: float = 0.001,
    start: str = "2024-01-01",
) -> pd.DataFrame:
    """OHLCV bars (UTC index) of the market described in the module docstring."""
    rng = np.random.default_rng(seed)
    step = interval_delta(interval)
    index = pd.date_range(start, periods=n, freq=step, tz="UTC", name="timestamp")
    early = np.asarray((index + step).hour < 12)  # hour of each bar's close
    noise = rng.normal(0.0, volatility, n)
    wicks = np.abs(rng.normal(0.0, volatility / 2, (2, n)))
    coins = rng.random(n) < 0.5
    log_close = np.empty(n)
    high = np.empty(n)
    bias = np.zeros(n + hold + 1)
    level = np.log(100.0)
    for t in range(n):
        level += noise[t] + bias[t]
        log_close[t] = level
        high[t] = level + wicks[0, t]
        if t >= lookback and level > high[t - lookback : t].max():
            up = early[t] if effect else coins[t]
            bias[t + 1 : t + 1 + hold] = drift if up else -drift
    close = np.exp(log_close)
    open_ = np.empty(n)
    open_[0] = close[0]
    open_[1:] = close[:-1]
    high_price = np.maximum(np.exp(high), np.maximum(open_, close))
    low_price = np.minimum(close * np.exp(-wicks[1]), np.minimum(open_, close))
    volume = rng.lognormal(3.0, 0.5, n)
    return pd.DataFrame(
        {"open": open_, "high": high_price, "low": low_price, "close": close, "volume": volume},
        index=index,
    )
