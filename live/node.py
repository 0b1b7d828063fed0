"""The live system on Ray: bar stream, strategy hosts, portfolio, order manager, exchange.

Ray actors (named, so each shows in the Ray dashboard under a readable name):
- `bars <exchange>`: the websocket routine (live/ws_routine.py), an async actor;
- `strategies <symbol> <interval>`: the LiveStrategyHosts of the instances on that series;
- `portfolio`: the WeightedPortfolio (sizing risk x weight on one shared account);
- `orders`: the OrderManager with the write-through SQL order store;
- `exchange dry-run`: DryRunExchange (the simulated exchange fed live bars) — the real-mode
  broker takes this place, nothing else changes.
The driver (this class) routes messages between them (live/runtime.py) and pumps bars.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from actors.messages import (
    BarClosed,
    CancelOrder,
    OrderFilled,
    SubmitOrder,
    TradeClosed,
    TradeOpened,
)
from actors.order_manager import OrderManager
from actors.portfolio_kernel import PortfolioMember
from live.control import LivePortfolio
from live.dry_run import DryRunExchange
from live.hosts import DEFAULT_WINDOW, ActorGroup, LiveStrategyHost
from live.metrics import LiveMetrics
from live.runtime import EXCHANGE, LiveRuntime
from live.setup import Warmup

HOSTS_PER_ACTOR = 25


@dataclass(frozen=True)
class LiveSettings:
    exchange: str
    url: str | None
    db_url: str
    cash: float = 10_000.0
    fee_bps: float = 10.0
    slippage_bps: float = 0.0
    risk: float = 0.01
    max_symbol_exposure: float = 1.0
    max_total_exposure: float = 1.0
    max_open_positions: int = 1
    window: int = DEFAULT_WINDOW
    backoff: tuple[float, float] = (0.2, 10.0)
    quiet_s: float = 5.0  # no stream message this long: confirm closed bars through REST
    hosts_per_actor: int = HOSTS_PER_ACTOR  # instances of one series per Ray actor
    real: bool = False  # orders through the ccxt broker (keys from the environment)
    min_notional: float | None = None  # as BacktestConfig: None is a fraction of the cash
    lot_size: float = 0.0
    market: str = "spot"  # real mode: spot | margin (shorts need margin, live/margin.py)

    def min_order_notional(self) -> float:
        """The portfolio's dust limit, the same rule as a backtest's (parity)."""
        from backtest.run import MIN_NOTIONAL_FRACTION

        if self.min_notional is None:
            return MIN_NOTIONAL_FRACTION * self.cash
        return float(self.min_notional)


class LiveNode:
    def __init__(self, settings: LiveSettings, members: list[PortfolioMember], warm: Warmup,
                 ray_module: Any, models: Any = None) -> None:  # fmt: skip
        self.settings = settings
        self.models = models  # live/model_gates.ModelGates: instances that ask a trained model
        self.members = members
        self.warm = warm
        self.ray = ray_module
        self.run_id = uuid.uuid4().hex[:8]
        self.runtime = LiveRuntime(ray_module)
        self.stream: Any = None
        self.broker: Any = None
        self._handles: list[Any] = []
        self.bars = 0
        self.orders_sent: deque[float] = deque()
        self.fills = 0
        self.trades_opened = 0
        self.trades_closed = 0
        self.runtime.observers.append(self._observe)
        self.metrics = LiveMetrics(settings.exchange, None if ray_module is not None else False)
        self.runtime.observers.append(self.metrics.observe)

    # -- start / stop -------------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        series = sorted({m.series for m in self.members})
        routes = {m.label: m.series for m in self.members}
        if s.real:
            cash = self._start_broker(routes)
            s = dataclasses.replace(s, cash=cash)
        else:
            self._spawn(EXCHANGE, "exchange dry-run",
                        [("exchange", DryRunExchange(s.fee_bps, s.slippage_bps, routes))])  # fmt: skip
        self._spawn("orders", "orders", [("orders", OrderManager(self._order_store()))])
        weights = {m.label: m.weight for m in self.members}
        hedged = frozenset(m.label for m in self.members if m.strategy.hedge)
        limits = {m.label: m.strategy.entry_limit() for m in self.members
                  if m.strategy.pyramiding}  # fmt: skip
        portfolio = LivePortfolio(s, weights, {}, hedged, position_limits=limits)
        self._spawn("portfolio", "portfolio", [("portfolio", portfolio)])
        for key in series:
            on_series = [m for m in self.members if m.series == key]
            size = max(1, s.hosts_per_actor)
            for k in range(0, len(on_series), size):
                chunk = on_series[k : k + size]
                hosts = [(m.label, LiveStrategyHost(m.strategy, self.warm.frames[key], m.symbol,
                          m.interval, m.label, s.window)) for m in chunk]  # fmt: skip
                if self.models is not None:
                    hosts = self.models.attach(hosts, self.warm.frames[key], *key, s.window)
                part = f" #{k // size + 1}" if len(on_series) > size else ""
                self._spawn(f"hosts {key} {k}", f"strategies {key[0]} {key[1]}{part}", hosts)
        self._start_stream(series)

    def _start_broker(self, routes: dict[str, tuple[str, str]]) -> float:
        """The ccxt broker as the exchange actor; returns the account's free quote balance."""
        from live.broker import CcxtBroker

        s = self.settings
        broker = (
            self.ray.remote(CcxtBroker)
            .options(name=f"broker {s.exchange} [{self.run_id}]", num_cpus=0, max_concurrency=1)
            .remote(s.exchange, s.url, routes, s.market)
        )
        self._handles.append(broker)
        self.broker = broker
        self.ray.get(broker.start.remote())
        self.runtime.add(EXCHANGE, broker, (SubmitOrder, CancelOrder, BarClosed))
        return self.ray.get(broker.quote_balance.remote(self.members[0].symbol))

    def _spawn(self, group: str, title: str, members: list[tuple[str, Any]]) -> None:
        local = ActorGroup(members)
        if self.ray is None:
            self.runtime.add(group, local, local.subscriptions())
            return
        handle = (
            self.ray.remote(ActorGroup)
            .options(name=f"{title} [{self.run_id}]", num_cpus=0, max_concurrency=1)
            .remote(members)
        )
        self._handles.append(handle)
        self.runtime.add(group, handle, local.subscriptions())

    def _order_store(self) -> Any:
        from actors.order_store import SqlOrderStore

        return SqlOrderStore(self.settings.db_url, prefix=f"live-{self.run_id}",
                             exchange=self.settings.exchange)  # fmt: skip

    def _start_stream(self, series: list[tuple[str, str]]) -> None:
        from live.ws_routine import BarStream

        s = self.settings
        args = (s.exchange, s.url, series, dict(self.warm.last_ms), s.db_url, s.backoff, s.quiet_s)
        if self.ray is None:
            raise RuntimeError("the bar stream runs as an async Ray actor: start Ray first")
        self.stream = (
            self.ray.remote(BarStream)
            .options(name=f"bars {s.exchange} [{self.run_id}]", num_cpus=0, max_concurrency=8)
            .remote(*args)
        )
        self._handles.append(self.stream)
        self.ray.get(self.stream.start.remote())

    def stop(self) -> None:
        """Stop the stream and the actors; open orders and positions are left as they are."""
        for actor in (self.stream, self.broker):
            if actor is None:
                continue
            try:
                self.ray.get(actor.stop.remote(), timeout=15)
            except Exception:  # already gone: nothing left to close
                pass
        for handle in self._handles:
            self.ray.kill(handle)
        self._handles = []

    # -- running ------------------------------------------------------------------------------
    def pump(self, max_wait: float = 0.5) -> int:
        """Wait up to max_wait for closed bars, deliver them; returns how many bars."""
        bars = self.ray.get(self.stream.next_bars.remote(max_wait))
        self.deliver(bars)
        return len(bars)

    def deliver(self, bars: list) -> None:
        i = 0
        while i < len(bars):  # bars closing at the same time are delivered together
            j = i
            while j < len(bars) and bars[j].ts == bars[i].ts:
                j += 1
            self.runtime.on_bars(bars[i:j])
            self.metrics.delivered()
            self.bars += j - i
            i = j

    def wait_for_bars(self, total: int, timeout: float = 30.0) -> None:
        """Tests: pump until `total` bars were delivered in all (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while self.bars < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.bars} of {total} bars arrived in {timeout}s")
            self.pump(0.2)

    def _observe(self, msg: Any) -> None:
        kind = type(msg)
        if kind is SubmitOrder:
            self.orders_sent.append(time.monotonic())
        elif kind is OrderFilled:
            self.fills += 1
        elif kind is TradeOpened:
            self.trades_opened += 1
        elif kind is TradeClosed:
            self.trades_closed += 1

    # -- state --------------------------------------------------------------------------------
    def trades(self) -> list[dict]:
        return self.runtime.query("orders", "orders", "trades")

    def orders(self) -> list[dict]:
        return self.runtime.query("orders", "orders", "orders")

    def portfolio(self) -> dict:
        return self.runtime.query("portfolio", "portfolio", "state")

    def stream_state(self) -> dict:
        return self.ray.get(self.stream.state.remote())

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        while self.orders_sent and now - self.orders_sent[0] > 60:
            self.orders_sent.popleft()
        state = self.portfolio()
        self.metrics.set_equity(state["equity"])
        return {"bars": self.bars, "positions": state["positions"], "equity": state["equity"],
                "orders_last_minute": len(self.orders_sent), "fills": self.fills,
                "trades_closed": self.trades_closed}  # fmt: skip


@contextlib.contextmanager
def ray_for_live(console: Any) -> Iterator[Any]:
    """Ray for the live actors: the one already initialised, $RAY_ADDRESS, or a local one of its
    own (never another program's cluster found on this machine: live owns its actors). A local
    one listens on loopback only, its dashboard and metrics on free ports (never Ray's fixed 8265:
    another Ray on the machine, e.g. a backtest, may hold it)."""
    from cluster.ray_setup import (
        _connect,
        _dashboard_url,
        _free_port,
        _restore_environment,
        _single_machine_mode,
        _start_local,
        prefer_token_auth,
    )

    prefer_token_auth()
    import ray

    if ray.is_initialized():
        yield ray
        return
    address = os.environ.get("RAY_ADDRESS")
    dashboard = os.environ.get("RAYTRADER_DASHBOARD", "1") != "0"
    restore = None if address else _single_machine_mode()
    try:
        if address:
            context = _connect(address)
        else:
            context = _start_local(
                dashboard, None, _free_port() if dashboard else None, log_to_driver=True
            )  # actors' log lines (model API fallbacks)
        url = _dashboard_url(context)
        if url:
            console.print(f"Ray dashboard: {url} (actors: bars, strategies, portfolio, orders)")
        metrics = _metrics_url(ray)
        if metrics:
            console.print(f"Ray metrics (Prometheus text): {metrics}")
        yield ray
    finally:
        ray.shutdown()
        if restore is not None:
            _restore_environment(restore)


def _metrics_url(ray: Any) -> str | None:
    """Where this node serves its metrics (live/metrics.py), for Prometheus or curl."""
    for node in ray.nodes():
        if node.get("Alive") and node.get("MetricsExportPort"):
            return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
    return None
