"""Which instances a `model` command works on, their bars, and the Ray fan-out with progress.

The driver does every database read and write; Ray tasks only compute (as in backtest --all).
Each distinct series is loaded once and put into the object store. Instances go to Ray in
batches (`batches`: the instances of one series together, so a task computes that series'
feature tables once for all of them, and ~1,000 instances make a few dozen tasks, not 1,000);
each instance's trades come from its stored backtest run (ml/stored.py) or, without one, from a
backtest inside its task.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from rich.console import Console

from core.errors import UserError
from factors.bars import parse_utc


class SelectionError(UserError):
    """The instances asked for cannot be found or used; the message says how to fix it."""


@dataclass(frozen=True)
class InstanceRef:
    instance_id: int
    family: str
    params: dict
    exchange: str
    symbol: str
    interval: str

    @property
    def series(self) -> tuple[str, str, str]:
        return (self.exchange, self.symbol, self.interval)

    @property
    def label(self) -> str:
        return f"#{self.instance_id} {self.family} {self.symbol} {self.interval}"


def parse_selection(strategies: str | None, instances: str | None) -> tuple[int | None, list[int]]:
    """(--strategies as a count or None for all, --instances ids); exactly one must be given."""
    if (strategies is None) == (instances is None):
        raise SelectionError(
            "give either --strategies all|N (the first N enabled instances) or --instances "
            "3,7,9 (instance ids; `cli.py strategies list-instances` shows them)"
        )
    if instances is not None:
        try:
            ids = [int(x) for x in instances.split(",") if x.strip()]
        except ValueError:
            raise SelectionError(
                f"--instances {instances!r} is not a comma-separated list of ids, e.g. 3,7,9"
            ) from None
        if not ids:
            raise SelectionError("--instances is empty; give ids like 3,7,9")
        return None, ids
    text = strategies.strip().lower()
    if text == "all":
        return None, []
    if not text.isdigit() or int(text) < 1:
        raise SelectionError(f"--strategies {strategies!r} must be all or a count >= 1, e.g. 10")
    return int(text), []


def select_instances(
    url: str,
    count: int | None,
    ids: Sequence[int],
    family: str | None = None,
    interval: str | None = None,
) -> list[InstanceRef]:
    """Instances by id, or the first `count` (None: all) enabled ones, optionally only of one
    family and/or interval."""
    from store.instances import list_instances

    stored = list_instances(url, enabled_only=not ids, family=family, interval=interval)
    if ids:
        by_id = {i.id: i for i in stored}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise SelectionError(
                f"no strategy instance with id {', '.join(map(str, missing))}; "
                "`cli.py strategies list-instances` shows the ids"
            )
        stored = [by_id[i] for i in ids]
    elif count is not None:
        stored = stored[:count]
    if not stored:
        only = " ".join(f"{k} {v}" for k, v in (("family", family), ("interval", interval)) if v)
        raise SelectionError(
            f"no enabled strategy instances{' of ' + only if only else ''}; see `cli.py "
            "strategies list-instances`, add some (`cli.py strategies add`, `cli.py data demo`)"
        )
    return [
        InstanceRef(int(i.id), i.family, i.params, i.exchange, i.symbol, i.interval) for i in stored
    ]


def load_series(url: str, refs: Iterable[InstanceRef], start: Any, end: Any) -> dict:
    """series -> bars, each distinct series loaded once; a series without bars is left out."""
    from store.bars import BarDataError, load_bars

    lo, hi = parse_utc(start, "--start"), parse_utc(end, "--end")
    if lo is not None and hi is not None and lo > hi:
        raise SelectionError(f"--start {start} is after --end {end}; swap them")
    out: dict[tuple[str, str, str], pd.DataFrame] = {}
    for series in sorted({r.series for r in refs}):
        try:
            out[series] = load_bars(url, *series, lo, hi)
        except BarDataError:
            continue
    return out


def fan_out(
    function: Callable,
    jobs: Sequence[tuple],
    description: str,
    console: Console | None = None,
    on_result: Callable | None = None,
    sizes: Sequence[int] | None = None,
) -> list:
    """Run function(*job) for every job as Ray tasks (one CPU each), with a progress bar.
    Results come back in job order; `on_result(index, result)` sees each as it finishes.
    `sizes`: instances per job (batches), so the bar counts instances."""
    import ray

    from backtest.fanout_io import progress

    remote = ray.remote(num_cpus=1, max_retries=1)(function)
    refs = [remote.remote(*job) for job in jobs]
    index = {ref: k for k, ref in enumerate(refs)}
    results: list = [None] * len(refs)
    pending = list(refs)
    with progress(console or Console(stderr=True)) as bar:
        task = bar.add_task(description, total=sum(sizes) if sizes else len(refs))
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                k = index[ref]
                results[k] = ray.get(ref)
                if on_result is not None:
                    on_result(k, results[k])
                bar.advance(task, sizes[k] if sizes else 1)
    return results


def batches(
    refs: Sequence[InstanceRef], cpus: int | None = None, most: int = 40
) -> list[list[int]]:
    """Indices of `refs` in batches of one series each, small enough that every CPU gets about
    four batches (load balance) and at most `most` instances (progress stays visible)."""
    cpus = cpus or _cluster_cpus()
    size = max(1, min(most, -(-len(refs) // (4 * cpus))))
    by_series: dict[tuple, list[int]] = {}
    for k, ref in enumerate(refs):
        by_series.setdefault(ref.series, []).append(k)
    out: list[list[int]] = []
    for series in sorted(by_series):
        members = by_series[series]
        out.extend(members[i : i + size] for i in range(0, len(members), size))
    return out


def resolve_series(cache: dict, bars: Any) -> pd.DataFrame:
    """Inside a task: the bars of an object-store reference, fetched once per task (the same
    object for every instance of the series, so the feature cache applies)."""
    import ray

    if not isinstance(bars, ray.ObjectRef):
        return bars
    if bars not in cache:
        cache[bars] = ray.get(bars)
    return cache[bars]


def _cluster_cpus() -> int:
    import ray

    try:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    except Exception:  # Ray not started (tests calling batches directly)
        return os.cpu_count() or 1


def ray_for_commands(ray_address: str | None, console: Console) -> Iterator:
    """The Ray session of the ML commands (cluster/ray_setup.py rules)."""
    from cluster.ray_setup import ray_session

    cpus = None if ray_address or os.environ.get("RAY_ADDRESS") else os.cpu_count()
    return ray_session(ray_address, num_cpus=cpus, console=console)
