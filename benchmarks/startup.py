"""Start-up of light commands: CPU (user + system of the process) and wall, medians of --repeat.

Usage: python benchmarks/startup.py [--repeat 3]. `data list` runs against an existing SQLite
file (made by a first, untimed `data list`, which creates the tables through SQLAlchemy; later
ones read it with the stdlib sqlite3, as a user's listing of an existing database does).
Target (issue 13): under 0.4 s of CPU. `python -X importtime cli.py ...` shows where time goes.
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
COMMANDS = (["--help"], ["backtest", "--help"], ["strategies", "list"], ["data", "list"])


def run_once(argv: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed")
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    one, five, fifteen = os.getloadavg()
    print(f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        db = ["--db", f"sqlite:///{tmp}/startup.db"]
        run_once([sys.executable, "cli.py", "data", "list", *db])  # creates the tables
        baseline = [run_once([sys.executable, "-c", "pass"]) for _ in range(args.repeat)]
        print(f"{'python -c pass':<28} cpu {statistics.median(c for c, _ in baseline):.2f} s")
        for words in COMMANDS:
            extra = db if words == ["data", "list"] else []
            runs = [
                run_once([sys.executable, "cli.py", *words, *extra]) for _ in range(args.repeat)
            ]
            cpu = statistics.median(c for c, _ in runs)
            wall = statistics.median(w for _, w in runs)
            print(f"{'cli.py ' + ' '.join(words):<28} cpu {cpu:.2f} s  wall {wall:.2f} s")


if __name__ == "__main__":
    main()
