"""Resume: `cli.py backtest --all` when every selected run is already stored.

Stores --runs sr_breakout runs (a grid over --series generated 5m series of --bars bars each) in a
fresh SQLite file with one `cli.py backtest --all --grid ...` (on a local Ray), then times the
same command again --repeat times, each a fresh process as a user runs it (imports count): every
run is skipped, results.csv and trades.csv are written from the database. Prints the medians of
CPU (user + system of the child) and wall; target: <= 3 s for 1,000 runs.
Usage: python benchmarks/resume.py [--runs 1000] [--series 4] [--bars 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_S = 3.0
STOPS = ("0.005", "0.01", "0.015", "0.02", "0.03")
TAKES = ("0.01", "0.02", "0.03", "0.04", "0.06")


def store_series(url: str, series: int, bars: int) -> None:
    """`series` generated 5m series, each with one enabled sr_breakout instance."""
    from factors.synthetic import random_walk_bars
    from store.bars import save_bars
    from store.instances import add_instance

    for i in range(series):
        symbol = f"BENCH{i}/USDT"
        save_bars(url, "binance", symbol, "5m", random_walk_bars(bars, "5m", seed=11 + i))
        add_instance(url, "sr_breakout", "binance", symbol, "5m", {"lookback": 20})


def command(url: str, out: Path, runs: int, series: int) -> list[str]:
    """backtest --all over a grid giving `runs` runs in all (lookbacks x stops x take-profits)."""
    lookbacks = max(runs // (series * len(STOPS) * len(TAKES)), 1)
    grid = [
        f"lookback={','.join(str(10 + 5 * k) for k in range(lookbacks))}",
        f"sl_pct={','.join(STOPS)}",
        f"tp_pct={','.join(TAKES)}",
    ]
    return [
        sys.executable,
        "cli.py",
        "backtest",
        "--all",
        "--db",
        url,
        "--out",
        str(out),
        "--grid",
        *grid,
    ]


def run_child(argv: list[str]) -> tuple[float, float, str]:
    """(CPU seconds, wall seconds, stderr) of one child process; raises if it fails."""
    start = time.perf_counter()
    env = {**os.environ, "RAYTRADER_DASHBOARD": "0"}
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed: {err[-2000:]}")
    return usage.ru_utime + usage.ru_stime, wall, err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--series", type=int, default=4)
    parser.add_argument("--bars", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="resume-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'resume.db'}"
        out = Path(tmp) / "out"
        store_series(url, args.series, args.bars)
        argv = command(url, out, args.runs, args.series)
        cpu, wall, err = run_child(argv)
        selected = next((line for line in err.splitlines() if "runs selected" in line), "?")
        print(
            f"first run (on Ray, stores every run): cpu {cpu:.1f} s, wall {wall:.1f} s; {selected}"
        )
        trades = sum(1 for _ in (out / "trades.csv").open()) - 1
        cpus, walls = [], []
        for _ in range(args.repeat):
            cpu, wall, err = run_child(argv)
            if " 0 to run" not in err:
                raise RuntimeError(f"the resume ran backtests: {err[-2000:]}")
            cpus.append(cpu)
            walls.append(wall)
        cpu, wall = statistics.median(cpus), statistics.median(walls)
        verdict = "OK" if wall <= TARGET_S else "SLOW"
        print(
            f"resume, all {selected.split()[0]} runs stored ({trades:,} trades): "
            f"cpu {cpu:.2f} s, wall {wall:.2f} s (medians of {args.repeat}; target wall "
            f"<= {TARGET_S:g} s: {verdict})"
        )


if __name__ == "__main__":
    main()
