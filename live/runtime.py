"""Live runtime: routes messages between actors hosted as Ray actors, in delivery rounds.

Each Ray actor hosts an `ActorGroup` (live/actor_group.py) and answers `handle_batch(messages)`. A
delivery sends every pending message to the groups subscribed to its type, all groups of a
round in parallel (one `ray.get` on a list), and routes what they return in the next round until
nothing is left. So a bar costs a few rounds whatever the number of strategy instances: no
per-instance `ray.get` chain.

A bar reaches the actors in two steps, as in the backtest's replay (actors/runtime.py): first
the exchange (fills at this bar: market orders at its open, stops before targets) and
everything that follows from them (trades opened/closed reach the portfolio and the strategy
hosts), then the strategy hosts (signals at this bar's close), and what follows from those.
`LocalGroups` runs the same routing in one process (tests of the wiring without Ray).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from actors.messages import BarClosed, Scheduled

if TYPE_CHECKING:
    from ray.actor import ActorHandle

    from live.actor_group import ActorGroup

EXCHANGE = "exchange"


class LiveRuntime:
    def __init__(self, ray_module: ModuleType | None = None) -> None:
        self._ray = ray_module
        self.groups: dict[str, ActorHandle | ActorGroup] = {}  # name -> Ray actor or local group
        self._routes: dict[type, list[str]] = {}
        self.rounds = 0
        self.delivered = 0
        self.observers: list[Callable[[Any], object]] = []  # see every routed message (driver)

    def add(
        self, name: str, handle: ActorHandle | ActorGroup, subscriptions: Sequence[type]
    ) -> None:
        self.groups[name] = handle
        for kind in subscriptions:
            self._routes.setdefault(kind, []).append(name)

    def on_bars(self, bars: list[BarClosed]) -> None:
        """Deliver bars closing together: exchange first (and its cascade), then the hosts."""
        if EXCHANGE in self.groups:
            self.deliver(bars, only=EXCHANGE)
        self.deliver(bars, skip=EXCHANGE)

    def deliver(self, messages: list, only: str | None = None, skip: str | None = None) -> None:
        pending = list(messages)
        first = True
        while pending:
            batches: dict[str, list] = {}
            for msg in pending:
                for name in self._routes.get(type(msg), ()):
                    if first and ((only and name != only) or (skip and name == skip)):
                        continue
                    batches.setdefault(name, []).append(msg)
            for observer in self.observers:
                for msg in pending:
                    observer(msg)
            first = False
            self.delivered += len(pending)
            pending = self._round(batches)

    def _round(self, batches: dict[str, list]) -> list:
        if not batches:
            return []
        self.rounds += 1
        names = list(batches)
        if self._ray is None:
            results = [self.groups[n].handle_batch(batches[n]) for n in names]
        else:
            refs = [self.groups[n].handle_batch.remote(batches[n]) for n in names]
            results = self._ray.get(refs)
        out: list = []
        for result in results:
            for msg in result:
                if type(msg) is Scheduled:  # no timers in live replay mode; deliver at once
                    msg = msg.msg
                out.append(msg)
        return out

    def query(self, group: str, member: str, method: str, *args: object) -> Any:
        """What the member's method answers (a plain value: its state, a list of records)."""
        handle = self.groups[group]
        if self._ray is None:
            return handle.query(member, method, *args)
        return self._ray.get(handle.query.remote(member, method, *args))

    def query_all(self, group: str, method: str, *args: object) -> dict[str, Any]:
        handle = self.groups[group]
        if self._ray is None:
            return handle.query_all(method, *args)
        return self._ray.get(handle.query_all.remote(method, *args))
