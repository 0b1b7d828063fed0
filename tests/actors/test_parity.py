"""Fast mode == bar-by-bar replay on every built-in family over the sample data; Local == Ray."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from actors.kernel import run_kernel
from actors.runtime import LocalRuntime, RayRuntime
from backtest.run import BacktestConfig
from store.bar_files import read_bar_file
from strategies.registry import BUILTIN

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
SERIES = (("ETH_BTC-5m.csv.gz", "5m"), ("XRP_ETH-1m.csv.gz", "1m"))
CONFIG = BacktestConfig(fee_bps=10.0, slippage_bps=2.0, risk=0.02)


@pytest.fixture(scope="module")
def series() -> dict[str, pd.DataFrame]:
    return {name: read_bar_file(SAMPLE / name, interval)[0] for name, interval in SERIES}


def variants(cls) -> list[dict]:
    """Default parameters plus a variant that exercises shorts, time exits and distances."""
    known = cls.parameters()
    extra = {
        "allow_short": True,
        "max_bars": 24,
        "stop_k": 1.0,
        "stop_atr": 2.0,
        "target_atr": 3.0,
        "exit_at_open": True,
    }
    return [{}, {k: v for k, v in extra.items() if k in known}]


def outcome(strategy, bars, interval, mode, runtime=None):
    out = run_kernel(strategy, bars, "X", interval, CONFIG, mode, runtime)
    return out.trades, out.orders


@pytest.mark.parametrize("family", sorted(BUILTIN))
def test_fast_equals_replay_on_every_family(family: str, series) -> None:
    cls = BUILTIN[family]
    trades_seen = 0
    for name, interval in SERIES:
        for params in variants(cls):
            strategy = cls(**params)
            fast = outcome(strategy, series[name], interval, "fast")
            replay = outcome(strategy, series[name], interval, "replay")
            assert fast == replay, f"{family} {params} on {name}: fast and replay differ"
            trades_seen += len(fast[0])
    assert trades_seen > 0, f"{family} never traded on the sample data: parity proves nothing"


@pytest.fixture(scope="module")
def ray_session(ray_shared):
    return ray_shared  # its workers have the repository on PYTHONPATH (tests/ray_local.py)


@pytest.mark.ray
def test_local_and_ray_runtimes_give_identical_orders_and_trades(ray_session, series) -> None:
    bars = series["ETH_BTC-5m.csv.gz"].iloc[:240]  # replay over Ray: ~2 calls per bar
    strategy = BUILTIN["sr_breakout"](allow_short=True, lookback=10)
    local = outcome(strategy, bars, "5m", "fast", LocalRuntime())
    assert len(local[0]) >= 2
    assert outcome(strategy, bars, "5m", "fast", RayRuntime()) == local
    assert outcome(strategy, bars, "5m", "replay", RayRuntime()) == local
