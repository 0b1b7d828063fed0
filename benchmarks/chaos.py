"""Chaos: `cli.py live --real` through `cli.py exchange serve --faults ... --seed N`, one kill -9
in the middle and a restart, until the exchange holds --orders orders; then the chaos check.

Both are the real CLI commands, as a user runs them: the exchange replays data/sample in stepped
mode (--speed 0; this script closes one bar every --pace s with POST /_local/step) with every
fault kind on (--faults, default FAULTS below); fifty instances (five parameter sets that signal
often, on each of the ten BTC pairs of data/sample, from 2018-01-11: 5,400 bars) trade it with
--max-open 8; stepping stops at --orders or at the end of the data. Once the database holds half
of --orders, the live process group (the CLI and its local Ray) is killed by SIGKILL and the
command started again. At the end the chaos check (tests/live/chaos.py) reads the exchange through
the real ccxt client: every exchange order in the database once with its final status, no client
order id twice, no position the database does not know, the balances the stored fills, max_open
held. It prints the orders, the faults by kind (GET /_local/faults), lost / doubled / mismatches /
risk, and the bar -> order latency under faults: per bar that led to entries, the step that
closed it -> its last entry row written (the order manager writes ahead of sending; the database
read every 10 ms). Exits 1 when a check fails.

Usage: python benchmarks/chaos.py [--orders 2000] [--seed 7] [--faults SPEC] [--pace 0.3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from live.venues.ccxt_clients import rest_client  # noqa: E402
from tests.live import chaos  # noqa: E402
from tests.live.chaos_run import (  # noqa: E402
    ALL_BTC,
    DATA_END_MS,
    IN_DOUBT,
    ROOT,
    SECRET,
    LiveCli,
    OrderWatch,
    add_instances,
    count_orders,
    drive,
    local_call,
    pct,
    settle,
)

FAULTS = (
    "timeout_after_accept=0.03,drop_before_accept=0.03,http_5xx_after_accept=0.03,"
    "http_429=0.02,http_5xx_read=0.02,partial_fill=0.3,ws_drop_every=20,hang_ms=12000"
)
FUNDING = {"BTC": 10.0, "ETH": 100.0, "USDT": 100_000.0}  # `exchange serve`'s default --balance
MAX_OPEN = 8
KEY = "chaos"


def serve(faults: str, seed: int) -> tuple[subprocess.Popen, str]:
    """`cli.py exchange serve` on a free port, stepped, with the faults; (process, its URL)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            "exchange",
            "serve",
            "--data",
            str(ROOT / "data" / "sample"),
            "--start",
            "2018-01-11",
            "--port",
            "0",
            "--speed",
            "0",
            "--faults",
            faults,
            "--seed",
            str(seed),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in proc.stdout:
        if line.startswith("port "):
            return proc, f"http://127.0.0.1:{int(line.split()[1])}"
    raise RuntimeError("`cli.py exchange serve` did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--faults", default=FAULTS)
    parser.add_argument("--pace", type=float, default=0.3, help="seconds between bars")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "live.db"
        db = f"sqlite:///{path}"
        n = add_instances(db, ALL_BTC)
        exchange, url = serve(args.faults, args.seed)
        flags = ("--risk", "0.0002", "--max-open", str(MAX_OPEN), "--reconcile-every", "1")
        cli = None
        try:
            t0 = time.monotonic()
            with OrderWatch(path) as watch:
                run, cli = drive(
                    url,
                    lambda: LiveCli(url, db, KEY, Path(tmp), flags),
                    lambda: count_orders(path, "exchange_order_id IS NOT NULL"),
                    target=args.orders,
                    kill_at=args.orders // 2,
                    max_steps=20 * args.orders,
                    pace_s=args.pace,
                    until_ms=DATA_END_MS,
                )
                doubts = lambda: count_orders(path, IN_DOUBT)  # noqa: E731
                settle(url, run, doubts, 90, args.pace)
            code = cli.stop()
            took = time.monotonic() - t0
            faults = local_call(url, "/_local/faults")["counts"]
            os.environ["RAYTRADER_BINANCE_API_KEY"] = KEY
            client = rest_client("binance", url, (KEY, SECRET))
            found = chaos.audit(
                chaos.exchange_view(client, ALL_BTC),
                chaos.stored(db),
                FUNDING,
                max_open=MAX_OPEN,
            )
        finally:
            if cli is not None:
                cli.stop()
            exchange.terminate()
            exchange.wait(timeout=30)
        latency = run.latencies_ms(watch)
    print(
        f"{n} instances, {run.steps} bars, seed {args.seed}, {took:.0f} s "
        f"(CLI starts {', '.join(f'{s:.0f}' for s in run.starts_s)} s), kill -9: {run.kills}, "
        f"exit {code}"
    )
    print(f"orders: {found.exchange_orders} at the exchange, {found.rows} rows")
    print("faults:", ", ".join(f"{k} {v}" for k, v in sorted(faults.items())))
    for name, value in found.counts().items():
        print(f"{name}: {value}")
        for line in found.problems[name][:5]:
            print(f"  {line}")
    print(
        f"bar -> order under faults: p50 {pct(latency, 0.5):.0f} ms, "
        f"p99 {pct(latency, 0.99):.0f} ms ({len(latency)} bars with entries)"
    )
    return 0 if found.ok and run.kills == 1 and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
