"""sr_breakout exactly as docs/design.md#the-reference-strategy defines it, on hand-computed bars."""

from __future__ import annotations

import pytest

from strategies.base import ExitRules, StrategyError
from strategies.sr_breakout import SRBreakout
from tests.strategies.frames import bars_from, signal_bars

# lookback=3: resistance_t = max(high[t-3..t-1]), support_t = min(low[t-3..t-1])
#   t=3: R=12 S=9  close 10.5 -> none        t=6: R=13 S=10 close 10  -> none (10 < 10 false)
#   t=4: R=12 S=10 close 12.5 -> LONG        t=7: R=13 S=9  close 8   -> SHORT
#   t=5: R=13 S=10 close 11   -> none        t=8: R=12 S=7  close 7.5 -> none
HIGH = [10, 11, 12, 11, 13, 12, 12, 9, 8]
LOW = [9, 10, 11, 10, 11, 10, 9, 7, 6]
CLOSE = [9.5, 10.5, 11.5, 10.5, 12.5, 11, 10, 8, 7.5]
BARS = bars_from(HIGH, LOW, CLOSE, freq="5min")


def test_hand_computed_long_entries() -> None:
    out = SRBreakout(lookback=3).compute(BARS)
    assert signal_bars(out, "enter_long") == [4]
    assert signal_bars(out, "enter_short") == []  # allow_short defaults to False
    assert not out["exit_long"].any() and not out["exit_short"].any()  # brackets only


def test_hand_computed_short_entries() -> None:
    out = SRBreakout(lookback=3, allow_short=True).compute(BARS)
    assert signal_bars(out, "enter_long") == [4]
    assert signal_bars(out, "enter_short") == [7]


def test_no_signal_before_a_full_lookback() -> None:
    # lookback=9 needs 9 previous bars: none exist in a 9-bar frame.
    out = SRBreakout(lookback=9, allow_short=True).compute(BARS)
    assert not out[["enter_long", "enter_short"]].to_numpy().any()


def test_lookback_one_compares_with_the_previous_bar() -> None:
    # long when close_t > high_{t-1}: t=1 (10.5>10), t=2 (11.5>11), t=4 (12.5>11);
    # short when close_t < low_{t-1}: t=3 (10.5<11), t=7 (8<9); t=6 is 10 < 10, false.
    out = SRBreakout(lookback=1, allow_short=True).compute(BARS)
    assert signal_bars(out, "enter_long") == [1, 2, 4]
    assert signal_bars(out, "enter_short") == [3, 7]


def test_defaults_and_exit_rules() -> None:
    strategy = SRBreakout()
    assert strategy.param_dict() == {
        "lookback": 20,
        "sl_pct": 0.01,
        "tp_pct": 0.02,
        "allow_short": False,
    }
    assert strategy.exit_rules() == ExitRules(sl_pct=0.01, tp_pct=0.02, max_bars=None)


@pytest.mark.parametrize(
    "params,message",
    [({"lookback": 0}, "lookback must be >= 1"), ({"sl_pct": 1.5}, "sl_pct must be in")],
)
def test_bad_values(params: dict, message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        SRBreakout(**params)
