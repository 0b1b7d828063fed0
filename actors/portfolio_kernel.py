"""Wires ONE actor graph for a portfolio: many strategy hosts, one account, one order manager.

Every instance of a portfolio (a strategy with its parameters on one symbol and interval) gets
its own StrategyHost; all of them feed one Portfolio (shared cash and equity: sizing and
compliance across strategies, longs and shorts at once), one OrderManager and one exchange,
in one runtime ordered by (time, phase, sequence) across symbols and intervals. It is not a sum
of separate backtests: a signal is sized against the equity the other instances left.

Pieces added on top of the single-strategy kernel (actors/kernel.py), reusing its actors:
- `SeriesExchange`: one simulated broker made of one SimExchange book per (symbol, interval);
  an order goes to the book of the series its strategy instance trades, so fills follow exactly
  the bars that instance sees (a 1h instance's stop is checked on 1h bars, as in its own
  backtest). Every fill is stamped with the open of the bar it happened in. The live dry run
  uses the same class with its books in replay mode (live/dry_run.py).
- `WeightedPortfolio` (actors/weighted_portfolio.py, with `PortfolioMember`): the Portfolio
  with per-instance sizing `risk x weight` and open positions re-marked before an entry is sized.
- one plain StrategyHost per instance, its strategy id the instance label: each host numbers
  its own signals, and the portfolio and the order manager key pending entries by
  (strategy id, signal id), so hosts never collide.
- `PortfolioRuntime`: LocalRuntime where signals due at the same bar close are handled in the
  order of the instances (the config order: heaviest weight first), whatever the history.
Fast mode only (signals and fills are found vectorized; nothing steps through quiet bars).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from actors.kernel import KernelOutput, collector_paused
from actors.messages import (
    BarClosed,
    CancelOrder,
    FillDue,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    Phase,
    RunStarted,
    SignalDue,
    SubmitOrder,
)
from actors.order_manager import OrderManager
from actors.runtime import Actor, EventClock, LocalRuntime
from actors.sim_exchange import BarArrays, SimExchange
from actors.strategy_host import StrategyHost
from actors.weighted_portfolio import PortfolioMember, SeriesKey, WeightedPortfolio
from core.errors import UserError
from core.intervals import interval_ns

if TYPE_CHECKING:  # pandas only where a frame is read: the dry-run actor never imports it
    import pandas as pd


class SeriesExchange(Actor):
    """One SimExchange book per (symbol, interval); orders routed by their strategy instance.

    With `data` (series -> BarArrays) the books are in fast mode (a backtest: fills found
    vectorized, FillDue timers); without, in replay mode, one book per routed series fed
    BarClosed as bars arrive (the live dry run, live/dry_run.py: fills exactly as in a replay).
    """

    handlers = {
        SubmitOrder: "on_submit",
        CancelOrder: "on_order_id",
        FillDue: "on_order_id",
        BarClosed: "on_bar",
    }

    def __init__(
        self,
        fee_bps: float,
        slippage_bps: float,
        routes: dict[str, SeriesKey],
        data: dict[SeriesKey, BarArrays] | None = None,
        clock: EventClock | None = None,
    ) -> None:
        super().__init__(clock)
        self.routes = dict(routes)  # strategy id -> (symbol, interval)
        if data is None:  # replay: bars arrive as BarClosed; no FillDue timers
            self._table.pop(FillDue)
            self.books = {
                key: SimExchange(fee_bps, slippage_bps, None, clock=self.clock)
                for key in set(self.routes.values())
            }
        else:  # fast: fills are found on the arrays
            self.books = {
                key: SimExchange(fee_bps, slippage_bps, {key[0]: arrays}, clock=self.clock)
                for key, arrays in data.items()
            }
        self._where: dict[int, SeriesKey] = {}  # live order id -> its book
        # A bar of a coarser series closes after finer bars that open inside it: its intrabar
        # fills reach the account only at its close, or finer signals would see the future.
        # (Fast mode only: in replay a bar's fills happen when its BarClosed arrives.)
        if self.books and data is not None:
            finest = min(interval_ns(interval) for _symbol, interval in self.books)
            for (_symbol, interval), book in self.books.items():
                if interval_ns(interval) > finest:
                    book.settle_after_ns = interval_ns(interval)

    def subscriptions(self) -> tuple[type, ...]:
        return tuple(self._table)

    def on_submit(self, msg: SubmitOrder) -> list:
        key = self.routes.get(msg.strategy)
        if key is None or key not in self.books:
            return [OrderRejected(msg.ts, msg.order_id, f"no series for {msg.strategy!r}")]
        self._where[msg.order_id] = key
        return self._forget(self.books[key].handle(msg))

    def on_order_id(self, msg: CancelOrder | FillDue) -> list:
        key = self._where.get(msg.order_id)
        return [] if key is None else self._forget(self.books[key].handle(msg))

    def on_bar(self, msg: BarClosed) -> list:
        book = self.books.get((msg.symbol, msg.interval))
        return [] if book is None else self._forget(book.handle(msg))

    def _forget(self, out: list) -> list:
        for event in out:
            if type(event) in (OrderFilled, OrderCancelled, OrderRejected):
                self._where.pop(event.order_id, None)
        return out

    def fills(self) -> int:
        return sum(book.fills for book in self.books.values())

    def add_route(self, strategy: str, series: SeriesKey) -> None:
        """An instance enabled while running (live/ops/control.py), on a series already streamed."""
        self.routes[strategy] = series

    def open_orders(self) -> list[int]:
        return sorted(self._where)


class PortfolioRuntime(LocalRuntime):
    """Signals due at the same (time, phase) are delivered in instance order (rank)."""

    def __init__(self, ranks: dict[str, int]) -> None:
        super().__init__()
        self._step = 1.0 / (len(ranks) + 1)
        self.ranks = {name: (rank + 1) * self._step * 0.5 for name, rank in ranks.items()}

    def schedule(self, ts: int, phase: int, msg: Any) -> None:
        if type(msg) is SignalDue:
            # a fraction of a phase: still before the next phase, ordered by rank
            phase = phase + self.ranks.get(msg.strategy, 0.0)
        super().schedule(ts, phase, msg)


def run_portfolio_kernel(
    members: Sequence[PortfolioMember],
    series: dict[SeriesKey, pd.DataFrame],
    config: Any,
    runtime: LocalRuntime | None = None,
    observers: tuple[tuple[str, Any], ...] = (),
) -> KernelOutput:
    """Run every member over its series in one runtime; `config` has BacktestConfig attributes.

    `series` maps (symbol, interval) to its bar frame; each member's strategy signals are
    computed by its host (pass strategies whose `compute` returns precomputed signals to reuse
    work done elsewhere, e.g. on Ray).
    """
    check_members(members, series)
    ranks = {m.label: i for i, m in enumerate(members)}
    runtime = runtime if runtime is not None else PortfolioRuntime(ranks)
    data = {key: BarArrays.from_frame(frame) for key, frame in series.items()}
    routes = {m.label: m.series for m in members}
    hedged = frozenset(m.label for m in members if m.strategy.hedge)
    weights = {m.label: m.weight for m in members}
    limits = {m.label: m.strategy.entry_limit() for m in members if m.strategy.pyramiding}
    # Delivery order of a message type follows spawn order: the exchange settles fills first.
    runtime.spawn("exchange", SeriesExchange, config.fee_bps, config.slippage_bps, routes, data)
    runtime.spawn("orders", OrderManager)
    runtime.spawn(
        "portfolio",
        WeightedPortfolio,
        config,
        weights,
        mark_series(series),
        hedged,
        position_limits=limits,
    )
    for m in members:
        runtime.spawn(
            f"host:{m.label}",
            StrategyHost,
            m.strategy,
            series[m.series],
            m.symbol,
            m.interval,
            True,
            m.label,
        )
    for name, actor in observers:
        runtime.add(name, actor)
    first = min(int(_ns(frame.index[:1])[0]) for frame in series.values())
    last_close = max(
        int(_ns(frame.index[-1:])[0]) + interval_ns(interval)
        for (_symbol, interval), frame in series.items()
    )
    runtime.schedule(first, Phase.CLOSE, RunStarted(first))
    runtime.end(last_close)
    with collector_paused():
        runtime.run(None)
        return KernelOutput(
            orders=runtime.call("orders", "orders"),
            trades=runtime.call("orders", "trades"),
            portfolio=runtime.call("portfolio", "state"),
            messages=runtime.delivered,
        )


def check_members(members: Sequence[PortfolioMember], series: dict[SeriesKey, Any]) -> None:
    if not members:
        raise UserError("a portfolio needs at least one strategy instance")
    labels = [m.label for m in members]
    if len(set(labels)) != len(labels):
        raise UserError(f"portfolio instance labels must be unique, got {labels}")
    for m in members:
        if m.series not in series or len(series[m.series]) == 0:
            raise UserError(f"no bars for {m.symbol} {m.interval} (instance {m.label})")
        if not (m.weight > 0 and np.isfinite(m.weight)):
            raise UserError(f"instance {m.label}: weight must be a positive number, got {m.weight}")


def mark_series(series: dict[SeriesKey, pd.DataFrame]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per symbol, close times and closes of its finest series (for marking positions)."""
    finest: dict[str, SeriesKey] = {}
    for symbol, interval in series:
        best = finest.get(symbol)
        if best is None or interval_ns(interval) < interval_ns(best[1]):
            finest[symbol] = (symbol, interval)
    out = {}
    for symbol, key in finest.items():
        frame = series[key]
        out[symbol] = (
            _ns(frame.index) + interval_ns(key[1]),
            frame["close"].to_numpy(np.float64),
        )
    return out


def _ns(index: Any) -> np.ndarray:
    import pandas as pd

    return pd.DatetimeIndex(index).as_unit("ns").asi8
