"""Live latency: bar close sent by the local exchange -> orders for that bar submitted.

For 1, 10 and 100 strategy instances (sr_breakout with lookback 3: it signals often) on one
exchange, in dry run on Ray (the first 5 bars are not counted: first-use set-up): the local exchange closes one bar at a time (stepped); for each bar
the time from the server sending the closed kline to the live runtime having delivered every
message that bar caused (signals -> portfolio -> order manager -> SubmitOrder to the dry-run
exchange) is measured. Prints p50 and p99 over the bars (all bars, and bars that led to an order)
and the driver's CPU time. Usage: python benchmarks/live_latency.py [--bars 120] [--counts 1,10,100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.messages import SubmitOrder  # noqa: E402
from actors.portfolio_kernel import PortfolioMember  # noqa: E402
from live.ccxt_clients import rest_client  # noqa: E402
from live.node import LiveNode, LiveSettings  # noqa: E402
from live.replay import ReplayMarket  # noqa: E402
from live.server_thread import ExchangeThread  # noqa: E402
from live.setup import warm_up  # noqa: E402
from store.bar_files import read_bar_file  # noqa: E402
from strategies.registry import make_strategy  # noqa: E402

WARM, WINDOW = 200, 300
SKIP = 5  # first bars: actors import and open the database on first use; not counted


def measure(ray, count: int, bars: int, db_url: str) -> dict:
    frame, _ = read_bar_file(Path("data/sample/ETH_BTC-5m.csv.gz"), "5m")
    market = ReplayMarket()
    market.add("ETH/BTC", "5m", frame.iloc[: WARM + bars + 1])
    market.start_at(int(frame.index[WARM].value // 1_000_000))
    members = [PortfolioMember(f"sr{i}", make_strategy("sr_breakout", {"lookback": 3 + i % 5}),
                               "ETH/BTC", "5m", 1.0 / count) for i in range(count)]  # fmt: skip
    with ExchangeThread(market) as ex:
        warm = warm_up(rest_client("binance", ex.url), db_url, "binance", members)
        settings = LiveSettings("binance", ex.url, db_url, risk=0.001, window=WINDOW,
                                quiet_s=0.5)  # fmt: skip
        node = LiveNode(settings, members, warm, ray)
        node.start()
        ordered: set[int] = set()
        node.runtime.observers.append(
            lambda m: ordered.add(node.bars) if type(m) is SubmitOrder else None
        )
        latencies, with_orders = [], []
        cpu0 = time.process_time()
        try:
            for i in range(bars):
                ex.step(1)
                node.wait_for_bars(i + 1, timeout=60)
                done = time.time()
                sent = ex.exchange.announced_at[int(frame.index[WARM + i].value // 1_000_000)]
                if i < SKIP:
                    continue
                latencies.append((done - sent) * 1000)
                if i in ordered:
                    with_orders.append(latencies[-1])
        finally:
            node.stop()
        cpu = time.process_time() - cpu0
    return {"count": count, "all": latencies, "orders": with_orders, "cpu_ms": cpu * 1000 / bars}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=120)
    parser.add_argument("--counts", default="1,10,100")
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2")
    try:
        print(f"{'instances':>9} {'p50 ms':>8} {'p99 ms':>8} {'p50 (bars with orders)':>23} "
              f"{'p99 (with orders)':>18} {'orders bars':>11} {'driver CPU ms/bar':>18}")  # fmt: skip
        for count in (int(c) for c in args.counts.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                r = measure(ray, count, args.bars, f"sqlite:///{tmp}/bench.db")
            print(f"{count:>9} {pct(r['all'], 0.5):>8.1f} {pct(r['all'], 0.99):>8.1f} "
                  f"{pct(r['orders'], 0.5):>23.1f} {pct(r['orders'], 0.99):>18.1f} "
                  f"{len(r['orders']):>11} {r['cpu_ms']:>18.2f} "
                  f"(median {statistics.median(r['all']):.1f})", flush=True)  # fmt: skip
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
