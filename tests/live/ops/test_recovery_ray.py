"""kill -9 recovery through Ray: the real `cli.py live --real` process (its Ray included) killed
by SIGKILL at a seeded moment and restarted (the order manager's actor killed inside a running
Ray: test_recovery_actor.py). The same invariants as tests/live/ops/test_recovery.py (database ==
exchange) hold at the end. Real ccxt, real local exchange, real Ray."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from localexchange.server_thread import ExchangeThread
from store.db import get_engine
from store.instances import add_instance
from tests.live.chaos_run import LiveCli
from tests.live.helpers import market_of, sample
from tests.live.ops.test_recovery import FUNDING, check_consistency, stored
from tests.ray_local import RAY_KEY

N = 70  # bars: the three instances trade from bar 35 on
QUIET_BARS = 30  # before this bar no instance can signal: no pause for the node to trade
SYMBOL = "NXT/BTC"
# seeded: SIGKILL once the database holds this many orders (an entry and its brackets on the
# way); one kill, as a CLI start costs a Ray start: the in-process kill chains
# (tests/live/ops/test_recovery.py, benchmarks/recovery_chains.py) cover many more points
KILL_AT_ORDERS = 3
PACE_S = 0.4


def count(db: str, table: str) -> int:
    with get_engine(db).connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def ray_local(ray_shared):
    return ray_shared  # the session's Ray (tests/ray_local.py): its workers hold RAY_KEY


@pytest.mark.ray
def test_cli_live_real_killed_by_sigkill_and_restarted(ray_local, tmp_path) -> None:
    """The CLI is killed (its Ray with it) once the database holds KILL_AT_ORDERS orders; the
    restart is the session the CLI runs (live/session.py) on the tests' Ray, with the same
    account, database and instances: a second CLI start would only add a Ray start."""
    from live.node import LiveSettings
    from live.session import LiveSession, Selection

    db = f"sqlite:///{tmp_path / 'live.db'}"
    for family, params in (
        ("sr_breakout", {}),
        ("reversal_breakout", {}),
        ("sr_breakout", {"lookback": 10}),
    ):
        add_instance(db, family, "binance", SYMBOL, "5m", params)
    market = market_of(sample("NXT_BTC-5m.csv.gz", n=N), SYMBOL)
    with ExchangeThread(market, dict(FUNDING)) as ex:
        flags = ("--risk", "0.001", "--reconcile-every", "0.02")
        cli = LiveCli(ex.url, db, RAY_KEY, tmp_path, flags)
        try:
            assert _wait(cli.started, 240), "".join(cli.errors)
            step = 0
            while count(db, "orders") < KILL_AT_ORDERS:
                assert step < N - 1, f"kill point not reached: {''.join(cli.errors)[-3000:]}"
                ex.step(1)
                step += 1
                _wait(lambda n=step: count(db, "bars") >= n - 1, 20)  # the stream stored it
                if step >= QUIET_BARS:  # the node trades on it (its progress is not visible)
                    time.sleep(PACE_S)
            cli.kill()
        finally:
            cli.stop()
        settings = LiveSettings(
            "binance", ex.url, db, risk=0.001, quiet_s=1.0, real=True, reconcile_every=0.02
        )
        with LiveSession(settings, Selection(), ray_module=ray_local) as session:
            while step < N - 1:
                ex.step(1)
                step += 1
                session.wait_for_bars(session.node.bars + 1, timeout=60)
        orders, trades = stored(db)
        check_consistency(orders, trades, ex.exchange.engine.accounts[RAY_KEY])
        assert len(trades) >= 3
