import logging

import pandas as pd
import pytest

from factors.cache import FactorCache, data_fingerprint
from factors.engine import compute_factors
from factors.synthetic import random_walk_bars

NAMES = ["range_10", "slope_20", "r2_20", "prev_day_close"]


@pytest.fixture
def bars() -> pd.DataFrame:
    return random_walk_bars(2000, "1m", seed=4)


def test_second_call_hits(tmp_path, bars, caplog):
    cache = FactorCache(tmp_path / "fc")
    with caplog.at_level(logging.INFO, logger="factors.cache"):
        first = cache.get_or_compute("binance:BTC/USDT:1m", bars, NAMES)
        second = cache.get_or_compute("binance:BTC/USDT:1m", bars, NAMES)
    assert (cache.misses, cache.hits) == (1, 1)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("factor cache miss") and messages[1].startswith(
        "factor cache hit"
    )
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(second, compute_factors(bars, NAMES))
    assert len(list((tmp_path / "fc").glob("*.parquet"))) == 1


def test_hit_does_not_recompute(tmp_path, bars):
    cache = FactorCache(tmp_path)
    calls = []

    def counting(frame, names):
        calls.append(names)
        return compute_factors(frame, names)

    cache.get_or_compute("s", bars, NAMES, compute=counting)
    cache.get_or_compute("s", bars, NAMES, compute=counting)
    assert len(calls) == 1


def test_changed_data_series_or_names_miss(tmp_path, bars):
    cache = FactorCache(tmp_path)
    cache.get_or_compute("s", bars, NAMES)
    changed = bars.copy()
    changed.iloc[-1, changed.columns.get_loc("close")] *= 1.0001
    cache.get_or_compute("s", changed, NAMES)
    cache.get_or_compute("other", bars, NAMES)
    cache.get_or_compute("s", bars, NAMES[:2])
    assert (cache.misses, cache.hits) == (4, 0)
    # The order of names does not matter for the key, and the requested order is returned.
    table = cache.get_or_compute("s", bars, list(reversed(NAMES)))
    assert cache.hits == 1 and list(table.columns) == list(reversed(NAMES))


def test_fingerprint_sees_index_and_every_column(bars):
    base = data_fingerprint(bars)
    shifted = bars.copy()
    shifted.index = shifted.index + pd.Timedelta(minutes=1)
    assert data_fingerprint(shifted) != base
    for column in ("open", "high", "low", "close", "volume"):
        changed = bars.copy()
        changed.iloc[0, changed.columns.get_loc(column)] += 1.0
        assert data_fingerprint(changed) != base


def test_corrupt_entry_is_recomputed(tmp_path, bars):
    cache = FactorCache(tmp_path)
    cache.get_or_compute("s", bars, NAMES)
    (entry,) = tmp_path.glob("*.parquet")
    entry.write_bytes(b"not parquet")
    table = cache.get_or_compute("s", bars, NAMES)
    assert cache.misses == 2
    pd.testing.assert_frame_equal(table, compute_factors(bars, NAMES))
