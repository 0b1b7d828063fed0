"""ML speed: dataset build for ~10,000 trades, and train + eval of N instances on Ray.

    .venv/bin/python benchmarks/ml.py [--trades 10000] [--instances 100] [--series 4]
                                      [--repeat 3] [--ray-repeat 1]

1. dataset: a generated market long enough for the wanted number of sr_breakout trades; one
   backtest, then `build_dataset` with the default features (every group, lean tsfresh set);
   prints wall and CPU seconds (median over --repeat) and the cost per trade.
2. Ray: --series generated markets of 10,000 5m bars, N sr_breakout instances spread over them
   (parameters varied; ~100-300 trades each), with the default configuration (logreg, no
   selection, lean tsfresh; eval: 3 methods, 5 placebo seeds, 20 random-skip seeds, without and
   with-model runs in the engine). Their trades are given as the stored runs (`backtest --all`
   made them: not timed here). Train then eval, batched per series as the commands do, on a
   local Ray with every CPU; prints the load average, wall and task CPU seconds (median over
   --ray-repeat), per instance, and the projection to 1,000 instances.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtest.run import BacktestConfig, run_backtest  # noqa: E402
from ml.dataset import build_dataset  # noqa: E402
from ml.synthetic import planted_market  # noqa: E402
from strategies.sr_breakout import SRBreakout  # noqa: E402

PARAMS = {"sl_pct": 0.005, "tp_pct": 0.005}
TRADES_PER_BAR = 0.027  # sr_breakout trades per 5m bar on the planted market (measured)


def bench_dataset(trades: int, repeat: int) -> None:
    bars = planted_market(int(trades / TRADES_PER_BAR), effect=True, seed=1)
    result = run_backtest(SRBreakout(**PARAMS), bars, "PLT/USD", "5m")
    build_dataset(result.trades.iloc[:50], bars, "5m")  # imports and caches warm
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        ds = build_dataset(result.trades, bars, "5m")
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(
        f"dataset: {len(ds)} trades x {ds.features.shape[1]} features from {len(bars)} bars: "
        f"wall {wall:.1f} s, CPU {cpu:.1f} s (median of {repeat}); "
        f"{1000 * wall / len(ds):.2f} ms per trade"
    )


def timed(function):
    """A batch task that also returns the CPU seconds it used (the task's own process)."""

    def run(*args):
        began = time.process_time()
        out = function(*args)
        return time.process_time() - began, out

    return run


def instances(n: int, n_series: int) -> list:
    from ml.jobs import InstanceRef

    grid = [(sl, tp) for sl in (0.004, 0.005, 0.006) for tp in (0.004, 0.005, 0.006, 0.008)]
    return [
        InstanceRef(
            i + 1,
            "sr_breakout",
            dict(zip(("sl_pct", "tp_pct"), grid[i % len(grid)], strict=True)),
            "sim",
            f"PLT{i % n_series}/USD",
            "5m",
        )
        for i in range(n)
    ]


def bench_ray(n: int, n_series: int, repeat: int) -> None:
    import ray

    from ml.evalrun import eval_batch
    from ml.evaluate import EvalSettings
    from ml.jobs import batches, fan_out
    from ml.models import ModelSpec
    from ml.train import train_batch
    from strategies.registry import make_strategy

    refs = instances(n, n_series)
    markets = {
        ("sim", f"PLT{k}/USD", "5m"): planted_market(10_000, effect=k % 2 == 0, seed=k)
        for k in range(n_series)
    }
    stored = {
        r.instance_id: run_backtest(
            make_strategy(r.family, r.params), markets[r.series], r.symbol, r.interval
        ).trades
        for r in refs
    }
    cpus = os.cpu_count() or 1
    ray.init(
        num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.2", log_to_driver=False
    )
    figures: dict[str, list[tuple[float, float]]] = {"train": [], "eval": []}
    try:
        bars = {s: ray.put(b) for s, b in markets.items()}
        spec, settings, groups = ModelSpec(), EvalSettings(), batches(refs, cpus)
        items = [
            [(refs[k], bars[refs[k].series], stored[refs[k].instance_id]) for k in g]
            for g in groups
        ]
        for _ in range(repeat):
            load = os.getloadavg()[0]
            for name, function, jobs in (
                ("train", train_batch, [(i, spec, 4, BacktestConfig()) for i in items]),
                (
                    "eval",
                    eval_batch,
                    [([(r, b, spec, t) for r, b, t in i], settings) for i in items],
                ),
            ):
                began = time.perf_counter()
                done = fan_out(timed(function), jobs, name, sizes=[len(g) for g in groups])
                wall = time.perf_counter() - began
                failed = sum(1 for _, batch in done for o in batch if o.get("error"))
                figures[name].append((wall, sum(cpu for cpu, _ in done)))
                print(
                    f"  {name}: {n - failed}/{n} instances, wall {wall:.1f} s, task CPU "
                    f"{figures[name][-1][1]:.1f} s (load average at start {load:.1f})"
                )
    finally:
        ray.shutdown()
    report(figures, n, n_series, len(groups), cpus)


def report(figures: dict, n: int, n_series: int, tasks: int, cpus: int) -> None:
    print(
        f"Ray ({cpus} CPUs), {n} instances over {n_series} series in {tasks} batch tasks, "
        f"load average now {os.getloadavg()[0]:.1f} (the machine is shared):"
    )
    total_wall = total_cpu = 0.0
    for name, runs in figures.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        print(
            f"  {name}: wall {wall:.1f} s ({1000 * wall / n:.0f} ms per instance), task CPU "
            f"{cpu:.1f} s ({1000 * cpu / n:.0f} ms per instance), median of {len(runs)}"
        )
    print(
        f"  train + eval of 1,000 instances, projected: {1000 * total_wall / n / 60:.1f} min "
        f"wall at this load; {1000 * total_cpu / n / cpus / 60:.1f} min on {cpus} free CPUs "
        f"(CPU seconds / CPUs); target 10 min"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--series", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ray-repeat", type=int, default=1)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    bench_dataset(args.trades, args.repeat)
    if args.instances > 0:
        bench_ray(args.instances, args.series, args.ray_repeat)


if __name__ == "__main__":
    main()
