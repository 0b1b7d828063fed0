"""How well `backtest --all` fans out: N backtests serial in one process vs on Ray.

    .venv/bin/python benchmarks/fanout.py                 # 200 runs, Ray with 2 CPUs
    .venv/bin/python benchmarks/fanout.py --runs 60 --cpus 2 --no-e2e

The runs: every built-in family x several parameter sets over the demo data (real Binance 5m,
~5,760 bars per pair) and a synthetic year of 5m bars (105,120 bars). Prints:
- serial: the same backtests one after another in this process (the work itself);
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


def demo_series() -> dict[tuple[str, str, str], pd.DataFrame]:
    series = {}
    for symbol, file in DEMO.items():
        if file is None:
            continue
        raw = pd.read_csv(ROOT / "data" / "sample" / file)
        ts = pd.to_datetime(raw["timestamp"], unit="ms", utc=True)
        frame = raw[["open", "high", "low", "close", "volume"]].astype("float64")
        frame.index = pd.DatetimeIndex(ts, name="timestamp")
        series[("binance", symbol, "5m")] = frame
    year = random_walk_bars(365 * 288, "5m", start="2024-01-01", seed=7)
    series[("synthetic", "SYN/USD", "5m")] = year
    return series


def param_sets(family: str, count: int) -> list[dict]:
    """`count` distinct parameter sets: the family's first numeric parameter scaled, sl varied."""
    cls = BUILTIN[family]
    numeric = [k for k, (kind, d) in cls.parameters().items() if kind in (int, float) and d]
    sets: dict[str, dict] = {}
    scales = [0.5 + 0.25 * i for i in range(12)]
    for scale, sl in itertools.product(scales, (0.005, 0.01, 0.015, 0.02, 0.03)):
        params: dict = {"sl_pct": sl} if "sl_pct" in cls.parameters() else {}
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


def serial(specs, series, config) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the backtests one after another in this process."""
    began, cpu = time.perf_counter(), time.process_time()
    for spec in specs:
        run_backtest(
            make_strategy(spec.family, spec.params),
            series[spec.series],
            spec.symbol,
            spec.interval,
            config,
        )
    return time.perf_counter() - began, time.process_time() - cpu


def on_ray(specs, series, config, cpus: int) -> tuple[float, float, set[int], int]:
    """The same dispatch as `backtest --all`, without storing (stream_batches)."""
    import ray

    began = time.perf_counter()
    refs = {key: ray.put(series[key]) for key in {s.series for s in specs}}
    pids: set[int] = set()
    tasks, cpu = 0, 0.0
    for _batch, outcomes in stream_batches(specs, refs, config, False, cpus):
        assert not isinstance(outcomes, Exception), outcomes
        tasks += 1
        for outcome in outcomes:
            assert outcome["run"]["status"] == "done", outcome["run"]["error"]
            pids.add(outcome["pid"])
            cpu += outcome["cpu_seconds"]
    return time.perf_counter() - began, cpu, pids, tasks


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
    parser.add_argument("--no-e2e", action="store_true", help="skip the run_all measurement")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    config = BacktestConfig()
    series = demo_series()
    specs = build_specs(series, args.runs, config)
    bars = sum(s.bars for s in specs)
    print(
        f"{len(specs)} backtests, {len(series)} series, {bars:,} bars in all "
        f"({os.cpu_count()} CPUs on this machine, Ray with {args.cpus})"
    )
    t_serial, cpu_serial = serial(specs, series, config)
    print(
        f"serial      : {t_serial:.2f} s  {len(specs) / t_serial:.1f} backtests/s "
        f"(CPU {cpu_serial:.2f} s)"
    )
    measure_ray(specs, series, config, args.cpus, (t_serial, cpu_serial))
    if not args.no_e2e:
        end_to_end(series, specs, args.cpus)


def measure_ray(specs, series, config, cpus: int, serial_times: tuple[float, float]) -> None:
    """Start Ray, warm the workers, time the fan-out and print its figures; stop Ray."""
    import ray

    began = time.perf_counter()
    ray.init(
        num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.2", log_to_driver=False
    )
    started = time.perf_counter() - began
    try:
        on_ray(specs[: 2 * cpus], series, config, cpus)  # start the workers once
        t_ray, cpu_ray, pids, tasks = on_ray(specs, series, config, cpus)
        print(
            f"ray         : {t_ray:.2f} s  {len(specs) / t_ray:.1f} backtests/s in {tasks} "
            f"tasks (ray.init {started:.1f} s, not counted)"
        )
        report_ray(len(specs), cpus, serial_times, (t_ray, cpu_ray))
        workers = ", ".join(f"{peak_rss_mb(p):.0f}" for p in sorted(pids))
        print(f"peak memory : driver {peak_rss_mb():.0f} MB; workers {workers} MB")
    finally:
        ray.shutdown()


def report_ray(
    runs: int, cpus: int, serial_times: tuple[float, float], ray_times: tuple[float, float]
) -> None:
    """Efficiency (wall and CPU) and Ray overhead per backtest; a note when the host is busy."""
    (t_serial, cpu_serial), (t_ray, cpu_ray) = serial_times, ray_times
    efficiency = t_serial / (cpus * t_ray)
    overhead_ms = (cpus * t_ray - t_serial) / runs * 1000
    print(f"efficiency  : {efficiency:.2f}  (serial / ({cpus} x ray); target >= 0.9)")
    print(
        f"CPU eff.    : {cpu_serial / cpu_ray:.2f}  (serial CPU / CPU the workers spent on the "
        "same backtests; unaffected by other load)"
    )
    print(
        f"overhead    : {overhead_ms:.1f} ms of Ray per backtest (wall); worker CPU per "
        f"backtest {cpu_ray / runs * 1000:.1f} ms vs serial {cpu_serial / runs * 1000:.1f} ms"
    )
    load = os.getloadavg()[0]
    if load > cpus * 0.75:
        print(
            f"note        : load average {load:.1f} on {os.cpu_count()} CPUs: other processes "
            "compete for the CPUs, so wall-clock efficiency is understated"
        )


if __name__ == "__main__":
    main()
