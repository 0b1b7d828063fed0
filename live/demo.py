"""`make live-demo`: a local exchange on the sample data, a live dry run against it, both stopped.

    python -m live.demo [--seconds 50] [--speed 1200] [--db sqlite:///demo_out/live.db]

Starts `cli.py exchange serve` (replaying data/sample from 2018-01-25 at --speed x real time),
runs `cli.py live` in dry run on the demo instances of ETH/BTC 5m for --seconds, stops both with
SIGTERM and prints what was traded (the live command's summary). The dry run's starting cash
is the local exchange's default funding of the pair's quote currency (10 BTC for ETH/BTC, as the
account `exchange serve` gives every API key); `live --cash` would set another amount in BTC.
The run has risk limits (--max-daily-loss 0.05 --max-drawdown 0.1: docs/live.md#risk-limits);
its summary says them and whether one was breached. The exchange runs a mild seeded fault mode
(FAULTS: every stream socket closed every 10 s, 1-20 ms on every REST request; issue 20): the
demo's last lines say the faults injected (GET /_local/faults) and that the trader took every
ETH/BTC 5m bar the exchange closed while it ran (its "stopped: N bars" against the exchange's
clock, read when the trader said it started and when its --duration was up; the trader's count
also holds the bars it caught up on at its start, so it may be the larger). A dry run sends no orders, so
the order faults and the database-against-exchange check (tests/live/chaos.py) do not apply here;
`benchmarks/chaos.py` runs them against `live --real`.
The Ray dashboard and metrics of the run are on free ports (printed at start).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMITS = ("--max-daily-loss", "0.05", "--max-drawdown", "0.1")  # shown in the summary
FAULTS = ("--faults", "ws_drop_every=10,latency_ms=1-20", "--seed", "1")  # a fault survived
BAR_MS = 5 * 60_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=50.0)
    parser.add_argument("--speed", type=float, default=1200.0)
    parser.add_argument("--db", default="sqlite:///demo_out/live.db")
    args = parser.parse_args()
    cli = [sys.executable, str(ROOT / "cli.py")]
    env = {**os.environ, "RAYTRADER_DB": args.db}
    serve = subprocess.Popen(
        [
            *cli,
            "exchange",
            "serve",
            "--data",
            str(ROOT / "data" / "sample"),
            "--port",
            "0",
            "--speed",
            str(args.speed),
            "--start",
            "2018-01-25",
            *FAULTS,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        port = next(int(line.split()[1]) for line in serve.stdout if line.startswith("port "))
        print(
            f"local exchange on http://127.0.0.1:{port}, replaying at {args.speed:g}x", flush=True
        )
        url = f"http://127.0.0.1:{port}"
        live = subprocess.Popen(
            [
                *cli,
                "live",
                "--url",
                url,
                "--symbol",
                "ETH/BTC",
                "--interval",
                "5m",
                "--duration",
                str(args.seconds),
                *LIMITS,
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        clock: list[int] = []  # the exchange's market time when the trader started, stopped
        said: list[str] = []
        echo = threading.Thread(
            target=_echo, args=(live, url, args.seconds, clock, said), daemon=True
        )
        echo.start()
        code = live.wait()
        echo.join(timeout=10)
        for line in fault_lines(_local(url, "/_local/faults"), clock, said):
            print(line, flush=True)
        return code
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            serve.kill()


def _echo(
    live: subprocess.Popen, url: str, seconds: float, clock: list[int], said: list[str]
) -> None:
    """Pass the trader's stderr through; note the exchange's clock when the trader says it
    started and when its --duration is up (its shutdown is not counted: bars go on closing)."""
    for line in live.stderr:
        sys.stderr.write(line)
        sys.stderr.flush()
        said.append(line)
        if line.startswith("live dry run") and not clock:
            clock.append(_local(url, "/_local/state")["now"])
            end = threading.Timer(
                seconds, lambda: clock.append(_local(url, "/_local/state")["now"])
            )
            end.daemon = True
            end.start()


def _local(url: str, path: str) -> dict:
    with urllib.request.urlopen(url + path, timeout=10) as answer:
        return json.loads(answer.read())


def fault_lines(faults: dict, clock: list[int], said: list[str]) -> list[str]:
    """The demo's last lines: the faults the exchange injected, and the bars the trader took
    against the ETH/BTC 5m bars the exchange closed between its start and its stop."""
    counts = faults.get("counts", {})
    drops = [f for f in faults.get("faults", []) if f["kind"] == "ws_drop_every"]
    sockets = sum(int(f["detail"].split()[0]) for f in drops)
    injected = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "none"
    lines = [f"faults injected (seed {faults.get('seed')}): {injected}"]
    taken = next(
        (int(m.group(1)) for t in said if (m := re.match(r"stopped: (\d+) bars", t))), None
    )
    if len(clock) == 2 and taken is not None:
        closed = (clock[1] - clock[0]) // BAR_MS
        # one bar may be in flight at either end of the window (the clocks are read over HTTP)
        verdict = "none lost" if taken >= closed - 1 else f"{closed - 1 - taken} LOST"
        lines.append(
            f"fault survived: {len(drops)} stream drops ({sockets} sockets closed), reconnected; "
            f"the trader took {taken} bars, the exchange closed {closed} ETH/BTC 5m bars while "
            f"it ran: {verdict}"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
