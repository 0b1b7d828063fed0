"""Every family's `newest_signals` (what live evaluates at each bar) equals its vectorized
`signals` (what the backtest uses) at every bar, over the family's WHOLE declared parameter
space: parameters are drawn from `param_space`, which must name every parameter, and series
are drawn too (interval, length, start time of day, volatility, missing bars and days, the
warm-up split). The bars are read from a live SeriesBook that keeps only `history_bars`, so
the declared history is proven sufficient. A family whose newest-bar rule ignores a parameter
that `signals` uses fails (the deliberately broken family at the end shows it does)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from core.intervals import interval_ns
from factors.synthetic import random_walk_bars
from live.series_book import SeriesBook
from strategies.base import (
    DISTANCE_COLUMNS,
    SIGNAL_COLUMNS,
    Range,
    RecentBars,
    SignalRow,
    Strategy,
    StrategyError,
)
from strategies.registry import BUILTIN
from strategies.sr_breakout import SRBreakout, SRBreakoutParams

FAMILIES = sorted(BUILTIN.values(), key=lambda cls: cls.name)
DAY_NS = 86_400 * 10**9
# longest series drawn per interval: enough days for the 14-day ATR on 1h, few enough bars
# that a session family's per-bar work over a 1m day stays quick
MAX_BARS = {"1m": 700, "5m": 1200, "15m": 1400, "1h": 900}
EXAMPLES = 60


def parameter_values(cls: type[Strategy]) -> st.SearchStrategy[dict[str, Any]]:
    """Parameter dicts drawn from the class's param_space (ints, floats or choices)."""
    kinds = cls.parameters()
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, space in cls.param_space.items():
        if space.choices:
            fields[name] = st.sampled_from(space.choices)
        elif _base(kinds[name][0]) is int:
            fields[name] = st.integers(int(space.low), int(space.high))
        else:
            fields[name] = st.floats(space.low, space.high, allow_nan=False)
    return st.fixed_dictionaries(fields)


def _base(kind: Any) -> Any:
    args = getattr(kind, "__args__", None)
    return args[0] if args else kind


@st.composite
def bar_series(draw: st.DrawFn) -> tuple[pd.DataFrame, str, int]:
    """(bars, interval, warm): a random walk with missing bars and maybe a missing day; the
    first `warm` bars are history, every later one is evaluated as it arrives."""
    interval = draw(st.sampled_from(tuple(MAX_BARS)))
    step = interval_ns(interval)
    n = draw(st.integers(1, MAX_BARS[interval]))
    start = pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(
        draw(st.integers(0, DAY_NS // step - 1)) * step
    )
    seed = draw(st.integers(0, 2**32 - 1))
    volatility = draw(st.sampled_from((0.0005, 0.003, 0.02)))
    frame = random_walk_bars(n, interval, start.isoformat(), seed, 100.0, volatility)
    keep = np.random.default_rng(seed).random(n) >= draw(st.sampled_from((0.0, 0.02, 0.3)))
    if draw(st.booleans()):  # a whole UTC day without bars: "previous day" skips it
        day = draw(st.integers(0, max(0, n * step // DAY_NS)))
        days = pd.DatetimeIndex(frame.index).as_unit("ns").asi8 // DAY_NS
        keep &= days != days[0] + day
    frame = frame[keep]
    assume(len(frame) > 0)
    warm = draw(st.integers(0, len(frame) - 1))
    return frame, interval, warm


def mismatches(strategy: Strategy, frame: pd.DataFrame, interval: str, warm: int) -> list:
    """Bars (from `warm` on) where compute_newest over a book keeping only history_bars differs
    from compute over the whole series: (time, column, newest value, vectorized value)."""
    table = strategy.compute(frame)
    expected = {c: table[c].to_numpy() for c in SIGNAL_COLUMNS}
    distances = {c: table[c].to_numpy() if c in table else None for c in DISTANCE_COLUMNS}
    book = SeriesBook(frame.iloc[:warm], interval, strategy.history_bars(interval_ns(interval)))
    stamps = pd.DatetimeIndex(frame.index).as_unit("ns").asi8
    rows = frame[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)
    found = []
    for i in range(warm, len(frame)):
        book.append(int(stamps[i]), tuple(float(x) for x in rows[i]))
        row = strategy.compute_newest(book)
        for column in SIGNAL_COLUMNS:
            if bool(getattr(row, column)) != bool(expected[column][i]):
                found.append((frame.index[i], column, getattr(row, column), expected[column][i]))
        for column in DISTANCE_COLUMNS:
            got, want = getattr(row, column), distances[column]
            if not _same(got, None if want is None else float(want[i])):
                found.append((frame.index[i], column, got, None if want is None else want[i]))
    return found


def _same(got: float | None, want: float | None) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return (math.isnan(got) and math.isnan(want)) or got == want


def equivalence(cls: type[Strategy]) -> Callable[..., None]:
    """The property for one class: for drawn parameters and series, no mismatch at any bar."""

    @given(params=parameter_values(cls), drawn=bar_series())
    def newest_equals_vectorized(params: dict[str, Any], drawn: tuple) -> None:
        try:
            strategy = cls(**params)
        except StrategyError:  # a combination validate refuses (e.g. swing >= lookback)
            assume(False)
            raise
        frame, interval, warm = drawn
        assert mismatches(strategy, frame, interval, warm) == []

    return newest_equals_vectorized


RUN = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples every run: a failure here is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("cls", FAMILIES, ids=lambda cls: cls.name)
def test_newest_signals_equal_signals_over_the_whole_parameter_space(cls: type[Strategy]) -> None:
    assert cls.evaluates_newest()
    RUN(equivalence(cls))()


@pytest.mark.parametrize("cls", FAMILIES, ids=lambda cls: cls.name)
def test_the_parameter_space_names_every_parameter_and_holds_its_default(
    cls: type[Strategy],
) -> None:
    """A parameter left out of param_space would never be drawn: its use would go untested."""
    known = cls.parameters()
    assert set(cls.param_space) == set(known)
    for name, (_kind, default) in known.items():
        space = cls.param_space[name]
        if space.choices:
            assert default in space.choices, name
        else:
            assert space.low <= default <= space.high, name
    cls()  # the defaults are valid


# -- a deliberately broken family: signals uses `buffer`, newest_signals ignores it ------------
@dataclasses.dataclass(frozen=True)
class BufferedParams(SRBreakoutParams):
    buffer: float = 0.0  # the close must clear the resistance by this fraction


class IgnoresBuffer(SRBreakout):
    name = "ignores_buffer"
    Params = BufferedParams
    param_space = {**SRBreakout.param_space, "buffer": Range(0.0, 0.02)}

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        out = super().signals(bars)
        resistance = bars["high"].shift(1).rolling(self.params.lookback).max()
        out["enter_long"] = bars["close"] > resistance * (1 + self.params.buffer)
        return out

    def newest_signals(self, bars: RecentBars) -> SignalRow:
        return SRBreakout.newest_signals(self, bars)  # the bug: buffer is not applied


def test_a_parameter_the_newest_bar_ignores_is_caught() -> None:
    assert IgnoresBuffer.evaluates_newest()
    broken = settings(RUN, phases=(Phase.explicit, Phase.generate))  # no shrinking: just fail
    with pytest.raises(AssertionError, match="enter_long"):
        broken(equivalence(IgnoresBuffer))()
