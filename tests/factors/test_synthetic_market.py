"""The generated demo market has the statistical features it claims: volatility clustering,
intraday seasonality, trends, gaps; valid bars; the same seed gives the same bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factors.synthetic import random_walk_bars
from factors.synthetic_market import (
    DEMO_PAIRS,
    SyntheticPair,
    garch_hourly_variance,
    intraday_profile,
    synthetic_bars,
)

PAIR = SyntheticPair("TEST/USD", 50.0, 0.8, seed=5)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return synthetic_bars(PAIR, days=120, outages=6)


def _abs_returns(frame: pd.DataFrame) -> pd.Series:
    return np.log(frame["close"]).diff().dropna().abs()


def test_bars_are_valid_ohlcv_on_the_minute_grid(bars):
    assert bars.index.is_monotonic_increasing and bars.index.is_unique
    assert (bars.index.second == 0).all() and str(bars.index.tz) == "UTC"
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars[["open", "high", "low", "close", "volume"]] > 0).all().all()


def test_volatility_clusters_while_returns_stay_unpredictable(bars):
    returns = np.log(bars["close"]).diff().dropna()
    size = returns.abs()
    for lag in (1, 10, 60):
        assert size.autocorr(lag) > 0.05  # big moves follow big moves
    assert abs(returns.autocorr(1)) < 0.02  # ... but their sign does not
    # A plain random walk (the deliberately broken case) shows no clustering at all.
    walk = _abs_returns(random_walk_bars(len(bars), seed=1))
    assert abs(walk.autocorr(10)) < 0.01


def test_garch_variance_averages_one_and_persists():
    variance = garch_hourly_variance(20_000, np.random.default_rng(0))
    assert 0.8 < variance.mean() < 1.25
    assert pd.Series(variance).autocorr(24) > 0.25  # a calm (or wild) day stays so


def test_intraday_seasonality_peaks_at_the_us_open(bars):
    by_hour = _abs_returns(bars).groupby(bars.index[1:].hour).mean()
    assert by_hour.idxmax() in (14, 15)
    assert by_hour.max() / by_hour.min() > 1.5
    volume = bars["volume"].groupby(bars.index.hour).mean()
    assert volume.idxmax() in (14, 15)
    profile = intraday_profile(np.arange(1440))
    assert profile.mean() == pytest.approx(1.0)


def test_outages_leave_gaps_and_the_price_moves_across_them(bars):
    steps = bars.index.to_series().diff().dropna()
    gaps = steps[steps > pd.Timedelta(minutes=1)]
    assert 1 <= len(gaps) <= 6  # outages may overlap
    assert gaps.min() >= pd.Timedelta(minutes=6) and gaps.max() <= pd.Timedelta(hours=3, minutes=1)
    after = bars.index.get_indexer(gaps.index)
    jumps = (bars["open"].iloc[after].to_numpy() / bars["close"].iloc[after - 1].to_numpy()) - 1
    assert np.abs(jumps).max() > 0  # the first bar after an outage opens away from the last close


def test_trends_move_the_price_far_from_a_driftless_walk():
    daily = synthetic_bars(DEMO_PAIRS[0], days=365)["close"].resample("1D").last()
    monthly = np.log(daily).resample("MS").last().diff().dropna()
    assert monthly.abs().max() > 0.15  # some month moves > 15%
    yearly_vol = np.log(daily).diff().std() * np.sqrt(365)
    assert yearly_vol == pytest.approx(DEMO_PAIRS[0].annual_volatility, rel=0.3)


def test_same_seed_same_bars_other_seed_other_bars():
    one = synthetic_bars(PAIR, days=3, outages=1)
    again = synthetic_bars(PAIR, days=3, outages=1)
    other = synthetic_bars(SyntheticPair("TEST/USD", 50.0, 0.8, seed=6), days=3, outages=1)
    pd.testing.assert_frame_equal(one, again)
    assert not one["close"].equals(other["close"])
