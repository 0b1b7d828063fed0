"""No strategy family looks ahead: signals on data cut at t equal the full run's up to t.

Every family in BUILTIN, with its defaults and with a non-default set that trades both sides and
emits the optional bracket columns, on real sample data (5m, and 1m with gaps) and on synthetic
1m/3m/15m/1h series. Cuts fall at random bars, at the first bar of a day and at a day's last bar.
"""

from __future__ import annotations

import pandas as pd
import pytest

from factors.synthetic import random_walk_bars
from strategies.base import Strategy
from strategies.registry import BUILTIN
from tests.strategies.frames import assert_no_lookahead, load_sample

NON_DEFAULT: dict[str, dict] = {
    "orb": {"allow_short": True, "range_minutes": 60, "range_stop": 1.0, "max_bars": 30},
    "volatility_breakout": {
        "allow_short": True,
        "basis": "atr",
        "k": 0.3,
        "stop_k": 0.5,
        "exit_at_open": True,
    },
    "trend_day": {"allow_short": True, "decision_minutes": 90, "min_move": 0.003, "min_r2": 0.5},
    "reversal_breakout": {
        "allow_short": True,
        "lookback": 20,
        "swing": 3,
        "move_atr": 2.5,
        "stop_atr": 1.5,
        "target_atr": 3.0,
        "swing_exit": True,
    },
    "sr_breakout": {"allow_short": True, "lookback": 10},
}
CASES = [(name, {}) for name in BUILTIN] + [(name, NON_DEFAULT[name]) for name in BUILTIN]


def _synthetic(interval: str, minutes: int, days: int, seed: int) -> pd.DataFrame:
    # Same daily volatility on every interval: per-bar volatility ~ sqrt(bar minutes).
    n = days * 24 * 60 // minutes
    return random_walk_bars(n, interval, seed=seed, volatility=0.0008 * minutes**0.5)


@pytest.fixture(scope="module")
def series() -> dict[str, pd.DataFrame]:
    return {
        "ETH_BTC-5m": load_sample("ETH_BTC-5m"),
        "UNITTEST_BTC-1m (gaps)": load_sample("UNITTEST_BTC-1m"),
        "synthetic-1m": _synthetic("1m", 1, 9, seed=11),
        "synthetic-3m": _synthetic("3m", 3, 17, seed=12),
        "synthetic-15m": _synthetic("15m", 15, 30, seed=13),
        "synthetic-1h": _synthetic("1h", 60, 60, seed=14),
    }


def test_every_family_has_a_non_default_case() -> None:
    assert set(NON_DEFAULT) == set(BUILTIN)


def test_the_gapped_sample_really_has_gaps(series: dict[str, pd.DataFrame]) -> None:
    steps = series["UNITTEST_BTC-1m (gaps)"].index.to_series().diff().dropna()
    assert (steps > pd.Timedelta(minutes=1)).sum() > 0


@pytest.mark.parametrize("name,params", CASES, ids=[f"{n}-{p != {}}" for n, p in CASES])
def test_no_lookahead(name: str, params: dict, series: dict[str, pd.DataFrame]) -> None:
    strategy = BUILTIN[name](**params)
    entries = {"enter_long": 0, "enter_short": 0}
    for seed, (label, bars) in enumerate(series.items()):
        full = assert_no_lookahead(strategy, bars, seed, label)
        for column in entries:
            entries[column] += int(full[column].sum())
    # The comparison means nothing on signals that never fire.
    assert entries["enter_long"] > 0
    if params.get("allow_short"):
        assert entries["enter_short"] > 0
        distances = [c for c in ("stop_distance", "target_distance") if c in full]
        assert distances or name in ("trend_day", "sr_breakout")


class Peeking(Strategy):
    """A deliberately broken strategy: it enters when the NEXT close is higher."""

    name = "peeking"

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"enter_long": bars["close"].shift(-1) > bars["close"]})


def test_the_check_catches_a_strategy_that_peeks(series: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(AssertionError, match="peeking on ETH_BTC-5m cut at"):
        assert_no_lookahead(Peeking(), series["ETH_BTC-5m"], 0, "ETH_BTC-5m")
