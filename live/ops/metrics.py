"""Ray metrics of the live system (ray.util.metrics; Prometheus names get Ray's `ray_` prefix).

Emitted by the driver, which routes every message between the live actors (live/runtime.py),
so each metric is recorded where the thing happens, once, without a call per actor:

| metric (as exported)                          | kind      | tags                        |
|-----------------------------------------------|-----------|-----------------------------|
| ray_raytrader_live_bars_total                 | counter   | exchange, symbol, interval  |
| ray_raytrader_live_orders_total               | counter   | exchange, status            |
| ray_raytrader_live_fills_total                | counter   | exchange                    |
| ray_raytrader_live_equity                     | gauge     | exchange, quote             |
| ray_raytrader_live_bar_to_order_ms            | histogram | exchange                    |
| ray_raytrader_live_requests_per_minute        | gauge     | exchange                    |
| ray_raytrader_live_breached                   | gauge     | exchange, quote             |

`orders` counts order events by status: submitted (the order manager sent it), accepted,
filled, cancelled, rejected, unknown (its answer was lost: looked up, live/venues/outcomes.py).
`bar_to_order_ms` is the time from a bar batch reaching the driver to an order it caused leaving
the order manager for the exchange (the system's reaction time; the network to the exchange is
not in it). Equity is each quote currency's portfolio's (tag `quote`: one portfolio per quote
currency, live/portfolios.py), set on each status line, and so is `requests_per_minute`: the
REST requests the real-mode broker sent in the last minute (Binance bans an IP that ignores its
limit). `breached` is 1 while a risk limit of that quote currency's portfolio (or of an instance
in it) is breached and its new entries are stopped, else 0 (live/risk_limits.py; set only when
limits are set).
Without Ray initialised (in-process tests, tools) every metric is a no-op.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

from actors.messages import (
    BarClosed,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderUnknown,
    SubmitOrder,
)

LATENCY_BOUNDS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000]
_STATUS = {
    SubmitOrder: "submitted",
    OrderAccepted: "accepted",
    OrderFilled: "filled",
    OrderCancelled: "cancelled",
    OrderRejected: "rejected",
    OrderUnknown: "unknown",
}


class Metric(Protocol):
    """A ray.util.metrics Counter, Gauge or Histogram, as used here."""

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None: ...
    def set(self, value: float, tags: dict[str, str] | None = None) -> None: ...
    def observe(self, value: float, tags: dict[str, str] | None = None) -> None: ...


class _Null:
    """A metric that records nothing (Ray not initialised)."""

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        pass

    set = observe = inc


def ray_is_up() -> bool:
    try:
        import ray
    except ImportError:
        return False
    return ray.is_initialized()


class LiveMetrics:
    def __init__(self, exchange: str, active: bool | None = None) -> None:
        self.active = ray_is_up() if active is None else active
        self.exchange = exchange
        self._bar_t0: float | None = None  # when the bar batch in delivery reached the driver
        self._bar_tags: dict[tuple[str, str], dict[str, str]] = {}
        self._status_tags = {s: {"status": s} for s in _STATUS.values()}
        self.bars = self._make(
            "Counter",
            "raytrader_live_bars",
            "Closed bars delivered.",
            ("exchange", "symbol", "interval"),
        )
        self.orders = self._make(
            "Counter", "raytrader_live_orders", "Order events by status.", ("exchange", "status")
        )
        self.fills = self._make("Counter", "raytrader_live_fills", "Order fills.", ("exchange",))
        self.equity = self._make(
            "Gauge",
            "raytrader_live_equity",
            "Portfolio equity, in its quote currency.",
            ("exchange", "quote"),
        )
        self.requests = self._make(
            "Gauge",
            "raytrader_live_requests_per_minute",
            "REST requests of the broker in the last minute.",
            ("exchange",),
        )
        self.breached = self._make(
            "Gauge",
            "raytrader_live_breached",
            "1 while a risk limit of the portfolio is breached (new entries stopped), else 0.",
            ("exchange", "quote"),
        )
        self.latency = self._make(
            "Histogram",
            "raytrader_live_bar_to_order_ms",
            "Bar reaching the driver -> order sent to the exchange, ms.",
            ("exchange",),
            LATENCY_BOUNDS_MS,
        )

    def _make(
        self,
        kind: str,
        name: str,
        description: str,
        tags: tuple[str, ...],
        bounds: list[float] | None = None,
    ) -> Metric:
        if not self.active:
            return _Null()
        from ray.util import metrics

        extra = {"boundaries": bounds} if bounds else {}
        metric = getattr(metrics, kind)(name, description=description, tag_keys=tags, **extra)
        metric.set_default_tags({"exchange": self.exchange})
        return metric

    def observe(self, msg: object) -> None:
        """A runtime observer: sees every message the driver routes."""
        kind = type(msg)
        if kind is BarClosed:
            self._bar_t0 = time.perf_counter()
            key = (msg.symbol, msg.interval)
            tags = self._bar_tags.get(key)
            if tags is None:
                tags = self._bar_tags[key] = {"symbol": msg.symbol, "interval": msg.interval}
            self.bars.inc(1.0, tags)
            return
        status = _STATUS.get(kind)
        if status is None:
            return
        self.orders.inc(1.0, self._status_tags[status])
        if kind is OrderFilled:
            self.fills.inc(1.0)
        elif kind is SubmitOrder and self._bar_t0 is not None:
            self.latency.observe((time.perf_counter() - self._bar_t0) * 1000.0)

    def delivered(self) -> None:
        """The bar batch is done: later orders (e.g. an instance disabled) are not its doing."""
        self._bar_t0 = None

    def set_equity(self, quotes: Mapping[str, Mapping[str, float]]) -> None:
        """Each quote currency's equity (`QuotePortfolios.state()["quotes"]`)."""
        for quote, state in quotes.items():
            self.equity.set(float(state["equity"]), {"quote": quote})
            if "breached" in state:  # a portfolio under risk limits
                self.breached.set(float(state["breached"]), {"quote": quote})

    def set_requests(self, per_minute: int) -> None:
        self.requests.set(float(per_minute))
