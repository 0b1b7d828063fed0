"""Dry run: the simulated exchange fed live bars (fills exactly as in a backtest's replay).

One SimExchange book in replay mode per (symbol, interval): an order goes to the book of the
series its strategy instance trades, so a 1h instance's stop is checked on 1h bars as in its own
backtest. The routing is the portfolio backtest's SeriesExchange; only the books differ (no data
up front: bars arrive as BarClosed). Not a branch in domain code: the live runtime simply routes
orders to this actor instead of the ccxt broker.
"""

from __future__ import annotations

from actors.portfolio_kernel import SeriesExchange
from actors.runtime import Actor, EventClock
from actors.sim_exchange import SimExchange


class DryRunExchange(SeriesExchange):
    def __init__(self, fee_bps: float, slippage_bps: float, routes: dict[str, tuple[str, str]],
                 clock: EventClock | None = None) -> None:  # fmt: skip
        # Not SeriesExchange.__init__: that one builds fast-mode books from whole series and
        # delays coarse fills across series; live bars arrive in time order, one at a time.
        Actor.__init__(self, clock)
        self.routes = dict(routes)  # strategy id -> (symbol, interval)
        self.books = {key: SimExchange(fee_bps, slippage_bps, None, clock=self.clock)
                      for key in set(self.routes.values())}  # fmt: skip
        self._where: dict[int, tuple[str, str]] = {}  # live order id -> its book

    def open_orders(self) -> list[int]:
        return sorted(self._where)
