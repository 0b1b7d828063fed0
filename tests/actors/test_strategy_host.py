"""StrategyHost: the strategy's on_trade hook is called for every trade event, in both modes
(the host skips calling Strategy.on_trade only when the strategy keeps the no-op default)."""

from __future__ import annotations

from typing import Any

import pytest

from actors.kernel import run_kernel
from actors.messages import TradeClosed, TradeOpened
from backtest.run import BacktestConfig
from factors.synthetic import random_walk_bars
from strategies.sr_breakout import SRBreakout


class Recording(SRBreakout):
    """sr_breakout that records the trade events it is told about."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.seen: list[Any] = []

    def on_trade(self, event: Any) -> None:
        self.seen.append(event)


def closed(output) -> int:
    return sum(r["status"] == "CLOSED" for r in output.trades)


@pytest.mark.parametrize("mode", ["fast", "replay"])
def test_an_overriding_strategy_hears_every_trade_opened_and_closed(mode: str) -> None:
    bars = random_walk_bars(3_000, "1m", seed=7)
    strategy = Recording(lookback=20, sl_pct=0.01, tp_pct=0.02)
    output = run_kernel(strategy, bars, "X", "1m", BacktestConfig(), mode)
    assert closed(output) >= 5  # the scenario has trades to hear about
    kinds = [type(e) for e in strategy.seen]
    assert kinds == [TradeOpened, TradeClosed] * closed(output)


def test_a_hook_set_on_the_instance_is_called_too() -> None:
    bars = random_walk_bars(3_000, "1m", seed=7)
    strategy = SRBreakout(lookback=20, sl_pct=0.01, tp_pct=0.02)
    seen: list[Any] = []
    strategy.on_trade = seen.append  # type: ignore[method-assign]
    output = run_kernel(strategy, bars, "X", "1m", BacktestConfig())
    assert len(seen) == 2 * closed(output) > 0
