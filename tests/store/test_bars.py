"""Bulk save/load of bars on SQLite and PostgreSQL (db_url runs each test on both)."""

import numpy as np
import pandas as pd
import pytest

from factors.synthetic import random_walk_bars
from store.bars import list_series, load_bars, save_bars, stored_intervals
from store.validate import BarDataError, DuplicateBarsError


def test_save_load_roundtrip_is_exact(db_url):
    bars = random_walk_bars(2_000, "1m", seed=3)
    assert save_bars(db_url, "binance", "ETH/BTC", "1m", bars) == 2_000
    loaded = load_bars(db_url, "binance", "ETH/BTC", "1m")
    pd.testing.assert_frame_equal(loaded, bars, check_freq=False, check_index_type=False)
    assert str(loaded.index.tz) == "UTC" and loaded.index.name == "timestamp"
    assert all(loaded[c].dtype == np.float64 for c in loaded.columns)


def test_reimport_is_idempotent_and_adds_only_new_bars(db_url):
    bars = random_walk_bars(100, "5m", seed=1)
    assert save_bars(db_url, "binance", "A/B", "5m", bars.iloc[:60]) == 60
    assert save_bars(db_url, "binance", "A/B", "5m", bars) == 40
    assert save_bars(db_url, "binance", "A/B", "5m", bars) == 0
    assert len(load_bars(db_url, "binance", "A/B", "5m")) == 100
    [series] = list_series(db_url)
    assert series["bars"] == 100 and series["gaps"] == 0


def test_series_are_kept_apart_and_filtered_by_time(db_url):
    bars = random_walk_bars(50, "1m", start="2024-01-01", seed=2)
    save_bars(db_url, "binance", "A/B", "1m", bars)
    save_bars(db_url, "kraken", "A/B", "1m", bars * 2)
    part = load_bars(db_url, "binance", "A/B", "1m", "2024-01-01 00:10", "2024-01-01T00:19Z")
    assert len(part) == 10
    assert part.index[0] == pd.Timestamp("2024-01-01 00:10", tz="UTC")
    assert part["close"].iloc[0] == bars["close"].iloc[10]
    assert load_bars(db_url, "kraken", "A/B", "1m")["close"].iloc[0] == 2 * bars["close"].iloc[0]


def test_gaps_are_recorded_not_filled(db_url):
    bars = random_walk_bars(30, "1m", seed=4)
    holey = bars.drop(bars.index[[5, 6, 7, 20]])
    save_bars(db_url, "binance", "A/B", "1m", holey)
    [series] = list_series(db_url)
    assert series["bars"] == 26
    assert series["gaps"] == 2 and series["missing_bars"] == 4
    assert series["largest_gap"] == pd.Timedelta(minutes=3)
    assert series["first"] == bars.index[0] and series["last"] == bars.index[-1]
    assert len(load_bars(db_url, "binance", "A/B", "1m")) == 26


def test_load_resamples_on_the_fly_from_stored_interval(db_url):
    bars = random_walk_bars(60, "1m", start="2024-01-01", seed=5)
    save_bars(db_url, "binance", "A/B", "1m", bars.drop(bars.index[17]))
    five = load_bars(db_url, "binance", "A/B", "5m")
    # bucket 15..19 lost a bar: dropped, not filled
    assert len(five) == 11
    assert pd.Timestamp("2024-01-01 00:15", tz="UTC") not in five.index
    first = bars.iloc[:5]
    assert five["open"].iloc[0] == first["open"].iloc[0]
    assert five["high"].iloc[0] == first["high"].max()
    assert five["low"].iloc[0] == first["low"].min()
    assert five["close"].iloc[0] == first["close"].iloc[-1]
    assert five["volume"].iloc[0] == pytest.approx(first["volume"].sum())
    assert stored_intervals(db_url, "binance", "A/B") == ["1m"]
    window = load_bars(db_url, "binance", "A/B", "15m", "2024-01-01 00:30", "2024-01-01 00:45")
    assert list(window.index.strftime("%H:%M")) == ["00:30", "00:45"]


def test_missing_series_names_it_and_data_list(db_url):
    with pytest.raises(BarDataError, match=r"no 1h bars for binance X/Y.*data list"):
        load_bars(db_url, "binance", "X/Y", "1h")


def test_invalid_frame_writes_nothing(db_url):
    bars = random_walk_bars(10, "1m", seed=6)
    bad = pd.concat([bars, bars.iloc[[3]]]).sort_index()
    with pytest.raises(DuplicateBarsError):
        save_bars(db_url, "binance", "A/B", "1m", bad)
    assert list_series(db_url) == []


def test_parse_utc_is_the_one_user_date_reader(db_url):
    """factors.bars.parse_utc: naive = UTC, aware converted, blanks None, one clear error."""
    from factors.bars import TimeValueError, parse_utc

    assert parse_utc("2024-01-01 02:00+02:00") == pd.Timestamp("2024-01-01", tz="UTC")
    assert parse_utc("2024-01-01") == pd.Timestamp("2024-01-01", tz="UTC")
    assert parse_utc(None) is None and parse_utc("  ") is None and parse_utc(pd.NaT) is None
    with pytest.raises(TimeValueError, match=r"--since 'someday' is not a date/time; use ISO"):
        parse_utc("someday", "--since")
    # store.bars reads its start/end through it
    save_bars(db_url, "binance", "ETH/BTC", "5m", random_walk_bars(50, "5m", "2024-01-01", 1))
    with pytest.raises(ValueError, match=r"^start 'soon' is not a date/time"):
        load_bars(db_url, "binance", "ETH/BTC", "5m", start="soon")
    part = load_bars(db_url, "binance", "ETH/BTC", "5m", end="2024-01-01T01:00+01:00")
    assert part.index[-1] == pd.Timestamp("2024-01-01 00:00", tz="UTC")
