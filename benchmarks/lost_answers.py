"""Lost answers: a seeded real-mode run through the local exchange's fault mode, then the
database against the exchange.

The live session in real mode, in one process (the recovery tests' four instances on NXT/BTC
5m, bars stepped at the exchange one at a time), against the local exchange with seeded faults
on its order endpoints (timeout_after_accept, drop_before_accept, http_5xx_after_accept with
probability P each, http_429 P/2, http_5xx_read P/4; localexchange/faults.py). At the end,
through the real ccxt client: every exchange order must be in the database under its client
order id with its exchange id and final status, no client order id placed twice, no row left
UNKNOWN, and the balances are the stored fills (the chaos check, tests/live/chaos.py). It prints
the orders, the faults by kind, those figures and the refusals by reason; it exits 1 when one of
them is not 0.

Usage: python benchmarks/lost_answers.py [--bars 2000] [--p 0.2] [--seed 2]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from live.node import LiveSettings  # noqa: E402
from live.session import LiveSession  # noqa: E402
from live.setup import Warmup  # noqa: E402
from live.venues.ccxt_clients import rest_client  # noqa: E402
from live.venues.outcomes import CallSettings  # noqa: E402
from localexchange.faults import FaultPlan, FaultSpec  # noqa: E402
from localexchange.server_thread import ExchangeThread  # noqa: E402
from tests.live import chaos  # noqa: E402
from tests.live.helpers import SECRET, market_of, sample  # noqa: E402
from tests.live.recovery_driver import INTERVAL, STEP_MS, SYMBOL, _bar, members  # noqa: E402

KEY = "lost-answers"
# short: a lost answer costs the client timeout; no limiter: bars go far faster than real time
CALLS = CallSettings(
    timeout_ms=1000,
    recv_window_ms=300,
    margin_ms=200,
    backoff_s=(0.05, 0.4),
    retry_s=0.2,
    rate_limit=False,
)
FUNDING = {"BTC": 10.0}


def run(db: str, bars: int, p: float, seed: int) -> tuple[chaos.ExchangeView, dict[str, int]]:
    os.environ["RAYTRADER_BINANCE_API_KEY"] = KEY
    os.environ["RAYTRADER_BINANCE_API_SECRET"] = SECRET
    spec = FaultSpec(
        timeout_after_accept=p,
        drop_before_accept=p,
        http_5xx_after_accept=p,
        http_429=p / 2,
        http_5xx_read=p / 4,
        hang_ms=1500,
    )
    plan = FaultPlan(spec, seed)
    frame = sample("NXT_BTC-5m.csv.gz", n=bars)
    with ExchangeThread(market_of(frame, SYMBOL), dict(FUNDING), faults=plan) as ex:
        settings = LiveSettings("binance", ex.url, db, risk=0.001, real=True, calls=CALLS)
        warm = Warmup(frames={(SYMBOL, INTERVAL): frame.iloc[:0]})
        session = LiveSession(settings, members(), warm=warm).start()
        client = rest_client("binance", ex.url, (KEY, SECRET))
        last = -1
        while ex.step(1):
            rows = client.fetch_ohlcv(SYMBOL, INTERVAL, last + 1, 1000)
            closed = [r for r in rows if r[0] + STEP_MS <= ex.exchange.market.now_ms]
            session.deliver([_bar(r) for r in closed])
            last = int(closed[-1][0]) if closed else last
        deadline = time.monotonic() + 10  # the last lookups
        while session.node.broker.doubts() and time.monotonic() < deadline:
            time.sleep(0.1)
        session.stop()
        plan.spec = FaultSpec()  # the check's own reads get no fault
        view = chaos.exchange_view(client, [SYMBOL])
        return view, {str(k): v for k, v in plan.counts().items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--p", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'live.db'}"
        t0 = time.monotonic()
        view, faults = run(db, args.bars, args.p, args.seed)
        took = time.monotonic() - t0
        db_side = chaos.stored(db)
    found = chaos.audit(view, db_side, FUNDING)
    rows = {r["id"]: r for r in db_side.orders}
    print(
        f"{args.bars} bars, seed {args.seed}, p {args.p}: {found.exchange_orders} exchange "
        f"orders, {found.rows} rows, {took:.0f} s"
    )
    print("faults:", ", ".join(f"{k} {v}" for k, v in sorted(faults.items())))
    for name, value in found.counts().items():
        print(f"{name}: {value}")
        for line in found.problems[name][:5]:
            print(f"  {line}")
    refused = collections.Counter(
        (r["role"], (r["reason"] or "")[:45]) for r in rows.values() if r["status"] == "REJECTED"
    )
    for (role, reason), n in sorted(refused.items()):
        print(f"rejected {role}: {n} ({reason})")
    return 0 if found.ok else 1


if __name__ == "__main__":
    sys.exit(main())
