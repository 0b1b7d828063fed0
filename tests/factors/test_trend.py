import numpy as np
import pandas as pd
import pytest

from factors.trend import slope_r2, trend_n
from factors.volatility import FactorError


def test_trend_by_hand():
    close = pd.Series([10.0, 11.0, 10.0, 12.0, 13.0])
    values = trend_n(close, 3).to_numpy()
    assert np.isnan(values[:3]).all()
    # t=3: |12-10| / (1+1+2) = 0.5; t=4: |13-11| / (1+2+1) = 0.5
    np.testing.assert_allclose(values[3:], [0.5, 0.5])


def test_trend_straight_move_is_one_and_flat_is_zero():
    assert trend_n(pd.Series([1.0, 2.0, 3.0, 4.0]), 3).iloc[-1] == 1.0
    assert trend_n(pd.Series([5.0, 5.0, 5.0, 5.0]), 3).iloc[-1] == 0.0
    assert trend_n(pd.Series([1.0, 2.0, 1.0, 2.0, 1.0]), 2).iloc[-1] == 0.0


def test_slope_r2_perfect_line():
    close = pd.Series([10.0, 12.0, 14.0, 16.0, 18.0])
    slope, r2 = slope_r2(close, 3)
    assert np.isnan(slope[:2]).all() and np.isnan(r2[:2]).all()
    # slope 2 per bar divided by the last close
    np.testing.assert_allclose(slope[2:], [2 / 14, 2 / 16, 2 / 18], rtol=1e-14)
    np.testing.assert_allclose(r2[2:], 1.0, rtol=1e-14)
    assert (slope.name, r2.name) == ("slope_3", "r2_3")


def test_slope_r2_by_hand_on_a_v():
    # y = 3, 1, 2 at x = 0, 1, 2: xc = -1, 0, 1 -> sxy = -1, sxx = 2, beta = -0.5;
    # ssy = sum((y - 2)^2) = 2; r2 = 1 / (2 * 2) = 0.25
    slope, r2 = slope_r2(pd.Series([3.0, 1.0, 2.0]), 3)
    assert slope.iloc[-1] == pytest.approx(-0.5 / 2.0)
    assert r2.iloc[-1] == pytest.approx(0.25)


def test_slope_r2_match_polyfit_on_random_walk():
    rng = np.random.default_rng(3)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300))))
    slope, r2 = slope_r2(close, 30)
    for t in (29, 100, 299):
        window = close.to_numpy()[t - 29 : t + 1]
        beta, intercept = np.polyfit(np.arange(30), window, 1)
        fitted = beta * np.arange(30) + intercept
        expected_r2 = 1 - np.sum((window - fitted) ** 2) / np.sum((window - window.mean()) ** 2)
        assert slope.iloc[t] == pytest.approx(beta / window[-1], rel=1e-9)
        assert r2.iloc[t] == pytest.approx(expected_r2, rel=1e-9)


def test_flat_window_has_zero_slope_and_r2():
    slope, r2 = slope_r2(pd.Series([1.0, 3.0, 7.0, 7.0, 7.0, 7.0]), 4)
    assert slope.iloc[-1] == 0.0 and r2.iloc[-1] == 0.0
    assert 0.0 < r2.iloc[3] <= 1.0


def test_r2_bounded():
    rng = np.random.default_rng(5)
    close = pd.Series(np.round(50 + np.cumsum(rng.normal(0, 1, 2000)), 1))
    _, r2 = slope_r2(close, 10)
    assert ((r2.dropna() >= 0) & (r2.dropna() <= 1)).all()


def test_slope_window_must_be_at_least_two():
    with pytest.raises(FactorError, match=">= 2"):
        slope_r2(pd.Series([1.0, 2.0]), 1)
