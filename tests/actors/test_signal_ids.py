"""Signal ids are numbered per strategy host: two hosts in one graph must never collide."""

from __future__ import annotations

from typing import Any

import pytest

from actors.messages import OpenTrade
from actors.portfolio_kernel import PortfolioRuntime, run_portfolio_kernel
from actors.runtime import Actor
from actors.weighted_portfolio import PortfolioMember
from backtest.run import BacktestConfig
from tests.actors.helpers import make_bars, scripted

# each bar closes at 99.6 and the next opens at 100: the stops below must come from the fill
ROWS = [(100.0, 101.0, 99.0, 99.6)] * 6


class PendingProbe(Actor):
    """Records, at every OpenTrade, the portfolio's reservations and the manager's pending."""

    handlers = {OpenTrade: "on_open"}

    def __init__(self, runtime: Any) -> None:
        super().__init__()
        self.runtime = runtime
        self.seen: list[tuple[set, set]] = []

    def on_open(self, msg: OpenTrade) -> list:
        reserved = set(self.runtime.actor("portfolio")._reserved)
        pending = set(self.runtime.actor("orders")._pending)
        self.seen.append((reserved, pending))
        return []


def test_two_hosts_signalling_at_the_same_bar_keep_separate_entries() -> None:
    bars = make_bars(ROWS)
    members = [
        PortfolioMember("a", scripted(enter_long=[0])(sl_pct=0.02), "X", "1m"),
        PortfolioMember("b", scripted(enter_long=[0])(sl_pct=0.05), "X", "1m"),
    ]
    runtime = PortfolioRuntime({"a": 0, "b": 1})
    probe = PendingProbe(runtime)
    config = BacktestConfig(fee_bps=0.0, risk=0.001, max_total_exposure=2.0)
    out = run_portfolio_kernel(members, {("X", "1m"): bars}, config, runtime, (("probe", probe),))

    # both hosts number their first signal 1; both entries stay pending side by side
    assert probe.seen == [
        ({("a", 1)}, {("a", 1)}),
        ({("a", 1), ("b", 1)}, {("a", 1), ("b", 1)}),
    ]
    trades = {t["strategy"]: t for t in out.trades}
    assert set(trades) == {"a", "b"} and all(t["signal_id"] == 1 for t in trades.values())
    # each trade got the exits of its own signal: stops 2 % and 5 % under the fill at 100
    # (not under the signal close 99.6)
    stops = {o["strategy"]: o["price"] for o in out.orders if o["role"] == "stop_loss"}
    assert stops == {"a": pytest.approx(98.0), "b": pytest.approx(95.0)}
    assert out.portfolio["rejections"] == []
    assert runtime.actor("portfolio")._reserved == {}
    assert runtime.actor("orders")._pending == {}
