"""A portfolio's strategy instances and the account that sizes each by its weight.

`PortfolioMember` is one instance (a strategy with its parameters on one symbol and interval,
and its weight); `WeightedPortfolio` is the Portfolio with per-instance sizing `risk x weight`
(quantity = risk x weight x equity / stop distance, then the account-wide cash and exposure
caps), and open positions re-marked at their symbol's latest close before an entry is sized, so
the equity used is the account's current equity, not prices from the last event of each symbol.

The backtest (actors/portfolio_kernel.py) and the live portfolio actor (live/portfolios.py) use
both. They are apart from the kernel because they need no pandas: the live portfolio actor's Ray
process would otherwise import it at start, about a second of CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from actors.messages import SignalRaised
from actors.portfolio import Portfolio
from actors.runtime import EventClock
from core.vocabulary import SignalAction

if TYPE_CHECKING:
    from strategies.base import Strategy

SeriesKey = tuple[str, str]  # (symbol, interval)


@dataclass(frozen=True)
class PortfolioMember:
    """One strategy instance of a portfolio; `label` is its strategy id in every message."""

    label: str
    strategy: Strategy
    symbol: str
    interval: str
    weight: float = 1.0

    @property
    def series(self) -> SeriesKey:
        return (self.symbol, self.interval)


class WeightedPortfolio(Portfolio):
    """Portfolio with sizing risk x weight per instance and fresh marks before each entry."""

    def __init__(
        self,
        config: Any,
        weights: dict[str, float],
        closes: dict[str, tuple[np.ndarray, np.ndarray]],
        hedged: frozenset[str] = frozenset(),
        clock: EventClock | None = None,
        position_limits: dict[str, int] | None = None,
    ) -> None:
        super().__init__(
            cash=config.cash,
            risk=config.risk,
            fee_bps=config.fee_bps,
            slippage_bps=config.slippage_bps,
            max_symbol_exposure=config.max_symbol_exposure,
            max_total_exposure=config.max_total_exposure,
            max_open_positions=config.max_open_positions,
            hedged=hedged,
            clock=clock,
            position_limits=position_limits,
            min_notional=config.min_order_notional(),
            lot_size=config.lot_size,
            cash_buffer=config.cash_buffer,
        )
        self.weights = dict(weights)
        self.closes = closes  # symbol -> (close times ns, close prices) of its finest series

    def on_signal(self, msg: SignalRaised) -> list:
        if msg.action == SignalAction.ENTER:
            self._mark_held(msg.ts)
        return super().on_signal(msg)

    def size(self, msg: SignalRaised) -> tuple[float, str | None]:
        base = self.risk
        self.risk = base * self.weights.get(msg.strategy, 1.0)
        try:
            return super().size(msg)
        finally:
            self.risk = base

    def _mark_held(self, ts: int) -> None:
        """Mark every held symbol at its latest close known at `ts` (no lookahead: close <= ts)."""
        for symbol in {p.symbol for p in self.positions.values()}:
            series = self.closes.get(symbol)
            if series is None:
                continue
            i = int(np.searchsorted(series[0], ts, "right")) - 1
            if i >= 0:
                self.marks[symbol] = float(series[1][i])
