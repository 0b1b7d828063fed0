"""Actor base class and the two runtimes that move messages between actors.

An actor is a plain class: `handle(msg) -> list[msg]` dispatching through a `{type: method}`
table; it reads time from an injected clock. No Ray import here except inside RayRuntime.

Delivery rule (both runtimes): scheduled messages wait in one priority queue ordered by
(ts, phase, sequence). A popped message goes to every actor subscribed to its type, in the order
the actors were added; what a handler returns is delivered at once, depth first, before the next
subscriber and before the next scheduled message (like a synchronous call). That rule makes a
run deterministic and lets a bar's fills settle before the strategy sees that bar close.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from heapq import heappush
from typing import Any

from actors.messages import BarClosed, EndOfData, Phase, Scheduled


class EventClock:
    """Simulated time: the latest `ts` an actor has handled (monotonic)."""

    __slots__ = ("now",)

    def __init__(self, start: int = 0) -> None:
        self.now = start

    def advance(self, ts: int) -> None:
        if ts > self.now:
            self.now = ts


class Actor:
    """Base: subclasses fill `handlers` ({message type: method name}) and implement the methods."""

    handlers: dict[type, str] = {}

    def __init__(self, clock: EventClock | None = None) -> None:
        self.clock = clock if clock is not None else EventClock()
        # plain functions, not bound methods: a table of bound methods would tie the actor to
        # itself in a cycle, and a run's actors (with every order and trade they hold) would
        # wait for the cyclic collector instead of going with their last reference
        cls = type(self)
        self._table: dict[type, Callable[[Any, Any], list]] = {
            kind: getattr(cls, name) for kind, name in self.handlers.items()
        }

    def subscriptions(self) -> tuple[type, ...]:
        return tuple(self.handlers)

    def handle(self, msg: Any) -> list:
        self.clock.advance(msg.ts)
        return self._table[type(msg)](self, msg)

    def query(self, name: str, *args: Any) -> Any:
        """Read state after a run (the only way in for RayRuntime: one call, not one per bar)."""
        return getattr(self, name)(*args)


class LocalRuntime:
    """One process, one priority queue ordered by (ts, phase, sequence): deterministic."""

    counts = False  # whether `delivered` counts the messages (CountingRuntime, RayRuntime)

    def __init__(self) -> None:
        self._actors: dict[str, Any] = {}
        self._routes: dict[type, list[Any]] = {}
        # type -> [(clock, handler)]: Actor.handle inlined (one call less per delivery)
        self._direct: dict[type, list[tuple[Any, Callable[[Any], list]]]] = _Routes()
        self._queue: list[tuple[int, int, int, Any]] = []
        self._seq = 0
        self.delivered: int | None = 0 if self.counts else None  # messages delivered
        # a subclass may reorder what it schedules: then its own schedule() is called
        self._plain_schedule = type(self).schedule is LocalRuntime.schedule

    # -- wiring -----------------------------------------------------------------------------
    def add(self, name: str, actor: Actor) -> None:
        self._actors[name] = actor
        for kind in actor.subscriptions():
            self._routes.setdefault(kind, []).append(actor)
            self._direct.setdefault(kind, []).append(_direct_route(actor, kind))

    def spawn(self, name: str, cls: type, *args: Any, **kwargs: Any) -> None:
        """Create an actor of `cls` and add it (RayRuntime creates it as a Ray actor)."""
        self.add(name, cls(*args, **kwargs))

    def call(self, name: str, method: str, *args: Any) -> Any:
        return self._actors[name].query(method, *args)

    def actor(self, name: str) -> Any:
        """The actor object (LocalRuntime) or its handle (RayRuntime)."""
        return self._actors[name]

    def schedule(self, ts: int, phase: int, msg: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (ts, phase, self._seq, msg))

    # -- running ----------------------------------------------------------------------------
    def run(self, bars: Iterable[BarClosed] | None = None) -> None:
        """Drain the queue; with `bars`, feed them one at a time (replay / live-like mode)."""
        queue = self._queue
        if bars is not None:
            for bar in bars:
                key = (bar.ts, Phase.CLOSE)
                while queue and queue[0][:2] < key:
                    self._deliver(heapq.heappop(queue)[3])
                self._deliver(bar)
        while queue:
            self._deliver(heapq.heappop(queue)[3])

    def _deliver(self, msg: Any) -> None:
        # Actor.handle inlined: advance the actor's clock, then call its handler directly.
        ts = msg.ts
        for clock, handler in self._direct[type(msg)]:
            if ts > clock.now:
                clock.now = ts
            out = handler(msg)
            if out:  # most handlers return [] (no iterator then)
                for item in out:
                    if type(item) is not Scheduled:
                        self._deliver(item)
                    elif self._plain_schedule:  # schedule() inlined
                        self._seq += 1
                        heappush(self._queue, (item.ts, item.phase, self._seq, item.msg))
                    else:
                        self.schedule(item.ts, item.phase, item.msg)

    def end(self, ts: int) -> None:
        self.schedule(ts, Phase.END, EndOfData(ts))


class CountingRuntime(LocalRuntime):
    """LocalRuntime that counts the messages it delivers (`delivered`), for benchmarks and
    tests; the plain runtime does not pay for the count on every message."""

    counts = True

    def _deliver(self, msg: Any) -> None:
        self.delivered += 1
        super()._deliver(msg)


class _Routes(dict):
    """type -> routes; a type nobody subscribes to has none (a plain lookup on the hot path)."""

    def __missing__(self, kind: type) -> tuple:
        return ()


_NEVER = EventClock(float("inf"))  # type: ignore[arg-type]  # a clock `ts > now` never moves


def _direct_route(actor: Any, kind: type) -> tuple[Any, Callable[[Any], list]]:
    """(clock, handler) doing what actor.handle(msg) does for messages of `kind`.

    Only for actors that keep Actor.handle; any other actor is called through its own handle
    (its clock is then its own business, so the runtime's clock step is a no-op)."""
    table = getattr(actor, "_table", None)
    if type(actor).handle is Actor.handle and table is not None and kind in table:
        return actor.clock, table[kind].__get__(actor)  # bound here: the runtime holds it
    return _NEVER, actor.handle


class RayRuntime(LocalRuntime):
    """The same actor classes wrapped with `ray.remote(cls)`; messages travel through handles.

    Routing and ordering stay in the driver (same rule as LocalRuntime), so both runtimes give
    the same orders and trades. Each delivery is one Ray call: use it for live trading and for
    checks, never one call per bar in a backtest (docs/design.md#what-ray-costs).
    """

    counts = True

    def __init__(self) -> None:
        super().__init__()
        import ray

        if not ray.is_initialized():
            raise RuntimeError("RayRuntime needs ray.init(...) first")
        self._ray = ray

    def spawn(self, name: str, cls: type, *args: Any, **kwargs: Any) -> None:
        handle = self._ray.remote(cls).options(num_cpus=0).remote(*args, **kwargs)
        kinds = self._ray.get(handle.subscriptions.remote())
        self._actors[name] = handle
        for kind in kinds:
            self._routes.setdefault(kind, []).append(handle)

    def call(self, name: str, method: str, *args: Any) -> Any:
        return self._ray.get(self._actors[name].query.remote(method, *args))

    def _deliver(self, msg: Any) -> None:
        self.delivered += 1
        for handle in self._routes.get(type(msg), ()):
            for out in self._ray.get(handle.handle.remote(msg)):
                if type(out) is Scheduled:
                    self.schedule(out.ts, out.phase, out.msg)
                else:
                    self._deliver(out)
