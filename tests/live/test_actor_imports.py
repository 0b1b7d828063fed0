"""The live actors that do no bar-frame work never load pandas: each Ray process of a session
start (bar stream, broker, order store, portfolio) would pay about a second of CPU for it, and
the tests start dozens of sessions. Only the strategy hosts (live/hosts.py) need it.

Two ways a process loads a module: the actor's class (Ray imports its module by name) and its
constructor arguments (unpickling imports the module of every object they hold)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

from actors.order_manager import OrderManager
from actors.order_store import DRY_RUN, SqlOrderStore
from actors.weighted_portfolio import PortfolioMember
from factors.bars import interval_delta
from live.actor_group import ActorGroup
from live.node import LiveSettings
from live.ops.recovery import StoredGroup
from live.portfolios import quote_portfolios
from strategies.registry import make_strategy

ROOT = Path(__file__).resolve().parents[2]
# the modules of the actor classes live/node.py starts on Ray, but for the strategy hosts
ACTOR_MODULES = (
    "live.venues.bar_stream",
    "live.venues.broker",
    "live.ops.recovery",
    "live.portfolios",
    "live.actor_group",
    "live.dry_run",
)

IMPORT_PROBE = """
import importlib, sys
for name in {modules!r}:
    importlib.import_module(name)
print("pandas" in sys.modules)
"""

UNPICKLE_PROBE = """
import pickle, sys
pickle.load(sys.stdin.buffer)
print("pandas" in sys.modules)
"""


def loads_pandas(code: str, stdin: bytes = b"") -> bool:
    """Whether `code`, run in a fresh interpreter with `stdin`, ends with pandas loaded."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, input=stdin, capture_output=True, check=True
    )
    return done.stdout.decode().split()[-1] == "True"


def imports_pandas(*modules: str) -> bool:
    return loads_pandas(IMPORT_PROBE.format(modules=list(modules)))


def test_actor_modules_import_no_pandas():
    assert {name: imports_pandas(name) for name in ACTOR_MODULES} == dict.fromkeys(
        ACTOR_MODULES, False
    )


def test_the_probe_sees_pandas_where_it_is_needed():
    # The check can fail: the strategy hosts work on bar frames.
    assert imports_pandas("live.hosts")


def test_the_groups_as_spawned_unpickle_without_pandas(tmp_path):
    # the order store's and the portfolio's group, with the arguments live/node.py gives them
    url = f"sqlite:///{tmp_path / 'live.db'}"
    settings = LiveSettings(
        "binance", None, url, cash=10.0, fee_bps=0.0, risk=0.25, min_notional=0.0
    )
    strategy = make_strategy("sr_breakout", {})
    members = [PortfolioMember(label, strategy, "ETH/BTC", "5m") for label in ("a", "b")]
    store = SqlOrderStore(url, run_id=DRY_RUN, exchange="binance", stable=True, autocommit=False)
    orders = (StoredGroup, [("orders", OrderManager(store))])
    portfolio = (ActorGroup, [("portfolio", quote_portfolios(settings, members))])
    assert not loads_pandas(UNPICKLE_PROBE, pickle.dumps(orders))
    assert not loads_pandas(UNPICKLE_PROBE, pickle.dumps(portfolio))
    # an argument holding a pandas object (a host's warm-up bars, here an interval's length):
    # the same probe sees it
    assert loads_pandas(UNPICKLE_PROBE, pickle.dumps(interval_delta("5m")))
