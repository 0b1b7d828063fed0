"""The live system on Ray: bar stream, strategy hosts, portfolio, order manager, exchange.

Ray actors (named, so each shows in the Ray dashboard under a readable name):
- `bars <exchange>`: the websocket routine (live/venues/bar_stream.py), an async actor;
- `strategies <symbol> <interval>`: the LiveStrategyHosts of the instances on that series;
- `portfolio`: one WeightedPortfolio per quote currency (live/portfolios.py: sizing risk x
  weight on the cash of that currency);
- `orders`: the OrderManager with the SQL order store (committed once per delivery batch);
- `exchange dry-run`: DryRunExchange (the simulated exchange fed live bars) — the real-mode
  broker takes this place, nothing else changes.
The driver (this class) routes messages between them (live/runtime.py) and pumps bars. The
start-up sequence around the node (checks, warm-up, then this start, the stream, the pump loop,
the stop) is written once, in live/session.py.

Start (docs/live.md#start-up-order): the open orders and trades of earlier sessions are loaded from
the database (live/ops/recovery.py); real mode asks the broker for typed reports of them,
reconciles (live/ops/reconcile.py decides, the node applies through the broker's methods; a
failure stops the start with one error) before anything trades; the order manager, portfolio
and strategy hosts get that state back; then the bar stream starts. While running:
open trades' marks are written every 30 s (and at stop), real mode audits the exchange for
orders and fills the database does not know every `reconcile_every` minutes.
With `ray_module=None` everything runs in this process (the recovery tests' kill -9 runs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from actors.messages import (
    BarClosed,
    CancelOrder,
    OrderFilled,
    SubmitOrder,
    TradeClosed,
    TradeOpened,
)
from actors.order_manager import OrderManager, OrderStore
from actors.weighted_portfolio import PortfolioMember
from backtest.account import AccountSettings
from core.errors import UserError
from live.actor_group import ActorGroup
from live.dry_run import DryRunExchange
from live.hosts import DEFAULT_WINDOW, HostGroup, LiveStrategyHost
from live.ops.metrics import LiveMetrics
from live.ops.reconcile import ExchangeAudit, reconcile
from live.ops.recovery import (
    LoopActor,
    Restored,
    StoredGroup,
    adopt_into,
    load_state,
    position_warnings,
    replace_lost_legs,
    restore_dry_run,
    write_marks,
)
from live.ops.status import BarWatch
from live.portfolios import closed_flows, quote_portfolios
from live.risk_limits import RiskLimits
from live.runtime import EXCHANGE, LiveRuntime
from live.setup import Warmup
from live.venues.outcomes import CallSettings, wall_ms
from live.venues.reports import BalanceReport

if TYPE_CHECKING:
    from ray.actor import ActorHandle

    from live.model_gates import ModelGates
    from live.venues.bar_stream import BarStream
    from live.venues.broker import CcxtBroker

    Handle = ActorHandle | ActorGroup | LoopActor  # a group or the broker, on Ray or in process

HOSTS_PER_ACTOR = 25
MARK_EVERY_S = 30.0
log = logging.getLogger("raytrader.live")


class ReconcileError(UserError):
    """The stored state could not be reconciled with the exchange: the start is stopped."""


@dataclass(frozen=True)
class LiveSettings(AccountSettings):
    """The session's settings beside the account's (cash, costs, sizing: backtest/account.py,
    keyword arguments), the same type a backtest has."""

    exchange: str
    url: str | None
    db_url: str
    window: int = DEFAULT_WINDOW
    backoff: tuple[float, float] = (0.2, 10.0)
    quiet_s: float = 5.0  # no stream message this long: confirm closed bars through REST
    hosts_per_actor: int = HOSTS_PER_ACTOR  # instances of one series per Ray actor
    real: bool = False  # orders through the ccxt broker (keys from the environment)
    market: str = "spot"  # real mode: spot | margin (shorts need margin, live/venues/margin.py)
    reconcile_every: float = 5.0  # minutes between audits of the exchange (real mode; 0: never)
    calls: CallSettings = CallSettings()  # real mode: timeouts, recvWindow, lookups, limiter
    # quote currency -> its portfolio's own account settings (cash, min_notional, lot_size),
    # when the instances trade pairs of several quote currencies (live/session.py settles them)
    quotes: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    # live: 2% of the cash is never committed, so a market buy sized at the signal's close
    # still fits the balance when the next open is higher (docs/live.md#sizing-within-the-account)
    cash_buffer: float = dataclasses.field(default=0.02, kw_only=True)
    # risk limits of every portfolio (live/risk_limits.py; all off by default)
    limits: RiskLimits = dataclasses.field(default_factory=RiskLimits, kw_only=True)


class LiveNode:
    def __init__(
        self,
        settings: LiveSettings,
        members: list[PortfolioMember],
        warm: Warmup,
        ray_module: ModuleType | None,
        models: ModelGates | None = None,
        order_store: Callable[[], OrderStore] | None = None,
    ) -> None:
        self.settings = settings
        self.models = models  # live/model_gates.ModelGates: instances that ask a trained model
        self.members = members
        self.warm = warm
        self._make_order_store = order_store or self._order_store
        self.ray = ray_module
        self.run_id = uuid.uuid4().hex[:8]
        self.title_suffix = ""  # several exchanges (live/multi.py): " on <exchange>"
        self.runtime = LiveRuntime(ray_module)
        self.stream: ActorHandle[BarStream] | None = None
        self.broker: ActorHandle[CcxtBroker] | LoopActor | None = None
        self.audit: ExchangeAudit | None = None  # real mode: the account against the database
        self._handles: list[ActorHandle] = []
        self.bars = 0
        self.orders_sent: deque[float] = deque()
        self.fills = 0
        self.trades_opened = 0
        self.trades_closed = 0
        self.restored = Restored()
        self.warnings: list[str] = []
        self.marks: dict[str, float] = {}  # symbol -> latest close
        # each streamed series' newest bar: a series that stops shows in the status line
        self.bar_watch = BarWatch({m.series for m in members}, warm.last_ms)
        self._marked_at = self._audited_at = time.monotonic()
        self.runtime.observers.append(self._observe)
        self.metrics = LiveMetrics(settings.exchange, None if ray_module is not None else False)
        self.runtime.observers.append(self.metrics.observe)

    # -- start / stop -------------------------------------------------------------------------
    def start(self, stream: bool = True) -> None:
        s = self.settings
        self._started_ms = wall_ms()
        if stream:
            self.boot_stream()
        series = sorted({m.series for m in self.members})
        routes = {m.label: m.series for m in self.members}
        restored = self.restored = load_state(
            s.db_url, s.exchange, [m.label for m in self.members], not s.real
        )
        lost: list = []
        free = None  # real mode: the account's free balance per currency
        if s.real:
            free, events, lost = self._start_broker(routes, restored)
        else:
            exchange = DryRunExchange(s.fee_bps, s.slippage_bps, routes)
            events = restore_dry_run(exchange, restored)
            self.spawn(EXCHANGE, "exchange dry-run", [("exchange", exchange)])
        manager = OrderManager(self._make_order_store())
        adopt_into(manager, restored)
        fresh = replace_lost_legs(manager, restored, lost, time.time_ns()) if lost else []
        self.spawn("orders", "orders", [("orders", manager)], StoredGroup)
        portfolio = quote_portfolios(s, self.members, free)
        if not s.real:  # dry run: the cash its closed trades left (real: the account's balance)
            portfolio.book(closed_flows(s, self.members, restored))
        self.spawn("portfolio", "portfolio", [("portfolio", portfolio)])
        self._spawn_hosts(series)
        self.runtime.deliver(restored.opened())  # the portfolio and hosts learn of open trades
        self.runtime.deliver(events)  # fills while down, orders refused or placed again
        self.runtime.deliver(fresh)  # stops/targets cancelled at the exchange, placed again
        if s.real:  # what the account holds now, whatever was replayed above
            balances = self._call(self.broker, "balances")
            self.runtime.query("portfolio", "portfolio", "reset_cash", dict(balances.free))
            self._check_positions(balances)
        if stream:
            self.start_stream()

    def start_stream(self) -> None:
        """The bar stream: the last step of the start (after start(stream=False))."""
        self.boot_stream()
        self.ray.get(self.stream.start.remote())

    def _spawn_hosts(self, series: list[tuple[str, str]]) -> None:
        s = self.settings
        for key in series:
            on_series = [m for m in self.members if m.series == key]
            size = max(1, s.hosts_per_actor)
            for k in range(0, len(on_series), size):
                chunk = on_series[k : k + size]
                hosts = [
                    (
                        m.label,
                        LiveStrategyHost(
                            m.strategy,
                            self.warm.frames[key],
                            m.symbol,
                            m.interval,
                            m.label,
                            s.window,
                        ),
                    )
                    for m in chunk
                ]
                if self.models is not None:
                    hosts = self.models.attach(hosts, self.warm.frames[key], *key, s.window)
                part = f" #{k // size + 1}" if len(on_series) > size else ""
                title = f"strategies {key[0]} {key[1]}{part}"
                self.spawn(f"hosts {key} {k}", title, hosts, HostGroup)

    def _start_broker(self, routes: dict[str, tuple[str, str]], restored: Restored) -> tuple:
        """The ccxt broker as the exchange actor, reconciled with the stored open orders;
        returns (the account's free balance per currency, the events reconciliation found for the
        other actors, the bracket legs to place again)."""
        from live.venues.broker import CcxtBroker

        s = self.settings
        args = (s.exchange, s.url, routes, s.db_url, s.market, s.calls)
        if self.ray is None:
            broker = LoopActor(CcxtBroker(*args))
        else:
            broker = (
                self.ray.remote(CcxtBroker)
                .options(name=f"broker {s.exchange} [{self.run_id}]", num_cpus=0, max_concurrency=1)
                .remote(*args)
            )
            self._handles.append(broker)
        self.broker = broker
        self._call(broker, "start")
        try:
            events, lost = self._reconcile(restored)
        except Exception as exc:  # noqa: BLE001 - any failure stops the start, said once
            with contextlib.suppress(Exception):
                self._call(broker, "stop")
                if isinstance(broker, LoopActor):
                    broker.close()
            cause = getattr(exc, "cause", None) or exc
            raise ReconcileError(
                f"reconciliation with {s.exchange} failed before trading: "
                f"{str(cause).strip().splitlines()[-1]}; nothing was traded "
                "(check the exchange and --url, then start again)"
            ) from None
        self.runtime.add(EXCHANGE, broker, (SubmitOrder, CancelOrder, BarClosed))
        balances = self._call(broker, "balances")
        return dict(balances.free), events, lost

    def _reconcile(self, restored: Restored) -> tuple[list, list[SubmitOrder]]:
        """The stored open orders against the broker's reports of them (live/ops/reconcile.py),
        the decisions applied through the broker, then the first audit of the account; returns
        the events for the other actors and the bracket legs to place again."""
        broker, stored = self.broker, restored.submits()
        queries = [(msg.symbol, exchange_id, cid) for cid, exchange_id, msg in stored]
        # a request of the earlier session was stamped before this start: once our clock
        # passed start + recvWindow + margin, an order not found can no longer arrive
        calls = self.settings.calls
        final_ms = self._started_ms + calls.recv_window_ms + calls.margin_ms
        reports = self._call(broker, "order_reports", queries, final_ms)
        plan = reconcile(stored, reports, restored.filled)  # filled: stored parts of exits
        self._call(broker, "resume", plan.client_ids, plan.resting, plan.timed)
        if plan.cancels:
            self._call(broker, "cancel_orders", plan.cancels)
        self._call(broker, "record", plan.adopted)
        events = list(plan.events)
        if plan.resend:  # exits that never reached the exchange go now, under their own ids
            events.extend(self._call(broker, "handle_batch", plan.resend))
        self.audit = ExchangeAudit.of(restored.known, plan.adopted, restored.last_fill_ms)
        self._audit()  # failed: tried again at the first housekeeping
        return events, plan.lost

    def _check_positions(self, balances: BalanceReport) -> None:
        """An exchange position the database does not know: reported loudly, never touched."""
        bases = {m.symbol.split("/")[0] for m in self.members}
        # a currency that is also traded as a quote (ETH of ETH/BTC and of XRP/ETH): its free
        # balance is that quote's portfolio's cash; only the locked part (a position's resting
        # stop and target) is a position
        quotes = {m.symbol.split("/")[1] for m in self.members}
        held = {
            asset: total - balances.free.get(asset, 0.0) if asset in quotes else total
            for asset, total in balances.total.items()
        }
        self._report(position_warnings(self.trades(), held, bases))

    def _call(self, handle: Handle, method: str, *args: object) -> Any:
        if self.ray is None:
            return getattr(handle, method)(*args)
        return self.ray.get(getattr(handle, method).remote(*args))

    def _report(self, warnings: list[str]) -> None:
        for warning in warnings:
            log.warning(warning)
        self.warnings.extend(warnings)

    def add_route(self, strategy: str, series: tuple[str, str]) -> None:
        """An instance enabled while running (live/ops/control.py): the exchange actor learns
        which series its orders follow, the portfolio which quote currency it trades in."""
        self.runtime.query("portfolio", "portfolio", "add_instance", strategy, series[0])
        if self.broker is not None:
            self._call(self.broker, "add_route", strategy, series)
        else:
            self.runtime.query(EXCHANGE, "exchange", "add_route", strategy, series)

    def spawn(
        self, group: str, title: str, members: list[tuple[str, Any]], cls: type = ActorGroup
    ) -> None:
        """A group of actors, as one Ray actor named `title` (in process without Ray)."""
        local = cls(members)
        if self.ray is None:
            self.runtime.add(group, local, local.subscriptions())
            return
        handle = (
            self.ray.remote(cls)
            .options(
                name=f"{title}{self.title_suffix} [{self.run_id}]", num_cpus=0, max_concurrency=1
            )
            .remote(members)
        )
        self._handles.append(handle)
        self.runtime.add(group, handle, local.subscriptions())

    def _order_store(self) -> OrderStore:
        from actors.order_store import DRY_RUN, SqlOrderStore

        dry = not self.settings.real  # dry-run rows: their own run_id and ids, never mixed up
        return SqlOrderStore(
            self.settings.db_url,
            run_id=DRY_RUN if dry else None,
            exchange=self.settings.exchange,
            stable=True,
            autocommit=False,
            id_prefix="dry-" if dry else "",
        )

    def boot_stream(self) -> None:
        """Create the bar stream's actor: its process boots (Ray worker, imports) while the
        broker reconciles and the other actors start. It subscribes only in start_stream, the
        last step of a start, so no bar is seen before the node is ready for it."""
        from live.venues.bar_stream import BarStream

        if self.stream is not None:
            return
        if self.ray is None:
            raise RuntimeError("the bar stream runs as an async Ray actor: start Ray first")
        s = self.settings
        series = sorted({m.series for m in self.members})
        args = (s.exchange, s.url, series, dict(self.warm.last_ms), s.db_url, s.backoff, s.quiet_s)
        self.stream = (
            self.ray.remote(BarStream)
            .options(name=f"bars {s.exchange} [{self.run_id}]", num_cpus=0, max_concurrency=8)
            .remote(*args)
        )
        self._handles.append(self.stream)

    def stop(self) -> None:
        """Stop the stream and the actors; open orders and positions are left as they are."""
        self.write_marks()
        for actor in (self.stream, self.broker):
            if actor is None:
                continue
            try:
                if self.ray is None:
                    actor.stop()
                    if isinstance(actor, LoopActor):
                        actor.close()
                else:
                    self.ray.get(actor.stop.remote(), timeout=15)
            except Exception:  # already gone: nothing left to close
                pass
        for handle in self._handles:
            self.ray.kill(handle)
        self._handles = []

    def write_marks(self) -> None:
        """Open trades' mark price and unrealised pnl, at the latest closes seen."""
        self._marked_at = time.monotonic()
        if self.marks:
            s = self.settings
            write_marks(s.db_url, dict(self.marks), not s.real, s.exchange)

    def housekeeping(self) -> None:
        """Marks every 30 s; in real mode an audit of the exchange every reconcile_every min."""
        now = time.monotonic()
        if now - self._marked_at >= MARK_EVERY_S:
            self.write_marks()
        every = self.settings.reconcile_every * 60.0
        if self.audit is not None and every > 0 and now - self._audited_at >= every:
            self._audit()

    def _audit(self) -> None:
        """The account against the database (warnings only, nothing is decided on it): a read
        that fails is one warning and is tried again at the next housekeeping, never fatal."""
        try:
            report = self._call(self.broker, "account_report", self.audit.since_ms)
        except Exception as exc:  # noqa: BLE001 - a failed read is tried again, never fatal
            cause = str(getattr(exc, "cause", None) or exc).strip().splitlines() or [""]
            log.warning("the audit of the exchange failed (%s): trying again", cause[-1])
            self._audited_at = float("-inf")  # due again at once
            return
        self._audited_at = time.monotonic()
        self._report(self.audit.check(report))

    # -- running ------------------------------------------------------------------------------
    def pump(self, max_wait: float = 0.5) -> int:
        """Wait up to max_wait for closed bars, deliver them; returns how many bars."""
        bars = self.ray.get(self.stream.next_bars.remote(max_wait))
        self.deliver(bars)
        self.housekeeping()
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
            self.marks.update((b.symbol, b.close) for b in bars[i:j])
            for b in bars[i:j]:
                self.bar_watch.seen(b.symbol, b.interval, b.ts // 1_000_000)
            i = j

    def wait_for_bars(self, total: int, timeout: float = 30.0) -> None:
        """Tests: pump until `total` bars were delivered in all (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while self.bars < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.bars} of {total} bars arrived in {timeout}s")
            self.pump(0.2)

    def _observe(self, msg: object) -> None:
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
        self.metrics.set_equity(state["quotes"])
        requests = self._call(self.broker, "request_rate") if self.broker is not None else 0
        self.metrics.set_requests(requests)
        return {
            "requests_last_minute": requests,
            "bars": self.bars,
            "positions": state["positions"],
            "equity": state["equity"],  # None when several quote currencies are traded
            "quotes": state["quotes"],  # quote currency -> its cash, equity, positions
            "orders_last_minute": len(self.orders_sent),
            "fills": self.fills,
            "trades_closed": self.trades_closed,
            "late": self.bar_watch.late(),  # series without a bar for 3 or more intervals
            "market_ms": self.bar_watch.now_ms(),
        }
