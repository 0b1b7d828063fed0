"""ML speed: dataset build for ~10,000 trades, and train + eval of N instances on Ray.

    .venv/bin/python benchmarks/ml.py [--trades 10000] [--instances 8] [--repeat 3]

1. dataset: a generated market long enough for the wanted number of sr_breakout trades; one
   backtest, then `build_dataset` with the default features (every group, lean tsfresh set);
   prints wall and CPU seconds (median over --repeat) and the cost per trade.
2. Ray: N generated markets of 10,000 5m bars (~270 trades each), one instance each: train
   (walk-forward scores + final model) and eval (walk-forward, 3 methods, 5 placebo seeds,
   20 random-skip seeds, every run in the engine) as Ray tasks on a local Ray; prints the wall
   time and the wall time per instance for both.
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
    print(f"dataset: {len(ds)} trades x {ds.features.shape[1]} features from {len(bars)} bars: "
          f"wall {wall:.1f} s, CPU {cpu:.1f} s (median of {repeat}); "
          f"{1000 * wall / len(ds):.2f} ms per trade")  # fmt: skip


def bench_ray(instances: int) -> None:
    import ray

    from ml.evalrun import eval_task
    from ml.evaluate import EvalSettings
    from ml.jobs import InstanceRef, fan_out
    from ml.models import ModelSpec
    from ml.train import train_task

    refs = [InstanceRef(i, "sr_breakout", PARAMS, "sim", f"PLT{i}/USD", "5m")
            for i in range(1, instances + 1)]  # fmt: skip
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.2",
             log_to_driver=False)  # fmt: skip
    try:
        series = [
            ray.put(planted_market(10_000, effect=i % 2 == 0, seed=i)) for i in range(len(refs))
        ]
        spec = ModelSpec(kind="logreg")
        began = time.perf_counter()
        jobs = [(r, s, spec, 4, BacktestConfig()) for r, s in zip(refs, series, strict=True)]
        trained = fan_out(train_task, jobs, "training")
        train_wall = time.perf_counter() - began
        began = time.perf_counter()
        settings = EvalSettings()
        jobs = [(r, s, spec, settings) for r, s in zip(refs, series, strict=True)]
        evaluated = fan_out(eval_task, jobs, "evaluating")
        eval_wall = time.perf_counter() - began
    finally:
        ray.shutdown()
    ok_t = sum(1 for t in trained if not t.get("error"))
    ok_e = sum(1 for e in evaluated if not e.get("error"))
    cpus = os.cpu_count()
    print(f"train on Ray ({cpus} CPUs): {ok_t}/{instances} instances, wall {train_wall:.1f} s, "
          f"{train_wall / instances:.2f} s wall per instance")  # fmt: skip
    print(f"eval on Ray ({cpus} CPUs): {ok_e}/{instances} instances, wall {eval_wall:.1f} s, "
          f"{eval_wall / instances:.2f} s wall per instance "
          f"(3 methods, 5 placebo seeds, 20 random-skip seeds)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    bench_dataset(args.trades, args.repeat)
    if args.instances > 0:
        bench_ray(args.instances)


if __name__ == "__main__":
    main()
