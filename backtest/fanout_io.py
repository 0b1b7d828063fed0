"""The pieces of `backtest --all` around the driver loop: the Ray task body, storing a finished
batch, per-run directories, results.csv / combined trades CSV, and the progress bar.

`run_batch` runs inside a Ray worker: it must not touch the database or the driver's files.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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

from analysis.columns import iso_utc
from backtest.runkeys import ENGINE_VERSION
from factors.bars import parse_utc

RESULTS_NAME = "results.csv"
TRADES_NAME = "trades.csv"
_ERROR_LIMIT = 2000  # characters of a strategy's error kept with the run
TRADES_CHUNK_RUNS = 500  # runs whose trades are read back and written at once


# -- inside a Ray worker ------------------------------------------------------------------------
@dataclass
class BatchOutcomes:
    """A finished batch: one outcome per run (run record, node, timings, the result with
    --separate) and the labelled trades of all its runs in ONE frame, each trade tagged with its
    run's position (store.runs.RUN_INDEX). One frame pickles in a fraction of the time of one
    DataFrame per run, in the worker and in the driver. Iterates over the outcomes."""

    outcomes: list[dict]
    trades: pd.DataFrame

    def __iter__(self) -> Iterator[dict]:
        return iter(self.outcomes)

    def __len__(self) -> int:
        return len(self.outcomes)

    @classmethod
    def of_runs(cls, outcomes: list[dict]) -> BatchOutcomes:
        """From outcomes that each carry their own labelled trades (key "trades")."""
        return cls(outcomes, batch_trades([o.get("trades") for o in outcomes]))


def run_batch(specs: list, config: Any, keep_result: bool, keys: list, *frames) -> BatchOutcomes:
    """Run every spec of a batch; a run that raises becomes a failed outcome, never a task error.

    `frames` are the bar series named by `keys` (Ray resolves the object refs before the call).
    """
    import ray

    from backtest.run import run_backtest
    from strategies.registry import strategy_class

    series = dict(zip((tuple(k) for k in keys), frames, strict=True))
    node_ip = ray.util.get_node_ip_address()
    node_id = ray.get_runtime_context().get_node_id()
    outcomes, trades = [], []
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
        trades.append(None if result is None else result.trades)
        outcome = {
            "run": _run_record(spec, bars, result, error),
            "node_ip": node_ip,
            "node_id": node_id,
            "pid": os.getpid(),
            "seconds": time.perf_counter() - began,
            "cpu_seconds": time.process_time() - cpu,
            "result": result if keep_result else None,
        }
        outcomes.append(outcome)
    # labelled with the instances' own names (a user file's spec, not its class name)
    return BatchOutcomes(outcomes, batch_trades(trades, [s.family for s in specs]))


def batch_trades(
    per_run: list[pd.DataFrame | None], families: list[str] | None = None
) -> pd.DataFrame:
    """The trades of a batch's runs in one frame, each tagged with its run's position (RUN_INDEX);
    with `families`, labelled with the instance's own name as strategy. None: no trades."""
    from store.runs import RUN_INDEX

    positions = [i for i, f in enumerate(per_run) if f is not None and len(f)]
    if not positions:  # (empty frames are left out: they would only unsettle the dtypes)
        return pd.DataFrame({RUN_INDEX: pd.Series([], dtype="int64")})
    frames = [f for f in per_run if f is not None and len(f)]
    trades = pd.concat(frames, ignore_index=True)
    lengths = [len(f) for f in frames]
    if families is not None:
        trades["strategy"] = np.repeat(np.array([families[i] for i in positions]), lengths)
    trades[RUN_INDEX] = np.repeat(np.array(positions, dtype="int64"), lengths)
    return trades


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


# -- in the driver ------------------------------------------------------------------------------
def store_batch(url: str, batch: BatchOutcomes | list[dict]) -> None:
    """Store a finished batch in one transaction (store.runs.save_backtest_batch): all its runs
    or none, so a batch cut short by Ctrl-C is redone by the next run; a run_key already stored
    as done is a no-op (never stored twice). A list: outcomes with their own "trades"."""
    from store import runs

    if not isinstance(batch, BatchOutcomes):
        batch = BatchOutcomes.of_runs(batch)
    runs.save_backtest_batch(url, [o["run"] for o in batch.outcomes], batch.trades)


def run_dir_name(run: Any) -> str:
    """--separate: the directory of one run (a stored BacktestRun or a run record dict)."""

    def get(name: str) -> Any:
        return run[name] if isinstance(run, dict) else getattr(run, name)

    symbol = str(get("symbol")).replace("/", "-").replace(":", "-")
    family = Path(str(get("strategy")).rsplit(":", 1)[-1]).name
    return f"{family}_{symbol}_{get('interval')}_{get('run_key')[:10]}"


def write_run_equity(out: Path, outcome: dict) -> None:
    """--separate, for a run computed now: its equity.csv (the database keeps no equity curve,
    so runs done by an earlier invocation have none), staged until write_run_dirs publishes the
    run's directory atomically (backtest/run_dirs.py)."""
    from analysis.columns import EQUITY_COLUMNS
    from backtest.run import iso_times
    from backtest.run_dirs import stage_equity

    equity = outcome["result"].equity.loc[:, list(EQUITY_COLUMNS)]
    stage_equity(out, run_dir_name(outcome["run"]), iso_times(equity))


def write_run_dirs(out: Path, runs: list[Any], trades: dict[str, pd.DataFrame]) -> list[Path]:
    """--separate: one directory per selected run, from the database (so runs done by earlier
    invocations get one too): results.json and trades.csv in the combined layout (trades.csv
    columns plus params and run_id, analysis.exports.tagged_trades), so the files of many runs
    concatenate back into the combined trades CSV. `trades` is run_trades(url, runs). Each
    directory appears complete or not at all (backtest/run_dirs.py)."""
    from backtest.run import results_document
    from backtest.run_dirs import finish, publish

    folders = []
    for run in runs:
        doc = results_document(_as_result(run, trades[run.id]))
        doc.update(run_key=run.run_key, status=run.status, error=run.error)

        def write_files(folder: Path, run=run, doc=doc) -> None:
            trades[run.id].to_csv(folder / TRADES_NAME, index=False)
            (folder / "results.json").write_text(json.dumps(doc, indent=2) + "\n")

        folders.append(publish(out, run_dir_name(run), write_files))
    finish(out)
    return folders


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
    url: str, out: Path, specs: Iterable, nodes: dict[str, str], separate: bool = False
) -> tuple[Path, Path]:
    """results.csv (one row per selected run) and the combined trades CSV, read back from the
    database so runs finished by earlier invocations are included; with `separate` also the
    per-run directories (write_run_dirs)."""
    from analysis.exports import write_results_csv

    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(url, [s.run_key for s in specs])
    # temporary names, then renames: a driver killed meanwhile leaves the previous files whole
    partial = out / f".{RESULTS_NAME}.{os.getpid()}.partial"
    os.replace(write_results_csv(results_rows(runs, nodes), partial), out / RESULTS_NAME)
    results_path, trades_path = out / RESULTS_NAME, out / TRADES_NAME
    partial = out / f".{TRADES_NAME}.{os.getpid()}.partial"
    # A chunk of runs at a time: the driver never holds every trade of 10,000 runs. The file is
    # byte for byte the CSV of the whole concatenation (same columns, rows in run order).
    header = True
    for i in range(0, max(len(runs), 1), TRADES_CHUNK_RUNS):
        chunk = runs[i : i + TRADES_CHUNK_RUNS]
        if separate:  # the per-run frames are written too
            per_run = run_trades(url, chunk)
            frame = concat_trades(per_run)
        else:
            frame = combined_trades(url, chunk)
        if header or len(frame):
            frame.to_csv(partial, index=False, header=header, mode="w" if header else "a")
            header = False
        if separate:
            write_run_dirs(out, chunk, per_run)
    os.replace(partial, trades_path)
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
    """results.csv rows (analysis.exports.RESULTS_COLUMNS, then engine_version and node_ip:
    the Ray node that ran the backtest in this invocation, empty for runs done earlier)."""
    from analysis.exports import params_text
    from analysis.metrics import METRIC_KEYS

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
            "start": iso_utc(run.start),
            "end": iso_utc(run.end),
            "bars": run.bars,
            "status": run.status,
            "error": run.error or "",
        }
        row.update({k: metrics.get(k) for k in METRIC_KEYS})
        row["engine_version"] = run.engine_version
        row["node_ip"] = nodes.get(run.run_key, "")
        rows.append(row)
    return rows


def concat_trades(per_run: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The combined trades CSV: the runs' tagged trades (run_trades) concatenated in run order,
    so the --separate files combine back into exactly this frame."""
    from analysis.exports import COMBINED_TRADES_COLUMNS

    frames = [f for f in per_run.values() if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(COMBINED_TRADES_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def run_trades(url: str, runs: list[Any]) -> dict[str, pd.DataFrame]:
    """run_id -> that run's stored trades tagged by analysis.exports.tagged_trades (trades.csv
    columns plus params and run_id), ordered by entry time; an empty frame for a run without
    trades."""
    from sqlmodel import select

    from analysis.columns import TRADE_COLUMNS as TRADES_COLUMNS
    from analysis.exports import tagged_trades
    from store.db import session_scope
    from store.models import TradeRecord

    ids = [r.id for r in runs]
    by_run: dict[str, list[dict]] = {rid: [] for rid in ids}
    with session_scope(url) as session:
        for i in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[i : i + 500]
            query = select(TradeRecord).where(TradeRecord.run_id.in_(chunk))
            for t in session.exec(query.order_by(TradeRecord.id)):
                by_run[t.run_id].append({c: getattr(t, c, None) for c in TRADES_COLUMNS})
    out = {}
    for run in runs:
        trades = pd.DataFrame(by_run[run.id], columns=list(TRADES_COLUMNS))
        trades = trades.sort_values("entry_time", kind="stable", ignore_index=True)
        out[run.id] = tagged_trades(_as_result(run, trades))
    return out


def combined_trades(url: str, runs: list[Any]) -> pd.DataFrame:
    """concat_trades(run_trades(url, runs)) a column at a time, which writes the same CSV bytes:
    one query for the trades of all `runs` (in id order), ordered by run then entry time (a
    stable sort, as run_trades sorts each run's), tagged from the runs, times formatted once per
    column. A resume of 1,000 stored runs spent most of its time building a frame per run."""
    from sqlalchemy import String, select, type_coerce

    from analysis.columns import TRADE_COLUMNS as TRADES_COLUMNS
    from analysis.exports import COMBINED_TRADES_COLUMNS, params_text
    from store.db import get_engine
    from store.models import TradeRecord

    ids = [r.id for r in runs]
    # times as the database gives them (SQLite: naive UTC text), parsed below a column at a
    # time: UTCDateTime's per-value conversion was half of this function's time
    fields = [
        type_coerce(getattr(TradeRecord, c), String) if c in _TIMES else getattr(TradeRecord, c)
        for c in TRADES_COLUMNS
    ]
    rows: list[Any] = []
    with get_engine(url).connect() as conn:
        for i in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[i : i + 500]
            query = select(TradeRecord.run_id, *fields).where(TradeRecord.run_id.in_(chunk))
            # plain tuples: pandas probes a Row for attributes, each miss costs SQLAlchemy ~5 us
            rows.extend(map(tuple, conn.execute(query.order_by(TradeRecord.id)).all()))
    if not rows:
        return pd.DataFrame(columns=list(COMBINED_TRADES_COLUMNS))
    frame = pd.DataFrame.from_records(rows, columns=["_run", *TRADES_COLUMNS])
    position = {run_id: i for i, run_id in enumerate(ids)}
    owner = frame["_run"].map(position).to_numpy()
    entry = _utc_times(frame["entry_time"]).as_unit("ns")
    order = np.lexsort((entry.asi8, owner))  # stable: id order within equal entry times
    frame = frame.take(order).reset_index(drop=True)
    owner = owner[order]
    for name, values in (
        ("strategy", [r.strategy for r in runs]),
        ("symbol", [r.symbol for r in runs]),
        ("interval", [r.interval for r in runs]),
        ("params", [params_text(r.params_json) for r in runs]),
        ("run_id", ids),
    ):
        frame[name] = np.asarray(values, dtype=object)[owner]
    for name in _TIMES:
        frame[name] = _iso_seconds(_epoch_seconds(frame[name]))
    return frame[list(COMBINED_TRADES_COLUMNS)]


_TIMES = ("entry_time", "exit_time")


def _utc_times(times: pd.Series) -> pd.DatetimeIndex:
    """Stored trade times (text or datetimes; naive ones are UTC, as UTCDateTime reads them)."""
    return pd.DatetimeIndex(pd.to_datetime(times, utc=True, format="ISO8601"))


def _epoch_seconds(times: pd.Series) -> np.ndarray:
    """Whole epoch seconds (float64, NaN where missing) of stored trade times, as
    analysis.columns.iso_utc writes them (TIME_FORMAT drops fractions of a second)."""
    stamps = _utc_times(times).as_unit("ns")
    seconds = stamps.asi8 // 1_000_000_000  # floor, as strftime drops the fraction
    return np.where(stamps.isna(), np.nan, seconds.astype(np.float64))


def _iso_seconds(seconds: np.ndarray) -> np.ndarray:
    """TIME_FORMAT text of epoch seconds ("" where NaN), all at once: iso_utc per value cost
    ~30 us, the most of a resume's trades.csv."""
    missing = np.isnan(seconds)
    whole = np.where(missing, 0, seconds).astype("int64").astype("datetime64[s]")
    text = np.char.add(np.datetime_as_string(whole, unit="s"), "Z").astype(object)
    text[missing] = ""
    return text


def _as_result(run: Any, trades: pd.DataFrame) -> Any:
    """A stored BacktestRun in the shape of a BacktestResult, for analysis.exports and
    backtest.run.results_document."""
    from types import SimpleNamespace

    return SimpleNamespace(
        run_id=run.id,
        strategy=run.strategy,
        symbol=run.symbol,
        interval=run.interval,
        params=run.params,
        start=parse_utc(run.start),
        end=parse_utc(run.end),
        bars=run.bars,
        metrics=run.metrics,
        trades=trades,
    )
