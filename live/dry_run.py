"""Dry run: the simulated exchange fed live bars (fills exactly as in a backtest's replay).

The backtest's SeriesExchange (actors/portfolio_kernel.py) without bar arrays: one SimExchange
book in replay mode per (symbol, interval), an order going to the book of the series its
strategy instance trades, so a 1h instance's stop is checked on 1h bars as in its own backtest.
Not a branch in domain code: the live runtime simply routes orders to this actor instead of the
ccxt broker.
"""

from __future__ import annotations

from actors.portfolio_kernel import SeriesExchange

# DryRunExchange(fee_bps, slippage_bps, routes): the replay-mode SeriesExchange
DryRunExchange = SeriesExchange
