"""Factor speed per family on a synthetic 1-minute series: `python benchmarks/factors_speed.py`.

Prints, per family, the seconds to compute its default factor set and the bars per second,
plus a cache miss/hit pair for the whole table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from factors.cache import FactorCache  # noqa: E402
from factors.engine import DEFAULT_FACTORS, FAMILIES, compute_factors  # noqa: E402
from factors.synthetic import random_walk_bars  # noqa: E402


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bars = random_walk_bars(args.bars, "1m", seed=1)
    print(f"{args.bars:,} bars of 1m, best of {args.repeats}")
    for family, names in FAMILIES.items():
        seconds = best_of(args.repeats, lambda names=names: compute_factors(bars, names))
        print(
            f"  {family:<11} {len(names):>2} factors  {seconds:7.3f} s  "
            f"{args.bars / seconds:>14,.0f} bars/s"
        )
    seconds = best_of(1, lambda: compute_factors(bars, ["range_20@1h", "slope_20@1h"]))
    print(f"  {'@1h align':<11}  2 factors  {seconds:7.3f} s  {args.bars / seconds:>14,.0f} bars/s")
    with tempfile.TemporaryDirectory() as tmp:
        cache = FactorCache(tmp)
        miss = best_of(1, lambda: cache.get_or_compute("bench", bars, DEFAULT_FACTORS))
        hit = best_of(1, lambda: cache.get_or_compute("bench", bars, DEFAULT_FACTORS))
        print(f"  cache: all {len(DEFAULT_FACTORS)} factors miss {miss:.3f} s, hit {hit:.3f} s")


if __name__ == "__main__":
    main()
