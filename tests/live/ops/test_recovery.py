"""kill -9 recovery: the live node in real mode against the local exchange (real ccxt), killed
by SIGKILL at seeded points, restarted, run to the end of the data. Then the database and the
exchange agree: every order the exchange saw is stored exactly once (under its client order
id, with its exchange id and final status), no client order id was used twice, every trade's
quantity, prices and pnl are the exchange's fills, and the final balances are what the stored
trades say.

Kill points (live/recovery.crash_point, RAYTRADER_CRASH_AT="<point>:<n>"):
- submit: the order is stored NEW, about to be sent;
- sent: the exchange accepted it, its exchange id not yet written;
- filled: a fill was read from the exchange, the order manager has not written it;
- resting: a bar closed while a stop/target rests at the exchange;
- flush: the order manager's batch is about to be committed (all its writes are lost).
Most runs go through tests/live/recovery_driver.py (the node in one process, no Ray, forked
from a server that imported everything once); the chain of several kill points per exchange
run keeps it fast. tests/live/ops/test_recovery_ray.py does the same through `cli.py live
--real` and through Ray. The test runs the fewest seeded chains that reach every kill point;
benchmarks/recovery_chains.py runs all of them (longer, more kill orders).
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from localexchange.server_thread import ExchangeThread
from testing.crash import CRASH_ENV
from tests.live import chaos
from tests.live.helpers import SECRET, market_of, sample

ROOT = Path(__file__).resolve().parents[3]
N = 140  # bars of NXT/BTC 5m: three instances open and close about a dozen trades
FUNDING = {"BTC": 10.0}
DOWN_BARS = 2  # bars that close while the process is down (resting orders may fill meanwhile)
MAX_N = {"submit": 2, "sent": 2, "filled": 2, "resting": 4, "flush": 6}
_rng = random.Random(20261201)
SEEDED_CHAINS = [
    [(p, _rng.randint(1, MAX_N[p])) for p in _rng.sample(sorted(MAX_N), 3)] for _ in range(8)
]  # 24 kill points, 3 per exchange run: benchmarks/recovery_chains.py runs them all


def points(chain: list[tuple[str, int]]) -> set[str]:
    return {point for point, _n in chain}


def covering(chains: list[list[tuple[str, int]]]) -> list[list[tuple[str, int]]]:
    """Few of the chains that together reach every kill point they reach (greedy: each next one
    reaches the most points not reached yet, the earliest of equals), in their seeded order."""
    wanted = set().union(*map(points, chains))
    kept: list[int] = []
    reached: set[str] = set()
    while reached != wanted:
        best = max(range(len(chains)), key=lambda k: len(points(chains[k]) - reached))
        kept.append(best)
        reached |= points(chains[best])
    return [chains[k] for k in sorted(kept)]


CHAINS = covering(SEEDED_CHAINS)  # two exchange runs that together reach all five kill points


@contextlib.contextmanager
def driver_process() -> Iterator[tuple[subprocess.Popen, IO[str]]]:
    """The recovery driver's fork server, stopped on the way out (also when a test fails)."""
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.live.recovery_driver", "--serve"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        yield proc, log
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def driver():
    with driver_process() as proc_and_log:
        yield proc_and_log


def run_session(driver, url: str, db: str, key: str, crash: str = "") -> int:
    proc, _log = driver
    env = {
        "RAYTRADER_BINANCE_API_KEY": key,
        "RAYTRADER_BINANCE_API_SECRET": SECRET,
        CRASH_ENV: crash,
    }
    proc.stdin.write(json.dumps({"url": url, "db": db, "env": env}) + "\n")
    proc.stdin.flush()
    return int(proc.stdout.readline())


def driver_log(driver) -> str:
    _proc, log = driver
    log.seek(0)
    return log.read()[-4000:]


def stored(db: str) -> tuple[list, list]:
    db_side = chaos.stored(db)
    return db_side.orders, db_side.trades


def check_consistency(orders: list[dict], trades: list[dict], account) -> None:
    """The invariants of the kill -9 test; raises AssertionError naming the first broken one.
    The orders and balances: the chaos check (tests/live/chaos.py); then, as this test has no
    partial fills, every trade's prices and pnl are its entry's and its one exit's fills."""
    chaos.audit(
        chaos.account_view(account), chaos.Stored(orders, trades), FUNDING
    ).raise_if_broken()
    seen = list(account.orders.values())
    by_cid = {o.client_id: o for o in seen}
    filled = {o.client_id for o in seen if o.status == "FILLED"}
    used: set[str] = set()
    for t in trades:
        entry = by_cid[t["trade_id"]]
        assert entry.status == "FILLED" and t["quantity"] == pytest.approx(entry.quantity)
        assert t["entry_price"] == pytest.approx(entry.fill_price, rel=1e-12)
        used.add(t["trade_id"])
        if t["status"] == "CLOSED":
            exits = [
                r for r in orders if r["parent_id"] == t["trade_id"] and r["status"] == "FILLED"
            ]
            assert len(exits) == 1, t["trade_id"]
            out = by_cid[exits[0]["id"]]
            used.add(out.client_id)
            assert t["exit_price"] == pytest.approx(out.fill_price, rel=1e-12)
            pnl = t["quantity"] * (out.fill_price - entry.fill_price) - entry.fee - out.fee
            assert t["pnl"] == pytest.approx(pnl, abs=1e-8), t["trade_id"]
    assert used == filled, f"fills without a trade: {sorted(filled - used)}"


def chain_run(
    driver, tmp_path: Path, name: str, chain: list[tuple[str, int]], db: str = "", bars: int = N
):
    db = db or f"sqlite:///{tmp_path / f'{name}.db'}"
    short = sample("NXT_BTC-5m.csv.gz", n=bars)
    with ExchangeThread(market_of(short, "NXT/BTC"), dict(FUNDING)) as ex:
        for point, n in chain:
            code = run_session(driver, ex.url, db, name, f"{point}:{n}")
            assert code == -9, f"{point}:{n} was not reached (exit {code}): {driver_log(driver)}"
            ex.step(DOWN_BARS)  # the market goes on while we are down: resting orders may fill
        code = run_session(driver, ex.url, db, name)
        assert code == 0, driver_log(driver)
        orders, trades = stored(db)
        return orders, trades, ex.exchange.engine.accounts[name]


def test_a_run_without_crash_is_consistent_and_a_broken_store_is_caught(driver, tmp_path) -> None:
    orders, trades, account = chain_run(driver, tmp_path, "clean", [])
    assert len(trades) >= 10 and len(account.orders) >= 25
    check_consistency(orders, trades, account)
    lost = [r for r in orders if r["id"] != orders[3]["id"]]  # one stored order lost
    with pytest.raises(AssertionError, match="not in the database"):
        check_consistency(lost, trades, account)
    doubled = [{**t, "pnl": t["pnl"] * 2} if t["status"] == "CLOSED" else t for t in trades]
    with pytest.raises(AssertionError):
        check_consistency(orders, doubled, account)


def test_the_chains_run_here_reach_every_kill_point() -> None:
    assert set().union(*map(points, CHAINS)) == set(MAX_N) and len(CHAINS) == 2
    a, b, c = [("flush", 1), ("sent", 1)], [("sent", 2), ("filled", 1)], [("filled", 2)]
    assert covering([a, b, c]) == [a, b] and covering([c, a, b]) == [c, a]


@pytest.mark.parametrize("chain", CHAINS, ids=[",".join(f"{p}:{n}" for p, n in c) for c in CHAINS])
def test_killed_at_seeded_points_then_restarted_nothing_lost_nothing_doubled(
    driver, tmp_path, chain
) -> None:
    orders, trades, account = chain_run(driver, tmp_path, f"k{CHAINS.index(chain)}", chain)
    check_consistency(orders, trades, account)


def test_killed_and_restarted_on_postgresql(driver, tmp_path, postgres_url) -> None:
    chain = [("sent", 1), ("filled", 2), ("flush", 3)]
    orders, trades, account = chain_run(driver, tmp_path, "pg", chain, postgres_url)
    check_consistency(orders, trades, account)
