"""A parameter sweep as a user runs it: `cli.py backtest --all --grid ...` against vectorbt.

sr_breakout over a grid of --lookbacks x --stops x --targets (10 x 10 x 10 = 1,000 runs by
default) on one generated 1m series of --bars bars (200,000), fee 10 bps:
- raytrader: the series and one sr_breakout instance stored in a fresh SQLite file in a temporary
  directory, then `cli.py backtest --all --grid lookback=... sl_pct=... tp_pct=...` run as a
  subprocess (imports, Ray start and stop, every run stored, results.csv and trades.csv written);
- vectorbt: `Portfolio.from_signals` on the same bars with the same entries and rules
  (benchmarks/engine.py's vectorbt_entries and vectorbt_kwargs: fill at the next open, stops from
  the fill price on high/low, the fee), one call per lookback with the stops x targets as its
  columns (100 per call by default), then total return, Sortino, trade count (a
  position still open at the end counts, as the engine closes it at the last bar) and max
  drawdown per column. Its numba compilation is done once before the timing.
Prints the CPU and wall of both (medians of --repeat), raytrader wall / vectorbt wall (target
<= 0.5 on this 2-core machine), both total trade counts and how many columns have equal counts,
and where a run's time goes (below).

CPU of the CLI: Ray's workers are not the CLI's children but the raylet's, and at shutdown they
die without anyone waiting for them, so `RUSAGE_CHILDREN` misses them (tried: it counted 12 s of
a 27 s tree, both workers' 5.7 s each lost). Instead the CLI's process tree (psutil: the CLI and
every descendant: GCS, raylet, agents, workers) is sampled every 0.1 s while it runs, and the last
user + system CPU seen of each process (keyed by pid and start time) is summed. What a process
spends in its last 0.1 s, or a process living under 0.1 s, is missed: a few tenths of a second
at most, small against the sweep's minutes. The sampling's own CPU, in this process, is not counted.

The breakdown: a handful of the grid's runs (--profile-runs, an even spread) timed phase by phase
in this process, as a Ray worker runs them (backtest/fanout_io.run_batch: signals, the engine
kernel, trades frame, equity curve, metrics, the run record and the batch's labelled trades),
the pickling of the batch both ways (what Ray sends the driver), and the driver's SQLite writes
(fanout_io.store_batch) and final files (fanout_io.write_combined), in CPU ms per run and scaled
to the whole grid. Timers, not cProfile, give the table (cProfile's per-call cost inflates the
Python-heavy kernel); --cprofile N also prints the N functions with the most own time.

Usage: python benchmarks/sweep.py [--bars 200000] [--lookbacks 10] [--stops 10] [--targets 10]
       [--repeat 1] [--skip-vectorbt] [--profile-runs 6] [--cprofile 0]
Small, for development: python benchmarks/sweep.py --bars 20000 --lookbacks 3 --stops 2 --targets 2
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.engine import FEE_BPS, vectorbt_entries, vectorbt_kwargs  # noqa: E402

EXCHANGE, SYMBOL, INTERVAL = "binance", "SWEEP/USDT", "1m"
SEED = 23  # issue 23
TARGET_RATIO = 0.5  # raytrader wall / vectorbt wall on 2 cores
SAMPLE_S = 0.1  # how often the CLI's process tree is sampled
# the breakdown's phases: in a Ray worker, then in the driver
SIGNALS = "signals (strategy.compute)"
KERNEL = "engine kernel, signals included"
STORE = "driver: store_batch (SQLite)"
FILES = "driver: results.csv + trades.csv"
WORKER = (
    SIGNALS,
    "engine kernel",
    "trades frame",
    "equity curve",
    "metrics",
    "run record",
    "batch's labelled trades",
    "result transfer: pickle",
)
DRIVER = (
    "result transfer: unpickle",
    STORE,
    FILES,
)


@dataclass(frozen=True)
class Grid:
    lookbacks: list[int]
    stops: list[float]
    targets: list[float]

    @classmethod
    def of_sizes(cls, lookbacks: int, stops: int, targets: int) -> Grid:
        """lookback 10, 20, ...; stop-loss 0.5 %, 1 %, ...; take-profit 1 %, 2 %, ..."""
        return cls(
            [10 * (k + 1) for k in range(lookbacks)],
            [round(0.005 * (k + 1), 6) for k in range(stops)],
            [round(0.01 * (k + 1), 6) for k in range(targets)],
        )

    @property
    def runs(self) -> int:
        return len(self.lookbacks) * len(self.stops) * len(self.targets)

    def words(self) -> list[str]:
        """The --grid entries as a user types them."""
        return [
            f"lookback={','.join(str(v) for v in self.lookbacks)}",
            f"sl_pct={','.join(f'{v:g}' for v in self.stops)}",
            f"tp_pct={','.join(f'{v:g}' for v in self.targets)}",
        ]

    def combos(self) -> list[tuple[int, float, float]]:
        return [(n, s, t) for n in self.lookbacks for s in self.stops for t in self.targets]


def make_bars(n: int) -> pd.DataFrame:
    from factors.synthetic import random_walk_bars

    return random_walk_bars(n, INTERVAL, seed=SEED)


def store_database(url: str, bars: pd.DataFrame, grid: Grid) -> None:
    """The series and one enabled sr_breakout instance (the grid replaces its parameters)."""
    from store.bars import save_bars
    from store.instances import add_instance

    save_bars(url, EXCHANGE, SYMBOL, INTERVAL, bars)
    add_instance(url, "sr_breakout", EXCHANGE, SYMBOL, INTERVAL, {"lookback": grid.lookbacks[0]})


def cli_args(url: str, out: Path, grid: Grid) -> list[str]:
    """The command's arguments after `cli.py` (the test passes them to CliRunner)."""
    return [
        "backtest",
        "--all",
        "--db",
        url,
        "--out",
        str(out),
        "--fee-bps",
        f"{FEE_BPS:g}",
        "--grid",
        *grid.words(),
    ]


def read_results(out: Path) -> pd.DataFrame:
    """results.csv with lookback, sl_pct and tp_pct as columns, sorted by them."""
    results = pd.read_csv(out / "results.csv")
    params = pd.DataFrame([json.loads(p) for p in results["params"]])
    frame = pd.concat([params[["lookback", "sl_pct", "tp_pct"]], results], axis=1)
    return frame.sort_values(["lookback", "sl_pct", "tp_pct"], ignore_index=True)


# -- raytrader: the CLI in a subprocess ------------------------------------------------------------
def tree_cpu(root: int, seen: dict[tuple[int, float], float]) -> None:
    """Note the CPU (user + system, its own) of `root` and of every process under it now,
    keyed by (pid, start time) so a reused pid is another process."""
    import psutil

    try:
        processes = [psutil.Process(root)]
        processes += processes[0].children(recursive=True)
    except psutil.Error:  # the CLI has just exited
        return
    for process in processes:
        try:
            with process.oneshot():
                times = process.cpu_times()
                seen[(process.pid, process.create_time())] = times.user + times.system
        except psutil.Error:  # exited meanwhile: its last sample stands
            pass


def run_cli(url: str, out: Path, grid: Grid, log: Path, label: str) -> dict[str, Any]:
    """`cli.py backtest --all --grid ...` as a user runs it; CPU of its whole process tree."""
    argv = [sys.executable, "cli.py", *cli_args(url, out, grid)]
    env = {**os.environ, "RAYTRADER_DASHBOARD": "0"}
    seen: dict[tuple[int, float], float] = {}
    began = time.perf_counter()
    # Output to files, not pipes: a pipe nobody reads while the CLI runs could fill and stall it.
    with log.open("wb") as sink, _Spinner(label) as advance:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            tree_cpu(proc.pid, seen)
            advance()
            time.sleep(SAMPLE_S)
    wall = time.perf_counter() - began
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{text[-3000:]}")
    if "using a local Ray" not in text:
        print("warning: the CLI did not start a Ray of its own (a `ray start` on this machine?):")
        print("         the workers' CPU is not counted")
    return {"wall": wall, "cpu": sum(seen.values()), "processes": len(seen), "log": text}


class _Spinner:
    """A rich spinner with the elapsed time while something long runs (context manager)."""

    def __init__(self, label: str) -> None:
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True
        )
        self.label = label

    def __enter__(self) -> Callable[[], None]:
        self.progress.start()
        job = self.progress.add_task(self.label, total=None)
        return lambda: self.progress.update(job)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


# -- vectorbt -------------------------------------------------------------------------------------
def as_columns(kwargs: dict) -> dict:
    """1-D arrays as one column: vectorbt then broadcasts them against a row of stops."""
    return {
        k: v[:, None] if isinstance(v, np.ndarray) and v.ndim == 1 else v for k, v in kwargs.items()
    }


def vectorbt_sweep(
    bars: pd.DataFrame, grid: Grid, fee_bps: float = FEE_BPS, advance: Callable[[], None] = bool
) -> pd.DataFrame:
    """One from_signals call per lookback, stops x targets as its columns; per column: lookback,
    sl_pct, tp_pct, trades (an open one included), total_return, sortino, max_drawdown."""
    import vectorbt as vbt

    from strategies.sr_breakout import SRBreakout

    stops, targets = np.meshgrid(grid.stops, grid.targets, indexing="ij")
    rows = []
    for lookback in grid.lookbacks:
        entries = vectorbt_entries(SRBreakout(lookback=lookback), bars)
        kwargs = vectorbt_kwargs(
            bars, entries, stops.reshape(1, -1), targets.reshape(1, -1), fee_bps
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # vectorbt's own deprecation warnings
            portfolio = vbt.Portfolio.from_signals(**as_columns(kwargs))
            rows.append(
                pd.DataFrame(
                    {
                        "lookback": lookback,
                        "sl_pct": stops.ravel(),
                        "tp_pct": targets.ravel(),
                        "trades": portfolio.trades.count().to_numpy(),
                        "total_return": portfolio.total_return().to_numpy(),
                        "sortino": portfolio.sortino_ratio().to_numpy(),
                        "max_drawdown": portfolio.max_drawdown().to_numpy(),
                    }
                )
            )
        advance()
    return pd.concat(rows, ignore_index=True)


def compile_vectorbt(bars: pd.DataFrame) -> None:
    """numba compiles vectorbt's kernels on first use (~25 s here): once, outside the timing."""
    vectorbt_sweep(bars.iloc[:2_000], Grid([10], [0.01, 0.02], [0.02]))


def time_vectorbt(bars: pd.DataFrame, grid: Grid) -> dict[str, Any]:
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True
    )
    with progress:
        job = progress.add_task(f"vectorbt, {len(grid.lookbacks)} calls", total=None)
        cpu, began = time.process_time(), time.perf_counter()
        columns = vectorbt_sweep(bars, grid, advance=lambda: progress.advance(job))
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {"wall": wall, "cpu": cpu, "columns": columns}


def compare_trades(ours: pd.DataFrame, theirs: pd.DataFrame) -> int:
    """How many (lookback, sl_pct, tp_pct) have the same trade count in both."""
    keys = ["lookback", "sl_pct", "tp_pct"]
    left = ours[[*keys, "trades"]].round({"sl_pct": 6, "tp_pct": 6})
    right = theirs[[*keys, "trades"]].round({"sl_pct": 6, "tp_pct": 6})
    merged = left.merge(right, on=keys, suffixes=("_ours", "_vbt"))
    return int((merged["trades_ours"] == merged["trades_vbt"]).sum())


# -- where a run's time goes --------------------------------------------------------------------
class _Phases:
    """CPU seconds per named phase, summed over the runs timed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def timed(self, name: str, fn: Callable[[], Any]) -> Any:
        began = time.process_time()
        value = fn()
        self.seconds[name] = self.seconds.get(name, 0.0) + time.process_time() - began
        return value


def _spec(strategy: Any, bars: pd.DataFrame, config: Any) -> Any:
    """The RunSpec `backtest --all` would send a worker for this run."""
    from backtest.fanout import RunSpec
    from backtest.runkeys import data_range, run_key

    params = strategy.param_dict()
    key = run_key("sr_breakout", EXCHANGE, SYMBOL, INTERVAL, params, data_range(bars), config)
    family, series = "sr_breakout", (EXCHANGE, SYMBOL, INTERVAL)
    return RunSpec(key, key[:24], None, family, family, *series, params, series, len(bars))


def _worker_run(phases: _Phases, strategy: Any, spec: Any, bars: pd.DataFrame, config: Any):
    """One run as fanout_io.run_batch does it, phase by phase; (outcome, trades frame)."""
    from actors.kernel import run_kernel
    from backtest import fanout_io
    from backtest.run import BacktestResult, equity_curve, metrics_for, trades_frame

    # run_kernel computes the signals itself: timed once more alone, then subtracted
    phases.timed(SIGNALS, lambda: strategy.compute(bars))
    output = phases.timed(KERNEL, lambda: run_kernel(strategy, bars, SYMBOL, INTERVAL, config))
    frame = phases.timed("trades frame", lambda: trades_frame(output.trades))
    equity = phases.timed("equity curve", lambda: equity_curve(bars, output.trades, config.cash))
    metrics = phases.timed("metrics", lambda: metrics_for(frame, equity, config.cash))
    result = BacktestResult(
        run_id="",
        strategy=strategy.name,
        symbol=SYMBOL,
        interval=INTERVAL,
        params=spec.params,
        start=bars.index[0],
        end=bars.index[-1],
        bars=len(bars),
        trades=frame,
        equity=equity,
        orders=output.orders,
        metrics=metrics,
        config=config,
    )
    run = phases.timed("run record", lambda: fanout_io._run_record(spec, bars, result, None))
    outcome = {"run": run, "node_ip": "", "node_id": "", "pid": 0, "seconds": 0.0}
    return {**outcome, "cpu_seconds": 0.0, "result": None}, frame


def breakdown(bars: pd.DataFrame, grid: Grid, count: int, cprofile: int) -> dict[str, float]:
    """CPU seconds per run of each phase, over `count` runs spread over the grid (as one batch;
    see the module docstring)."""
    from backtest.run import BacktestConfig

    config = BacktestConfig(fee_bps=FEE_BPS)
    combos = grid.combos()
    chosen = [combos[int(i * len(combos) / count)] for i in range(min(count, len(combos)))]
    phases = _Phases()
    with tempfile.TemporaryDirectory(prefix="sweep-profile-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'profile.db'}"
        store_database(url, bars.iloc[:10], grid)  # the tables exist before the timing
        # A worker and the driver pay their imports (SQLAlchemy for RUN_INDEX, ~0.3 s) and first
        # queries once for the whole sweep: a warm-up batch on a few bars, not timed.
        _batch(_Phases(), [chosen[0]], bars.iloc[:2_000], config, url, Path(tmp) / "warm")
        _batch(phases, chosen, bars, config, url, Path(tmp) / "out")
    if cprofile:
        profile_runs(bars, chosen, config, cprofile)
    seconds = phases.seconds
    seconds["engine kernel"] = seconds.pop(KERNEL) - seconds[SIGNALS]
    return {name: total / len(chosen) for name, total in seconds.items()}


def _batch(phases: _Phases, chosen: list, bars: pd.DataFrame, config: Any, url: str, out: Path):
    """The runs `chosen` as one batch: in a worker, sent, stored and written by the driver."""
    from backtest import fanout_io
    from strategies.sr_breakout import SRBreakout

    specs, outcomes, trades = [], [], []
    for lookback, sl, tp in chosen:
        strategy = SRBreakout(lookback=lookback, sl_pct=sl, tp_pct=tp)
        specs.append(_spec(strategy, bars, config))
        outcome, frame = _worker_run(phases, strategy, specs[-1], bars, config)
        outcomes.append(outcome)
        trades.append(frame)
    families = ["sr_breakout"] * len(trades)
    batch = phases.timed(
        "batch's labelled trades",
        lambda: fanout_io.BatchOutcomes(outcomes, fanout_io.batch_trades(trades, families)),
    )
    # Ray pickles a task's return value in the worker and unpickles it in the driver
    blob = phases.timed("result transfer: pickle", lambda: pickle.dumps(batch, protocol=5))
    batch = phases.timed("result transfer: unpickle", lambda: pickle.loads(blob))
    phases.timed(STORE, lambda: fanout_io.store_batch(url, batch))
    phases.timed(FILES, lambda: fanout_io.write_combined(url, out, specs, {}))


def profile_runs(bars: pd.DataFrame, chosen: list, config: Any, top: int) -> None:
    import cProfile
    import pstats

    from backtest.run import run_backtest
    from strategies.sr_breakout import SRBreakout

    profiler = cProfile.Profile()
    profiler.enable()
    for lookback, sl, tp in chosen:
        strategy = SRBreakout(lookback=lookback, sl_pct=sl, tp_pct=tp)
        run_backtest(strategy, bars, SYMBOL, INTERVAL, config)
    profiler.disable()
    print(f"\ncProfile of run_backtest over {len(chosen)} runs, top {top} by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def print_breakdown(per_run: dict[str, float], runs: int, cli_wall: float | None) -> None:
    cpus = os.cpu_count() or 1
    total = sum(per_run.values())
    print(f"\nwhere a run's CPU goes ({runs:,} runs; measured in process, scaled to the grid):")
    print(f"  {'phase':<36} {'ms/run':>8} {'s, all runs':>12} {'share':>6}")
    for side, names in (("worker", WORKER), ("driver", DRIVER)):
        for name in names:
            ms = per_run[name] * 1e3
            print(
                f"  {name:<36} {ms:>8.2f} {per_run[name] * runs:>12.1f} {per_run[name] / total:>6.1%}"
            )
        side_total = sum(per_run[n] for n in names)
        print(f"  {'= in the ' + side:<36} {side_total * 1e3:>8.2f} {side_total * runs:>12.1f}")
    if cli_wall is not None:
        work = sum(per_run[n] for n in WORKER) * runs / cpus
        print(
            f"  the workers' phases on {cpus} CPUs: {work:.1f} s of the CLI's {cli_wall:.1f} s "
            f"wall;\n  the other {cli_wall - work:.1f} s: imports, Ray start and stop, the bars "
            "loaded and put, the driver (its phases above overlap the workers'), waiting"
        )


# -- main -----------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=200_000)
    parser.add_argument("--lookbacks", type=int, default=10)
    parser.add_argument("--stops", type=int, default=10)
    parser.add_argument("--targets", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1, help="medians of this many of each")
    parser.add_argument("--skip-vectorbt", action="store_true")
    parser.add_argument("--profile-runs", type=int, default=6, help="runs timed phase by phase")
    parser.add_argument("--cprofile", type=int, default=0, help="N: print the top N functions")
    return parser.parse_args()


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} CPUs"


def main() -> None:
    args = parse_args()
    grid = Grid.of_sizes(args.lookbacks, args.stops, args.targets)
    bars = make_bars(args.bars)
    print(
        f"sr_breakout sweep: {grid.runs:,} runs ({' '.join(grid.words())}) on {len(bars):,} "
        f"{INTERVAL} bars, fee {FEE_BPS:g} bps; {load_average()}"
    )
    ours: list[dict[str, Any]] = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="sweep-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'sweep.db'}"
            store_database(url, bars, grid)
            out = Path(tmp) / "out"
            run = run_cli(url, out, grid, Path(tmp) / "cli.log", f"cli.py backtest --all ({i + 1})")
            run["results"] = read_results(out)
            run["trade_rows"] = sum(1 for _ in (out / "trades.csv").open()) - 1
            ours.append(run)
    results = ours[-1]["results"]
    if (results["status"] != "done").any() or len(results) != grid.runs:
        raise RuntimeError(f"expected {grid.runs} done runs:\n{results['status'].value_counts()}")
    cli_cpu = statistics.median(r["cpu"] for r in ours)
    cli_wall = statistics.median(r["wall"] for r in ours)
    ours_trades = int(results["trades"].sum())
    print(
        f"raytrader  : cli.py backtest --all  CPU {cli_cpu:7.1f} s ({ours[-1]['processes']} processes "
        f"in its tree), wall {cli_wall:7.1f} s; {ours_trades:,} trades "
        f"(trades.csv: {ours[-1]['trade_rows']:,} rows)"
    )
    if not args.skip_vectorbt:
        compile_vectorbt(bars)
        theirs = [time_vectorbt(bars, grid) for _ in range(args.repeat)]
        vbt_cpu = statistics.median(r["cpu"] for r in theirs)
        vbt_wall = statistics.median(r["wall"] for r in theirs)
        columns = theirs[-1]["columns"]
        vbt_trades = int(columns["trades"].sum())
        calls = len(grid.lookbacks)
        print(
            f"vectorbt   : from_signals x {calls} ({len(grid.stops) * len(grid.targets)} columns "
            f"each) CPU {vbt_cpu:7.1f} s, wall {vbt_wall:7.1f} s; {vbt_trades:,} trades"
        )
        ratio = cli_wall / vbt_wall
        verdict = "met" if ratio <= TARGET_RATIO else "not met"
        same = compare_trades(results, columns)
        print(
            f"ratio      : raytrader wall / vectorbt wall = {ratio:.2f} (target <= "
            f"{TARGET_RATIO:g}: {verdict}); by CPU {cli_cpu / vbt_cpu:.2f}"
        )
        print(
            f"trades     : {'equal' if ours_trades == vbt_trades else 'DIFFERENT'} in total "
            f"({ours_trades:,} vs {vbt_trades:,}); {same} of {grid.runs} columns equal"
        )
    per_run = breakdown(bars, grid, args.profile_runs, args.cprofile)
    print_breakdown(per_run, grid.runs, cli_wall)
    print(f"done; {load_average()}")


if __name__ == "__main__":
    main()
