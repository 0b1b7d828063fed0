"""Live latency: bar close sent by the local exchange -> every order of that bar at the exchange.

For 1, 10 and 100 strategy instances on one exchange and series (ETH/BTC 5m), on Ray, the local
exchange (in this process) closing one bar at a time (stepped):
- dry run (default): an order is "at the exchange" when the driver routes its SubmitOrder to the
  dry-run exchange actor (after signals -> portfolio -> order manager and its SQLite commit);
- --real: orders go through the ccxt broker actor to the local exchange, and an order counts
  when the local exchange receives it (its order endpoints record the arrival under the client
  order id, which names the signal bar; benchmarks/live_hops.py).
Per instance count it prints, over every order of every bar (not only the first), p50 and p99 of
bar close sent -> order at the exchange; the same for each bar's first and last order; the bar's
whole delivery (every message it caused: fills, trades, bookkeeping) and the CPU per bar of every
process of the local Ray cluster plus the driver; then the hops of the bars with orders
(websocket routine, the bar at the exchange first, hosts, portfolio, order store, broker, and the
bar's first order -> its last). The first bars are not counted (first-use set-up). Each host is
warmed with `--warm` stored bars and keeps the default window.

--mix sr (default): sr_breakout with lookback 3 + i % 5 (signals often; 5 distinct parameter
sets, so identical instances share one evaluation). --mix all: the five families round robin,
every instance with its own parameters (no sharing). --store memory: the order manager keeps
orders in memory (no SQLite): the pipeline's latency without the database write. --real
--no-rate-limit: ccxt's request limiter off (it spaces the broker's requests by their weight).

Usage: python benchmarks/live_latency.py [--real [--no-rate-limit]] [--bars 120]
       [--counts 1,10,100] [--mix sr|all] [--store sqlite|memory] [--warm 2000] [--per-actor 25]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actors.weighted_portfolio import PortfolioMember  # noqa: E402
from benchmarks.live_hops import HOPS, DriverMarks, ExchangeArrivals, bar_hops  # noqa: E402
from live.node import HOSTS_PER_ACTOR, LiveSettings  # noqa: E402
from live.session import LiveSession  # noqa: E402
from live.venues.outcomes import CallSettings  # noqa: E402
from localexchange.replay import ReplayMarket  # noqa: E402
from localexchange.server import DEFAULT_SECRET  # noqa: E402
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


KEY = "live-latency"  # real mode: the local exchange account (any key, the default secret)


def measure(ray, count: int, args: argparse.Namespace, db_url: str) -> dict:
    """Step `args.bars` bars through a live session of `count` instances; per bar its wall and
    CPU, per order its latency (bar close sent -> order at the exchange: received by the local
    exchange in real mode, routed to the dry-run exchange actor in dry run), per bar with
    orders its hops (benchmarks/live_hops.py)."""
    warm_n, bars = args.warm, args.bars
    frame, _ = read_bar_file(Path(FILE), "5m")
    market = ReplayMarket()
    market.add(SYMBOL, "5m", frame.iloc[: warm_n + bars + 1])
    market.start_at(int(frame.index[warm_n].value // 1_000_000))
    members = instances(count, args.mix)
    thread = ExchangeThread(market)
    arrivals = ExchangeArrivals(thread.exchange)  # before it serves: the routes bind them
    with thread as ex:
        settings = LiveSettings(
            "binance",
            ex.url,
            db_url,
            risk=0.001,
            quiet_s=0.5,
            hosts_per_actor=args.per_actor,
            real=args.real,
            calls=CallSettings(rate_limit=not args.no_rate_limit),
        )
        order_store = None
        if args.store == "memory":
            from actors.order_manager import MemoryOrderStore

            order_store = MemoryOrderStore  # what the pipeline costs without the database
        session = LiveSession(settings, members, ray_module=ray, order_store=order_store).start()
        node = session.node
        driver = DriverMarks(node.runtime)
        arrivals.delivering = driver
        wall, cpu, bar_keys = [], [], []
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
                bar_keys.append((int(frame.index[warm_n + i].value // 1_000_000), sent))
            time.sleep(0.5)  # the last bar's orders still in flight
        finally:
            session.stop()
    return {"wall": wall, "cpu": cpu, **per_order(bar_keys, driver, arrivals, args.real)}


def per_order(bar_keys: list, driver: DriverMarks, arrivals: ExchangeArrivals, real: bool) -> dict:
    """Every order's latency and every order bar's hops, matched by the bar's time."""
    received, later_by_bar = arrivals.by_bar()
    by_open = {m["open_ms"]: (close, m) for close, m in driver.marks.items()}
    orders, first, last, hops, later = [], [], [], [], []
    for open_ms, sent in bar_keys:
        close, marks = by_open.get(open_ms, (None, None))
        if marks is None:
            continue
        later.extend((t - sent) * 1000 for t in later_by_bar.get(close, []))
        times = received.get(close, []) if real else driver.submits.get(close, [])
        if not times:
            continue
        orders.extend((t - sent) * 1000 for t in times)
        first.append((min(times) - sent) * 1000)
        last.append((max(times) - sent) * 1000)
        hops.append(bar_hops(marks, sent, times, real))
    return {"orders": orders, "first": first, "last": last, "hops": hops, "later": later}


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
    parser.add_argument(
        "--real", action="store_true", help="orders through ccxt to the local exchange"
    )
    parser.add_argument(
        "--no-rate-limit", action="store_true", help="real mode: ccxt's limiter off"
    )
    args = parser.parse_args()
    import ray

    keys = {"RAYTRADER_BINANCE_API_KEY": KEY, "RAYTRADER_BINANCE_API_SECRET": DEFAULT_SECRET}
    os.environ.update(keys)  # the driver's checks of the exchange; the broker actor's below
    env = {"env_vars": {**keys, "PYTHONPATH": str(ROOT)}}
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2", runtime_env=env)
    mode = "real: ccxt -> local exchange" if args.real else "dry run"
    print(f"{mode}; load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = {}
    try:
        print(
            f"{'instances':>9} {'bars':>5} {'orders':>6} {'every order p50':>15} {'p99':>7} "
            f"{'1st order p50':>13} {'p99':>7} {'last p50':>8} {'p99':>7} "
            f"{'bar wall p50':>12} {'p99':>7} {'CPU/bar':>7}"
            "   (ms; CPU = every Ray process + driver, 10 ms ticks, mean)"
        )
        for count in (int(c) for c in args.counts.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                r = results[count] = measure(ray, count, args, f"sqlite:///{tmp}/bench.db")
            print(
                f"{count:>9} {len(r['wall']):>5} {len(r['orders']):>6} "
                f"{pct(r['orders'], 0.5):>15.1f} {pct(r['orders'], 0.99):>7.1f} "
                f"{pct(r['first'], 0.5):>13.1f} {pct(r['first'], 0.99):>7.1f} "
                f"{pct(r['last'], 0.5):>8.1f} {pct(r['last'], 0.99):>7.1f} "
                f"{pct(r['wall'], 0.5):>12.1f} {pct(r['wall'], 0.99):>7.1f} "
                f"{statistics.mean(r['cpu']):>7.1f}",
                flush=True,
            )
        print_hops(results, args.real)
        if args.real:
            for count, r in results.items():
                if not r["later"]:
                    continue
                print(
                    f"{count:>9} instances: {len(r['later'])} orders carrying a bar's id reached "
                    f"the exchange after that bar's delivery (brackets of fills seen later; not "
                    f"above), p50 {pct(r['later'], 0.5):.0f} ms after its close"
                )
    finally:
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        ray.shutdown()


def print_hops(results: dict, real: bool) -> None:
    print("hops of the bars with orders, p50 / p99 (ms; benchmarks/live_hops.py):")
    print(f"{'instances':>9} " + " ".join(f"{h:>15}" for h in HOPS))
    for count, r in results.items():
        cells = []
        for hop in HOPS:
            values = [h[hop] for h in r["hops"] if hop in h]
            cells.append(
                f"{pct(values, 0.5):>7.1f}/{pct(values, 0.99):<7.1f}" if values else f"{'-':>15}"
            )
        print(f"{count:>9} " + " ".join(cells))


if __name__ == "__main__":
    main()
