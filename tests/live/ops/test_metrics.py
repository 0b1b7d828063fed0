"""Live metrics (live/ops/metrics.py) without Ray: every metric is a no-op, nothing fails. With Ray,
tests/live/ops/test_control.py scrapes them from the node's Prometheus port after a live run."""

from __future__ import annotations

from actors.messages import BarClosed, OrderFilled, SubmitOrder
from live.ops.metrics import LiveMetrics, ray_is_up


def test_metrics_are_no_ops_without_ray(no_ray: None) -> None:
    assert not ray_is_up()
    metrics = LiveMetrics("binance")
    assert metrics.active is False
    metrics.observe(BarClosed(1, "ETH/BTC", "5m", 0, 1.0, 1.0, 1.0, 1.0, 1.0))
    metrics.observe(SubmitOrder(1, 1, "a", "ETH/BTC", "buy", 1.0, "market", "entry"))
    metrics.observe(OrderFilled(1, 1, 1.0, 1.0, 0.0))
    metrics.delivered()
    metrics.set_equity({"BTC": {"equity": 10.0}})


class Recorder:
    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.values[(tags or {}).get("quote", "")] = value


def test_the_breached_gauge_is_set_per_quote_portfolio_under_limits(no_ray: None) -> None:
    metrics = LiveMetrics("binance")
    metrics.breached = Recorder()
    metrics.set_equity(
        {
            "BTC": {"equity": 9.5, "breached": True},
            "ETH": {"equity": 100.0, "breached": False},
            "USDT": {"equity": 1000.0},  # no limits: no gauge
        }
    )
    assert metrics.breached.values == {"BTC": 1.0, "ETH": 0.0}
