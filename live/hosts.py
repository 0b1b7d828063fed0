"""Live strategy hosts and the group that hosts several actors in one Ray actor.

`LiveStrategyHost` is the StrategyHost in replay mode (bars one at a time, the same `evaluate`
and gating) whose series grows as bars arrive. Warm-up bars are history: never evaluated, only
read for the first live bar's signals. On each live bar the host needs its strategy's signal
columns at that bar only, and loads them into the parent's columns (`load_columns`):
- a class that defines `Strategy.newest_signals` (every built-in family) evaluates its rule at
  the newest bar in numpy over the bars it reads (`history_bars`), from a SeriesBook
  (live/series_book.py) shared by every host of the series in the group; instances with the
  same class and parameters share one evaluation;
- any other strategy: `Strategy.compute` over the kept bars (at most `window`), as before.
Strategies are causal (value at t uses bars <= t; the lookahead tests prove it), so either way
the signal at a live bar is exactly the one the backtest computes at that bar
(tests/strategies/test_newest.py proves newest_signals == signals over each family's parameter
space; tests/live/test_hosts_fast.py runs the hosts bar by bar against compute).

`HostGroup` is the ActorGroup (live/actor_group.py) of a Ray actor of hosts: the hosts of one
series share a book, and a trade event goes to the host it names only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from actors.messages import BarClosed
from actors.strategy_host import StrategyHost
from core.intervals import interval_ns
from factors.bars import OHLCV
from live.actor_group import ActorGroup
from live.series_book import SeriesBook
from strategies.base import SignalRow, Strategy

DEFAULT_WINDOW = 20_000  # bars kept for strategies without newest_signals (days of 1m history)
DISTANCES = ("stop_distance", "target_distance")


class LiveStrategyHost(StrategyHost):
    def __init__(
        self,
        strategy: Strategy,
        warm: pd.DataFrame,
        symbol: str,
        interval: str,
        strategy_id: str | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        warm = warm.loc[:, list(OHLCV)]
        self.newest = strategy.evaluates_newest()
        # newest_signals reads only what its rule needs; compute recomputes `window` bars
        need = strategy.history_bars(interval_ns(interval)) if self.newest else window
        self.keep = max(need, 1)
        super().__init__(strategy, warm.iloc[-1:], symbol, interval, False, strategy_id)
        self.window = window
        self.book = SeriesBook(warm, interval, self.keep)
        self._last = self.book.last_ts()
        self.bars_seen = 0

    def on_bar(self, msg: BarClosed) -> list:
        if msg.symbol != self.symbol or msg.interval != self.interval:
            return []
        if self._last is not None and msg.bar_ts <= self._last:
            return []  # already seen: a repeat never trades twice
        self._last = msg.bar_ts
        # idempotent: the first host of a shared book adds the bar, the others find it there
        self.book.append(msg.bar_ts, (msg.open, msg.high, msg.low, msg.close, msg.volume))
        self.bars_seen += 1
        row = self.newest_row()
        self._load_row(row, msg.bar_ts)
        return self.evaluate(0) if any(row[:4]) else []

    def newest_row(self) -> SignalRow:
        """The strategy's signal columns at the newest bar of the book."""
        if self.newest:
            return self.strategy.compute_newest(self.book)
        frame = self.strategy.compute(self.book.frame(self.window)).iloc[-1]
        distances = [float(frame[c]) if c in frame.index else None for c in DISTANCES]
        return SignalRow(
            bool(frame["enter_long"]),
            bool(frame["exit_long"]),
            bool(frame["enter_short"]),
            bool(frame["exit_short"]),
            distances[0],
            distances[1],
        )

    def _load_row(self, row: SignalRow, bar_ts: int) -> None:
        """The parent's columns, one bar long, so `evaluate(0)` reads this bar."""
        el, xl, es, xs, stop, target = row
        self.load_columns(
            np.array([bar_ts], dtype=np.int64),
            (float(self.book.close[-1]),),
            {"exit_long": (xl,), "exit_short": (xs,), "enter_long": (el,), "enter_short": (es,)},
            {
                "stop_distance": None if stop is None else (stop,),
                "target_distance": None if target is None else (target,),
            },
        )

    def share_book(self, book: SeriesBook) -> None:
        """Read the bars from `book` (same series and history) instead of this host's own."""
        book.require(self.keep)
        self.book = book

    def book_key(self) -> tuple[str, str, int | None]:
        return (self.symbol, self.interval, self.book.last_ts())

    def stop(self) -> None:
        self.strategy.on_stop()


def share_books(actors: list[Any]) -> None:
    """Hosts of one series (same last bar) read one book: the bar is stored once per process
    and per-bar values (signals of identical instances, daily context) are computed once."""
    best: dict[Any, SeriesBook] = {}
    hosts = [a for a in actors if isinstance(a, LiveStrategyHost)]
    for host in hosts:
        key = host.book_key()
        if key not in best or (best[key].total(), best[key].n) < (host.book.total(), host.book.n):
            best[key] = host.book  # the longest history of that series
    for host in hosts:
        host.share_book(best[host.book_key()])


class HostGroup(ActorGroup):
    """Strategy hosts (and their model gates) in one Ray actor: hosts of one series share one
    book, and a trade or signal event reaches only the host it names."""

    def __init__(self, members: list[tuple[str, Any]]) -> None:
        share_books([actor for _name, actor in members])
        super().__init__(members)

    def by_name(self, actor: Any) -> bool:
        return isinstance(actor, StrategyHost)
