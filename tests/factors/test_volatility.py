import numpy as np
import pandas as pd
import pytest

from factors.volatility import FactorError, atr, range_n, true_range
from tests.factors.helpers import frame_from

# open, high, low, close: five bars computed by hand below.
ROWS = [
    (10.0, 11.0, 9.0, 10.0),
    (10.0, 12.0, 10.0, 11.0),
    (11.0, 11.5, 8.0, 9.0),  # low far below the previous close
    (12.0, 14.0, 11.0, 13.0),  # gap up: high - prev close (5) > high - low (3)
    (13.0, 13.0, 12.0, 12.5),
]


@pytest.fixture
def bars() -> pd.DataFrame:
    return frame_from(ROWS, "2024-01-01", "1min")


def test_true_range_by_hand(bars):
    # bar0: 11-9=2; bar1: max(2, |12-10|, |10-10|)=2; bar2: max(3.5, 0.5, 3)=3.5;
    # bar3: max(3, |14-9|=5, |11-9|=2)=5; bar4: max(1, 0, 1)=1.
    assert true_range(bars).tolist() == [2.0, 2.0, 3.5, 5.0, 1.0]


def test_atr_is_simple_mean_of_true_range(bars):
    values = atr(bars, 3).to_numpy()
    assert np.isnan(values[:2]).all()
    np.testing.assert_allclose(values[2:], [7.5 / 3, 10.5 / 3, 9.5 / 3], rtol=1e-15)
    assert atr(bars, 3).name == "atr_3"


def test_range_by_hand(bars):
    values = range_n(bars, 3).to_numpy()
    assert np.isnan(values[:2]).all()
    # bar2: (12 - 8)/9; bar3: (14 - 8)/13; bar4: (14 - 8)/12.5
    np.testing.assert_allclose(values[2:], [4 / 9, 6 / 13, 6 / 12.5], rtol=1e-15)


def test_range_one_bar_is_own_span(bars):
    np.testing.assert_allclose(range_n(bars, 1), (bars.high - bars.low) / bars.close)


def test_window_longer_than_data_is_all_nan(bars):
    assert atr(bars, 10).isna().all()
    assert range_n(bars, 10).isna().all()


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10", True])
def test_bad_window_is_a_value_error(bars, bad):
    with pytest.raises(FactorError, match="window length"):
        range_n(bars, bad)


def test_missing_column_named(bars):
    with pytest.raises(FactorError, match="'high'"):
        true_range(bars.drop(columns="high"))


def test_flat_window_after_moves_is_exactly_zero_range_and_atr():
    rows = [(10.0, 12.0, 8.0, 10.0)] * 1 + [(10.0, 10.0, 10.0, 10.0)] * 5
    bars = frame_from(rows, "2024-01-01", "1min")
    assert atr(bars, 3).iloc[-1] == 0.0
    assert range_n(bars, 3).iloc[-1] == 0.0
