"""One live session: the start-up sequence, the pump loop and the stop, written once.

    with LiveSession(settings, members, ray_module=ray) as session:   # start() ... stop()
        session.run(duration=60)

The sequence (docs/live.md#start-up-order), each step once, in this order:
1. `prepare` (reads only, no Ray, nothing written; every user mistake fails here): select the
   instances (a `Selection`, or the members given), check the exchange (reachable, symbols
   listed, intervals served), warm up (stored bars plus the exchange's latest closed ones), the
   settings left to the exchange (`FromExchange`: dry-run cash, order limits), the models;
2. `start`: Ray (the one given, or started here after the checks), then the node
   (live/node.py): recover the open orders and trades from the database, reconcile them with
   the exchange in real mode (a failure stops the start: nothing traded, nothing written), give
   the actors their state back; then store the warm-up bars, declare a prod.json's instances,
   the control of instances enabled/disabled while running, and the bar stream;
3. `run` / `pump`: closed bars delivered, marks every 30 s, audits in real mode, the control's
   poll, until `request_stop` (or SIGTERM, when asked) or the duration;
4. `stop`: marks written, stream and broker closed, actors killed; open orders and positions are
   left as they are; Ray shut down if this session started it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING

from actors.messages import BarClosed
from actors.order_manager import OrderStore
from actors.weighted_portfolio import PortfolioMember
from live.model_gates import ModelGates
from live.node import LiveNode, LiveSettings
from live.ops.control import LiveControl
from live.setup import Warmup

if TYPE_CHECKING:
    from ccxt import Exchange as RestClient

    from store.models import StrategyInstance

log = logging.getLogger("raytrader.live")
PUMP_WAIT_S = 0.5
RayStarter = Callable[[], contextlib.AbstractContextManager[ModuleType]]


@dataclass(frozen=True)
class Selection:
    """Which instances to trade: those of a prod.json, else the database's enabled ones,
    narrowed by these filters."""

    config: Path | None = None
    family: str | None = None
    symbol: str | None = None
    interval: str | None = None
    ids: tuple[int, ...] | None = None
    # several exchanges in one node (live/multi.py): the first; instances routed per exchange
    first: str | None = None

    def adopts(self, row: StrategyInstance) -> bool:
        """An instance enabled while running: taken on when the filters allow it."""
        return (
            (not self.family or row.family == self.family)
            and (not self.symbol or row.symbol == self.symbol)
            and (not self.interval or row.interval == self.interval)
            and (not self.ids or row.id in self.ids)
        )


@dataclass(frozen=True)
class FromExchange:
    """Settings the user left to the exchange (None: read it there at start)."""

    # dry run: one amount (one quote currency traded) or one per quote currency; None: the
    # account's free balance of each when API keys are set, else `funding`
    cash: float | Mapping[str, float] | None = None
    min_notional: float | None = None  # the traded markets' minimum, else a fraction of the cash
    lot_size: float | None = None  # the traded markets' amount step
    keys: tuple[str, str] | None = None  # API keys: the account's balance is read with them
    funding: Mapping[str, float] = dataclasses.field(default_factory=dict)  # quote -> default


@dataclass(frozen=True)
class ModelChoice:
    """How the instances with a trained model ask it (live/model_gates.py)."""

    url: str | None = None  # a `cli.py model run` API; None: the model files, in process
    fallback: str = "trade"
    timeout: float = 0.5


class PumpLoop:
    """The pump loop and its stop, shared by a session and a session of several exchanges
    (live/multi.py): each defines `pump`, `stopping` and the `_closing` stack."""

    stopping: bool
    _closing: contextlib.ExitStack

    def pump(self, max_wait: float = PUMP_WAIT_S) -> int:
        raise NotImplementedError

    def _watch_sigterm(self) -> None:
        def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
            self.request_stop()

        previous = signal.signal(signal.SIGTERM, on_sigterm)
        self._closing.callback(signal.signal, signal.SIGTERM, previous)

    def run(
        self, duration: float | None = None, after_pump: Callable[[], object] | None = None
    ) -> None:
        """Pump bars until `request_stop` (or SIGTERM) or `duration` seconds; `after_pump`
        is called after each pump (a status line)."""
        deadline = None if duration is None else time.monotonic() + duration
        while not self.stopping and (deadline is None or time.monotonic() < deadline):
            self.pump()
            if after_pump is not None:
                after_pump()

    def request_stop(self) -> None:
        self.stopping = True


class LiveSession(PumpLoop):
    def __init__(
        self,
        settings: LiveSettings,
        members: list[PortfolioMember] | Selection,
        *,
        ray_module: ModuleType | None = None,
        start_ray: RayStarter | None = None,
        warm: Warmup | None = None,
        models: ModelGates | ModelChoice | None = None,
        from_exchange: FromExchange | None = None,
        on_disable: str | None = None,
        stop_on_sigterm: bool = False,
        order_store: Callable[[], OrderStore] | None = None,
        say: Callable[[str], object] = log.info,
    ) -> None:
        """`ray_module`: a Ray already running (None: every actor in this process, no bar
        stream); `start_ray`: Ray started after the checks and shut down at stop instead.
        `warm`: warm-up bars given (the exchange is then not asked before the start).
        `on_disable`: keep | close, watch the database for instances enabled or disabled while
        running (None: no watch). `say`: where the start-up lines go."""
        if ray_module is not None and start_ray is not None:
            raise ValueError("give a running Ray (ray_module) or a way to start one, not both")
        self.settings = settings
        self.selection = members if isinstance(members, Selection) else None
        self.members: list[PortfolioMember] = [] if self.selection else list(members)
        self.ray = ray_module
        self.warm = warm
        self.models = models
        self.from_exchange = from_exchange
        self.on_disable = on_disable
        self.say = say
        self.node: LiveNode | None = None
        self.control: LiveControl | None = None
        self.stopping = False
        self._start_ray = start_ray
        self._stop_on_sigterm = stop_on_sigterm
        self._order_store = order_store
        self._prepared = False
        self._stopped = False
        self._warnings_taken = 0
        self._closing = contextlib.ExitStack()
        self.title_suffix = ""  # the Ray actors' names: " on <exchange>" among several

    # -- 1. prepare: reads only --------------------------------------------------------------
    def prepare(self) -> None:
        """Select, check the exchange, warm up, settle the settings left to the exchange and
        load the models; nothing is written and Ray is not needed yet."""
        if self._prepared:
            return
        from live.setup import check_exchange, select_members, warm_up

        s = self.settings
        client = None
        if self.warm is None or self.selection is not None or self.from_exchange is not None:
            from live.venues.ccxt_clients import rest_client

            keys = self.from_exchange.keys if self.from_exchange else None
            client = rest_client(s.exchange, s.url, keys)  # an unknown exchange fails first
        if self.selection is not None:
            sel = self.selection
            ids = list(sel.ids) if sel.ids else None
            self.members = select_members(
                s.db_url,
                s.exchange,
                sel.config,
                sel.family,
                sel.symbol,
                sel.interval,
                ids,
                sel.first,
            )
        if self.warm is None:
            check_exchange(client, s.url, self.members)
            self.warm = warm_up(client, s.db_url, s.exchange, self.members)
        if self.from_exchange is not None:
            self.settings = self._settled(client, self.from_exchange)
        if isinstance(self.models, ModelChoice):
            self.models = self._load_models(self.models)
        self._prepared = True

    def _settled(self, client: RestClient, given: FromExchange) -> LiveSettings:
        """The settings with the dry run's cash and the order limits read from the exchange,
        per quote currency (one portfolio each, live/portfolios.py)."""
        from live.portfolios import quote_of, quotes_of
        from live.setup import market_limits, order_limits, starting_cash

        cash: dict[str, float] = {}
        if not self.settings.real:
            for start in starting_cash(client, given.keys, self.members, given.cash, given.funding):
                self.say(f"dry run starting cash: {start.amount:g} {start.quote} ({start.source})")
                cash[start.quote] = start.amount
        quotes: dict[str, dict[str, object]] = {}
        for quote in quotes_of(self.members):
            market = market_limits(client, [m for m in self.members if quote_of(m.symbol) == quote])
            notional, lot = order_limits(given.min_notional, given.lot_size, market)
            shown = "0.01% of the cash" if notional is None else f"{notional:g}"
            self.say(
                f"order limits: min notional {shown}, lot size {lot:g} "
                f"(given, or from {market.source})"
            )
            quotes[quote] = {"cash": cash.get(quote, 0.0), "min_notional": notional}
            quotes[quote]["lot_size"] = lot
        first = quotes[min(quotes)]  # one quote currency traded: the settings are its own
        return dataclasses.replace(self.settings, **first, quotes=quotes)

    def _load_models(self, choice: ModelChoice) -> ModelGates | None:
        """The instances' trained models; None when none has one."""
        from live.model_gates import load_model_gates
        from live.setup import member_instances

        config = self.selection.config if self.selection else None
        instances = member_instances(self.members, config)
        gates = load_model_gates(
            self.settings.db_url, instances, choice.url, choice.fallback, choice.timeout
        )
        if gates.models:
            how = f"over {gates.url} (fallback: {choice.fallback})" if choice.url else "in process"
            self.say(
                f"model: {len(gates.models)} of {len(self.members)} instance(s) ask their "
                f"trained model at each signal, {how}"
            )
        elif choice.url is not None:
            self.say(
                "warning: --model-url given, but no instance traded here has a trained "
                "model (`cli.py model train`); trading without models"
            )
        return gates if gates.models else None

    # -- 2. start ----------------------------------------------------------------------------
    def start(self, stream: bool | None = None) -> LiveSession:
        """Prepare (if not done), then recover, reconcile, and start the bar stream: on Ray
        unless `stream` is False; in process never (bars are handed in with `deliver`). On any
        failure what was started is stopped again. Starting a started session does nothing."""
        if self.node is not None:
            return self
        self.prepare()
        try:
            self._start(stream)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, stream: bool | None) -> None:
        from live.ops.control import declare_config, member_ids
        from live.setup import commit_warmup

        s = self.settings
        if self._start_ray is not None:
            self.ray = self._closing.enter_context(self._start_ray())
        if self._stop_on_sigterm:  # after Ray: its driver installs a handler of its own
            self._watch_sigterm()
        assert self.warm is not None  # prepare() warmed up
        models = None if isinstance(self.models, ModelChoice) else self.models  # loaded
        self.node = LiveNode(s, self.members, self.warm, self.ray, models, self._order_store)
        self.node.title_suffix = self.title_suffix
        streams = stream or (stream is None and self.ray is not None)
        if streams:
            self.node.boot_stream()  # its process boots meanwhile; it subscribes at the end
        self.node.start(stream=False)  # recover and reconcile first: a failure writes nothing
        commit_warmup(s.db_url, s.exchange, self.warm)
        if self.on_disable is not None:
            config = self.selection.config if self.selection else None
            if config is not None:
                ids = declare_config(s.db_url, s.exchange, config, self.members)
            else:
                ids = member_ids(self.members)
            adopt = None  # instances enabled later: taken on when the filters allow them
            if self.selection is not None:  # a config's --instances are its own instance_id
                chosen = dataclasses.replace(self.selection, ids=None) if config else self.selection
                adopt = chosen.adopts
            self.control = LiveControl(
                self.node, ids, self.on_disable, adopt, self.say, config=config
            )
        if streams:
            self.node.start_stream()

    # -- 3. running (`run`: PumpLoop) -------------------------------------------------------
    def pump(self, max_wait: float = PUMP_WAIT_S) -> int:
        """Closed bars delivered (waiting up to max_wait), housekeeping, the control's poll;
        returns how many bars."""
        count = self._running().pump(max_wait)
        if self.control is not None:
            self.control.maybe_poll()  # enable/disable in the database: every ~2 s
        return count

    def deliver(self, bars: list[BarClosed]) -> None:
        """Bars handed in (a session started without its stream)."""
        self._running().deliver(bars)

    def wait_for_bars(self, total: int, timeout: float = 30.0) -> None:
        """Pump until `total` bars were delivered in all (TimeoutError otherwise)."""
        self._running().wait_for_bars(total, timeout)

    def take_warnings(self) -> list[str]:
        """The warnings (reconciliation, audits) not taken before."""
        warnings = self._running().warnings
        new = warnings[self._warnings_taken :]
        self._warnings_taken = len(warnings)
        return new

    def trades(self) -> list[dict]:
        return self._running().trades()

    def orders(self) -> list[dict]:
        return self._running().orders()

    def _running(self) -> LiveNode:
        if self.node is None:
            raise RuntimeError("the live session is not started: call start() first")
        return self.node

    # -- 4. stop -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Marks written, stream and broker closed, actors gone; open orders and positions
        are left as they are. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.node is not None:
                self.node.stop()
        finally:
            self._closing.close()

    def __enter__(self) -> LiveSession:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
