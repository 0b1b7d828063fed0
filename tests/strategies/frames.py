"""Small bar frames for hand-computed strategy tests, and the sample series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from strategies.base import Strategy

CUTS_PER_SERIES = 4
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"


def bars_from(
    high: list[float],
    low: list[float],
    close: list[float],
    open_: list[float] | None = None,
    start: str = "2024-01-01",
    freq: str = "1h",
    index: pd.DatetimeIndex | None = None,
) -> pd.DataFrame:
    """A bar frame; open defaults to the previous close (the first bar: its close)."""
    if open_ is None:
        open_ = [close[0], *close[:-1]]
    if index is None:
        index = pd.date_range(start, periods=len(close), freq=freq, tz="UTC")
    index = pd.DatetimeIndex(index, name="timestamp")
    frame = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": 1.0}, index=index
    )
    return frame.astype("float64")


def at(times: list[str]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(times, utc=True), name="timestamp")


def mirror(bars: pd.DataFrame, pivot: float) -> pd.DataFrame:
    """Prices reflected around `pivot`: a rise becomes a fall, highs become lows."""
    out = bars.copy()
    out["open"] = 2 * pivot - bars["open"]
    out["close"] = 2 * pivot - bars["close"]
    out["high"] = 2 * pivot - bars["low"]
    out["low"] = 2 * pivot - bars["high"]
    return out


def signal_bars(signals: pd.DataFrame, column: str) -> list[int]:
    """Positions of the bars where `column` is True."""
    return [i for i, flag in enumerate(signals[column].to_numpy()) if flag]


def load_sample(name: str) -> pd.DataFrame:
    """data/sample/<name>.csv.gz as a bar frame (epoch-ms timestamps, UTC)."""
    raw = pd.read_csv(SAMPLE_DIR / f"{name}.csv.gz")
    index = pd.DatetimeIndex(
        pd.to_datetime(raw["timestamp"], unit="ms", utc=True), name="timestamp"
    )
    frame = raw[["open", "high", "low", "close", "volume"]].astype("float64")
    frame.index = index
    return frame[~frame.index.duplicated()].sort_index()


def cut_points(bars: pd.DataFrame, full: pd.DataFrame, seed: int) -> list[int]:
    """Random bars, the first bar of a mid-series day and the last bar of the day before, and
    bars where an entry fired (a signal at the very bar of the cut is where peeking shows)."""
    rng = np.random.default_rng(seed)
    points = set(rng.integers(30, len(bars) - 1, CUTS_PER_SERIES).tolist())
    day = bars.index.floor("D")
    starts = np.flatnonzero(day[1:] != day[:-1]) + 1
    middle = int(starts[len(starts) // 2])
    fired = np.flatnonzero(full["enter_long"].to_numpy() | full["enter_short"].to_numpy())
    picks = rng.choice(fired, min(2, len(fired)), replace=False).tolist() if len(fired) else []
    return sorted(points | {middle, middle - 1} | {int(i) for i in picks})


def assert_no_lookahead(
    strategy: Strategy, bars: pd.DataFrame, seed: int, label: str
) -> pd.DataFrame:
    """Compare cut runs with the full run; return the full run."""
    full = strategy.compute(bars)
    for cut in cut_points(bars, full, seed):
        part = strategy.compute(bars.iloc[: cut + 1])
        pd.testing.assert_frame_equal(
            part,
            full.iloc[: cut + 1],
            check_exact=True,
            obj=f"{strategy.name} on {label} cut at {cut}",
        )
    return full
