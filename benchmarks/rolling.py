"""Rolling selection speed: `python benchmarks/rolling.py [INSTANCES] [DAYS] [DRAWS] [REPEATS]`.

INSTANCES synthetic runs over DAYS days (testing/rolling_market.py: a trade on half the days each,
1,000 x 365 = ~182,000 trades), re-selected every day on a 60-day lookback (sortino weights, the
default fitness rule), with DRAWS random selections. Prints CPU and wall medians over REPEATS of:
- selection: the day x instance arrays from the trades, one re-selection per day, the random band;
- account: the rolling selection's trades on one shared account (backtest/rolling.py).
Reading the trades.csv is not counted (it is the same read as `weights --split`).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.rolling import market, random_band, rolling_schedule  # noqa: E402
from analysis.weights import FitnessRule, instance_key  # noqa: E402
from backtest.account import AccountSettings  # noqa: E402
from backtest.rolling import replay  # noqa: E402
from testing.rolling_market import synthetic_runs  # noqa: E402


def timed(work) -> tuple[float, float, object]:
    cpu, wall = time.process_time(), time.perf_counter()
    value = work()
    return time.process_time() - cpu, time.perf_counter() - wall, value


def main() -> None:
    args = [int(a) for a in sys.argv[1:]]
    instances, days, draws, repeats = (args + [1000, 365, 200, 3][len(args) :])[:4]
    results, trades = synthetic_runs(instances, days, seed=0, edge=0)
    keys = [instance_key(row) for _, row in results.iterrows()]
    rule = FitnessRule()

    def selection():
        m = market(trades, keys, 10_000.0)
        schedule = rolling_schedule(m, 1, 60, "sortino", rule)
        return schedule, random_band(schedule, draws, 0)

    figures: dict[str, list[tuple[float, float]]] = {"selection": [], "account": []}
    for _ in range(repeats):
        cpu, wall, (schedule, band) = timed(selection)
        figures["selection"].append((cpu, wall))
        cpu, wall, account = timed(lambda s=schedule: replay(s, AccountSettings()))
        figures["account"].append((cpu, wall))
    chosen = (schedule.weights > 0).sum(axis=1).mean()
    print(
        f"{instances} instances x {days} days, {len(trades):,} trades, {len(schedule.starts)} "
        f"daily re-selections (lookback 60d, {chosen:.1f} instances chosen on average), "
        f"{draws} random draws; {band.verdict} (sortino {band.rolling:.2f}, random p95 "
        f"{band.p95:.2f}); account: {len(account.trades):,} trades, {account.refused:,} refused"
    )
    for name, runs in figures.items():
        cpu = statistics.median(c for c, _ in runs)
        wall = statistics.median(w for _, w in runs)
        print(f"{name:10s} median of {repeats}: cpu {cpu:.2f} s, wall {wall:.2f} s")
    total = [
        (sc + ac, sw + aw)
        for (sc, sw), (ac, aw) in zip(figures["selection"], figures["account"], strict=True)
    ]
    print(
        f"{'total':10s} median of {repeats}: cpu {statistics.median(c for c, _ in total):.2f} s, "
        f"wall {statistics.median(w for _, w in total):.2f} s"
    )


if __name__ == "__main__":
    main()
