"""Every factor at bar t depends only on bars <= t.

Compute on the full data and on the data cut at several points (random ones plus day and
higher-bar boundaries); every value at or before the cut must be identical (NaN == NaN).
"""

import numpy as np
import pandas as pd
import pytest

from factors.align import align_higher, resample_bars
from factors.daily import daily_context
from factors.engine import DEFAULT_FACTORS, compute_factors
from factors.synthetic import random_walk_bars
from tests.factors.helpers import read_sample

EXTRA = ["atr_5", "range_7", "trend_3", "slope_2", "r2_3", "slope_250", "r2_250"]
HIGHER = [
    "range_10@5m",
    "slope_10@15m",
    "r2_10@15m",
    "trend_10@1h",
    "atr_14@1h",
    "prev_day_range@1h",
    "range_3@1d",
    "slope_3@1d",
    "r2_3@1d",
]
NAMES = DEFAULT_FACTORS + EXTRA + HIGHER


def gappy_synthetic() -> pd.DataFrame:
    """40 days of 5m bars with whole hours, a whole day and single bars missing."""
    bars = random_walk_bars(40 * 288, "5m", start="2024-03-01", seed=21)
    rng = np.random.default_rng(2)
    drop = set(rng.choice(len(bars), 300, replace=False).tolist())
    drop |= set(range(3000, 3036)) | set(range(288 * 20, 288 * 21))  # 3 hours; all of day 21
    keep = np.array([i not in drop for i in range(len(bars))])
    return bars[keep]


DATASETS = {
    "sample_1m": (lambda: read_sample("UNITTEST_BTC-1m.csv.gz"), "1m"),
    "synthetic_5m": (gappy_synthetic, "5m"),
}


@pytest.fixture(scope="module", params=list(DATASETS))
def dataset(request):
    load, interval = DATASETS[request.param]
    bars = load()
    names = [n for n in NAMES if not n.endswith("@5m") or interval != "5m"]
    full = compute_factors(bars, names, interval=interval)
    return request.param, bars, interval, names, full


def cut_points(bars: pd.DataFrame, seed: int) -> list[int]:
    """Random cuts plus the last bar of a day, the first bar of a day and the first bars."""
    rng = np.random.default_rng(seed)
    n = len(bars)
    cuts = rng.integers(1, n - 1, 5).tolist()
    day = bars.index.floor("D")
    starts = np.flatnonzero(day[1:] != day[:-1]) + 1
    middle = starts[len(starts) // 2]
    cuts += [middle - 1, middle, 0, 1, 150]
    return sorted(set(cuts))


def assert_same_prefix(full: pd.DataFrame, part: pd.DataFrame, cut: int, label: str) -> None:
    for name in full.columns:
        a = full[name].to_numpy(dtype=np.float64)[: cut + 1]
        b = part[name].to_numpy(dtype=np.float64)
        assert len(b) == cut + 1
        diff = np.flatnonzero(~((a == b) | (np.isnan(a) & np.isnan(b))))
        assert diff.size == 0, f"{label}: {name} differs at bar {diff[:5]} with cut at {cut}"


def test_every_factor_is_lookahead_free(dataset):
    label, bars, interval, names, full = dataset
    for cut in cut_points(bars, seed=len(bars)):
        part = compute_factors(bars.iloc[: cut + 1].copy(), names, interval=interval)
        assert_same_prefix(full, part, cut, label)


def test_factors_have_values(dataset):
    label, _, _, names, full = dataset
    empty = [n for n in names if full[n].isna().all()]
    if label == "sample_1m":
        # 9.5 days of data: too short for a 14-day ATR or 3 daily bars of r2/slope.
        assert set(empty) <= {"prev_day_atr", "slope_3@1d", "r2_3@1d", "range_3@1d"}
    else:
        assert empty == []


def test_daily_context_is_lookahead_free(dataset):
    label, bars, _, _, _ = dataset
    full = daily_context(bars)
    for cut in cut_points(bars, seed=7):
        assert_same_prefix(full, daily_context(bars.iloc[: cut + 1]), cut, label)


@pytest.mark.parametrize("higher", ["15m", "1h", "4h", "1d"])
def test_alignment_is_lookahead_free(dataset, higher):
    label, bars, interval, _, _ = dataset

    def aligned(frame: pd.DataFrame) -> pd.DataFrame:
        resampled = resample_bars(frame, higher)
        return align_higher(frame.index, interval, resampled, higher)

    full = aligned(bars)
    assert full["close"].notna().any()
    for cut in cut_points(bars, seed=3):
        assert_same_prefix(full, aligned(bars.iloc[: cut + 1]), cut, f"{label}@{higher}")


def test_the_check_catches_a_factor_that_peeks(monkeypatch):
    import factors.engine as engine
    from factors.volatility import range_n

    monkeypatch.setattr(engine, "range_n", lambda b, n: range_n(b, n).shift(-1))
    bars = gappy_synthetic()
    full = compute_factors(bars, ["range_10"], interval="5m")
    part = compute_factors(bars.iloc[:5001], ["range_10"], interval="5m")
    with pytest.raises(AssertionError, match="range_10 differs"):
        assert_same_prefix(full, part, 5000, "peeking")
