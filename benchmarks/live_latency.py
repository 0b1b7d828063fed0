"""Live latency: bar close sent by the local exchange -> orders for that bar submitted.

For 1, 10 and 100 strategy instances on one exchange and series (ETH/BTC 5m), in dry run on
Ray: the local exchange closes one bar at a time (stepped). "all bars": for each bar, the wall
time from the server sending the closed kline to the live runtime having delivered every message
that bar caused (the whole cascade, fills and bookkeeping included), and the CPU time of the whole
local Ray cluster plus this driver over that bar (every process of the tree; other users of the
machine are not counted). "order bars": for each bar that led to orders, the issue's measure: the
server sending the closed kline -> the last order of that bar routed to the exchange actor (after
signals -> portfolio -> order manager and its SQLite write). The first bars are not counted
(first-use set-up). Prints p50 and p99. Each host is warmed with `--warm` stored bars and keeps
the default window.
to orders. Each host is warmed with `--warm` stored bars and keeps the default window.

--mix sr (default): sr_breakout with lookback 3 + i % 5 (signals often; 5 distinct parameter
sets, so identical instances share one evaluation). --mix all: the five families round robin,
every instance with its own parameters (no sharing). --store memory: the order manager keeps
orders in memory (no SQLite): the pipeline's latency without the database write.

Usage: python benchmarks/live_latency.py [--bars 120] [--counts 1,10,100] [--mix sr|all]
       [--store sqlite|memory] [--warm 2000] [--per-actor 25]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.messages import SubmitOrder  # noqa: E402
from actors.portfolio_kernel import PortfolioMember  # noqa: E402
from live.node import HOSTS_PER_ACTOR, LiveSettings  # noqa: E402
from live.session import LiveSession  # noqa: E402
from localexchange.replay import ReplayMarket  # noqa: E402
from localexchange.server_thread import ExchangeThread  # noqa: E402
from store.bar_files import read_bar_file  # noqa: E402
from strategies.registry import make_strategy  # noqa: E402

SKIP = 5  # first bars: actors import and open the database on first use; not counted
SYMBOL, FILE = "ETH/BTC", "data/sample/ETH_BTC-5m.csv.gz"


def instances(count: int, mix: str) -> list[PortfolioMember]:
    out = []
    for i in range(count):
        if mix == "sr":
            family, params = "sr_breakout", {"lookback": 3 + i % 5}
        else:
            family, params = _distinct(i)
        out.append(
            PortfolioMember(
                f"{family}-{i}", make_strategy(family, params), SYMBOL, "5m", 1.0 / count
            )
        )
    return out


def _distinct(i: int) -> tuple[str, dict]:
    k = i // 5
    return [
        ("sr_breakout", {"lookback": 3 + k}),
        ("reversal_breakout", {"lookback": 10 + k, "swing": 3, "move_atr": 1.0}),
        ("orb", {"range_minutes": 15 + 5 * k}),
        ("trend_day", {"decision_minutes": 60 + 5 * k, "min_move": 0.001, "min_r2": 0.1}),
        ("volatility_breakout", {"k": 0.1 + 0.01 * k}),
    ][i % 5]


def cluster_cpu() -> float:
    """CPU seconds of this process and every process it started (the local Ray cluster), from
    /proc (Linux): utime + stime of each process in the tree."""
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # a process that just exited
            continue
        stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))  # ppid, ticks
    tree, ticks = {os.getpid()}, 0
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in stats.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    ticks = sum(stats[pid][1] for pid in tree if pid in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(
    ray, count: int, bars: int, warm_n: int, mix: str, store: str, db_url: str, per_actor: int
) -> dict:
    frame, _ = read_bar_file(Path(FILE), "5m")
    market = ReplayMarket()
    market.add(SYMBOL, "5m", frame.iloc[: warm_n + bars + 1])
    market.start_at(int(frame.index[warm_n].value // 1_000_000))
    members = instances(count, mix)
    with ExchangeThread(market) as ex:
        settings = LiveSettings(
            "binance", ex.url, db_url, risk=0.001, quiet_s=0.5, hosts_per_actor=per_actor
        )
        order_store = None
        if store == "memory":
            from actors.order_manager import MemoryOrderStore

            order_store = MemoryOrderStore  # what the pipeline costs without the database
        session = LiveSession(settings, members, ray_module=ray, order_store=order_store).start()
        node = session.node
        submitted: dict[int, float] = {}  # bar index -> when its last order left for the exchange

        def on_message(msg) -> None:
            if type(msg) is SubmitOrder:
                submitted[node.bars] = time.time()

        node.runtime.observers.append(on_message)
        wall, cpu, with_orders = [], [], []
        try:
            for i in range(bars):
                cpu0 = cluster_cpu()
                ex.step(1)
                node.wait_for_bars(i + 1, timeout=120)
                done = time.time()
                used = cluster_cpu() - cpu0
                sent = ex.exchange.announced_at[int(frame.index[warm_n + i].value // 1_000_000)]
                if i < SKIP:
                    continue
                wall.append((done - sent) * 1000)
                cpu.append(used * 1000)
                if i in submitted:  # bar close sent -> its orders routed to the exchange actor
                    with_orders.append((submitted[i] - sent) * 1000)
        finally:
            session.stop()
    return {"wall": wall, "cpu": cpu, "orders": with_orders}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=120)
    parser.add_argument("--counts", default="1,10,100")
    parser.add_argument("--warm", type=int, default=2000)
    parser.add_argument("--mix", choices=("sr", "all"), default="sr")
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument(
        "--per-actor",
        type=int,
        default=HOSTS_PER_ACTOR,
        help="strategy hosts per Ray actor (the live default)",
    )
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    try:
        print(
            f"{'instances':>9} {'wall p50':>9} {'wall p99':>9} {'CPU p50':>8} {'CPU p99':>8} "
            f"{'CPU mean':>8} {'order bars':>10} {'their p50':>9} {'their p99':>9}   (ms; CPU = all Ray "
            "processes + driver, 10 ms ticks)"
        )
        for count in (int(c) for c in args.counts.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                r = measure(
                    ray,
                    count,
                    args.bars,
                    args.warm,
                    args.mix,
                    args.store,
                    f"sqlite:///{tmp}/bench.db",
                    args.per_actor,
                )
            print(
                f"{count:>9} {pct(r['wall'], 0.5):>9.1f} {pct(r['wall'], 0.99):>9.1f} "
                f"{pct(r['cpu'], 0.5):>8.1f} {pct(r['cpu'], 0.99):>8.1f} {statistics.mean(r['cpu']):>8.1f} "
                f"{len(r['orders']):>10} {pct(r['orders'], 0.5):>9.1f} "
                f"{pct(r['orders'], 0.99):>9.1f}",
                flush=True,
            )
    finally:
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        ray.shutdown()


if __name__ == "__main__":
    main()
