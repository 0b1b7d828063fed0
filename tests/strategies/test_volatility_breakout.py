"""Volatility breakout on hand-computed daily context."""

from __future__ import annotations

import pandas as pd
import pytest

from strategies.base import ExitRules, StrategyError
from strategies.volatility_breakout import VolatilityBreakout
from tests.strategies.frames import bars_from, mirror, signal_bars

# Days 1..15: one 00:00 bar each, open 100 close 100; days 1..14 high 105 low 95 (range 10),
# day 15 high 102 low 98 (range 4). Day 16, hourly bars opening at 100:
#   prev_day_range x prev_day_close = 4; prev_day_atr = (13 x 10 + 4) / 14 = 9.5714
#   k=0.5, basis=range: levels 102 / 98   -> LONG 01:00 (102.5), SHORT 03:00 (97.5)
#   k=0.5, basis=atr:   levels 104.79 / 95.21 -> LONG 02:00 (105), SHORT 04:00 (95)
DAYS = list(pd.date_range("2024-01-01", periods=15, freq="D", tz="UTC"))
HOURS = list(pd.date_range("2024-01-16", periods=5, freq="h", tz="UTC"))
HIGH = [105] * 14 + [102] + [101.5, 102.8, 105.2, 105, 97.6]
LOW = [95] * 14 + [98] + [99.5, 100.8, 102.4, 97, 94.8]
CLOSE = [100] * 15 + [101, 102.5, 105, 97.5, 95]
OPEN = [100] * 16 + CLOSE[15:19]
BARS = bars_from(HIGH, LOW, CLOSE, OPEN, index=pd.DatetimeIndex(DAYS + HOURS))


def test_range_basis() -> None:
    out = VolatilityBreakout(allow_short=True).compute(BARS)
    assert signal_bars(out, "enter_long") == [16]
    assert signal_bars(out, "enter_short") == [18]
    assert not out["exit_long"].any()  # exit_at_open is off by default


def test_atr_basis_and_stop_k() -> None:
    out = VolatilityBreakout(basis="atr", allow_short=True, stop_k=2).compute(BARS)
    assert signal_bars(out, "enter_long") == [17]
    assert signal_bars(out, "enter_short") == [19]
    assert out["stop_distance"].iloc[17] == pytest.approx(2 * 134 / 14)
    assert out["stop_distance"].iloc[:14].isna().all()  # no 14 completed days yet


def test_exit_at_open_and_mirror() -> None:
    out = VolatilityBreakout(exit_at_open=True).compute(BARS)
    assert signal_bars(out, "exit_long") == [18, 19]
    assert signal_bars(out, "exit_short") == [15, 16, 17]
    flipped = VolatilityBreakout(allow_short=True).compute(mirror(BARS, 100))
    assert signal_bars(flipped, "enter_short") == [16]
    assert signal_bars(flipped, "enter_long") == [18]


def test_one_entry_per_side_per_day() -> None:
    out = VolatilityBreakout(k=0.1, allow_short=True).compute(BARS)  # levels 100.4 / 99.6
    assert signal_bars(out, "enter_long") == [15]
    assert signal_bars(out, "enter_short") == [18]


def test_exit_rules() -> None:
    assert VolatilityBreakout().exit_rules() == ExitRules(0.01, 0.02, None, True)
    assert VolatilityBreakout(session_exit=False, max_bars=30).exit_rules() == ExitRules(
        0.01, 0.02, 30, False
    )


@pytest.mark.parametrize(
    "params,message",
    [
        ({"k": 0}, "k must be > 0"),
        ({"basis": "weekly"}, "basis must be one of range, atr"),
        ({"tp_pct": 2}, "tp_pct must be in"),
        ({"stop_k": -1}, "stop_k must be >= 0"),
    ],
)
def test_bad_values(params: dict, message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        VolatilityBreakout(**params)
