import numpy as np
import pandas as pd
import pytest

from factors.align import align_higher, resample_bars
from factors.daily import DAILY_COLUMNS, daily_context
from factors.engine import (
    DEFAULT_FACTORS,
    FAMILIES,
    compute_factors,
    factor_names,
    parse_name,
)
from factors.synthetic import random_walk_bars
from factors.trend import slope_r2, trend_n
from factors.volatility import FactorError, atr, range_n


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return random_walk_bars(3000, "1m", seed=11)


def test_default_set_covers_every_family_and_window(bars):
    table = compute_factors(bars)
    assert list(table.columns) == DEFAULT_FACTORS
    for n in (10, 20, 30, 50, 100):
        for kind in ("range", "trend", "slope", "r2"):
            assert f"{kind}_{n}" in table
    assert "atr_14" in table and set(DAILY_COLUMNS) <= set(table)
    assert table.index.equals(bars.index)


def test_columns_equal_the_family_functions(bars):
    table = compute_factors(bars, ["range_20", "atr_7", "trend_30", "slope_50", "r2_50"])
    slope, r2 = slope_r2(bars.close, 50)
    pd.testing.assert_series_equal(table["range_20"], range_n(bars, 20))
    pd.testing.assert_series_equal(table["atr_7"], atr(bars, 7))
    pd.testing.assert_series_equal(table["trend_30"], trend_n(bars.close, 30))
    pd.testing.assert_series_equal(table["slope_50"], slope)
    pd.testing.assert_series_equal(table["r2_50"], r2)
    daily = compute_factors(bars, ["prev_day_close", "bar_of_day"])
    pd.testing.assert_frame_equal(daily, daily_context(bars)[["prev_day_close", "bar_of_day"]])


def test_higher_interval_names_resample_and_align(bars):
    table = compute_factors(bars, ["range_10@15m", "r2_10@1h"])
    fifteen = resample_bars(bars, "15m")
    expected = align_higher(bars.index, "1m", range_n(fifteen, 10).to_frame(), "15m")
    np.testing.assert_array_equal(table["range_10@15m"], expected["range_10"])
    assert table["r2_10@1h"].iloc[: 10 * 60 - 1].isna().all()
    assert table["r2_10@1h"].iloc[10 * 60 - 1 :].notna().all()


def test_parse_name():
    spec = parse_name("slope_30@1h")
    assert (spec.kind, spec.window, spec.interval, spec.family) == ("slope", 30, "1h", "trend")
    assert parse_name("prev_day_atr").family == "daily"
    assert parse_name("range_7").window == 7


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("momentum_10", "unknown factor"),
        ("range_", "unknown factor"),
        ("slope_1", ">= 2"),
        ("range_0", ">= 1"),
        ("range_10@2h", "unknown interval"),
    ],
)
def test_bad_names_are_value_errors(name, message):
    with pytest.raises(FactorError, match=message):
        parse_name(name)


def test_higher_interval_must_be_higher(bars):
    with pytest.raises(FactorError, match="higher interval"):
        compute_factors(bars, ["range_10@1m"])


def test_repeated_names_rejected(bars):
    with pytest.raises(FactorError, match="repeat"):
        compute_factors(bars, ["range_10", "range_10"])


def test_factor_names_by_family():
    assert factor_names("daily") == list(DAILY_COLUMNS)
    assert factor_names() == DEFAULT_FACTORS
    assert sum(len(v) for v in FAMILIES.values()) == len(DEFAULT_FACTORS)
    with pytest.raises(FactorError, match="family"):
        factor_names("momentum")
