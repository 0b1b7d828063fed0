"""Per-hop times of a live bar, for benchmarks/live_latency.py (no live code changed).

Everything is seen from outside the live actors, with what the live code already offers:
- the local exchange (in this process, localexchange/server_thread.py) records when it sent a
  bar's closed kline (`announced_at`), and its order endpoints are wrapped here to record when
  each order (or OCO list) arrived, under its client order id, whose third field is the signal
  bar's time (actors/order_store.client_order_id);
- the driver routes every message between the actors (live/runtime.py): its `observers` see
  each round's messages when the round before it has finished, and `on_bars` / `deliver` are
  wrapped to time a bar's delivery and its two steps (the exchange first, then the hosts).

Hops of a bar (wall ms; each from the end of the hop before it):
  websocket   the exchange sent the closed kline -> the driver has the bar (local exchange ->
              ccxt.pro in the `bars` actor -> the bars table -> the driver's next_bars poll)
  bar step    the bar at the exchange / broker actor first (fills polled, timed orders)
  hosts       the bar to the strategy hosts -> their first signal back at the driver
  portfolio   -> the portfolio's first order intent (OpenTrade / CloseTrade) back
  order store -> the order manager's first SubmitOrder back (its store committed)
  broker      -> the local exchange received the bar's first order (real mode: Ray call to
              the broker actor, ccxt signing, HTTP on loopback); dry run: not measured
  rest        the bar's first order -> its last order received
"""

from __future__ import annotations

import threading
import time
from typing import Any

from actors.messages import CloseTrade, OpenTrade, SignalRaised, SubmitOrder

MS = 1_000_000
HOPS = ("websocket", "bar step", "hosts", "portfolio", "order store", "broker", "rest")
_MARKS = {SignalRaised: "signals", OpenTrade: "intents", CloseTrade: "intents"}


def _bar_of(client_id: str) -> int | None:
    """The signal bar's ms from an `rt-<hash>-<bar ms>-<role>-<attempt>` client order id."""
    parts = client_id.split("-")
    return int(parts[2]) if len(parts) >= 5 and parts[2].isdigit() else None


class ExchangeArrivals:
    """Wraps a LocalExchange's new_order / new_oco (before it starts serving) to record each
    order's arrival: (wall time, signal bar ms)."""

    def __init__(self, exchange: Any) -> None:
        self.arrivals: list[tuple[float, int, int | None]] = []
        self.delivering: DriverMarks | None = None  # which bar the driver is delivering
        self._lock = threading.Lock()
        for name, fields in (
            ("new_order", ("newClientOrderId",)),
            ("new_oco", ("aboveClientOrderId", "belowClientOrderId", "listClientOrderId")),
        ):
            setattr(exchange, name, self._wrap(getattr(exchange, name), fields))

    def _wrap(self, handler: Any, fields: tuple[str, ...]) -> Any:
        def wrapped(acct: Any, params: dict) -> Any:
            now = time.time()
            for field in fields:
                bar = _bar_of(params.get(field) or "")
                if bar is not None:
                    during = self.delivering.bar if self.delivering is not None else None
                    with self._lock:
                        self.arrivals.append((now, bar, during))
                    break
            return handler(acct, params)

        return wrapped

    def by_bar(self) -> tuple[dict[int, list[float]], dict[int, list[float]]]:
        """Arrivals by signal bar: those during that bar's delivery (its own orders), and those
        later (e.g. brackets placed when an entry's fill is seen at a later bar)."""
        own: dict[int, list[float]] = {}
        later: dict[int, list[float]] = {}
        with self._lock:
            for at, bar, during in self.arrivals:
                (own if during == bar else later).setdefault(bar, []).append(at)
        return own, later


class DriverMarks:
    """Wall times of a bar's steps at the driver, by the bar's close ms."""

    def __init__(self, runtime: Any) -> None:
        self.marks: dict[int, dict[str, float]] = {}
        self.submits: dict[int, list[float]] = {}  # bar -> each SubmitOrder routed on
        self._bar: int | None = None
        runtime.observers.append(self._observe)
        on_bars, deliver = runtime.on_bars, runtime.deliver

        def timed_on_bars(bars: list) -> None:
            self._bar = bars[0].ts // MS
            self.marks[self._bar] = {"driver": time.time(), "open_ms": bars[0].bar_ts // MS}
            try:
                on_bars(bars)
            finally:
                self.marks[self._bar]["delivered"] = time.time()
                self._bar = None

        def timed_deliver(messages: list, only: str | None = None, skip: str | None = None) -> None:
            if self._bar is not None and skip is not None:  # the hosts' step of the bar
                self.marks[self._bar].setdefault("hosts", time.time())
            deliver(messages, only=only, skip=skip)

        runtime.on_bars, runtime.deliver = timed_on_bars, timed_deliver

    @property
    def bar(self) -> int | None:
        """The close ms of the bar being delivered, None between bars."""
        return self._bar

    def _observe(self, msg: object) -> None:
        if self._bar is None:
            return
        marks = self.marks[self._bar]
        kind = type(msg)
        if kind is SubmitOrder:  # every order of the bar (a bracket after a fill at its open too)
            now = time.time()
            self.submits.setdefault(self._bar, []).append(now)
            if "hosts" in marks:
                marks.setdefault("submit", now)
            return
        if "hosts" not in marks:
            return
        name = _MARKS.get(kind)
        if name is not None:
            marks.setdefault(name, time.time())


def bar_hops(
    marks: dict[str, float], sent: float, orders: list[float], real: bool
) -> dict[str, float]:
    """One bar's hops in ms (see the module docstring); a hop not reached is left out."""
    points = [
        ("websocket", sent, marks["driver"]),
        ("bar step", marks["driver"], marks.get("hosts")),
        ("hosts", marks.get("hosts"), marks.get("signals")),
        ("portfolio", marks.get("signals"), marks.get("intents")),
        ("order store", marks.get("intents"), marks.get("submit")),
    ]
    if real and orders:
        points.append(("broker", marks.get("submit"), min(orders)))
    if orders:
        points.append(("rest", min(orders), max(orders)))
    return {
        name: (end - begin) * 1000
        for name, begin, end in points
        if begin is not None and end is not None
    }
