"""Portfolio backtest speed: `python benchmarks/portfolio.py [INSTANCES] [BARS] [--ray]`.

INSTANCES sr_breakout instances (lookbacks 10..) over 4 random-walk 5m series of BARS bars share
one account. Prints the seconds to compute the signals (in this process, or on Ray actors with
--ray) and to run the account, the messages delivered and the bar-events per second.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.portfolio_kernel import run_portfolio_kernel  # noqa: E402
from backtest.portfolio import PortfolioEntry, build_members  # noqa: E402
from backtest.portfolio_ray import with_signals  # noqa: E402
from backtest.run import BacktestConfig  # noqa: E402
from factors.synthetic import random_walk_bars  # noqa: E402


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    instances = int(args[0]) if args else 40
    n = int(args[1]) if len(args) > 1 else 100_000
    symbols = ["S0", "S1", "S2", "S3"]
    series = {(s, "5m"): random_walk_bars(n, "5m", seed=i) for i, s in enumerate(symbols)}
    entries = [
        PortfolioEntry(
            "sr_breakout",
            {"lookback": 10 + i // 4, "allow_short": i % 2 == 1},
            symbols[i % 4],
            "5m",
            1.0 / instances,
        )
        for i in range(instances)
    ]
    members = build_members(entries)
    t0 = time.perf_counter()
    if "--ray" in sys.argv:
        from backtest.portfolio_ray import compute_signals_on_ray

        signals = compute_signals_on_ray(members, series)
        where = "Ray actors"
    else:
        signals = {m.label: m.strategy.compute(series[m.series]) for m in members}
        where = "this process"
    t_signals = time.perf_counter() - t0
    ready = [
        m.__class__(
            m.label, with_signals(m.strategy, signals[m.label]), m.symbol, m.interval, m.weight
        )
        for m in members
    ]
    t0 = time.perf_counter()
    out = run_portfolio_kernel(ready, series, BacktestConfig())
    t_run = time.perf_counter() - t0
    closed = sum(1 for t in out.trades if t["status"] == "CLOSED")
    bar_events = instances * n
    print(f"{instances} instances x {n} bars on {len(symbols)} series")
    print(f"signals ({where}): {t_signals:.2f} s")
    print(
        f"account run: {t_run:.2f} s, {closed} trades, "
        f"{len(out.portfolio['rejections'])} rejected signals"
    )
    print(f"throughput: {bar_events / (t_signals + t_run):,.0f} instance-bars/s")


if __name__ == "__main__":
    main()
