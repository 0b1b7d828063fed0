"""Run keys: equal inputs give equal keys, any change that alters a result changes the key."""

from __future__ import annotations

import pandas as pd

from backtest import runkeys
from backtest.run import BacktestConfig
from backtest.runkeys import ENGINE_VERSION, canonical_json, data_range, run_key
from factors.synthetic import random_walk_bars

BASE = ("sr_breakout", "binance", "ETH/BTC", "5m")
PARAMS = {"lookback": 20, "sl_pct": 0.01, "tp_pct": 0.02, "allow_short": False}
DATA = (1_515_542_400_000, 1_517_270_100_000, 5760)


def test_key_is_stable_hex_and_ignores_dict_order():
    a = run_key(*BASE, PARAMS, DATA)
    b = run_key(*BASE, dict(reversed(list(PARAMS.items()))), DATA)
    assert a == b and len(a) == 64 and int(a, 16) >= 0
    assert a == run_key(*BASE, dict(PARAMS), tuple(DATA), None, ENGINE_VERSION)


# Keys computed once and written down. Stored runs are found by these keys: if this test fails,
# every run already stored gets a new key and `backtest --all` recomputes ALL of them. That is
# right only when results really change (then bump backtest.run.ENGINE_VERSION or KEY_LAYOUT and
# update these literals in the same commit); a refactor must leave them untouched.
PINNED_ENGINE = "raytrader-engine/2+keys1"
PINNED = {
    "no config": (
        (*BASE, PARAMS, DATA),
        "e4539b399217314faacb121f0de6e67b3bb02312912bcf1b32fbdf8b41acdf29",
    ),
    "config dict": (
        (*BASE, PARAMS, DATA, {"cash": 10_000.0, "fee_bps": 5.0}),
        "12c622bbc0851e71f6ea21461c474e52504adc215abe4645f27ce9669c5080b8",
    ),
    "empty params": (
        ("orb", "binance", "XRP/ETH", "1m", {}, (0, 0, 0)),
        "5b11b6d6d4fc27e3dddb98a275dede9f445e4824995665fc5052f6e086621ca8",
    ),
    # backtest --all passes the BacktestConfig itself: adding, renaming or re-defaulting one of
    # its fields changes this key, i.e. every stored run is recomputed
    "default BacktestConfig": (
        (*BASE, PARAMS, DATA, BacktestConfig()),
        "f11bac6c1a26200c90c639e38880ae892197be077de180b702e4f95220d08a26",
    ),
}


def test_keys_are_pinned_to_literal_values():
    assert ENGINE_VERSION == PINNED_ENGINE
    got = {name: run_key(*args) for name, (args, _) in PINNED.items()}
    assert got == {name: key for name, (_, key) in PINNED.items()}


def test_every_ingredient_changes_the_key():
    base = run_key(*BASE, PARAMS, DATA)
    variants = [
        run_key("orb", *BASE[1:], PARAMS, DATA),
        run_key(BASE[0], "kraken", *BASE[2:], PARAMS, DATA),
        run_key(*BASE[:2], "LTC/BTC", BASE[3], PARAMS, DATA),
        run_key(*BASE[:3], "15m", PARAMS, DATA),
        run_key(*BASE, {**PARAMS, "lookback": 21}, DATA),
        run_key(*BASE, PARAMS, (DATA[0], DATA[1] + 300_000, DATA[2] + 1)),
        run_key(*BASE, PARAMS, (DATA[0], DATA[1], DATA[2] - 1)),  # same span, a bar missing
        run_key(*BASE, PARAMS, DATA, {"cash": 10_000.0, "fee_bps": 5.0}),
        run_key(*BASE, PARAMS, DATA, None, ENGINE_VERSION + "-next"),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_data_range_is_first_last_open_time_in_ms_and_count():
    bars = random_walk_bars(10, "5m", start="2024-01-01", seed=1)
    first, last, count = data_range(bars)
    assert first == int(pd.Timestamp("2024-01-01", tz="UTC").timestamp() * 1000)
    assert last == first + 9 * 5 * 60 * 1000 and count == 10
    assert data_range(bars.iloc[:0]) == (0, 0, 0)


def test_canonical_json_handles_numpy_and_dataclass_values():
    import dataclasses

    import numpy as np

    @dataclasses.dataclass(frozen=True)
    class Cfg:
        cash: float = 1.0
        n: int = 2

    assert canonical_json({"b": np.int64(3), "a": np.float64(0.5)}) == '{"a":0.5,"b":3}'
    assert canonical_json(Cfg()) == '{"cash":1.0,"n":2}'


def test_a_user_strategy_file_edit_changes_the_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text("X = 1\n")
    spec = "mine.py:Mine"
    before = run_key(spec, *BASE[1:], {}, DATA)
    assert before == run_key(spec, *BASE[1:], {}, DATA)
    (tmp_path / "mine.py").write_text("X = 2\n")
    assert run_key(spec, *BASE[1:], {}, DATA) != before
    assert runkeys.strategy_fingerprint("sr_breakout") == ""


def test_a_setting_added_later_keys_only_away_from_its_neutral_value():
    """cash_buffer (live's buffer, 0 in backtests) came after keys were stored: at 0 the key is
    the one pinned above; any other value is a different run."""

    neutral = run_key(*BASE, PARAMS, DATA, BacktestConfig())
    assert neutral == run_key(*BASE, PARAMS, DATA, BacktestConfig(cash_buffer=0.0))
    assert neutral != run_key(*BASE, PARAMS, DATA, BacktestConfig(cash_buffer=0.02))
