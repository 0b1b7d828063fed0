"""Reading a bar file: CPU of store/bar_files.read_bar_file per 330k 1m rows, epoch-ms vs ISO-8601.

For each timestamp format, the same generated bars are written as a CSV and read in this process:
by read_bar_file as it is (the typed pyarrow path where it applies), and by the general pandas
reader alone (read_bar_file with the typed path switched off: what every ISO-8601 file cost
before the typed path read them). Prints the median CPU and wall of --repeat reads; target: ISO
<= 0.3 s of CPU per 330k rows.
Usage: python benchmarks/bar_files.py [--rows 330000] [--repeat 5] [--gzip]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from factors.synthetic import random_walk_bars  # noqa: E402
from store import bar_files  # noqa: E402

TARGET_CPU_S = 0.3
ROWS_PER_TARGET = 330_000


def write(path: Path, rows: int, time_format: str) -> None:
    frame = random_walk_bars(rows, "1m", seed=7)
    if time_format == "iso":
        frame.index = frame.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        frame.index = frame.index.as_unit("ms").asi8
    frame.index.name = "timestamp"
    frame.to_csv(path)


def timed_reads(path: Path, repeat: int, typed: bool) -> tuple[float, float]:
    """(median CPU s, median wall s) of reading `path`, with or without the typed path."""
    saved = bar_files._read_typed_csv
    if not typed:
        bar_files._read_typed_csv = lambda file: None
    cpus, walls = [], []
    try:
        for _ in range(repeat):
            cpu, wall = time.process_time(), time.perf_counter()
            bar_files.read_bar_file(path, "1m")
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - wall)
    finally:
        bar_files._read_typed_csv = saved
    return statistics.median(cpus), statistics.median(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS_PER_TARGET)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--gzip", action="store_true", help="write .csv.gz files")
    args = parser.parse_args()
    suffix = ".csv.gz" if args.gzip else ".csv"
    with tempfile.TemporaryDirectory(prefix="bar-files-") as tmp:
        for time_format in ("epoch-ms", "iso"):
            path = Path(tmp) / f"bars-{time_format}{suffix}"
            write(path, args.rows, time_format)
            timed_reads(path, 1, typed=True)  # imports (pyarrow, pandas' parsers) out of the way
            for label, typed in (("read_bar_file", True), ("general reader", False)):
                cpu, wall = timed_reads(path, args.repeat, typed)
                per_target = cpu * ROWS_PER_TARGET / args.rows
                verdict = ""
                if typed and time_format == "iso":
                    verdict = "  OK" if per_target <= TARGET_CPU_S else "  SLOW"
                print(
                    f"{time_format:<8} {label:<15} {args.rows:,} rows: cpu {cpu:.3f} s "
                    f"({per_target:.3f} s per {ROWS_PER_TARGET:,}), wall {wall:.3f} s{verdict}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
