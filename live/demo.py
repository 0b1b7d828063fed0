"""`make live-demo`: a local exchange on the sample data, a live dry run against it, both stopped.

    python -m live.demo [--seconds 60] [--speed 600] [--db sqlite:///demo_out/live.db]

Starts `cli.py exchange serve` (replaying data/sample from 2018-01-25 at --speed x real time),
runs `cli.py live` in dry run on the demo instances of ETH/BTC 5m for --seconds, stops both with
SIGTERM and prints what was traded (the live command's summary). The dry run's starting cash
is the local exchange's default funding of the pair's quote currency (10 BTC for ETH/BTC, as the
account `exchange serve` gives every API key); `live --cash` would set another amount in BTC.
The run has risk limits (--max-daily-loss 0.05 --max-drawdown 0.1: docs/live.md#risk-limits);
its summary says them and whether one was breached.
The Ray dashboard and metrics of the run are on free ports (printed at start).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMITS = ("--max-daily-loss", "0.05", "--max-drawdown", "0.1")  # shown in the summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--speed", type=float, default=600.0)
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
        done = subprocess.run(
            [
                *cli,
                "live",
                "--url",
                f"http://127.0.0.1:{port}",
                "--symbol",
                "ETH/BTC",
                "--interval",
                "5m",
                "--duration",
                str(args.seconds),
                *LIMITS,
            ],
            env=env,
        )
        return done.returncode
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            serve.kill()


if __name__ == "__main__":
    sys.exit(main())
