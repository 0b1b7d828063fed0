"""Several exchanges in one node: one LiveSession per exchange on one Ray, pumped together.

    with MultiSession([settings_binance, settings_binanceus], selection, start_ray=...) as multi:
        multi.run(duration=60)

The design's websocket routine manager runs "for each exchange, concurrently" (issue 20 §6). An
instance trades on one exchange (its database row's, its prod.json entry's), so the exchanges
share nothing but Ray and the database: each gets a whole LiveSession (live/session.py) of its
own, i.e. one `bars <exchange>` stream, one `broker <exchange>` (real mode, keys from
RAYTRADER_<EXCHANGE>_API_KEY / _SECRET), its strategy hosts, its order manager and its portfolios
per quote currency: one portfolio per (exchange, quote currency), each sized on that exchange's
balance. Recovery and reconciliation are per exchange already (the orders and trades rows carry
their exchange; client order ids come from the instance labels, unique across exchanges). The
instances are routed to the exchanges by `live.setup.exchange_of`, once, at selection; an
instance's orders then can only reach its own exchange's broker.

The pump waits on every exchange's stream at once (`ray.wait`), so a bar of one exchange is
delivered as soon as it arrives, whatever the other exchanges do. One exchange alone keeps
using LiveSession directly (commands/live.py): its path and outputs are unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from core.errors import UserError
from live.node import LiveNode, LiveSettings
from live.session import PUMP_WAIT_S, FromExchange, LiveSession, PumpLoop, RayStarter, Selection

log = logging.getLogger("raytrader.live")

if TYPE_CHECKING:
    from actors.messages import BarClosed
    from actors.weighted_portfolio import PortfolioMember


def check_exchanges(exchanges: Sequence[str], urls: Sequence[str]) -> None:
    """Several --exchange: each once, one --url per --exchange (or none at all)."""
    seen: set[str] = set()
    for exchange in exchanges:
        if exchange in seen:
            raise UserError(f"--exchange {exchange} is given twice; give each exchange once")
        seen.add(exchange)
    if urls and len(urls) != len(exchanges):
        raise UserError(
            f"{len(urls)} --url for {len(exchanges)} --exchange: give one --url per --exchange, "
            "in the same order (or no --url: each exchange's own)"
        )
    if len(exchanges) > 1:  # one alone is checked where it always was (LiveSession.prepare)
        import ccxt

        for exchange in exchanges:
            if getattr(ccxt, exchange, None) is None:
                raise UserError(
                    f"unknown exchange {exchange!r}: ccxt has no such exchange (e.g. binance)"
                )


def exchanges_given(
    given: list[str], urls: list[str], config: Path | None
) -> tuple[list[str], list[str]]:
    """The exchanges and their URLs: the --exchange given (each once, one --url each, or no
    --url), else the exchanges a prod.json's instances name when they name several, else
    binance. One exchange trades exactly as before."""
    exchanges = list(given)
    if not exchanges and config is not None:
        exchanges = config_exchanges(config)
    exchanges = exchanges or ["binance"]
    if len(exchanges) == 1:  # as before: a --url given again replaces the one before
        return exchanges, urls[-1:]
    check_exchanges(exchanges, urls)
    return exchanges, urls


def config_exchanges(config: Path) -> list[str]:
    """The exchanges a prod.json's instances name, in the file's order; [] when it names
    fewer than two (one exchange: the run of before, on --exchange's default)."""
    from backtest.portfolio_config import load_portfolio_config

    try:
        entries = load_portfolio_config(config)
    except UserError:
        return []  # reported as before, by the selection
    named = list(dict.fromkeys(e.exchange for e in entries if e.exchange))
    return named if len(named) > 1 else []


class MultiSession(PumpLoop):
    """LiveSessions of several exchanges, started, pumped and stopped together."""

    def __init__(
        self,
        settings: Sequence[LiveSettings],
        members: Selection | dict[str, list[PortfolioMember]],
        *,
        ray_module: ModuleType | None = None,
        start_ray: RayStarter | None = None,
        stop_on_sigterm: bool = False,
        from_exchange: Mapping[str, FromExchange] | None = None,
        **each: Any,
    ) -> None:
        """`settings`: one per exchange, in the order given (the first takes the instances of
        a prod.json that name no exchange); `members`: a Selection (routed per exchange by
        `exchange_of`) or the members of each exchange; `each`: LiveSession's other keyword
        arguments, given to every exchange's session; `from_exchange`: each exchange's own
        (its API keys)."""
        if ray_module is not None and start_ray is not None:
            raise ValueError("give a running Ray (ray_module) or a way to start one, not both")
        names = [s.exchange for s in settings]
        check_exchanges(names, [])
        self.sessions: dict[str, LiveSession] = {}
        for s in settings:
            if isinstance(members, Selection):
                mine: Selection | list = dataclasses.replace(members, first=names[0])
            else:
                mine = list(members.get(s.exchange, []))
            given = (from_exchange or {}).get(s.exchange)
            own = dict(each)
            if "say" in each:  # the start-up lines say which exchange they are about
                own["say"] = _prefixed(each["say"], f"{s.exchange}: ")
            session = LiveSession(s, mine, ray_module=ray_module, from_exchange=given, **own)
            session.title_suffix = f" on {s.exchange}"  # `portfolio on binance [run]` ...
            self.sessions[s.exchange] = session
        self.ray = ray_module
        self.stopping = False
        self._start_ray = start_ray
        self._stop_on_sigterm = stop_on_sigterm
        self._pending: dict[Any, str] = {}  # a stream's next_bars call -> its exchange
        self._started = False
        self._stopped = False
        self._closing = contextlib.ExitStack()

    @property
    def nodes(self) -> dict[str, LiveNode]:
        return {e: s._running() for e, s in self.sessions.items()}

    @property
    def members(self) -> list[PortfolioMember]:
        return [m for s in self.sessions.values() for m in s.members]

    # -- prepare / start ---------------------------------------------------------------------
    def prepare(self) -> None:
        """Every exchange's checks (reads only), before Ray starts or anything is written."""
        for session in self.sessions.values():
            session.prepare()
        labels: dict[str, str] = {}
        for exchange, session in self.sessions.items():
            for m in session.members:  # client order ids derive from the labels
                if m.label in labels:
                    raise UserError(
                        f"instance {m.label} is traded on {labels[m.label]} and {exchange}: "
                        "its client order ids would collide; give each exchange its own instances"
                    )
                labels[m.label] = exchange

    def start(self, stream: bool | None = None) -> MultiSession:
        if self._started:
            return self
        self._started = True
        self.prepare()
        try:
            if self._start_ray is not None:
                self.ray = self._closing.enter_context(self._start_ray())
            if self._stop_on_sigterm:
                self._watch_sigterm()
            for session in self.sessions.values():
                session.ray = self.ray
            if self.ray is None:  # in process: one after the other
                for session in self.sessions.values():
                    session.start(stream)
            else:  # on Ray the starts mostly wait for actors: all exchanges at once
                with ThreadPoolExecutor(len(self.sessions), "live-start") as pool:
                    started = [pool.submit(s.start, stream) for s in self.sessions.values()]
                for future in started:
                    future.result()  # the first failure, after every start has ended
            for session in self.sessions.values():
                watch = session.control.watch if session.control is not None else None
                if watch is not None:  # the file's other exchanges' instances are not refused
                    watch.first = next(iter(self.sessions))
        except BaseException:
            self.stop()
            raise
        return self

    # -- running (`run`: PumpLoop) ----------------------------------------------------------
    def pump(self, max_wait: float = PUMP_WAIT_S) -> int:
        """Every exchange's stream asked at once; the bars of those that answered within
        max_wait delivered to their own node; housekeeping and control polls of all."""
        nodes = self.nodes
        asked = set(self._pending.values())
        for exchange, node in nodes.items():
            if exchange not in asked and node.stream is not None:
                self._pending[node.stream.next_bars.remote(max_wait)] = exchange
        count = 0
        if self._pending:
            ready, _ = self.ray.wait(list(self._pending), num_returns=1, timeout=max_wait)
            # the others that are done too: one delivery round each, no bar waits a round
            ready = [r for r in self._pending if r in ready or _done(self.ray, r)]
            for ref in ready:
                node = nodes[self._pending.pop(ref)]
                bars = self.ray.get(ref)
                node.deliver(bars)
                count += len(bars)
        for exchange, session in self.sessions.items():
            nodes[exchange].housekeeping()
            if session.control is not None:
                session.control.maybe_poll()
        return count

    def wait_for_bars(self, totals: Mapping[str, int], timeout: float = 30.0) -> None:
        """Pump until each exchange delivered its total of bars (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while any(self.nodes[e].bars < n for e, n in totals.items()):
            if time.monotonic() > deadline:
                got = {e: node.bars for e, node in self.nodes.items()}
                raise TimeoutError(f"bars {got} of {dict(totals)} in {timeout}s")
            self.pump(0.2)

    def deliver(self, exchange: str, bars: list[BarClosed]) -> None:
        """Bars of one exchange handed in (sessions started without their streams)."""
        self.sessions[exchange].deliver(bars)

    def take_warnings(self) -> list[str]:
        return [f"{e}: {w}" for e, s in self.sessions.items() for w in s.take_warnings()]

    def trades(self) -> dict[str, list[dict]]:
        return {e: s.trades() for e, s in self.sessions.items()}

    def orders(self) -> dict[str, list[dict]]:
        return {e: s.orders() for e, s in self.sessions.items()}

    # -- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Every exchange's session stopped (marks, stream, broker, actors), then Ray if this
        started it. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        try:
            for exchange, session in self.sessions.items():
                try:
                    session.stop()
                except Exception as exc:  # noqa: BLE001 - one exchange's failure stops the others
                    log.warning("stopping %s failed: %s", exchange, exc)
        finally:
            self._pending.clear()
            self._closing.close()

    def __enter__(self) -> MultiSession:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _prefixed(say: Callable[[str], object], prefix: str) -> Callable[[str], object]:
    def said(line: str) -> object:
        return say(prefix + line)

    return said


def _done(ray: ModuleType, ref: Any) -> bool:
    ready, _ = ray.wait([ref], timeout=0)
    return bool(ready)
