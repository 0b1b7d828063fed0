"""kill -9 recovery, every seeded chain: what tests/live/ops/test_recovery.py checks, longer.

The test runs the two seeded chains that together reach all five kill points; this script runs
all eight (24 kill points, 3 per exchange run, over 140 bars of NXT/BTC 5m), each through the
same recovery driver (the live node in real mode against the local exchange, killed by SIGKILL
at the chain's points, restarted, run to the end of the data), and checks after each that the
database and the exchange agree (tests/live/ops/test_recovery.py check_consistency: every
exchange order stored once under its client order id, no client order id used twice, trades
equal to the exchange's fills, balances equal to the stored trades). It prints, for each chain,
its kill points, what the exchange and the database hold, and the wall time; it exits 1 at the
first chain that breaks an invariant (with the broken one).

Usage: python benchmarks/recovery_chains.py [--chains 8] [--bars 140]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.live.ops.test_recovery import (  # noqa: E402
    CHAINS,
    SEEDED_CHAINS,
    N,
    chain_run,
    check_consistency,
    driver_process,
)


def label(chain: list[tuple[str, int]]) -> str:
    return ",".join(f"{point}:{n}" for point, n in chain)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, default=len(SEEDED_CHAINS))
    parser.add_argument("--bars", type=int, default=N)
    args = parser.parse_args()
    chains = SEEDED_CHAINS[: args.chains]
    print(f"{len(chains)} seeded kill chains over {args.bars} bars (the test runs {len(CHAINS)})")
    with tempfile.TemporaryDirectory() as tmp, driver_process() as driver:
        for k, chain in enumerate(chains, 1):
            start = time.monotonic()
            try:
                orders, trades, account = chain_run(
                    driver, Path(tmp), f"k{k}", chain, bars=args.bars
                )
                check_consistency(orders, trades, account)
            except AssertionError as broken:
                print(f"chain {k} {label(chain)}: FAILED: {broken}")
                return 1
            closed = sum(1 for t in trades if t["status"] == "CLOSED")
            print(
                f"chain {k} {label(chain)}: killed {len(chain)} times, run to the end; "
                f"{len(account.orders)} orders at the exchange, {len(orders)} stored, "
                f"{len(trades)} trades ({closed} closed): database == exchange "
                f"({time.monotonic() - start:.1f} s)"
            )
    print(f"all {len(chains)} chains consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
