"""Small helpers shared by the factor tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


def read_sample(name: str) -> pd.DataFrame:
    """A sample CSV (epoch-ms timestamp + OHLCV) as a bar frame."""
    raw = pd.read_csv(SAMPLE / name)
    index = pd.DatetimeIndex(
        pd.to_datetime(raw["timestamp"], unit="ms", utc=True), name="timestamp"
    )
    frame = raw[["open", "high", "low", "close", "volume"]].astype(np.float64)
    frame.index = index
    return frame


def frame_from(
    rows: list[tuple[float, float, float, float]], start: str, freq: str
) -> pd.DataFrame:
    """Bars from (open, high, low, close) tuples at a regular spacing, volume 1."""
    index = pd.date_range(start, periods=len(rows), freq=freq, tz="UTC", name="timestamp")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    frame["volume"] = 1.0
    return frame
