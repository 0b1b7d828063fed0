"""End to end: `cli.py backtest` as a user runs it against backtesting.py doing the same job.

Both read a generated 1m CSV (30k and 330k bars), run sr_breakout(20, 1%, 2%), and write the
trades and the equity curve as CSV files (ours also writes results.json and stores the run in a
SQLite file; with --factors also factors.csv). Each job is a fresh process, so
imports count; CPU = user + system seconds of the child process. Prints medians of --repeat runs
and the marginal bars/s, (330k - 30k bars) / (t_330k - t_30k), i.e. the cost per bar beyond the
fixed start-up. Each size is measured twice, once with epoch-ms timestamps in the CSV and once
with ISO-8601 ones (2024-01-01T00:00:00Z), and both are printed.
Usage: python benchmarks/e2e.py [--repeat 3] [--sizes 30000,330000] [--formats epoch-ms,iso]
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

LOOKBACK, SL, TP = 20, 0.01, 0.02

# backtesting.py doing the same job: read the CSV, run, write trades and equity as CSV.
BACKTESTING_JOB = f"""
import sys, warnings
import pandas as pd
from backtesting import Backtest, Strategy

csv, out, time_format = sys.argv[1], sys.argv[2], sys.argv[3]
frame = pd.read_csv(csv)
if time_format == "iso":
    frame.index = pd.to_datetime(frame.pop("timestamp"), utc=True, format="ISO8601")
else:
    frame.index = pd.to_datetime(frame.pop("timestamp"), unit="ms", utc=True)
frame = frame.rename(columns=str.capitalize)

class SRBreakoutBT(Strategy):
    def init(self):
        def resistance(high):
            return pd.Series(high).shift(1).rolling({LOOKBACK}).max().to_numpy()
        self.resistance = self.I(resistance, self.data.High)

    def next(self):
        close = self.data.Close[-1]
        if not self.position and close > self.resistance[-1]:
            self.buy(size=0.99, sl=close * (1 - {SL}), tp=close * (1 + {TP}))

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    stats = Backtest(frame, SRBreakoutBT, cash=10_000, commission=0.001,
                     finalize_trades=True).run()
stats._trades.to_csv(out + "/trades.csv", index=False)
stats._equity_curve.to_csv(out + "/equity.csv")
print(len(stats._trades), "trades")
"""


FORMATS = ("epoch-ms", "iso")


def write_csv(path: Path, bars: int, time_format: str) -> None:
    """A generated 1m series as a CSV with epoch-ms timestamps (the layout of ccxt) or ISO-8601
    ones in UTC."""
    from factors.synthetic import random_walk_bars

    frame = random_walk_bars(bars, "1m", seed=7)
    if time_format == "iso":
        frame.index = frame.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        frame.index = frame.index.as_unit("ms").asi8
    frame.index.name = "timestamp"
    frame.to_csv(path)


def run_child(argv: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one child process; raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed: {proc.stderr.read().decode()[-2000:]}")
    proc.stderr.close()
    return usage.ru_utime + usage.ru_stime, wall


def ours(csv: Path, work: Path, factors: bool) -> list[str]:
    out = work / "ours"
    db = work / "bench.db"
    db.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "cli.py",
        "backtest",
        "--strategy",
        "sr_breakout",
        "--param",
        f"lookback={LOOKBACK}",
        "--param",
        f"sl_pct={SL}",
        "--param",
        f"tp_pct={TP}",
        "--data",
        str(csv),
        "--symbol",
        "BENCH/USDT",
        "--interval",
        "1m",
        "--out",
        str(out),
        "--db",
        f"sqlite:///{db}",
    ]
    return argv + (["--factors"] if factors else [])


def theirs(csv: Path, work: Path, time_format: str) -> list[str]:
    out = work / "theirs"
    out.mkdir(exist_ok=True)
    return [sys.executable, "-c", BACKTESTING_JOB, str(csv), str(out), time_format]


def medians(argv: list[str], repeat: int) -> tuple[float, float]:
    runs = [run_child(argv) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def compare(work: Path, sizes: list[int], time_format: str, repeat: int, factors: bool) -> None:
    """Both jobs on CSVs of every size with timestamps in `time_format`; prints the table."""
    table: dict[str, dict[int, tuple[float, float]]] = {"raytrader": {}, "backtesting.py": {}}
    for n in sizes:
        csv = work / f"bars_{n}_{time_format}.csv"
        write_csv(csv, n, time_format)
        table["raytrader"][n] = medians(ours(csv, work, factors), repeat)
        table["backtesting.py"][n] = medians(theirs(csv, work, time_format), repeat)
        for name, cells in table.items():
            cpu, wall = cells[n]
            print(
                f"{time_format:<8} {name:<15} {n:>8,} bars: cpu {cpu:6.2f} s  wall {wall:6.2f} s",
                flush=True,
            )
    small, large = sizes[0], sizes[-1]
    marginal = {}
    for name, cells in table.items():
        d_cpu = cells[large][0] - cells[small][0]
        d_wall = cells[large][1] - cells[small][1]
        marginal[name] = ((large - small) / d_cpu, (large - small) / d_wall)
        print(
            f"{time_format:<8} {name:<15} marginal: {marginal[name][0]:>10,.0f} bars/s by CPU, "
            f"{marginal[name][1]:>10,.0f} bars/s by wall"
        )
    ratio_cpu = marginal["raytrader"][0] / marginal["backtesting.py"][0]
    ratio_wall = marginal["raytrader"][1] / marginal["backtesting.py"][1]
    whole = table["backtesting.py"][large][0] / table["raytrader"][large][0]
    print(
        f"{time_format:<8} raytrader / backtesting.py, marginal bars/s: {ratio_cpu:.1f}x by CPU, "
        f"{ratio_wall:.1f}x by wall; whole job at {large:,} bars: {whole:.1f}x by CPU",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="30000,330000")
    parser.add_argument("--formats", default=",".join(FORMATS), help="epoch-ms, iso or both")
    parser.add_argument("--factors", action="store_true", help="ours also writes factors.csv")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    formats = [f.strip() for f in args.formats.split(",")]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        parser.error(f"unknown --formats {unknown}; choose from {', '.join(FORMATS)}")
    with tempfile.TemporaryDirectory(prefix="e2e-") as tmp:
        for time_format in formats:
            compare(Path(tmp), sizes, time_format, args.repeat, args.factors)


if __name__ == "__main__":
    main()
