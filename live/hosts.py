"""Live strategy hosts and the group that hosts several actors in one Ray actor.

`LiveStrategyHost` is the StrategyHost in replay mode (bars one at a time, the same `_evaluate`
and gating) whose series grows as bars arrive: on each live bar it appends the bar and
recomputes the strategy's signals over the stored history plus the live bars (at most `window`
bars). Strategies are causal (value at t uses bars <= t; the lookahead tests prove it), so the
signal at a live bar is exactly the one the backtest computes at that bar. Warm-up bars are
history: they are never evaluated, only used to compute the first live bar's signals.

`ActorGroup` holds several plain actors and delivers a batch of messages to those subscribed,
in order, returning everything they emit (the live runtime routes it on): one Ray call per
group per delivery round, however many instances the group holds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from actors.messages import BarClosed
from actors.strategy_host import COLUMNS, StrategyHost
from factors.bars import interval_ns
from strategies.base import Strategy

DEFAULT_WINDOW = 20_000  # bars of history kept per live host (daily context needs days of 1m)


class LiveStrategyHost(StrategyHost):
    def __init__(self, strategy: Strategy, warm: pd.DataFrame, symbol: str, interval: str,
                 strategy_id: str | None = None, window: int = DEFAULT_WINDOW) -> None:  # fmt: skip
        warm = warm.loc[:, ["open", "high", "low", "close", "volume"]].iloc[-window:]
        super().__init__(strategy, warm, symbol, interval, False, strategy_id)
        self.window = window
        self._history = warm
        self._times: list[int] = []  # open ns of live bars (int: float64 would round ns)
        self._rows: list[tuple[float, float, float, float, float]] = []
        self.bars_seen = 0

    def on_bar(self, msg: BarClosed) -> list:
        if msg.symbol != self.symbol or msg.interval != self.interval:
            return []
        last = self._last_open_ns()
        if last is not None and msg.bar_ts <= last:
            return []  # already seen: a repeat never trades twice
        self._times.append(msg.bar_ts)
        self._rows.append((msg.open, msg.high, msg.low, msg.close, msg.volume))
        self.bars_seen += 1
        bars = self._bars()
        self._recompute(bars)
        i = len(bars) - 1
        return self._evaluate(i) if self._any[i] else []

    def _last_open_ns(self) -> int | None:
        if self._times:
            return self._times[-1]
        if len(self._history):
            return int(pd.DatetimeIndex(self._history.index[-1:]).as_unit("ns").asi8[0])
        return None

    def _bars(self) -> pd.DataFrame:
        if len(self._rows) > 256:  # fold live rows into the history now and then
            self._history, self._times, self._rows = self._joined(), [], []
        return self._joined()

    def _joined(self) -> pd.DataFrame:
        rows = np.array(self._rows, dtype=np.float64).reshape(-1, 5)
        index = pd.DatetimeIndex(pd.to_datetime(np.array(self._times, dtype=np.int64), utc=True))
        live = pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume"], index=index)
        frame = pd.concat([self._history, live]) if len(self._history) else live
        return frame.iloc[-self.window :]

    def _recompute(self, bars: pd.DataFrame) -> None:
        """The signal columns over the current series (what StrategyHost computes once)."""
        frame = self.strategy.compute(bars)
        self.open_ns = pd.DatetimeIndex(bars.index).as_unit("ns").asi8.copy()
        self.close_ns = self.open_ns + interval_ns(self.interval)
        self.close = bars["close"].to_numpy(np.float64)
        self._flags = {c: frame[c].to_numpy(bool) for c in COLUMNS}
        self._any = np.logical_or.reduce([self._flags[c] for c in COLUMNS]).tolist()
        self._distances = {
            c: frame[c].to_numpy(np.float64) if c in frame else None
            for c in ("stop_distance", "target_distance")
        }

    def stop(self) -> None:
        self.strategy.on_stop()


class ActorGroup:
    """Plain actors hosted together; `handle_batch` delivers each message to the subscribed ones."""

    def __init__(self, members: list[tuple[str, Any]]) -> None:
        self.members = dict(members)
        self._routes: dict[type, list[Any]] = {}
        for actor in self.members.values():
            for kind in actor.subscriptions():
                self._routes.setdefault(kind, []).append(actor)

    def subscriptions(self) -> tuple[type, ...]:
        return tuple(self._routes)

    def handle_batch(self, messages: list) -> list:
        out: list = []
        for msg in messages:
            for actor in self._routes.get(type(msg), ()):
                out.extend(actor.handle(msg))
        return out

    def query(self, member: str, method: str, *args: Any) -> Any:
        return getattr(self.members[member], method)(*args)

    def query_all(self, method: str, *args: Any) -> dict[str, Any]:
        return {name: getattr(a, method)(*args) for name, a in self.members.items()
                if hasattr(a, method)}  # fmt: skip
