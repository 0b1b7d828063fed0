"""A generated market to learn from: 1m bars with the features real crypto data has.

Pure and seeded (same arguments, same bars). Each pair gets:
- volatility clustering: GARCH(1,1) on hourly variance (calm and wild weeks follow each other),
  with fat-tailed (Student-t, 4 degrees of freedom) minute returns;
- intraday seasonality: activity and volatility peak around the US open (14:00-16:00 UTC) and
  the Asian open (00:00-02:00 UTC) and are lowest between the sessions; volume follows;
- trends: the drift changes regime every two to six weeks (up, down or flat);
- gaps: exchange outages of 5 minutes to 3 hours with no bars; the price moves on meanwhile,
  so the first bar after an outage opens away from the last close.

The exchange is called "synthetic" everywhere it is stored, so its results are never mistaken
for a real market's. `random_walk_bars` (factors.synthetic) stays the plain generator for tests
and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

EXCHANGE = "synthetic"
MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class SyntheticPair:
    symbol: str
    price: float  # first open
    annual_volatility: float  # long-run average, as a fraction (0.6 = 60% a year)
    seed: int


# Three pairs quoted in USD (one currency for the whole demo account), different characters.
DEMO_PAIRS = (
    SyntheticPair("ALPHA/USD", 100.0, 0.55, 11),
    SyntheticPair("BETA/USD", 25.0, 0.80, 23),
    SyntheticPair("GAMMA/USD", 4.0, 1.10, 37),
)


def _activity(hour: np.ndarray) -> np.ndarray:
    def bump(centre: float, width: float) -> np.ndarray:
        distance = np.minimum(np.abs(hour - centre), 24 - np.abs(hour - centre))  # wraps midnight
        return np.exp(-0.5 * (distance / width) ** 2)

    return 0.55 + 1.1 * bump(14.75, 1.6) + 0.55 * bump(1.0, 1.3) + 0.2 * bump(8.5, 1.0)


def intraday_profile(minute_of_day: np.ndarray) -> np.ndarray:
    """Relative activity by minute of the UTC day, mean 1 over the day."""
    day_mean = _activity(np.arange(MINUTES_PER_DAY) / 60.0).mean()
    return _activity(np.asarray(minute_of_day) / 60.0) / day_mean


def garch_hourly_variance(
    hours: int, rng: np.random.Generator, alpha: float = 0.12, beta: float = 0.85
) -> np.ndarray:
    """Hourly variance multipliers (mean ~1) from a GARCH(1,1) driven by its own shocks."""
    omega = 1.0 - alpha - beta  # long-run variance 1
    shocks = rng.standard_normal(hours)
    variance = np.empty(hours)
    level = 1.0
    for hour in range(hours):  # 8,760 steps a year: a plain loop is fast enough
        variance[hour] = level
        level = omega + alpha * level * shocks[hour] ** 2 + beta * level
    return variance


def trend_drift(minutes: int, rng: np.random.Generator, annual_volatility: float) -> np.ndarray:
    """Per-minute log drift: regimes of 2-6 weeks, each up, down or flat."""
    drift = np.empty(minutes)
    position = 0
    per_minute = annual_volatility / (365 * MINUTES_PER_DAY)
    while position < minutes:
        length = int(rng.integers(14, 43)) * MINUTES_PER_DAY
        strength = rng.choice([-1.6, -0.8, 0.0, 0.0, 0.8, 1.6])  # annual drift / volatility
        drift[position : position + length] = strength * per_minute
        position += length
    return drift


def outage_mask(minutes: int, rng: np.random.Generator, outages: int) -> np.ndarray:
    """True where a bar exists; `outages` blocks of 5 minutes to 3 hours are missing."""
    keep = np.ones(minutes, dtype=bool)
    for start in rng.integers(MINUTES_PER_DAY, minutes - 200, outages):
        keep[start : start + int(rng.integers(5, 181))] = False
    return keep


def synthetic_bars(
    pair: SyntheticPair, start: str = "2025-01-01", days: int = 365, outages: int = 12
) -> pd.DataFrame:
    """`days` of 1m OHLCV bars for one pair (UTC index named timestamp, with gaps)."""
    rng = np.random.default_rng(pair.seed)
    minutes = days * MINUTES_PER_DAY
    index = pd.date_range(start, periods=minutes, freq="1min", tz="UTC", name="timestamp")
    season = intraday_profile((index.hour * 60 + index.minute).to_numpy())
    hourly = garch_hourly_variance(-(-minutes // 60), rng)
    minute_sigma = pair.annual_volatility / np.sqrt(365 * MINUTES_PER_DAY)
    sigma = minute_sigma * np.sqrt(np.repeat(hourly, 60)[:minutes] * season)
    shocks = rng.standard_t(4, minutes) / np.sqrt(2.0)  # unit variance (t4 variance is 2)
    log_close = np.log(pair.price) + np.cumsum(
        trend_drift(minutes, rng, pair.annual_volatility) + sigma * shocks
    )
    close = np.exp(log_close)
    open_ = np.r_[pair.price, close[:-1]]
    wick = np.abs(rng.standard_normal((2, minutes))) * sigma * 0.6
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(2.0, 0.5, minutes) * season * (1.0 + np.abs(shocks))
    volume *= 1_000.0 / pair.price  # about the same notional per pair
    frame = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )
    return frame[outage_mask(minutes, rng, outages)]
