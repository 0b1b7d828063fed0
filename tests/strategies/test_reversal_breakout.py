"""Reversal breakout on a hand-computed fall and rebound (atr_n=1: ATR = the bar's true range)."""

from __future__ import annotations

import pytest

from strategies.base import ExitRules, StrategyError
from strategies.reversal_breakout import ReversalBreakout
from tests.strategies.frames import bars_from, mirror, signal_bars

# lookback=4, swing=2, move_atr=3, atr_n=1:
#   t=4: fell = max(high[0..3]) - close_3 = 20 - 16.2 = 3.8 < 3 x TR_3 (1.4) = 4.2: not extended
#   t=5: fell = max(high[1..4]) - close_4 = 19.5 - 16.0 = 3.5 >= 3 x TR_4 (0.9) = 2.7: extended;
#        close_5 17.5 > swing high max(high[3..4]) = 17.4 -> LONG
#   t=6: fell = 18.3 - 17.5 = 0.8: not extended
HIGH = [20, 19.5, 18.3, 17.4, 16.5, 17.6, 17.8]
LOW = [19, 18, 17, 16, 15.6, 15.9, 16.8]
CLOSE = [19.5, 18.2, 17.2, 16.2, 16.0, 17.5, 17.6]
BARS = bars_from(HIGH, LOW, CLOSE, freq="3min")
HAND = {"lookback": 4, "swing": 2, "move_atr": 3.0, "atr_n": 1}


def test_hand_computed_long() -> None:
    out = ReversalBreakout(**HAND, allow_short=True).compute(BARS)
    assert signal_bars(out, "enter_long") == [5]
    assert signal_bars(out, "enter_short") == []


def test_a_higher_threshold_needs_a_longer_move() -> None:
    out = ReversalBreakout(**{**HAND, "move_atr": 4.0}).compute(BARS)  # 3.5 < 3.6
    assert signal_bars(out, "enter_long") == []


def test_mirror_gives_the_short() -> None:
    out = ReversalBreakout(**HAND, allow_short=True).compute(mirror(BARS, 20))
    assert signal_bars(out, "enter_short") == [5]
    assert signal_bars(out, "enter_long") == []


def test_atr_brackets_and_swing_exit() -> None:
    out = ReversalBreakout(**HAND, stop_atr=2, target_atr=3, swing_exit=True).compute(BARS)
    tr_5 = 17.6 - 15.9
    assert out["stop_distance"].iloc[5] == pytest.approx(2 * tr_5)
    assert out["target_distance"].iloc[5] == pytest.approx(3 * tr_5)
    # exit_long when close_t < min(low[t-2..t-1]): t=2 (17.2 < 18), t=3 (16.2 < 17); t=4 is
    # 16.0 < 16, false. exit_short when close_t > max(high[t-2..t-1]): t=5 (17.5 > 17.4);
    # t=6 is 17.6 > 17.6, false.
    assert signal_bars(out, "exit_long") == [2, 3]
    assert signal_bars(out, "exit_short") == [5]


def test_exit_rules() -> None:
    assert ReversalBreakout(max_bars=20).exit_rules() == ExitRules(0.01, 0.02, 20, False)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"swing": 0}, "swing must be >= 1"),
        ({"lookback": 5, "swing": 5}, "lookback must be greater than swing"),
        ({"atr_n": 0}, "atr_n must be >= 1"),
        ({"move_atr": 0}, "move_atr must be > 0"),
        ({"stop_atr": -2}, "stop_atr must be >= 0"),
    ],
)
def test_bad_values(params: dict, message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        ReversalBreakout(**params)
