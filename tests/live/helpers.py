"""Shared pieces of the live tests: hand-made markets and sample series."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from localexchange.replay import ReplayMarket
from store.bar_files import read_bar_file

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
T0 = pd.Timestamp("2024-01-01T00:00Z")
KEY, SECRET = "test-key", "local-secret"


def bars(rows: list[tuple[float, float, float, float]], interval: str = "5m") -> pd.DataFrame:
    """A bar frame from (open, high, low, close) rows, 5m apart from T0."""
    index = pd.date_range(T0, periods=len(rows), freq=interval.replace("m", "min"), tz="UTC")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index)
    frame["volume"] = 1.0
    return frame


def market_of(frame: pd.DataFrame, symbol: str = "ETH/BTC", interval: str = "5m") -> ReplayMarket:
    market = ReplayMarket()
    market.add(symbol, interval, frame)
    market.start_at(None)
    return market


def sample(name: str = "ETH_BTC-5m.csv.gz", n: int | None = None) -> pd.DataFrame:
    frame, _ = read_bar_file(SAMPLE / name, "5m")
    return frame if n is None else frame.iloc[:n]
