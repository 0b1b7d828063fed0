"""Open range breakout on hand-computed 15m and 1h bars."""

from __future__ import annotations

import pytest

from strategies.base import ExitRules, StrategyError
from strategies.orb import OpenRangeBreakout
from tests.strategies.frames import at, bars_from, mirror, signal_bars

# Two UTC days of 15m bars; range_minutes=30 -> the 00:00 and 00:15 bars form the range.
#   day 1: range high 102, low 99. 00:30 close 101.5 inside; 00:45 close 102.5 > 102 LONG;
#          01:00 close 103 above again (no second long); 01:15 close 98.5 < 99 SHORT.
#   day 2: range high 99, low 96.5. 00:30 close 96 < 96.5 SHORT; 00:45 close 99.5 > 99 LONG.
TIMES = at(
    [
        "2024-01-01 00:00",
        "2024-01-01 00:15",
        "2024-01-01 00:30",
        "2024-01-01 00:45",
        "2024-01-01 01:00",
        "2024-01-01 01:15",
        "2024-01-02 00:00",
        "2024-01-02 00:15",
        "2024-01-02 00:30",
        "2024-01-02 00:45",
    ]
)
HIGH = [101, 102, 101.8, 102.6, 103.2, 103, 99, 98, 97, 99.8]
LOW = [99, 99.5, 100.9, 101.4, 102.4, 98, 97, 96.5, 95.5, 96]
CLOSE = [100, 101, 101.5, 102.5, 103, 98.5, 97.5, 97, 96, 99.5]
BARS = bars_from(HIGH, LOW, CLOSE, index=TIMES)


def test_first_breakout_per_side_per_session() -> None:
    out = OpenRangeBreakout(allow_short=True).compute(BARS)
    assert signal_bars(out, "enter_long") == [3, 9]
    assert signal_bars(out, "enter_short") == [5, 8]
    # exit_on_opposite: a long closes on a close below the range low, a short above the high
    assert signal_bars(out, "exit_long") == [5, 8]
    assert signal_bars(out, "exit_short") == [3, 4, 9]


def test_long_only_by_default_and_mirror_gives_shorts() -> None:
    out = OpenRangeBreakout().compute(BARS)
    assert signal_bars(out, "enter_long") == [3, 9]
    assert not out["enter_short"].any()
    flipped = OpenRangeBreakout(allow_short=True, allow_long=False).compute(mirror(BARS, 100))
    assert signal_bars(flipped, "enter_short") == [3, 9]
    assert not flipped["enter_long"].any()


def test_entry_cutoff() -> None:
    # No entries on bars opening at/after 00:45: day 1 has none, day 2 only the 00:30 short.
    out = OpenRangeBreakout(allow_short=True, entry_cutoff_minutes=45).compute(BARS)
    assert signal_bars(out, "enter_long") == []
    assert signal_bars(out, "enter_short") == [8]
    assert out["exit_long"].sum() == 2  # exits still work after the cutoff


def test_longer_range_and_range_stop() -> None:
    # range_minutes=60: day 1 range = 00:00..00:45, high 102.6, low 99 -> 01:00 close 103 LONG;
    # day 2 has only range bars -> nothing.
    out = OpenRangeBreakout(range_minutes=60, range_stop=0.5).compute(BARS)
    assert signal_bars(out, "enter_long") == [4]
    assert out["stop_distance"].iloc[4] == pytest.approx(0.5 * (102.6 - 99))
    assert out["stop_distance"].iloc[0] == pytest.approx(0.5 * (101 - 99))  # range so far


def test_on_hourly_bars_the_range_is_the_first_bar() -> None:
    bars = bars_from(
        [101, 100.5, 102, 101],
        [99, 99.5, 100, 98.5],
        [100, 100, 101.5, 98.8],
        start="2024-03-05",
        freq="1h",
    )
    out = OpenRangeBreakout(range_minutes=30, allow_short=True).compute(bars)
    assert signal_bars(out, "enter_long") == [2]  # 101.5 > 101
    assert signal_bars(out, "enter_short") == [3]  # 98.8 < 99


def test_missing_first_bar_means_no_range_that_day() -> None:
    bars = BARS.iloc[2:6]  # day 1 without its 00:00 and 00:15 bars
    out = OpenRangeBreakout(allow_short=True).compute(bars)
    assert not out[["enter_long", "enter_short"]].to_numpy().any()


def test_exit_rules_close_at_the_session_end() -> None:
    assert OpenRangeBreakout(max_bars=6).exit_rules() == ExitRules(0.01, 0.02, 6, True)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"range_minutes": 0}, "range_minutes must be in 1..1439"),
        ({"range_minutes": 60, "entry_cutoff_minutes": 60}, "entry_cutoff_minutes must be greater"),
        ({"sl_pct": -0.1}, "sl_pct must be in"),
        ({"range_stop": -1}, "range_stop must be >= 0"),
        ({"max_bars": -1}, "max_bars must be >= 0"),
    ],
)
def test_bad_values(params: dict, message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        OpenRangeBreakout(**params)
