"""Resampling: UTC-aligned buckets, complete buckets only (hand-built bars)."""

import pandas as pd
import pytest

from store.resample import interval_ratio, resample_bars
from store.validate import BarDataError


def _bars(times, opens):
    index = pd.DatetimeIndex(pd.to_datetime(times, utc=True), name="timestamp")
    o = pd.Series(opens, index=index, dtype=float)
    return pd.DataFrame({"open": o, "high": o + 2, "low": o - 1, "close": o + 1, "volume": 1.0})


def test_hourly_buckets_align_to_utc_and_drop_incomplete():
    times = pd.date_range("2024-01-01 00:00", periods=150, freq="1min")  # 00:00 .. 02:29
    bars = _bars(times, range(150))
    out = resample_bars(bars, "1m", "1h")
    assert list(out.index.strftime("%H:%M")) == ["00:00", "01:00"]  # 02:00 bucket incomplete
    assert out.loc["2024-01-01 01:00"].tolist() == [60.0, 121.0, 59.0, 120.0, 60.0]


def test_bucket_with_a_gap_is_dropped_and_start_off_bucket_is_dropped():
    times = pd.date_range("2024-01-01 00:02", periods=13, freq="1min")  # 00:02 .. 00:14
    bars = _bars(times, range(13)).drop(pd.Timestamp("2024-01-01 00:12", tz="UTC"))
    out = resample_bars(bars, "1m", "5m")
    assert list(out.index.strftime("%H:%M")) == ["00:05"]
    assert out.iloc[0].tolist() == [3.0, 9.0, 2.0, 8.0, 5.0]


def test_daily_from_hourly_and_invalid_ratio():
    times = pd.date_range("2024-01-01", periods=48, freq="1h")
    out = resample_bars(_bars(times, range(48)), "1h", "1d")
    assert list(out.index.strftime("%Y-%m-%d %H:%M")) == ["2024-01-01 00:00", "2024-01-02 00:00"]
    assert interval_ratio("1m", "15m") == 15
    with pytest.raises(BarDataError, match="whole multiple"):
        interval_ratio("5m", "3m")
