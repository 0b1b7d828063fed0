"""Instances enabled / disabled in the database while live runs (live/ops/control.py): real Ray, the
local exchange, real ccxt. A disabled instance opens nothing new (its entries are refused with a
reason) while the other instance trades exactly as its backtest; enabled again, it trades; an
instance enabled that the run had not loaded gets a host; --on-disable close closes at market."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request

import pandas as pd
import pytest
from typer.testing import CliRunner

from actors.messages import DisableInstance, EnableInstance, SignalRaised, TradeOpened
from actors.portfolio import Portfolio
from cli import app
from live.node import LiveNode, LiveSettings
from live.ops.control import LiveControl, member_ids
from live.ops.status import read_status
from live.portfolios import LivePortfolio
from live.session import LiveSession, Selection
from localexchange.server_thread import ExchangeThread
from store.instances import add_instance, set_enabled, set_pair_active
from tests.live.helpers import market_of, sample

N = 300  # ETH/BTC 5m from the start of the sample: sr_breakout enters at bars 49, 81, 84, 113,
RISK = 0.001  # 180, 233, ...; reversal_breakout at 64, 76, 82, 147, ...; small: no interaction


@pytest.fixture(scope="module")
def ray_local(ray_shared):
    return ray_shared  # the session's Ray (tests/ray_local.py)


def scrape(url: str, name: str, enough: float, timeout: float = 60.0) -> dict[str, float]:
    """Values of one metric (by its tags) once their sum reaches `enough` (Ray exports every
    few seconds)."""
    deadline = time.monotonic() + timeout
    values: dict[str, float] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            body = urllib.request.urlopen(url, timeout=5).read().decode()
            values = {
                line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in body.splitlines()
                if line.startswith(name + "{")
            }
            if sum(values.values()) >= enough:
                return values
        time.sleep(1.0)
    raise AssertionError(f"{name} reached {sum(values.values())} < {enough} in {timeout}s")


def test_a_disabled_instance_has_its_entries_refused_with_a_reason() -> None:
    settings = LiveSettings("binance", None, "sqlite://", risk=RISK)
    book = LivePortfolio(settings, {"a": 1.0}, {})
    enter = SignalRaised(1, 1, "a", "ETH/BTC", "5m", "long", "enter", 0.1)
    book.handle(DisableInstance(1, "a"))
    (refused,) = book.handle(enter)
    assert "instance a is disabled" in refused.reason
    book.handle(EnableInstance(2, "a", weight=0.5))
    (opened,) = book.handle(enter)
    assert type(opened).__name__ == "OpenTrade" and book.weights["a"] == 0.5
    # the plain portfolio knows no such command: the refusal is LivePortfolio's doing
    assert DisableInstance not in Portfolio.handlers


def test_a_prod_config_is_stored_with_its_weights_so_enable_disable_reach_it(
    tmp_path, sqlite_url
) -> None:
    from backtest.portfolio_config import build_members, load_portfolio_config
    from live.ops.control import declare_config
    from store.instances import list_instances, live_states
    from strategies.registry import make_strategy

    full = make_strategy("sr_breakout", {}).param_dict()  # stored complete, as `strategies add`
    old = add_instance(sqlite_url, "sr_breakout", "binance", "ETH/BTC", "5m", full, enabled=False)
    config = tmp_path / "prod.json"
    config.write_text(
        json.dumps(
            {
                "exchange": "binance",
                "instances": [
                    {"family": "sr_breakout", "symbol": "ETH/BTC", "interval": "5m", "weight": 0.5},
                    {
                        "family": "sr_breakout",
                        "symbol": "ETH/BTC",
                        "interval": "5m",
                        "weight": 2.0,
                        "params": {"lookback": 30},
                    },
                ],
            }
        )
    )
    members = build_members(load_portfolio_config(config))
    ids = declare_config(sqlite_url, "binance", config, members)
    assert sorted(ids.values()) == sorted(m.label for m in members) and old.id in ids
    stored = {r.id: (r.enabled, r.weight) for r in list_instances(sqlite_url)}
    assert stored == {old.id: (True, 0.5), max(ids): (True, 2.0)}
    set_enabled(sqlite_url, max(ids), False)
    assert live_states(sqlite_url, "binance") == {old.id: (True, 0.5), max(ids): (False, 2.0)}


def test_a_database_hiccup_is_logged_and_retried_not_fatal(sqlite_url) -> None:
    from sqlalchemy import text

    from live.setup import Warmup
    from store.db import get_engine

    add_instance(sqlite_url, "sr_breakout", "binance", "ETH/BTC", "5m", {})
    node = LiveNode(LiveSettings("binance", None, sqlite_url), [], Warmup(), None)
    log: list[str] = []
    control = LiveControl(node, {}, "keep", None, log.append, poll_s=0.0)
    assert control.maybe_poll() == []
    with get_engine(sqlite_url).begin() as conn:  # broken on purpose: the table is gone
        conn.execute(text("DROP TABLE strategy_instances"))
    (line,) = control.maybe_poll()
    assert line.startswith("cannot read the instances from the database") and log == [line]


def _backtest_entries(family: str, frame: pd.DataFrame, tmp) -> list[str]:
    data = tmp / "bars.csv"
    out = frame.copy()
    out.insert(0, "timestamp", pd.DatetimeIndex(out.index).as_unit("ms").asi8)
    out.to_csv(data, index=False)
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "--strategy",
            family,
            "--data",
            str(data),
            "--symbol",
            "ETH/BTC",
            "--interval",
            "5m",
            "--out",
            str(tmp / family),
            "--risk",
            str(RISK),
            "--db",
            f"sqlite:///{tmp / 'bt.db'}",
        ],
    )
    assert result.exit_code == 0, result.output
    trades = pd.read_csv(tmp / family / "trades.csv")
    return list(trades.entry_time)


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.ray
def test_disable_and_enable_while_running(ray_local, sqlite_url, tmp_path) -> None:
    frame = sample(n=N)
    a = add_instance(sqlite_url, "sr_breakout", "binance", "ETH/BTC", "5m", {}).id
    b = add_instance(sqlite_url, "reversal_breakout", "binance", "ETH/BTC", "5m", {}).id
    late = add_instance(
        sqlite_url, "sr_breakout", "binance", "ETH/BTC", "5m", {"allow_short": True}, enabled=False
    ).id
    other = add_instance(
        sqlite_url, "sr_breakout", "binance", "ETH/BTC", "15m", {}, enabled=False
    ).id
    log: list[str] = []
    with ExchangeThread(market_of(frame)) as ex:
        settings = LiveSettings("binance", ex.url, sqlite_url, risk=RISK, quiet_s=1.0)
        session = LiveSession(
            settings, Selection(), ray_module=ray_local, on_disable="keep", say=log.append
        )
        session.start()
        assert sorted(member_ids(session.members)) == [a, b]  # disabled ones are not loaded
        node, control = session.node, session.control
        opened: list[TradeOpened] = []
        node.runtime.observers.append(lambda m: opened.append(m) if type(m) is TradeOpened else 0)
        label_a = control.labels[a]

        try:
            stepped = 0

            def step_to(total: int) -> None:
                nonlocal stepped
                ex.step(total - stepped)
                stepped = total
                node.wait_for_bars(total - 1, timeout=120)

            step_to(60)
            assert control.poll() == []  # nothing changed: nothing sent
            set_enabled(sqlite_url, a, False)
            disabled_at = control.last_ts
            assert any("disabled" in line for line in control.poll())
            step_to(150)
            set_enabled(sqlite_url, a, True)
            set_enabled(sqlite_url, late, True)  # not loaded at start: a host is spawned
            set_enabled(sqlite_url, other, True)  # 15m is not streamed: needs a restart
            enabled_at = control.last_ts
            said = control.poll()
            step_to(N)
            records = node.trades()
            shown = read_status(sqlite_url)  # `cli.py live status` while the trader runs
            orders = node.orders()
            rejections = node.portfolio()["rejections"]
        finally:
            session.stop()
    # A: nothing opened between the disable and the enable; its entries there were refused
    entries_a = [t.ts for t in opened if t.strategy == label_a]
    assert not [ts for ts in entries_a if disabled_at < ts <= enabled_at]
    refused = [r for r in rejections if r["strategy"] == label_a and "disabled" in r["reason"]]
    assert refused and all(disabled_at <= r["ts"] <= enabled_at for r in refused)
    assert [ts for ts in entries_a if ts > enabled_at], "trades resume after the enable"
    held = sorted(t["strategy"] for t in records if t["status"] == "ACTIVE")
    assert sorted(p["strategy"] for p in shown.positions) == held
    resting = [o for o in orders if o["status"] in ("NEW", "SUBMITTED")]
    assert len(shown.orders) == len(resting)
    # B: exactly its backtest
    label_b = control.labels[b]
    got_b = sorted(_iso(t["entry_ts"]) for t in records if t["strategy"] == label_b)
    expected = [
        t
        for t in _backtest_entries("reversal_breakout", frame, tmp_path)
        if t <= _iso(frame.index[N - 2].value)
    ]
    assert got_b == expected
    # the late instance got a host and trades; the 15m one is reported, not traded
    assert late in control.labels and any(f"#{late} " in line for line in said)
    assert [t for t in opened if t.strategy == control.labels[late]]
    assert any(f"instance #{other} enabled, but this run does not stream" in x for x in said)
    assert other not in control.labels


@pytest.mark.ray
def test_on_disable_close_closes_at_market_and_a_disabled_pair_counts(
    ray_local, sqlite_url
) -> None:
    frame = sample(n=200)
    a = add_instance(sqlite_url, "sr_breakout", "binance", "ETH/BTC", "5m", {}).id
    with ExchangeThread(market_of(frame)) as ex:
        settings = LiveSettings("binance", ex.url, sqlite_url, risk=RISK, quiet_s=1.0)
        session = LiveSession(settings, Selection(), ray_module=ray_local, on_disable="close")
        session.start()
        node, control = session.node, session.control
        try:
            ex.step(182)  # sr_breakout holds from bar 180 to its stop at 187 (backtest)
            node.wait_for_bars(181, timeout=120)
            assert [t for t in node.trades() if t["status"] == "ACTIVE"]
            set_pair_active(sqlite_url, "binance", "ETH/BTC", False)
            at = control.last_ts
            control.poll()
            ex.step(5)
            node.wait_for_bars(186, timeout=120)
            trades = node.trades()
        finally:
            session.stop()
    trade = max(
        (t for t in trades if t["strategy"] == control.labels[a]), key=lambda t: t["entry_ts"]
    )
    assert trade["status"] == "CLOSED" and trade["exit_reason"] == "disabled"
    assert trade["exit_ts"] == at  # market at the open of the next bar
