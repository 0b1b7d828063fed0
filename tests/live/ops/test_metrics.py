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
