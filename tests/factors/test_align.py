import numpy as np
import pandas as pd
import pytest

from factors.align import align_higher, infer_interval, resample_bars
from factors.synthetic import random_walk_bars
from factors.volatility import FactorError


def test_resample_ohlcv_by_hand():
    bars = random_walk_bars(10, "1m", seed=1)
    five = resample_bars(bars, "5m")
    assert len(five) == 2
    first = bars.iloc[:5]
    assert five.iloc[0].tolist() == [
        first.open.iloc[0],
        first.high.max(),
        first.low.min(),
        first.close.iloc[-1],
        pytest.approx(first.volume.sum()),
    ]


def test_higher_bar_visible_only_from_its_close():
    bars = random_walk_bars(12, "1m", start="2024-01-01 10:00")
    five = resample_bars(bars, "5m")  # 10:00, 10:05, 10:10 (partial)
    shown = align_higher(bars.index, "1m", five[["close"]], "5m")["close"]
    # The 10:00-10:05 bar closes at 10:05: first seen on the 1m bar 10:04 (closes 10:05).
    assert shown.iloc[:4].isna().all()
    assert (shown.iloc[4:9] == bars.close.iloc[4]).all()
    assert (shown.iloc[9:12] == bars.close.iloc[9]).all()


def test_gap_in_lower_bars_shows_value_at_next_bar_present():
    bars = random_walk_bars(120, "1m", start="2024-01-01 10:00")
    gappy = bars.drop(bars.index[50:75])  # 10:50 .. 11:14 missing
    hourly = resample_bars(gappy, "1h")
    shown = align_higher(gappy.index, "1m", hourly[["high"]], "1h")["high"]
    before = shown[shown.index < "2024-01-01 11:15"]
    assert before.isna().all()
    assert shown.loc["2024-01-01 11:15"] == bars.high.iloc[:50].max()


def test_align_with_daily_bars():
    bars = random_walk_bars(3 * 24 * 12, "5m")
    daily = resample_bars(bars, "1d")
    shown = align_higher(bars.index, "5m", daily[["close"]], "1d")["close"]
    day1_close = bars.close.iloc[287]  # the 23:55 bar closes the day
    assert np.isnan(shown.iloc[286]) and shown.iloc[287] == day1_close
    assert shown.iloc[288] == day1_close


def test_infer_interval_ignores_gaps():
    bars = random_walk_bars(50, "5m").drop(
        pd.date_range("2024-01-01 01:00", periods=3, freq="5min", tz="UTC")
    )
    assert infer_interval(bars.index) == "5m"
    with pytest.raises(FactorError, match="fewer than 2"):
        infer_interval(bars.index[:1])
