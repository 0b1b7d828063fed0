"""Synthetic bar series for tests and benchmarks (large data is generated, never shipped)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from factors.bars import interval_delta


def random_walk_bars(
    n: int,
    interval: str = "1m",
    start: str = "2024-01-01",
    seed: int = 0,
    price: float = 100.0,
    volatility: float = 0.001,
) -> pd.DataFrame:
    """A geometric random walk of `n` bars: valid OHLCV (low <= open, close <= high), UTC index."""
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0, volatility, n)
    close = price * np.exp(np.cumsum(returns))
    open_ = np.empty(n)
    open_[0] = price
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, volatility / 4, n - 1))
    wick = np.abs(rng.normal(0.0, volatility, (2, n))) * close
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    volume = rng.lognormal(3.0, 1.0, n)
    index = pd.date_range(
        start, periods=n, freq=interval_delta(interval), tz="UTC", name="timestamp"
    )
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )
