"""Batching and streaming of backtest runs over Ray (used by backtest/fanout.py and the benchmark).

Why batches: a Ray task costs ~1 ms plus argument transfer, a backtest 10 ms .. 0.5 s; one task per
backtest would spend a noticeable share on Ray. A batch aims at TARGET_TASK_SECONDS of work.

How big: the first batches use a cost model (RUN_OVERHEAD_S + bars x SECONDS_PER_BAR, measured on
this machine); every finished batch reports how long its runs really took (measured inside the
worker), and later batches are sized with the observed ratio of real to estimated time, so a
loaded machine, a slow strategy or a faster cluster node all end up with ~1 s tasks.
Balance: 2 batches per CPU are kept in flight (a CPU never waits for the driver), and near the end
batches shrink to the remaining work / (2 x CPUs) so every CPU finishes at about the same time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backtest.fanout_io import BatchOutcomes

TARGET_TASK_SECONDS = 1.0
# The vectorized engine with metrics measured ~0.015 s for 1,000 bars and ~0.4 s for 525,600
# bars (a year of 1m) on this machine; only the order of magnitude matters (see above).
RUN_OVERHEAD_S = 0.012
SECONDS_PER_BAR = 8e-7
TASK_MAX_RETRIES = 3  # a worker process that dies is replaced and its batch re-run
IN_FLIGHT_PER_CPU = 2


def estimated_seconds(bars: int) -> float:
    return RUN_OVERHEAD_S + bars * SECONDS_PER_BAR


class Batcher:
    """Hands out batches of runs (sorted by series so a batch needs few series)."""

    def __init__(self, specs: list[Any], cpus: float) -> None:
        self.queue = deque(sorted(specs, key=lambda s: (s.series, s.run_key)))
        self.cpus = max(1.0, float(cpus))
        self.remaining = sum(estimated_seconds(s.bars) for s in self.queue)
        self.estimated_done = 0.0
        self.actual_done = 0.0

    @property
    def scale(self) -> float:
        """Real seconds per estimated second, from the batches finished so far (1.0 at first)."""
        if self.estimated_done <= 0 or self.actual_done <= 0:
            return 1.0
        return self.actual_done / self.estimated_done

    def next_batch(self) -> list[Any] | None:
        if not self.queue:
            return None
        target = TARGET_TASK_SECONDS / self.scale  # in estimated seconds
        target = min(target, self.remaining / (IN_FLIGHT_PER_CPU * self.cpus))
        batch, work = [], 0.0
        while self.queue and (not batch or work < target):
            spec = self.queue.popleft()
            batch.append(spec)
            work += estimated_seconds(spec.bars)
        self.remaining -= work
        return batch

    def observe(self, batch: list[Any], seconds: float) -> None:
        self.estimated_done += sum(estimated_seconds(s.bars) for s in batch)
        self.actual_done += seconds


def stream_batches(
    specs: list[Any], refs: dict, config: Any, keep_result: bool, cpus: float
) -> Iterator[tuple[list[Any], BatchOutcomes | Exception]]:
    """Yield (batch, outcomes) as batches finish, or (batch, error) for a task that failed even
    after TASK_MAX_RETRIES. The next batch is submitted before a finished one is handed back, so
    workers stay busy while the caller stores results. Closing the iterator leaves the tasks
    still running to the Ray session's end (its shutdown, or on a cluster the driver's exit, ends
    them): a forced `ray.cancel` racing a task's reply can abort the driver inside Ray's task
    manager ("Tried to complete task that was not pending"), which turned Ctrl-C into a crash."""
    import ray

    from backtest.fanout_io import run_batch

    # SPREAD: on a cluster, batches go round the nodes instead of filling the head first.
    task = ray.remote(max_retries=TASK_MAX_RETRIES, scheduling_strategy="SPREAD")(run_batch)
    batcher = Batcher(specs, cpus)
    in_flight: dict[Any, list[Any]] = {}

    def submit() -> None:
        batch = batcher.next_batch()
        if batch:
            keys = sorted({s.series for s in batch})
            ref = task.remote(batch, config, keep_result, keys, *(refs[k] for k in keys))
            in_flight[ref] = batch

    for _ in range(int(IN_FLIGHT_PER_CPU * batcher.cpus)):
        submit()
    while in_flight:
        ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
        for ref in ready:
            batch = in_flight.pop(ref)
            try:
                outcomes = ray.get(ref)
            except ray.exceptions.RayError as exc:
                submit()
                yield batch, exc
                continue
            batcher.observe(batch, sum(o["seconds"] for o in outcomes))
            submit()
            yield batch, outcomes
