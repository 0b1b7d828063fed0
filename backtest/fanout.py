"""`cli.py backtest --all`: every enabled strategy instance, fanned out over Ray.

The driver (this process) does all database work; Ray workers only compute:
1. list the enabled instances (filters), expand the --grid, give every run its key
   (backtest/runkeys.py) and skip keys already stored (resume / idempotence);
2. load each distinct (exchange, symbol, interval) series ONCE and `ray.put` it;
3. pack runs into batches of about a second of work (backtest/fanout_batches.py) and submit one
   Ray task per batch (Ray retries a task whose worker died; a strategy that raises is caught per
   run and comes back as a failed run, so it never fails the task or stops the others);
4. stream finished batches with `ray.wait` and store each one at once, in one transaction (all its
   runs or none; idempotent on run_key), so Ctrl-C or a dead worker loses nothing stored and
   re-running continues where it stopped;
5. write results.csv (one row per run) and the combined trades CSV, from the database so runs done
   by earlier invocations are included; with --separate also one directory per selected run
   (results.json, trades.csv with params and run_id; equity.csv for runs computed now, as the
   database keeps no equity curves).

Workers never open the database, so a SQLite file works with a local Ray; a multi-node cluster
needs PostgreSQL because the CLI may run anywhere (see cluster/ray_setup.py).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from backtest import fanout_io
from backtest.fanout_batches import TARGET_TASK_SECONDS, stream_batches
from backtest.grid import (
    check_grid_keys,
    check_grid_values,
    expand_params,
    parse_grid,
    restrict_grid,
)
from backtest.runkeys import data_range, run_key
from core.errors import UserError


class FanoutError(UserError):
    """backtest --all cannot run as asked; the message says how to fix it."""


@dataclass(frozen=True)
class RunSpec:
    """One backtest to run: what a worker needs, nothing from the database."""

    run_key: str
    run_id: str
    instance_id: int | None
    family: str  # as stored on the instance (registry name or file.py:Class)
    load_spec: str  # the same, with a user strategy file made absolute for workers
    exchange: str
    symbol: str
    interval: str
    params: dict[str, Any]
    series: tuple[str, str, str]  # (exchange, symbol, interval)
    bars: int


@dataclass
class FanoutSummary:
    total: int = 0  # runs selected
    skipped: int = 0  # already stored before this invocation
    done: int = 0  # stored now with status done
    failed: int = 0  # stored now with status failed (the strategy raised)
    lost: int = 0  # tasks that failed even after retries (not stored; re-run retries them)
    no_data: list[str] = field(default_factory=list)
    results_csv: Path | None = None
    trades_csv: Path | None = None
    nodes: set[str] = field(default_factory=set)  # IPs of the Ray nodes that ran backtests
    nodes_by_run: dict[str, str] = field(default_factory=dict)  # run_key -> node IP
    lost_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    selected_keys: set[str] = field(default_factory=set)


def run_all(
    db_url: str | None,
    out_dir: Path | str | None,
    family: str | None = None,
    symbol: str | None = None,
    interval: str | None = None,
    start: Any = None,
    end: Any = None,
    grid: list[str] | None = None,
    ray_address: str | None = None,
    separate: bool = False,
    config: Any = None,
    exchange: str | None = None,
    instances: list | None = None,
) -> FanoutSummary:
    """Run every enabled instance (filtered, grid-expanded) on Ray; see the module docstring.
    `instances` (store rows) replaces the enabled ones: `cli.py deploy` backtests every
    candidate, enabled (deployed) or not."""
    from backtest.run import BacktestConfig
    from store.db import resolve_url
    from store.runs import completed_run_keys

    began = time.perf_counter()
    console = Console(stderr=True)
    url = resolve_url(db_url)
    config = config or BacktestConfig()
    out = Path(out_dir) if out_dir else Path("backtest_all")
    summary = FanoutSummary()
    _remove_leftovers(out, console)

    parsed_grid = parse_grid(grid)  # a malformed --grid fails before any work
    if instances is None:
        instances = _select_instances(url, family, symbol, interval, exchange)
    series: dict[tuple[str, str, str], pd.DataFrame] = {}  # loaded only when something runs
    ranges = _series_ranges(url, instances, start, end, summary, series)
    specs = _build_specs(instances, parsed_grid, ranges, config)
    summary.total = len(specs)
    summary.selected_keys = {s.run_key for s in specs}
    if not specs:
        filters = {"exchange": exchange, "family": family, "symbol": symbol, "interval": interval}
        raise FanoutError(_nothing_selected(instances, {**filters, "start": start, "end": end}))
    done_keys = completed_run_keys(url)
    pending = [s for s in specs if s.run_key not in done_keys]
    summary.skipped = summary.total - len(pending)
    console.print(
        f"{summary.total} runs selected: {summary.skipped} already done (skipped), "
        f"{len(pending)} to run"
    )
    if pending:
        _load_series(url, {s.series for s in pending}, start, end, series)
        _run_on_ray(url, out, pending, series, config, ray_address, separate, summary, console)
    summary.results_csv, summary.trades_csv = fanout_io.write_combined(
        url, out, specs, summary.nodes_by_run, separate
    )
    summary.seconds = time.perf_counter() - began
    _print_summary(summary, console)
    return summary


def _remove_leftovers(out: Path, console: Console) -> None:
    from backtest.run_dirs import clean_leftovers

    if leftovers := clean_leftovers(out):
        console.print(f"removed {len(leftovers)} temporary file(s) left by an interrupted run")


# -- selection ----------------------------------------------------------------------------------
def _select_instances(url: str, family, symbol, interval, exchange=None):
    from store.instances import list_instances

    instances = list_instances(
        url, enabled_only=True, family=family, symbol=symbol, interval=interval, exchange=exchange
    )
    if not instances:
        given = (("exchange", exchange), ("family", family), ("symbol", symbol))
        filters = ", ".join(f"{k}={v}" for k, v in (*given, ("interval", interval)) if v)
        where = f" matching {filters}" if filters else ""
        raise FanoutError(
            f"no enabled strategy instances{where} in the database; register some with "
            "`cli.py data demo` or `cli.py strategies add ...`, and list them with "
            "`cli.py strategies list-instances`"
        )
    return instances


def _nothing_selected(instances, filters: dict[str, Any]) -> str:
    """The error text when the filters leave no run: which filters, which series lack bars."""
    given = ", ".join(f"{k}={_shown(v)}" for k, v in filters.items() if v not in (None, ""))
    series = sorted({f"{i.exchange} {i.symbol} {i.interval}" for i in instances})
    listing = ", ".join(series[:5]) + (f" and {len(series) - 5} more" if len(series) > 5 else "")
    dated = filters.get("start") not in (None, "") or filters.get("end") not in (None, "")
    hint = (
        "widen or drop --start/--end"
        if dated
        else "import bars with `cli.py data import` or `cli.py data demo`"
    )
    return (
        f"no runs selected: the filters {given or '(none)'} matched {len(instances)} enabled "
        f"instance(s), but no bars of their series ({listing}); {hint} "
        "(`cli.py data list` shows the stored ranges)"
    )


def _shown(value: Any) -> str:
    """A filter value as the user typed it: a parsed midnight time shows as its date."""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.isoformat()
    return str(value)


def _series_ranges(url: str, instances, start, end, summary: FanoutSummary, frames: dict) -> dict:
    """(first, last, count) of the bars of each distinct (exchange, symbol, interval), the data
    range in the run keys, counted in the database: a resume whose runs are all stored loads no
    bar. A series the database cannot count (resampled on the fly, or no bar in range) is loaded
    now into `frames`; series without bars are noted."""
    from store.bars import bar_range, load_bars

    ranges: dict[tuple[str, str, str], tuple[int, int, int]] = {}
    for key in sorted({(i.exchange, i.symbol, i.interval) for i in instances}):
        try:
            counted = bar_range(url, *key, start=start, end=end)
        except ValueError:  # load_bars below raises the same error, noted as no data
            counted = None
        if counted is not None:
            ranges[key] = counted
            continue
        try:
            frame = load_bars(url, *key, start=start, end=end)
        except ValueError as exc:  # BarDataError: no bars for this series / range
            summary.no_data.append(f"{key[0]} {key[1]} {key[2]}: {exc}")
            continue
        if len(frame):
            frames[key] = frame
            ranges[key] = data_range(frame)
        else:
            summary.no_data.append(f"{key[0]} {key[1]} {key[2]}: no bars in range")
    return ranges


def _load_series(url: str, keys: set, start, end, frames: dict) -> None:
    """The bars of every series in `keys` not loaded yet, each loaded once, into `frames`."""
    from store.bars import load_bars

    for key in sorted(keys - frames.keys()):
        frames[key] = load_bars(url, *key, start=start, end=end)


def _strategy_class(family: str) -> tuple[type | None, str | None]:
    """(class, None) or (None, error text): a broken user file is reported per run, not fatal."""
    from strategies.registry import strategy_class

    try:
        return strategy_class(_load_spec(family)), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _load_spec(family: str) -> str:
    """The family as workers load it: a user strategy file's path made absolute."""
    path, sep, name = family.rpartition(":")
    if sep and path.endswith(".py"):
        return f"{os.path.abspath(path)}:{name}"
    return family


def _canonical_params(cls: type | None, params: dict[str, Any]) -> dict[str, Any]:
    """The strategy's full, coerced parameter set; the given params when it cannot be built."""
    if cls is None:
        return dict(params)
    try:
        return cls(**params).param_dict()
    except Exception:  # the worker reports the same error as the run's failure
        return dict(params)


def _build_specs(instances, grid: dict[str, list[str]], ranges: dict, config) -> list[RunSpec]:
    """Every run of the instances (grid-expanded) on the series in `ranges`, keyed by run key;
    `ranges`: (exchange, symbol, interval) -> (first, last, count) of its bars (data_range)."""
    classes = {i.family: _strategy_class(i.family)[0] for i in instances}
    check_grid_keys(
        grid, {f: list(cls.parameters()) for f, cls in classes.items() if cls is not None}
    )
    check_grid_values(grid, classes)
    specs: dict[str, RunSpec] = {}
    for inst in instances:
        key_series = (inst.exchange, inst.symbol, inst.interval)
        if key_series not in ranges:
            continue
        cls = classes[inst.family]
        own = _canonical_params(cls, inst.params)
        rng = ranges[key_series]
        names = list(cls.parameters()) if cls is not None else []
        for given in expand_params(inst.params, restrict_grid(grid, names)):
            params = _canonical_params(cls, given)
            key = run_key(inst.family, *key_series, params, rng, config)
            is_instance = own == params
            if key in specs:  # grid values equal to another instance's: the same run,
                if is_instance:  # which belongs to the instance whose own params these are
                    specs[key] = dataclasses.replace(specs[key], instance_id=inst.id)
                continue
            specs[key] = RunSpec(
                run_key=key,
                run_id=key[:24],
                instance_id=inst.id if is_instance else None,
                family=inst.family,
                load_spec=_load_spec(inst.family),
                exchange=inst.exchange,
                symbol=inst.symbol,
                interval=inst.interval,
                params=params,
                series=key_series,
                bars=rng[2],
            )
    return list(specs.values())


# -- running on Ray -----------------------------------------------------------------------------
def _run_on_ray(url, out, pending, series, config, ray_address, separate, summary, console):
    from cluster.ray_setup import check_database_for_cluster, ray_session

    with ray_session(ray_address, console=console) as session:
        check_database_for_cluster(url, session)
        import ray  # after ray_session: it settles the auth mode before Ray loads

        refs = {key: ray.put(series[key]) for key in {s.series for s in pending}}
        console.print(
            f"{len(pending)} runs in batches of ~{TARGET_TASK_SECONDS:g} s on "
            f"{session.cpus:g} CPU(s); {len(refs)} bar series in the object store"
        )
        stream = stream_batches(pending, refs, config, separate, session.cpus)
        _stream(url, out, stream, len(pending), separate, summary, console)


def _stream(url, out, stream, total: int, separate: bool, summary, console) -> None:
    """Store each batch as soon as it finishes; Ctrl-C keeps everything stored so far."""
    with fanout_io.progress(console) as bar:
        job = bar.add_task("backtests", total=total)
        try:
            for batch, outcomes in stream:
                _collect(url, out, batch, outcomes, separate, summary)
                bar.advance(job, len(batch))
        except KeyboardInterrupt:
            stream.close()  # the tasks still running end with the Ray session
            console.print(
                f"[yellow]interrupted[/]: {_stored_count(url, summary)}; nothing finished "
                "is lost; run the same command again to continue"
            )
            raise SystemExit(130) from None


def _stored_count(url: str, summary: FanoutSummary) -> str:
    """What the database holds of this selection, counted there: Ctrl-C may land between storing
    a batch and counting it, so the in-memory count can be short."""
    from store.runs import completed_run_keys

    stored = len(completed_run_keys(url) & summary.selected_keys)
    now = stored - summary.skipped
    return f"{stored} of {summary.total} selected runs are stored as done ({now} this time)"


def _collect(url, out, batch: list[RunSpec], outcomes, separate: bool, summary) -> None:
    if isinstance(outcomes, Exception):
        # Even the retries failed (a worker that keeps dying, out of memory): keep going.
        summary.lost += len(batch)
        text = str(outcomes).strip()
        summary.lost_errors.append(text.splitlines()[0] if text else type(outcomes).__name__)
        return
    for outcome in outcomes if separate else ():
        if outcome.get("result") is not None:
            # Only runs computed now have an equity curve; results.json and trades.csv of every
            # selected run are written from the database at the end (write_combined). Staged
            # before the run is stored: a stored run's curve survives a killed driver.
            fanout_io.write_run_equity(out, outcome)
    fanout_io.store_batch(url, outcomes)
    for outcome in outcomes:
        if outcome["run"]["status"] == "done":
            summary.done += 1
        else:
            summary.failed += 1
        summary.nodes.add(outcome["node_ip"])
        summary.nodes_by_run[outcome["run"]["run_key"]] = outcome["node_ip"]


def _print_summary(summary: FanoutSummary, console: Console) -> None:
    parts = [f"{summary.done} done", f"{summary.failed} failed", f"{summary.skipped} skipped"]
    if summary.lost:
        parts.append(f"{summary.lost} lost")
    nodes = f" on {len(summary.nodes)} node(s)" if summary.nodes else ""
    console.print(
        f"backtest --all: {summary.total} runs ({', '.join(parts)}){nodes} "
        f"in {summary.seconds:.1f} s"
    )
    for line in summary.no_data:
        console.print(f"[yellow]no data[/] {line}")
    if summary.lost:
        for err in sorted(set(summary.lost_errors))[:5]:
            console.print(f"[red]lost[/] {err}")
        console.print("runs lost to failed tasks are not stored; run again to retry them")
    if summary.failed:
        console.print("failed runs (strategy errors) are in results.csv with their error")
    _print_results_table(summary.results_csv)
    print(f"results: {summary.results_csv}")
    print(f"trades: {summary.trades_csv}")


def _print_results_table(results_csv: Path | None) -> None:
    """The family x interval summary of every selected run (stdout: it is the result)."""
    from analysis.report import results_summary_table

    if results_csv is None or not Path(results_csv).is_file():
        return
    results = pd.read_csv(results_csv)
    if len(results):
        Console(width=max(Console().width, 120)).print(results_summary_table(results))
