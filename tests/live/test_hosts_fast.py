"""The live hosts' newest-bar path (each family's `newest_signals` over a shared
live/series_book.py) gives, at every live bar, exactly the signal columns `Strategy.compute`
gives over the whole series (what the backtest uses): every family, several parameter sets,
long series with gaps and a missing day, the book truncating and compacting as it goes, several
hosts sharing one book and one evaluation. No Ray: the hosts are plain objects in one
HostGroup, as inside a live Ray actor. (tests/strategies/test_newest.py covers each family's
whole parameter space.)"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from actors.messages import BarClosed
from core.intervals import interval_ns
from factors.synthetic import random_walk_bars
from live.hosts import HostGroup, LiveStrategyHost
from strategies.base import RecentBars, SignalRow
from strategies.registry import make_strategy
from strategies.sr_breakout import SRBreakout

INSTANCES = [
    ("sr_breakout", {"lookback": 3, "allow_short": True}),
    ("sr_breakout", {"lookback": 3, "allow_short": True}),  # identical: shares one evaluation
    ("sr_breakout", {"lookback": 20}),
    (
        "reversal_breakout",
        {
            "lookback": 12,
            "swing": 3,
            "move_atr": 1.0,
            "atr_n": 5,
            "stop_atr": 1.5,
            "target_atr": 2.0,
            "swing_exit": True,
            "allow_short": True,
        },
    ),
    ("reversal_breakout", {}),
    ("orb", {"range_minutes": 60, "range_stop": 0.5, "allow_short": True}),
    ("orb", {"range_minutes": 15, "entry_cutoff_minutes": 600, "exit_on_opposite": False}),
    ("trend_day", {"min_move": 0.002, "min_r2": 0.3, "allow_short": True}),
    ("trend_day", {"decision_minutes": 60, "min_move": 0.001, "min_r2": 0.1}),
    (
        "volatility_breakout",
        {"k": 0.3, "stop_k": 0.5, "exit_at_open": True, "allow_short": True},
    ),
    ("volatility_breakout", {"k": 0.2, "basis": "atr", "allow_long": False, "allow_short": True}),
]
SIGNALS = ("enter_long", "exit_long", "enter_short", "exit_short")
DISTANCES = ("stop_distance", "target_distance")


def series(interval: str, days: int, seed: int) -> pd.DataFrame:
    """A random walk with gaps: a whole UTC day missing, hours missing, single bars missing."""
    per_day = 86_400 * 10**9 // interval_ns(interval)
    frame = random_walk_bars(per_day * days, interval, "2024-03-01T05:00", seed, 100.0, 0.003)
    rng = np.random.default_rng(seed)
    keep = rng.random(len(frame)) > 0.02
    keep[per_day * 20 : per_day * 21] = False  # a day with no bars: "previous day" skips it
    keep[per_day * 7 + 10 : per_day * 7 + 10 + per_day // 6] = False  # an outage of 4 hours
    return frame[keep]


def msg(frame: pd.DataFrame, i: int, symbol: str, interval: str) -> BarClosed:
    ts = int(pd.DatetimeIndex(frame.index[i : i + 1]).as_unit("ns").asi8[0])
    o, h, lo, c, v = (float(x) for x in frame.iloc[i][["open", "high", "low", "close", "volume"]])
    return BarClosed(ts + interval_ns(interval), symbol, interval, ts, o, h, lo, c, v)


def same(a: float | None, b: float) -> bool:
    if a is None:
        return math.isnan(b)
    return (math.isnan(a) and math.isnan(b)) or a == b


def mismatches(
    hosts: list[LiveStrategyHost], frame: pd.DataFrame, warm: int, interval: str
) -> dict[str, list]:
    """Feed bars warm.. to the hosts; per host, the bars where a column differs from compute()."""
    expected = {}
    for h in hosts:
        table = h.strategy.compute(frame)
        expected[h.name] = {
            c: table[c].to_numpy() if c in table else None for c in SIGNALS + DISTANCES
        }
    found: dict[str, list] = {h.name: [] for h in hosts}
    group = HostGroup([(h.name, h) for h in hosts])
    messages = [msg(frame, i, "X/Y", interval) for i in range(len(frame))]
    for i in range(warm, len(frame)):
        group.handle_batch([messages[i]])
        for h in hosts:
            want = expected[h.name]
            bad = [c for c in SIGNALS if h._flags[c][0] != bool(want[c][i])]
            for c in DISTANCES:
                values = h._distances[c]
                if (values is None) != (want[c] is None) or (
                    values is not None and not same(values[0], float(want[c][i]))
                ):
                    bad.append(c)
            if bad:
                found[h.name].append((frame.index[i], bad))
    return found


@pytest.mark.parametrize("interval,days,live_days", [("5m", 40, 30), ("1h", 60, 45), ("1m", 18, 1)])
def test_fast_path_equals_full_recompute_for_every_family(
    interval: str, days: int, live_days: int
) -> None:
    frame = series(interval, days, seed=7)
    warm = len(frame) - live_days * (86_400 * 10**9 // interval_ns(interval))
    hosts = [
        LiveStrategyHost(
            make_strategy(f, p), frame.iloc[:warm], "X/Y", interval, f"{k} {f}", window=50
        )
        for k, (f, p) in enumerate(INSTANCES)
    ]
    assert all(h.newest for h in hosts)
    assert mismatches(hosts, frame, warm, interval) == {h.name: [] for h in hosts}
    assert len({id(h.book) for h in hosts}) == 1  # the group gave them one book
    assert hosts[0].book.keep < len(frame) // 10  # it truncated and compacted along the way
    fired = {h.name: h.signals_raised for h in hosts}
    # non-trivial: most instances raised signals (gating drops repeats, so count the raised)
    assert sum(1 for n in fired.values() if n > 0) >= len(hosts) - 2, fired


def test_families_without_a_fast_path_recompute_and_match() -> None:
    class Mine(SRBreakout):  # a subclass may change signals(): no newest_signals, recompute
        name = "mine"

    frame = series("5m", 3, seed=3)
    host = LiveStrategyHost(Mine(lookback=4), frame.iloc[:300], "X/Y", "5m", "mine", window=400)
    assert not host.newest and host.keep == 400
    assert mismatches([host], frame, 300, "5m") == {"mine": []}


def test_a_wrong_rule_or_too_short_a_book_is_caught() -> None:
    frame = series("5m", 4, seed=5)

    class OffByOne(SRBreakout):  # resistance over lookback + 1 bars at the newest bar
        def newest_signals(self, bars: RecentBars) -> SignalRow:
            wider = SRBreakout(lookback=self.params.lookback + 1, allow_short=True)
            return wider.newest_signals(bars)

    strategy = OffByOne(lookback=10, allow_short=True)
    wrong = LiveStrategyHost(strategy, frame.iloc[:100], "X/Y", "5m", "wrong")
    assert wrong.newest
    assert mismatches([wrong], frame, 100, "5m")["wrong"]

    strategy = make_strategy("sr_breakout", {"lookback": 10, "allow_short": True})
    short = LiveStrategyHost(strategy, frame.iloc[:100], "X/Y", "5m", "short")
    short.keep = short.book.keep = 8  # fewer bars than the 10-bar window: cut-off rows read
    short.book.ns, short.book.cols = short.book.ns[:17], short.book.cols[:, :17]
    assert mismatches([short], frame, 100, "5m")["short"]


def test_every_builtin_family_evaluates_the_newest_bar() -> None:
    from strategies.registry import BUILTIN

    assert all(cls.evaluates_newest() for cls in BUILTIN.values())


def test_from_an_empty_history_the_first_bars_match_too() -> None:
    """No warm-up at all: windows that reach the series start (NaN previous close, partial
    first day) are handled as compute() handles them."""
    frame = series("5m", 3, seed=11)
    hosts = [
        LiveStrategyHost(make_strategy(f, p), frame.iloc[:0], "X/Y", "5m", f"{k} {f}")
        for k, (f, p) in enumerate(INSTANCES)
    ]
    assert mismatches(hosts, frame, 0, "5m") == {h.name: [] for h in hosts}
