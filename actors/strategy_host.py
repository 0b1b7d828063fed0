"""Strategy host: runs one Strategy on one series; bars in, signals out.

Signals are computed once, vectorized, by `Strategy.compute` over the whole series (causal: a
value at t depends only on bars <= t, which the strategies' lookahead tests prove). Both modes
use those columns:
- fast mode: the host keeps the bar indices of each signal column and schedules a `SignalDue`
  timer only for the next bar where an armed column fires, so quiet bars cost nothing;
- replay mode: every BarClosed arrives (as in live) and the host evaluates that bar.
Either way a bar is evaluated by the same `evaluate`, in the order exit_long, exit_short,
enter_long, enter_short, and with the same gating (docs/design.md#fill-semantics): an entry is ignored
while an entry on that side is pending, while that side already holds
`Strategy.entry_limit()` positions (1, or max_entries when the strategy declares pyramiding),
and while the other side is open unless the strategy declares hedge; an exit only when open
(it closes every open position of that side).

Signal gate (optional, default none: no change): a callable `gate(signal) -> (take, scale)` asked
for every entry signal before the portfolio sees it; a skipped signal is dropped (counted in
`signals_skipped`), a taken one carries `size_scale` for the portfolio's sizing. The ML layer's
models plug in here, so a with-model backtest has real fills, cash and sizing, as live has.

Callbacks: on_start (RunStarted), on_bar (BarClosed), on_order (order events; subscribed only
when the strategy overrides Strategy.on_order), on_trade (TradeOpened/TradeClosed), on_stop
(EndOfData).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from actors.messages import (
    ORDER_EVENTS,
    BarClosed,
    EndOfData,
    ExitSpec,
    Phase,
    RunStarted,
    Scheduled,
    SignalDue,
    SignalRaised,
    SignalRejected,
    TradeClosed,
    TradeOpened,
    replace,
)
from actors.runtime import Actor, EventClock
from core.intervals import interval_ns
from core.vocabulary import OrderRole, Side, SignalAction
from strategies.base import Strategy

# pandas only where a host is built from a frame: the other live actors, which import this
# module through the kernels, never load it
if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("exit_long", "exit_short", "enter_long", "enter_short")  # evaluation order
_SIDE = {
    "exit_long": Side.LONG,
    "exit_short": Side.SHORT,
    "enter_long": Side.LONG,
    "enter_short": Side.SHORT,
}
_CLOSE = int(Phase.CLOSE)  # a plain int: the event queue compares phases on every push
# column -> (side, is an exit, the other side): what _armed needs, without string work per call
_ARMING = {c: (side, c.startswith("exit"), side.opposite) for c, side in _SIDE.items()}


class StrategyHost(Actor):
    handlers = {
        RunStarted: "on_start",
        BarClosed: "on_bar",
        SignalDue: "on_signal_due",
        SignalRejected: "on_signal_rejected",
        TradeOpened: "on_trade",
        TradeClosed: "on_trade",
        EndOfData: "on_stop",
    }

    def __init__(
        self,
        strategy: Strategy,
        bars: pd.DataFrame,
        symbol: str,
        interval: str,
        fast: bool = True,
        strategy_id: str | None = None,
        clock: EventClock | None = None,
        signal_gate: Callable[[SignalRaised], tuple[bool, float]] | None = None,
    ) -> None:
        super().__init__(clock)
        self.signal_gate = signal_gate
        self.signals_skipped = 0
        self.strategy = strategy
        self.name = strategy_id or strategy.name
        self.symbol, self.interval, self.fast = symbol, interval, fast
        if fast:
            self._table.pop(BarClosed)
        if type(strategy).on_order is not Strategy.on_order:
            for kind in ORDER_EVENTS:
                self._table[kind] = StrategyHost.on_order
        import pandas as pd

        frame = strategy.compute(bars)
        step = self.step_ns = interval_ns(interval)
        self.load_columns(
            pd.DatetimeIndex(bars.index).as_unit("ns").asi8.copy(),
            bars["close"].to_numpy(np.float64),
            {c: frame[c].to_numpy(bool) for c in COLUMNS},
            {
                c: frame[c].to_numpy(np.float64) if c in frame else None
                for c in ("stop_distance", "target_distance")
            },
        )
        self._where = {c: np.flatnonzero(self._flags[c]) for c in COLUMNS}
        # fast mode looks these up once per timer: plain lists and bisect (no numpy scalars);
        # the close time of each signal bar tells the first one still ahead of now at once
        self._where_list = {c: w.tolist() for c, w in self._where.items()}
        self._where_close = {c: self.close_ns[w].tolist() for c, w in self._where.items()}
        # fast mode: the columns that fire at all, in evaluation order (the others are
        # skipped); replay and live evaluate all (live hosts swap in each bar's flags)
        self._live = tuple(c for c in COLUMNS if self._where_list[c]) if fast else COLUMNS
        # Strategy.on_trade does nothing: not called when the strategy keeps it
        self._on_trade = getattr(strategy.on_trade, "__func__", None) is not Strategy.on_trade
        # replay only (fast mode finds its bars through _where): a list, read once per bar
        self._any = [] if fast else np.logical_or.reduce([self._flags[c] for c in COLUMNS]).tolist()
        rules = strategy.exit_rules()
        self._rules = rules
        self._hold_ns = rules.max_bars * step if rules.max_bars else None
        # the ExitSpec of every entry when the strategy gives no per-bar distances
        self._plain_exits = ExitSpec(
            rules.sl_pct, rules.tp_pct, None, None, self._hold_ns, rules.session_end
        )
        self.hedge, self.limit = strategy.hedge, strategy.entry_limit()
        self._open = {Side.LONG: 0, Side.SHORT: 0}
        self._pending = {Side.LONG: False, Side.SHORT: False}
        self._next_signal = 0
        self._generation = 0
        self._bar = 0  # replay: index of the next bar expected
        self._stopped = False  # data ended: no more signals
        self.signals_raised = 0

    def subscriptions(self) -> tuple[type, ...]:
        return tuple(self._table)

    def load_columns(
        self,
        open_ns: np.ndarray,
        close: Sequence[float],
        flags: dict[str, Sequence[bool]],
        distances: dict[str, Sequence[float] | None],
    ) -> None:
        """The per-bar columns `evaluate(i)` reads: bar open times (ns), closes, the signal
        flags of COLUMNS and the distance columns (None: the strategy has none).

        The constructor loads the whole series. A live host (live/hosts.py) loads each new bar
        alone, as a series one bar long, and evaluates bar 0; the fast mode's signal bars
        (`_where`) stay those of the constructor's series.
        """
        self.open_ns = open_ns
        self.close_ns = open_ns + self.step_ns
        self.close = close
        self._flags = flags
        self._distances = distances

    # -- callbacks ----------------------------------------------------------------------------
    def on_start(self, msg: RunStarted) -> list:
        self.strategy.on_start({"symbol": self.symbol, "interval": self.interval})
        return self._reschedule(0) if self.fast else []

    def on_bar(self, msg: BarClosed) -> list:
        if msg.symbol != self.symbol:
            return []
        i = self._bar
        self._bar += 1
        if i >= len(self._any) or self.open_ns[i] != msg.bar_ts:
            raise ValueError(
                f"strategy host {self.name}: bar at {_utc(msg.bar_ts)} does not "
                "match the series the signals were computed on"
            )
        return self.evaluate(i) if self._any[i] else []

    def on_signal_due(self, msg: SignalDue) -> list:
        if msg.strategy != self.name or msg.generation != self._generation:
            return []  # superseded by a later reschedule
        out = self.evaluate(msg.bar_index)
        out.extend(self._reschedule(msg.bar_index + 1))
        return out

    def on_signal_rejected(self, msg: SignalRejected) -> list:
        if msg.strategy != self.name:
            return []
        self._pending[msg.side] = False
        return self._reschedule_now()

    def on_trade(self, msg: TradeOpened | TradeClosed) -> list:
        if msg.strategy != self.name:
            return []
        if type(msg) is TradeOpened:
            self._open[msg.side] += 1
            self._pending[msg.side] = False
        else:
            self._open[msg.side] -= 1
            self._stopped = self._stopped or msg.exit_reason == OrderRole.END_OF_DATA
        if self._on_trade:
            self.strategy.on_trade(msg)
        return self._reschedule(None) if self.fast else []

    def on_order(self, msg: Any) -> list:
        self.strategy.on_order(msg)
        return []

    def on_stop(self, msg: EndOfData) -> list:
        self._stopped = True
        self.strategy.on_stop()
        return []

    # -- signals ------------------------------------------------------------------------------
    def _armed(self, column: str) -> bool:
        side, is_exit, other = _ARMING[column]
        if is_exit:
            return self._open[side] > 0
        if self._pending[side] or self._open[side] >= self.limit:
            return False
        return self.hedge or not (self._open[other] or self._pending[other])

    def evaluate(self, i: int) -> list:
        """The signals of bar `i` of the loaded columns, gated by the open and pending sides."""
        out: list = []
        flags = self._flags
        for column in self._live:
            if flags[column][i] and self._armed(column):
                signal = self._signal(i, column)
                if self.signal_gate is not None and signal.action == SignalAction.ENTER:
                    signal = self._gated(signal)
                if signal is not None:
                    out.append(signal)
        return out

    def _gated(self, signal: SignalRaised) -> SignalRaised | None:
        take, scale = self.signal_gate(signal)
        if not take:
            self._pending[signal.side] = False
            self.signals_skipped += 1
            return None
        return signal if scale == 1.0 else replace(signal, size_scale=float(scale))

    def _signal(self, i: int, column: str) -> SignalRaised:
        side, is_exit, _other = _ARMING[column]
        self._next_signal += 1
        self.signals_raised += 1
        if is_exit:
            return SignalRaised(
                int(self.close_ns[i]),
                self._next_signal,
                self.name,
                self.symbol,
                self.interval,
                side,
                SignalAction.EXIT,
                float(self.close[i]),
            )
        self._pending[side] = True
        stops, targets = self._distances["stop_distance"], self._distances["target_distance"]
        if stops is None and targets is None:
            exits = self._plain_exits
        else:
            rules = self._rules
            exits = ExitSpec(
                rules.sl_pct,
                rules.tp_pct,
                _finite(stops, i),
                _finite(targets, i),
                self._hold_ns,
                rules.session_end,
            )
        return SignalRaised(
            int(self.close_ns[i]),
            self._next_signal,
            self.name,
            self.symbol,
            self.interval,
            side,
            SignalAction.ENTER,
            float(self.close[i]),
            exits,
        )

    def _reschedule_now(self) -> list:
        if not self.fast:
            return []
        return self._reschedule(None)

    def _reschedule(self, start: int | None) -> list:
        """Fast mode: one timer at the next bar >= start where an armed column fires.

        start None: the first bar whose close is still ahead of now (found only when some
        column is armed: after an entry fills usually none is)."""
        self._generation += 1
        if self._stopped:
            return []
        best, ts = -1, 0
        for column in self._live:
            if not self._armed(column):
                continue
            where = self._where_list[column]
            if start is None:  # the first signal bar whose close is still ahead of now
                k = bisect_right(self._where_close[column], self.clock.now)
            else:
                k = bisect_left(where, start)
            if k < len(where) and (best < 0 or where[k] < best):
                best, ts = where[k], self._where_close[column][k]
        if best < 0:
            return []
        return [Scheduled(ts, _CLOSE, SignalDue(ts, self.name, self._generation, best))]


def _finite(values: np.ndarray | None, i: int) -> float | None:
    if values is None:
        return None
    value = float(values[i])
    return value if math.isfinite(value) else None


def _utc(ns: int) -> str:
    """A bar time for a message, without pandas: 2018-01-10 04:55:00+00:00."""
    return str(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000))
