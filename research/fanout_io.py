"""The pieces of `backtest --all` around the driver loop: the Ray task body, storing a finished
batch, per-run directories, results.csv / combined trades CSV, and the progress bar.

`run_batch` runs inside a Ray worker: it must not touch the database or the driver's files.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from research.runkeys import ENGINE_VERSION

RESULTS_NAME = "results.csv"
TRADES_NAME = "trades.csv"
_ERROR_LIMIT = 2000  # characters of a strategy's error kept with the run


# -- inside a Ray worker ------------------------------------------------------------------------
def run_batch(specs: list, config: Any, keep_result: bool, keys: list, *frames) -> list[dict]:
    """Run every spec of a batch; a run that raises becomes a failed outcome, never a task error.

    `frames` are the bar series named by `keys` (Ray resolves the object refs before the call).
    """
    import ray

    from research.backtest import run_backtest
    from strategies.registry import strategy_class

    series = dict(zip((tuple(k) for k in keys), frames, strict=True))
    node_ip = ray.util.get_node_ip_address()
    node_id = ray.get_runtime_context().get_node_id()
    outcomes = []
    classes: dict[str, Any] = {}  # per batch: a user file is loaded once, never stale
    for spec in specs:
        bars = series[tuple(spec.series)]
        began, cpu = time.perf_counter(), time.process_time()
        result, error = None, None
        try:
            if spec.load_spec not in classes:
                classes[spec.load_spec] = strategy_class(spec.load_spec)
            strategy = classes[spec.load_spec](**spec.params)
            result = run_backtest(strategy, bars, spec.symbol, spec.interval, config)
        except Exception as exc:  # the strategy's (or its parameters') fault: record it
            error = _error_text(exc)
        outcome = {
            "run": _run_record(spec, bars, result, error),
            "trades": _labelled_trades(spec, result),
            "node_ip": node_ip,
            "node_id": node_id,
            "pid": os.getpid(),
            "seconds": time.perf_counter() - began,
            "cpu_seconds": time.process_time() - cpu,
            "result": result if keep_result else None,
        }
        outcomes.append(outcome)
    return outcomes


def _error_text(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" (at {Path(where[0].filename).name}:{where[0].lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"[:_ERROR_LIMIT]


def _run_record(spec, bars: pd.DataFrame, result, error: str | None) -> dict:
    return {
        "run_id": spec.run_id,
        "run_key": spec.run_key,
        "instance_id": spec.instance_id,
        "strategy": spec.family,
        "symbol": spec.symbol,
        "interval": spec.interval,
        "params": spec.params,
        "start": result.start if result is not None else bars.index[0],
        "end": result.end if result is not None else bars.index[-1],
        "bars": result.bars if result is not None else len(bars),
        "status": "done" if error is None else "failed",
        "error": error,
        "metrics": dict(result.metrics) if result is not None else {},
        "engine_version": ENGINE_VERSION,
    }


def _labelled_trades(spec, result) -> pd.DataFrame:
    """The run's trades with the instance's own names (a user file's spec, not its class name)."""
    if result is None:
        return pd.DataFrame()
    trades = result.trades.copy()
    trades["strategy"] = spec.family
    return trades


# -- in the driver ------------------------------------------------------------------------------
def store_batch(url: str, outcomes: list[dict]) -> None:
    """Store a finished batch; a run_key already stored is a no-op (never stored twice)."""
    from store import runs

    save_many = getattr(runs, "save_backtest_runs", None)
    if save_many is not None:  # one transaction for the whole batch when the store offers it
        save_many(url, [(o["run"], o["trades"]) for o in outcomes])
        return
    for outcome in outcomes:
        runs.save_backtest_run(url, outcome["run"], outcome["trades"])


def run_dir_name(run: dict) -> str:
    symbol = str(run["symbol"]).replace("/", "-").replace(":", "-")
    family = Path(str(run["strategy"]).rsplit(":", 1)[-1]).name
    return f"{family}_{symbol}_{run['interval']}_{run['run_key'][:10]}"


def write_run_dir(out: Path, outcome: dict) -> None:
    """--separate: the single-backtest outputs (trades.csv, equity.csv, results.json) per run."""
    from research.backtest import write_outputs

    result = outcome["result"]
    result.strategy = outcome["run"]["strategy"]
    result.run_id = outcome["run"]["run_id"]
    write_outputs(result, out / "runs" / run_dir_name(outcome["run"]))


class RateColumn(ProgressColumn):
    """Backtests per second over the progress bar's recent window."""

    def render(self, task: Any) -> Any:
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} runs/s" if speed else "- runs/s")


def progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


# -- combined outputs ---------------------------------------------------------------------------
def write_combined(
    url: str, out: Path, specs: Iterable, nodes: dict[str, str]
) -> tuple[Path, Path]:
    """results.csv (one row per selected run) and the combined trades CSV, read back from the
    database so runs finished by earlier invocations are included."""
    from research.exports import write_results_csv

    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(url, [s.run_key for s in specs])
    results_path = write_results_csv(results_rows(runs, nodes), out / RESULTS_NAME)
    trades_path = out / TRADES_NAME
    combined_trades(url, runs).to_csv(trades_path, index=False)
    return results_path, trades_path


def load_runs(url: str, keys: list[str]) -> list[Any]:
    from sqlmodel import select

    from store.db import session_scope
    from store.models import BacktestRun

    rows: list[Any] = []
    with session_scope(url) as session:
        for i in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
            chunk = keys[i : i + 500]
            rows.extend(session.exec(select(BacktestRun).where(BacktestRun.run_key.in_(chunk))))
    order = {k: i for i, k in enumerate(keys)}
    return sorted(rows, key=lambda r: order.get(r.run_key, 0))


def results_rows(runs: list[Any], nodes: dict[str, str]) -> list[dict]:
    """results.csv rows (research.exports.RESULTS_COLUMNS, then engine_version and node_ip:
    the Ray node that ran the backtest in this invocation, empty for runs done earlier)."""
    from research.exports import params_text
    from research.metrics import METRIC_KEYS

    rows = []
    for run in runs:
        metrics = run.metrics
        row = {
            "run_id": run.id,
            "run_key": run.run_key,
            # Text so a column with empty cells (grid runs) still prints ids as 4, not 4.0.
            "instance_id": "" if run.instance_id is None else str(run.instance_id),
            "strategy": run.strategy,
            "symbol": run.symbol,
            "interval": run.interval,
            "params": params_text(run.params_json),
            "start": _iso(run.start),
            "end": _iso(run.end),
            "bars": run.bars,
            "status": run.status,
            "error": run.error or "",
        }
        row.update({k: metrics.get(k) for k in METRIC_KEYS})
        row["engine_version"] = run.engine_version
        row["node_ip"] = nodes.get(run.run_key, "")
        rows.append(row)
    return rows


def combined_trades(url: str, runs: list[Any]) -> pd.DataFrame:
    """Every trade of the given runs in the combined layout (research.exports)."""
    from sqlmodel import select

    from research.exports import COMBINED_TRADES_COLUMNS, params_text
    from research.trades_io import TRADES_COLUMNS
    from store.db import session_scope
    from store.models import TradeRecord

    by_id = {r.id: r for r in runs}
    ids = list(by_id)
    records: list[Any] = []
    with session_scope(url) as session:
        for i in range(0, len(ids), 500):
            query = select(TradeRecord).where(TradeRecord.run_id.in_(ids[i : i + 500]))
            records.extend(session.exec(query))
    rows = []
    for t in records:
        row = {c: getattr(t, c, None) for c in TRADES_COLUMNS}
        row["entry_time"], row["exit_time"] = _iso(t.entry_time), _iso(t.exit_time)
        row["params"] = params_text(by_id[t.run_id].params_json)
        row["run_id"] = t.run_id
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(COMBINED_TRADES_COLUMNS))
    if len(frame):
        order = {rid: i for i, rid in enumerate(ids)}
        frame = frame.assign(_o=frame["run_id"].map(order))
        frame = frame.sort_values(["_o", "entry_time"], kind="stable").drop(columns="_o")
    return frame


def _iso(value: Any) -> str:
    if value is None:
        return ""
    ts = pd.Timestamp(value)
    return (ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")).isoformat()
