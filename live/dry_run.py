"""Dry run: the simulated exchange fed live bars (fills exactly as in a backtest's replay).

One SimExchange book in replay mode per (symbol, interval): an order goes to the book of the
series its strategy instance trades, so a 1h instance's stop is checked on 1h bars as in its own
backtest. Not a branch in domain code: the live runtime simply routes orders to this actor
instead of the ccxt broker.
"""

from __future__ import annotations

from actors.messages import (
    BarClosed,
    CancelOrder,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)
from actors.runtime import Actor, EventClock
from actors.sim_exchange import SimExchange


class DryRunExchange(Actor):
    handlers = {SubmitOrder: "on_submit", CancelOrder: "on_cancel", BarClosed: "on_bar"}

    def __init__(
        self,
        fee_bps: float,
        slippage_bps: float,
        routes: dict[str, tuple[str, str]],
        clock: EventClock | None = None,
    ) -> None:
        super().__init__(clock)
        self.routes = dict(routes)  # strategy id -> (symbol, interval)
        self.books = {
            key: SimExchange(fee_bps, slippage_bps, None, clock=self.clock)
            for key in set(self.routes.values())
        }
        self._where: dict[int, tuple[str, str]] = {}

    def on_submit(self, msg: SubmitOrder) -> list:
        key = self.routes.get(msg.strategy)
        if key is None:
            return [OrderRejected(msg.ts, msg.order_id, f"no series for {msg.strategy!r}")]
        self._where[msg.order_id] = key
        return self._forget(self.books[key].handle(msg))

    def on_cancel(self, msg: CancelOrder) -> list:
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

    def add_route(self, strategy: str, series: tuple[str, str]) -> None:
        """An instance enabled while running (live/ops/control.py), on a series already streamed."""
        self.routes[strategy] = series

    def open_orders(self) -> list[int]:
        return sorted(self._where)
