"""How well `backtest --all` fans out: N backtests serial in one process vs on Ray.

    .venv/bin/python benchmarks/fanout.py                 # 200 runs, Ray with 2 CPUs
    .venv/bin/python benchmarks/fanout.py --runs 10000 --serial-sample 400 --no-e2e
    .venv/bin/python benchmarks/fanout.py --runs 60 --cpus 2 --no-e2e
    .venv/bin/python benchmarks/fanout.py --runs 1000 --cluster 3      # 3 simulated nodes

With --cluster N the runs go to a single local Ray node and then to a local cluster of N 1-CPU
nodes on loopback, each pass storing every batch in a fresh database: see
benchmarks/fanout_cluster.py (same results, the driver's CPU per 1,000 runs, 100-node projection).

With --serial-sample K the serial pass runs K of the specs (an even spread, after one warm-up
run per series) and the serial CPU of all runs is estimated from it; efficiency by CPU compares
the same specs in both passes. With --store the Ray pass also stores every batch in a SQLite
file as it arrives and writes results.csv and the combined trades CSV (as `backtest --all`),
and the driver's memory is printed as the runs grow.

The runs: every built-in family x several parameter sets over the demo data (real Binance 5m,
~5,760 bars per pair) and a synthetic year of 5m bars (105,120 bars). Prints:
- serial: the same backtests one after another in this process (the work itself), once before
  and once after the fan-out (the machine's speed drifts; the efficiency uses their mean);
- ray: the same backtests as `backtest --all` sends them (series put once in the object store,
  batched tasks of ~1 s, results streamed with ray.wait), Ray already started;
- parallel efficiency = serial time / (CPUs x Ray time) (1.0 = perfect use of every CPU), and
  the CPU-time version (serial CPU / worker CPU for the same runs), which other processes on a
  shared machine do not distort;
- Ray overhead per backtest = (CPUs x Ray time - serial time) / runs;
- peak memory (VmHWM) of the driver and of each Ray worker;
- end to end: backtest.fanout.run_all on a SQLite database, storing every run, incl. Ray start.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backtest import fanout  # noqa: E402
from backtest.fanout_batches import stream_batches  # noqa: E402
from backtest.run import BacktestConfig, run_backtest  # noqa: E402
from backtest.runkeys import data_range, run_key  # noqa: E402
from factors.synthetic import random_walk_bars  # noqa: E402
from strategies.registry import BUILTIN, make_strategy  # noqa: E402

DEMO = {"ETH/BTC": "ETH_BTC-5m.csv.gz", "LTC/BTC": "LTC_BTC-5m.csv.gz", "XRP/BTC": None}


def demo_series(year_interval: str = "5m") -> dict[tuple[str, str, str], pd.DataFrame]:
    series = {}
    for symbol, file in DEMO.items():
        if file is None:
            continue
        raw = pd.read_csv(ROOT / "data" / "sample" / file)
        ts = pd.to_datetime(raw["timestamp"], unit="ms", utc=True)
        frame = raw[["open", "high", "low", "close", "volume"]].astype("float64")
        frame.index = pd.DatetimeIndex(ts, name="timestamp")
        series[("binance", symbol, "5m")] = frame
    per_day = pd.Timedelta("1D") // pd.Timedelta(year_interval)
    year = random_walk_bars(365 * per_day, year_interval, start="2024-01-01", seed=7)
    series[("synthetic", "SYN/USD", year_interval)] = year
    return series


def param_sets(family: str, count: int) -> list[dict]:
    """`count` distinct parameter sets: the family's first numeric parameter scaled, sl, tp and
    allow_short varied (up to ~960 per family: 10,000 runs over three series)."""
    cls = BUILTIN[family]
    numeric = [k for k, (kind, d) in cls.parameters().items() if kind in (int, float) and d]
    sets: dict[str, dict] = {}
    scales = [0.5 + 0.125 * i for i in range(24)]
    grid = itertools.product(
        (False, True), (0.02, 0.01, 0.03, 0.05), scales, (0.005, 0.01, 0.015, 0.02, 0.03)
    )
    for short, tp, scale, sl in grid:
        params: dict = {"sl_pct": sl, "tp_pct": tp, "allow_short": short}
        if numeric:
            kind, default = cls.parameters()[numeric[0]]
            value = default * scale
            params[numeric[0]] = max(1, round(value)) if kind is int else value
        full = make_strategy(family, params).param_dict()
        sets.setdefault(repr(sorted(full.items())), params)
        if len(sets) == count:
            break
    return list(sets.values())


def build_specs(series: dict, runs: int, config: BacktestConfig) -> list[fanout.RunSpec]:
    specs: dict[str, fanout.RunSpec] = {}
    per = max(1, runs // (len(BUILTIN) * len(series)) + 1)
    for family in sorted(BUILTIN):
        for params in param_sets(family, per):
            for key, bars in series.items():
                full = make_strategy(family, params).param_dict()
                rk = run_key(family, *key, full, data_range(bars), config)
                specs[rk] = fanout.RunSpec(
                    rk, rk[:24], None, family, family, *key, full, key, len(bars)
                )
    # Keep a mix of both kinds of series while trimming to `runs`.
    ordered = sorted(specs.values(), key=lambda s: s.run_key)
    return ordered[:runs]


def serial(specs, series, config) -> dict[str, float]:
    """CPU seconds of each backtest run one after another in this process (run_key -> s)."""
    cpu = {}
    for spec in specs:
        began = time.process_time()
        run_backtest(
            make_strategy(spec.family, spec.params),
            series[spec.series],
            spec.symbol,
            spec.interval,
            config,
        )
        cpu[spec.run_key] = time.process_time() - began
    return cpu


def sample(specs: list, count: int) -> list:
    """An even spread of `count` specs (every kind of run and series), or all of them."""
    if count <= 0 or count >= len(specs):
        return list(specs)
    step = len(specs) / count
    return [specs[int(i * step)] for i in range(count)]


def process_cpu(pid: int) -> float:
    """utime + stime of a process (its own threads included), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def on_ray(specs, series, config, cpus: int, url: str | None = None) -> dict[str, Any]:
    """The same dispatch as `backtest --all` (stream_batches); with `url` every batch is stored
    as it arrives, as run_all does. Returns wall, per-run worker CPU, pids, tasks, driver CPU
    and the driver's memory after each tenth of the runs."""
    import ray

    from backtest import fanout_io

    began, driver_cpu = time.perf_counter(), time.process_time()
    refs = {key: ray.put(series[key]) for key in {s.series for s in specs}}
    pids: set[int] = set()
    run_cpu: dict[str, float] = {}
    tasks, done, memory, store_cpu = 0, 0, [], 0.0
    for _batch, outcomes in stream_batches(specs, refs, config, False, cpus):
        assert not isinstance(outcomes, Exception), outcomes
        tasks += 1
        if url is not None:
            cpu = time.process_time()
            fanout_io.store_batch(url, outcomes)
            store_cpu += time.process_time() - cpu
        for outcome in outcomes:
            assert outcome["run"]["status"] == "done", outcome["run"]["error"]
            pids.add(outcome["pid"])
            run_cpu[outcome["run"]["run_key"]] = outcome["cpu_seconds"]
        done += len(outcomes)
        if done * 10 // len(specs) > len(memory):
            memory.append((done, rss_mb()))
    return {
        "wall": time.perf_counter() - began,
        "run_cpu": run_cpu,
        "pids": pids,
        "tasks": tasks,
        "driver_cpu": time.process_time() - driver_cpu - store_cpu,  # dispatch only
        "store_cpu": store_cpu,
        "memory": memory,
    }


def peak_rss_mb(pid: int | None = None) -> float:
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def end_to_end(series: dict, specs, cpus: int) -> None:
    """run_all over the same runs, stored in a fresh SQLite database (includes Ray start)."""
    from store.bars import save_bars
    from store.instances import add_instance

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        for key, bars in series.items():
            save_bars(url, *key, bars)
        for spec in specs:
            add_instance(url, spec.family, spec.exchange, spec.symbol, spec.interval, spec.params)
        os.environ.setdefault("RAYTRADER_DASHBOARD", "0")
        began = time.perf_counter()
        summary = fanout.run_all(url, Path(tmp) / "out")
        first = time.perf_counter() - began
        began = time.perf_counter()
        again = fanout.run_all(url, Path(tmp) / "out")
        second = time.perf_counter() - began
    print(
        f"end to end  : run_all stored {summary.done} runs in {first:.1f} s incl. Ray start "
        f"({summary.done / first:.1f} runs/s); a second run_all skipped {again.skipped} "
        f"in {second:.1f} s"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument(
        "--serial-sample", type=int, default=0, help="serial pass over this many specs (0: all)"
    )
    parser.add_argument(
        "--store",
        action="store_true",
        help="store every batch in SQLite and write the CSVs, as backtest --all",
    )
    parser.add_argument(
        "--year-interval", default="5m", help="interval of the synthetic year (5m: 105,120 bars)"
    )
    parser.add_argument("--no-e2e", action="store_true", help="skip the run_all measurement")
    parser.add_argument(
        "--cluster", type=int, default=0, help="N: also run on a local Ray cluster of N 1-CPU nodes"
    )
    parser.add_argument("--repeat", type=int, default=3, help="--cluster: passes on the cluster")
    parser.add_argument(
        "--db",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="--cluster: where each pass stores its runs (a fresh database each time)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    config = BacktestConfig()
    series = demo_series(args.year_interval)
    specs = build_specs(series, args.runs, config)
    bars = sum(s.bars for s in specs)
    print(
        f"{len(specs)} backtests, {len(series)} series, {bars:,} bars in all "
        f"({os.cpu_count()} CPUs on this machine, Ray with {args.cpus})"
    )
    if args.cluster:
        from benchmarks.fanout_cluster import run_cluster

        run_cluster(args, specs, series, config)
        return
    serial(sample(specs, len(series) * 2), series, config)  # warm-up: imports, caches
    chosen = sample(specs, args.serial_sample)
    began = time.perf_counter()
    serial_cpu = serial(chosen, series, config)
    wall = time.perf_counter() - began
    total = sum(serial_cpu.values())
    print(
        f"serial      : {len(chosen)} backtests, CPU {total:.2f} s "
        f"({total / len(chosen) * 1000:.1f} ms each), wall {wall:.2f} s "
        f"(warmed first)"
    )
    measure_ray(
        specs, series, config, args, serial_cpu, wall, again=lambda: serial(chosen, series, config)
    )
    if not args.no_e2e:
        end_to_end(series, specs, args.cpus)


def measure_ray(specs, series, config, args, serial_cpu: dict, serial_wall: float, again) -> None:
    """Start Ray, warm the workers, time the fan-out and print its figures; stop Ray.

    `again()` repeats the serial pass after the fan-out: this shared machine's speed drifts by
    10-20 % within minutes, so the serial CPU of a run is the mean of the pass before the fan-out
    and the pass after it (a drift during the fan-out then cancels to first order)."""
    import ray

    began = time.perf_counter()
    ray.init(
        num_cpus=args.cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.2",
        log_to_driver=False,
    )
    started = time.perf_counter() - began
    try:
        warm = on_ray(sample(specs, 4 * args.cpus), series, config, args.cpus)
        before = {pid: process_cpu(pid) for pid in warm["pids"]}
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db" if args.store else None
            result = on_ray(specs, series, config, args.cpus, url)
            if url is not None:
                write_outputs(url, Path(tmp) / "out", specs, result)
        workers = {pid: process_cpu(pid) - before.get(pid, 0.0) for pid in result["pids"]}
        print(
            f"ray         : {result['wall']:.2f} s wall, {len(specs) / result['wall']:.1f} "
            f"backtests/s in {result['tasks']} tasks (ray.init {started:.1f} s, not counted)"
        )
        after = again()
        first, second = sum(serial_cpu.values()), sum(after.values())
        print(
            f"serial again: {second / len(after) * 1000:.1f} ms each after the fan-out "
            f"({first / len(after) * 1000:.1f} before): the efficiency uses their mean"
        )
        serial_cpu = {k: (serial_cpu[k] + after[k]) / 2 for k in serial_cpu}
        report_ray(specs, args.cpus, serial_cpu, serial_wall, result, sum(workers.values()))
        peaks = ", ".join(f"{peak_rss_mb(p):.0f}" for p in sorted(result["pids"]))
        print(f"peak memory : driver {peak_rss_mb():.0f} MB; workers {peaks} MB")
    finally:
        ray.shutdown()


def write_outputs(url: str, out: Path, specs, result: dict) -> None:
    """results.csv and the combined trades CSV from the database, as run_all ends."""
    from backtest import fanout_io

    began = time.perf_counter()
    results, trades = fanout_io.write_combined(url, out, specs, {})
    rows = sum(1 for _ in trades.open()) - 1
    result["memory"].append(("csv", rss_mb()))
    print(
        f"outputs     : results.csv and {rows:,} trades written in "
        f"{time.perf_counter() - began:.1f} s"
    )


def report_ray(
    specs, cpus: int, serial_cpu: dict, serial_wall: float, result: dict, worker_process_cpu: float
) -> None:
    """Efficiency by CPU (the figure that other load does not distort) and by wall, Ray overhead
    per backtest, the driver's memory as runs grow; a note when the host is busy."""
    runs, run_cpu = len(specs), result["run_cpu"]
    same = [k for k in serial_cpu if k in run_cpu]
    # slowdown of the backtests themselves in the workers, on the very specs run serially
    ratio = sum(run_cpu[k] for k in same) / sum(serial_cpu[k] for k in same)
    serial_total = sum(run_cpu.values()) / ratio  # serial CPU of every run, estimated
    spent = worker_process_cpu + result["driver_cpu"]
    print(
        f"CPU eff.    : {serial_total / spent:.2f}  (serial CPU of the runs {serial_total:.1f} s "
        f"/ CPU of the Ray workers {worker_process_cpu:.1f} s + driver "
        f"{result['driver_cpu']:.1f} s; target >= 0.9)"
    )
    print(
        f"  in runs   : {1 / ratio:.2f}  (the same {len(same)} backtests: serial CPU / their "
        "CPU inside the workers)"
    )
    overhead = (worker_process_cpu - sum(run_cpu.values())) / runs * 1000
    print(
        f"overhead    : Ray {overhead:.1f} ms CPU per backtest in the workers (outside the "
        f"runs), driver dispatch {result['driver_cpu'] / runs * 1000:.1f} ms per backtest; "
        f"storing in SQLite {result['store_cpu'] / runs * 1000:.1f} ms per backtest "
        "(not in the efficiency: the serial pass stores nothing)"
    )
    wall_serial = serial_total / (sum(serial_cpu.values()) / serial_wall)
    print(
        f"wall eff.   : {wall_serial / (cpus * result['wall']):.2f}  (estimated serial wall / "
        f"({cpus} x ray wall); noisy on a shared machine)"
    )
    growth = ", ".join(f"{n}: {mb:.0f}" for n, mb in result["memory"])
    print(f"driver RSS  : MB after runs {growth}")
    load = os.getloadavg()[0]
    if load > cpus * 0.75:
        print(
            f"note        : load average {load:.1f} on {os.cpu_count()} CPUs: other processes "
            "compete for the CPUs, so wall figures are understated"
        )


if __name__ == "__main__":
    main()
