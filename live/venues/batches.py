"""The ccxt broker's batches, sent concurrently (docs/live.md#the-brokers-batches).

A batch (the messages of one delivery step) becomes a list of steps, each one message's work
(or one bracket's), in the order the broker always handled them. A step has a key: the steps of
one key run one after another in that order, the keys of a stretch run concurrently, and a step
without a key (a bar: it polls every resting order of its series and sends the due time exits)
is a barrier that runs alone, after everything before it and before everything after it. The
results come back in the steps' order whatever finished first, so the events a batch returns are
exactly those of the sequential broker, in the same order (backtest / live parity, recovery).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

E = TypeVar("E")
Step = tuple[Hashable | None, Callable[[], Awaitable[list[E]]]]  # (key, None: a barrier; work)


async def run_steps(steps: list[Step], after_stretch: Callable[[], None] | None = None) -> list:
    """Every step's events, in the steps' order (one flat list). `after_stretch` runs after each
    concurrent stretch and each barrier (the broker writes the stretch's exchange ids there).
    A step that raises stops the rest of its key; the other keys finish (no request is left
    running unseen), then the first error in the steps' order is raised."""
    results: list[list | None] = [None] * len(steps)
    errors: dict[int, BaseException] = {}

    async def chain(indices: list[int]) -> None:
        for k in indices:
            try:
                results[k] = await steps[k][1]()
            except Exception as exc:  # noqa: BLE001 - raised below, after the others finished
                errors[k] = exc
                return

    start = 0
    while start < len(steps) and not errors:
        if steps[start][0] is None:
            await chain([start])
            start += 1
        else:
            end = start
            groups: dict[Hashable, list[int]] = {}
            while end < len(steps) and steps[end][0] is not None:
                groups.setdefault(steps[end][0], []).append(end)
                end += 1
            await asyncio.gather(*(chain(indices) for indices in groups.values()))
            start = end
        if after_stretch is not None:
            after_stretch()
    if errors:
        raise errors[min(errors)]
    return [event for events in results if events for event in events]


class InFlight:
    """A bound on the requests at the exchange at once: one asyncio.Semaphore per event loop
    (a broker used from several loops in tests gets one for each)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sem: asyncio.Semaphore | None = None

    def slot(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._sem is None or self._loop is not loop:
            self._loop, self._sem = loop, asyncio.Semaphore(self.limit)
        return self._sem
