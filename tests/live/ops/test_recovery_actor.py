"""kill -9 of one Ray actor: the order manager's actor kills itself by SIGKILL in the middle of a
batch (before its commit), the node is then restarted; the database agrees with the exchange at
the end (tests/live/ops/test_recovery.py's invariants). It needs a Ray of its own (its workers
carry the crash hook): marked own_ray, it runs after the tests on the shared Ray."""

from __future__ import annotations

import os

import pytest

from localexchange.server_thread import ExchangeThread
from testing.crash import CRASH_ENV, ONCE_ENV
from tests.live.helpers import SECRET, market_of, sample
from tests.live.ops.test_recovery import FUNDING, check_consistency, stored
from tests.live.ops.test_recovery_ray import SYMBOL, N
from tests.ray_local import stop_shared_ray

ORDERS_KILL_AT = 6  # seeded: the order manager's actor dies at its 6th batch (once per test)


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    os.environ["RAYTRADER_BINANCE_API_KEY"] = "actor-kill"
    os.environ["RAYTRADER_BINANCE_API_SECRET"] = SECRET
    # Ray's worker processes inherit this: the first order manager's actor kills itself by
    # SIGKILL at its ORDERS_KILL_AT-th batch, just before committing it (this process must not;
    # the actors of the restarted sessions pass that point unharmed: testing/crash.py)
    os.environ[CRASH_ENV] = f"flush:{ORDERS_KILL_AT}"
    os.environ[ONCE_ENV] = str(tmp_path_factory.mktemp("crash-once"))
    ray = pytest.importorskip("ray")
    stop_shared_ray()  # its workers must carry the crash hook: a Ray of this module's own
    try:
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2")
    finally:
        os.environ.pop(CRASH_ENV)
        os.environ.pop(ONCE_ENV)
    yield ray
    ray.shutdown()
    for name in ("RAYTRADER_BINANCE_API_KEY", "RAYTRADER_BINANCE_API_SECRET"):
        os.environ.pop(name, None)


@pytest.mark.ray
@pytest.mark.own_ray
def test_order_manager_actor_killed_then_node_restarted(ray_local, sqlite_url) -> None:
    from live.node import LiveSettings
    from live.session import LiveSession
    from tests.live.recovery_driver import members

    group = members()

    def start(url: str) -> LiveSession:
        settings = LiveSettings("binance", url, sqlite_url, risk=0.001, quiet_s=1.0, real=True)
        return LiveSession(settings, group, ray_module=ray_local).start()

    restarts = 0
    with ExchangeThread(market_of(sample("NXT_BTC-5m.csv.gz", n=N), SYMBOL), dict(FUNDING)) as ex:
        session = start(ex.url)
        try:
            for _k in range(1, N):
                ex.step(1)
                try:
                    session.wait_for_bars(session.node.bars + 1, timeout=60)
                except ray_local.exceptions.RayActorError:  # the orders actor died
                    session.stop()  # the rest of this session's actors go too
                    session = start(ex.url)
                    restarts += 1
        finally:
            session.stop()
    assert restarts == 1  # the crash hook fires once (RAYTRADER_CRASH_ONCE)
    orders, trades = stored(sqlite_url)
    check_consistency(orders, trades, ex.exchange.engine.accounts["actor-kill"])
    assert len(trades) >= 3
