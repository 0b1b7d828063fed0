"""Portfolio backtest on Ray: strategy actors compute signals in parallel, one batch each.

docs/design.md#what-ray-costs: never one Ray call per bar. The vectorized part of a portfolio (every
instance's `Strategy.compute` over its whole series) is spread over a few Ray actors
(`SignalComputer`, a plain class wrapped with ray.remote): each gets a contiguous chunk of the
instances and the bar series they need (put in the object store once), computes them and sends
its signals back in ONE reply. The account (portfolio, order manager, exchange) then runs in
this process over those signals, so the trades are exactly those of the local run.
"""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd

from actors.weighted_portfolio import PortfolioMember, SeriesKey
from strategies.base import Strategy


class SignalComputer:
    """Computes the signal frames of a batch of strategy instances (no Ray import here)."""

    def compute(self, jobs: list[tuple[str, Strategy, int]], *frames: pd.DataFrame) -> dict:
        """jobs: (label, strategy, index of its bars in `frames`) -> {label: signal frame}."""
        return {label: strategy.compute(frames[i]) for label, strategy, i in jobs}


class _FixedSignals:
    """Stands in for Strategy.compute: returns signals computed elsewhere for these bars."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def __call__(self, bars: pd.DataFrame) -> pd.DataFrame:
        if len(bars) != len(self.frame) or not self.frame.index.equals(bars.index):
            raise ValueError("precomputed signals do not match the bars of this instance")
        return self.frame


def with_signals(strategy: Strategy, frame: pd.DataFrame) -> Strategy:
    """A copy of `strategy` whose compute() returns `frame` (hooks and rules unchanged)."""
    clone = copy.copy(strategy)
    object.__setattr__(clone, "compute", _FixedSignals(frame))
    return clone


def chunks(members: list[PortfolioMember], n: int) -> list[list[PortfolioMember]]:
    """`n` contiguous, balanced chunks of the members sorted by series (bars shipped less)."""
    ordered = sorted(members, key=lambda m: m.series)
    n = max(1, min(n, len(ordered)))
    size, extra = divmod(len(ordered), n)
    out, start = [], 0
    for k in range(n):
        stop = start + size + (1 if k < extra else 0)
        out.append(ordered[start:stop])
        start = stop
    return [c for c in out if c]


def compute_signals_on_ray(
    members: list[PortfolioMember],
    series: dict[SeriesKey, pd.DataFrame],
    ray_address: str | None = None,
    actors: int | None = None,
) -> dict[str, pd.DataFrame]:
    """{label: signal frame} for every member, computed by Ray actors in parallel."""
    from cluster.ray_setup import ray_session

    with ray_session(ray_address) as session:
        return _compute(members, series, actors or max(1, int(session.cpus)))


def _compute(
    members: list[PortfolioMember], series: dict[SeriesKey, pd.DataFrame], actors: int
) -> dict[str, pd.DataFrame]:
    import ray

    refs = {key: ray.put(frame) for key, frame in series.items()}
    remote = ray.remote(SignalComputer)
    handles: list[Any] = []
    pending = []
    try:
        for chunk in chunks(members, actors):
            keys = list(dict.fromkeys(m.series for m in chunk))
            jobs = [(m.label, m.strategy, keys.index(m.series)) for m in chunk]
            handle = remote.options(num_cpus=1).remote()
            handles.append(handle)
            pending.append(handle.compute.remote(jobs, *(refs[k] for k in keys)))
        signals: dict[str, pd.DataFrame] = {}
        for batch in ray.get(pending):
            signals.update(batch)
        return signals
    finally:
        for handle in handles:
            ray.kill(handle)
