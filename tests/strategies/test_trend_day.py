"""Trend day on hand-computed hourly sessions (decision at the first bar at/after 02:00)."""

from __future__ import annotations

import pytest

from strategies.base import ExitRules, StrategyError
from strategies.trend_day import TrendDay, session_r2
from tests.strategies.frames import at, bars_from, mirror, signal_bars

# Every day opens at 100. Closes (hourly from 00:00):
#   day 1: 101 102 103 99.5 -> at 02:00 move +3%, R^2 = 1 (a straight line): LONG; 03:00 exit_long
#   day 2: 102  99 101      -> move +1% but R^2 = 0.107 (choppy): nothing
#   day 3:  99  98  97      -> move -3%, R^2 = 1: SHORT (when allowed)
#   day 4: 100.2 at 00:00, 100.3 at 03:00 (01:00 and 02:00 missing): the decision bar is 03:00,
#          move +0.3% < min_move 0.5%: nothing (with min_move=0.002: LONG at 03:00)
TIMES = at(
    [
        "2024-01-01 00:00",
        "2024-01-01 01:00",
        "2024-01-01 02:00",
        "2024-01-01 03:00",
        "2024-01-02 00:00",
        "2024-01-02 01:00",
        "2024-01-02 02:00",
        "2024-01-03 00:00",
        "2024-01-03 01:00",
        "2024-01-03 02:00",
        "2024-01-04 00:00",
        "2024-01-04 03:00",
    ]
)
CLOSE = [101, 102, 103, 99.5, 102, 99, 101, 99, 98, 97, 100.2, 100.3]
OPEN = [100, 101, 102, 103, 100, 102, 99, 100, 99, 98, 100, 100.2]
HIGH = [max(o, c) + 0.1 for o, c in zip(OPEN, CLOSE, strict=True)]
LOW = [min(o, c) - 0.1 for o, c in zip(OPEN, CLOSE, strict=True)]
BARS = bars_from(HIGH, LOW, CLOSE, OPEN, index=TIMES)


def test_session_r2_hand_values() -> None:
    r2 = session_r2(BARS, BARS["open"].groupby(BARS.index.floor("D")).transform("first"))
    assert r2.iloc[0] != r2.iloc[0]  # one point: undefined (NaN)
    assert r2.iloc[2] == pytest.approx(1.0)
    assert r2.iloc[6] == pytest.approx(0.0001 / (2 * 0.00046667), rel=1e-3)
    assert r2.iloc[11] == pytest.approx(1.0)


def test_long_and_short_trend_days() -> None:
    out = TrendDay(allow_short=True).compute(BARS)
    assert signal_bars(out, "enter_long") == [2]
    assert signal_bars(out, "enter_short") == [9]
    assert signal_bars(out, "exit_long") == [3, 5, 7, 8, 9]  # closes below the day's open


def test_decision_bar_after_a_gap_and_min_move() -> None:
    out = TrendDay(min_move=0.002).compute(BARS)
    assert signal_bars(out, "enter_long") == [2, 11]


def test_choppy_day_enters_with_a_low_r2_threshold() -> None:
    out = TrendDay(min_r2=0.1).compute(BARS)
    assert signal_bars(out, "enter_long") == [2, 6]


def test_mirror_and_no_reversal_exit() -> None:
    out = TrendDay(allow_short=True, allow_long=False, exit_on_reversal=False).compute(
        mirror(BARS, 100)
    )
    assert signal_bars(out, "enter_short") == [2]
    assert not out["exit_long"].any() and not out["exit_short"].any()


def test_later_decision() -> None:
    # decision at 03:00: day 1 move -0.5% at 03:00 with R^2 < 0.6 -> nothing; day 4 as before.
    out = TrendDay(decision_minutes=180, allow_short=True, min_move=0.002).compute(BARS)
    assert signal_bars(out, "enter_long") == [11]
    assert signal_bars(out, "enter_short") == []


def test_exit_rules_hold_to_the_session_end() -> None:
    assert TrendDay().exit_rules() == ExitRules(sl_pct=0.01, tp_pct=None, session_end=True)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"decision_minutes": 1440}, "decision_minutes must be in 1..1439"),
        ({"min_move": 0}, "min_move must be in"),
        ({"min_r2": 1.5}, "min_r2 must be in"),
    ],
)
def test_bad_values(params: dict, message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        TrendDay(**params)
