"""Live trading with a model (live/model_gates.py): a backtest gated by the model and a dry-run
live run over the same bars give the same trades, with the model in process and behind a real
`cli.py model run` API on loopback; with the API down the documented fallback applies and the
log says so. Real Ray, real local exchange (ccxt), real HTTP."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from actors.kernel import run_kernel
from actors.weighted_portfolio import PortfolioMember
from backtest.run import BacktestConfig, assemble_result
from live.model_gates import BarFeed, ImputedFeatures, ModelGates, load_model_gates
from live.node import LiveSettings
from live.session import LiveSession
from localexchange.server_thread import ExchangeThread
from ml.apply import OnlineGate, closed_bars
from ml.dataset import build_dataset
from ml.features import FeatureBuilder, FeatureConfig
from ml.models import ModelSpec
from ml.modelstore import TrainedModel, save_model
from ml.synthetic import planted_market
from ml.walkforward import fit_in_sample
from strategies.registry import make_strategy
from tests.live.helpers import market_of

ROOT = Path(__file__).resolve().parents[2]
SYMBOL, INTERVAL, N = "ETH/BTC", "5m", 250
PARAMS = {"sl_pct": 0.003, "tp_pct": 0.003}
CONFIG = BacktestConfig(risk=0.001)  # small positions: the shared live account never limits
INSTANCES = {"inproc": 1, "remote": 2, "down": 3, "down-trade": 4}  # one model, asked 4 ways


@pytest.fixture(scope="module")
def market() -> dict:
    """A planted market, a logreg model trained on its first part, stored for three instances."""
    # prices at 6 decimals: the local exchange serves bars at a fixed precision
    bars = planted_market(3000 + N, effect=True, seed=7).round(6)
    strategy = make_strategy("sr_breakout", PARAMS)
    config = FeatureConfig(groups=("factors", "time"))
    train = bars.iloc[:3000]
    trades = assemble_result(
        strategy,
        train,
        SYMBOL,
        INTERVAL,
        CONFIG,
        run_kernel(strategy, train, SYMBOL, INTERVAL, CONFIG),
    ).trades
    ds = build_dataset(trades, train, INTERVAL, FeatureBuilder(config))
    model, calibration = fit_in_sample(ds, np.arange(len(ds)), ModelSpec(kind="logreg"))
    return {
        "bars": bars.iloc[3000:],
        "trained": TrainedModel(1, model.spec, model, calibration, config.as_dict()),
    }


@pytest.fixture(scope="module")
def stored(market, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("models")
    url = f"sqlite:///{folder / 'live.db'}"
    for label, instance in INSTANCES.items():
        trained = dataclasses.replace(market["trained"], instance_id=instance)
        save_model(url, f"key-{label}", trained, folder, {"trades": 1})
    return url


@pytest.fixture(scope="module")
def api(stored):
    """One real `cli.py model run --port 0` on loopback, stopped also when a test fails."""
    command = [
        sys.executable,
        "cli.py",
        "model",
        "run",
        "--port",
        "0",
        "--db",
        stored,
        "--refresh",
        "0",
    ]
    server = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        assert "serving models on http://127.0.0.1:" in line, line
        base = line.split()[3]
        requests.get(base + "/health", timeout=120)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def ray_local(ray_shared):
    return ray_shared  # the session's Ray (tests/ray_local.py)


def dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


class Together:
    """Several ModelGates on one node (each attaches its gates and its own bar feed)."""

    def __init__(self, *parts: ModelGates) -> None:
        self.parts = parts

    def attach(self, hosts, *args):
        for part in self.parts:
            hosts = part.attach(hosts, *args)
        return hosts


def backtest(market, gate) -> list[tuple]:
    bars, strategy = market["bars"], make_strategy("sr_breakout", PARAMS)
    output = run_kernel(strategy, bars, SYMBOL, INTERVAL, CONFIG, signal_gate=gate)
    trades = assemble_result(strategy, bars, SYMBOL, INTERVAL, CONFIG, output).trades
    last_seen = bars.index[N - 2]  # the last bar a live run sees (none closes after the data)
    trades = trades[
        (trades.exit_reason != "end_of_data") & (pd.to_datetime(trades.exit_time) <= last_seen)
    ]
    return [
        (_iso(r.entry_time), r.entry_price, _iso(r.exit_time), r.exit_price, r.side, r.exit_reason)
        for r in trades.itertuples()
    ]


def _iso(stamp) -> str:
    return pd.Timestamp(stamp).strftime("%Y-%m-%dT%H:%M:%SZ")


def live_run(ray, market, db_url: str, gates) -> list[dict]:
    members = [
        PortfolioMember(label, make_strategy("sr_breakout", PARAMS), SYMBOL, INTERVAL)
        for label in INSTANCES
    ]
    with ExchangeThread(market_of(market["bars"], SYMBOL)) as ex:
        settings = LiveSettings("binance", ex.url, db_url, risk=CONFIG.risk, quiet_s=1.0)
        with LiveSession(settings, members, ray_module=ray, models=gates) as session:
            ex.step(N)
            session.wait_for_bars(N - 1, timeout=180)
            return session.trades()


def of(records: list[dict], label: str) -> list[tuple]:
    closed = sorted(
        (t for t in records if t["strategy"] == label and t["status"] == "CLOSED"),
        key=lambda t: t["entry_ts"],
    )
    iso = lambda ns: _iso(pd.Timestamp(ns, tz="UTC"))  # noqa: E731
    return [
        (
            iso(t["entry_ts"]),
            t["entry_price"],
            iso(t["exit_ts"]),
            t["exit_price"],
            t["side"],
            t["exit_reason"],
        )
        for t in closed
    ]


def same(live: list[tuple], back: list[tuple]) -> bool:
    return len(live) == len(back) and all(
        a[0] == b[0]
        and a[2] == b[2]
        and a[4:] == b[4:]
        and np.isclose(a[1], b[1], rtol=1e-12)
        and np.isclose(a[3], b[3], rtol=1e-12)
        for a, b in zip(live, back, strict=True)
    )


@pytest.mark.ray
def test_live_with_the_model_trades_like_the_backtest_with_it(
    ray_local, market, stored, api, capfd
) -> None:
    gated = OnlineGate(market["trained"], "filter", INTERVAL, closed_bars(market["bars"], "5m"))
    with_model = backtest(market, gated)
    without = backtest(market, None)
    asked = sum(1 for _ in without)
    assert 0 < len(with_model) < asked, "the model must really filter on this series"
    gates = Together(
        load_model_gates(stored, {"inproc": 1}, None, "trade"),
        load_model_gates(stored, {"remote": 2}, api, "trade", timeout=10.0),
        load_model_gates(stored, {"down": 3}, dead_url(), "skip"),
        load_model_gates(stored, {"down-trade": 4}, dead_url(), "trade"),
    )
    records = live_run(ray_local, market, stored, gates)
    assert same(of(records, "inproc"), with_model), (of(records, "inproc"), with_model)
    assert same(of(records, "remote"), with_model), (of(records, "remote"), with_model)
    # API down: --model-fallback skip skips every signal, trade trades as without a model
    assert of(records, "down") == [] and not [t for t in records if t["strategy"] == "down"]
    assert same(of(records, "down-trade"), without), (of(records, "down-trade"), without)
    deadline, seen = time.monotonic() + 20, ""
    wanted = ("model API for instance 3 unavailable", "model API for instance 4 unavailable")
    while time.monotonic() < deadline and not all(w in seen for w in wanted):
        time.sleep(0.5)  # Ray forwards the actors' log lines to the driver asynchronously
        seen += capfd.readouterr().err
    assert "model API for instance 3 unavailable" in seen and "skipping the signal" in seen
    assert "model API for instance 4 unavailable" in seen and "trading without the model" in seen


def test_a_broken_feature_row_would_change_the_decisions(market) -> None:
    """The check can fail: features from bars shifted by one (a peek at the next bar) change
    what the model takes, so the parity above compares something that matters."""
    bars = market["bars"]
    honest = backtest(
        market, OnlineGate(market["trained"], "filter", INTERVAL, closed_bars(bars, INTERVAL))
    )
    peeking = closed_bars(bars.shift(-1).ffill(), INTERVAL)
    assert backtest(market, OnlineGate(market["trained"], "filter", INTERVAL, peeking)) != honest


def test_the_feed_and_the_api_row_match_the_in_process_model(market) -> None:
    bars = market["bars"].iloc[:120]
    feed = BarFeed(bars.iloc[:60], SYMBOL, INTERVAL, 10_000)
    from actors.messages import BarClosed

    step = pd.Timedelta(INTERVAL.replace("m", "min"))
    for ts, row in bars.iloc[60:].iterrows():
        msg = BarClosed(int((ts + step).value), SYMBOL, INTERVAL, int(ts.value), *row.tolist())
        feed.handle(msg)
        feed.handle(msg)  # a repeat is kept once
    got = feed.bars()
    assert list(got.index.as_unit("ns").asi8) == list(bars.index.as_unit("ns").asi8)
    np.testing.assert_array_equal(got.to_numpy(), bars.loc[:, got.columns].to_numpy())
    signal = type("S", (), {"ts": int((bars.index[99] + step).value)})()
    history = feed.history(signal.ts)
    assert len(history) == 100
    trained = market["trained"]
    row = ImputedFeatures(trained, INTERVAL, feed.history)(signal)
    assert list(row) == list(trained.model.columns) and all(np.isfinite(list(row.values())))
    direct = FeatureBuilder(FeatureConfig.from_dict(trained.features)).rows(history, INTERVAL, [99])
    p = trained.model.predict_proba(direct)[0]
    x = np.array([list(row.values())])
    assert trained.model.estimator.predict_proba(x)[0, 1] == pytest.approx(p, rel=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model-fallback", "maybe"], "--model-fallback 'maybe': use trade or skip"),
        (["--model-url", "127.0.0.1:8766"], "must be an http(s) URL"),
        (["--model-timeout", "0"], "--model-timeout must be > 0"),
        (["--no-model", "--model-url", "http://127.0.0.1:1"], "contradict"),
        (["--min-notional", "-1"], "--min-notional must be a number >= 0"),
        (["--lot-size", "nan"], "--lot-size must be a number >= 0"),
    ],
)
def test_bad_model_options_are_one_clear_error_before_anything_runs(
    tmp_path, args, message
) -> None:
    from typer.testing import CliRunner

    from cli import app

    db = tmp_path / "live.db"
    result = CliRunner().invoke(app, ["live", "--db", f"sqlite:///{db}", *args])
    assert isinstance(result.exception, ValueError) and message in str(result.exception)
    assert not db.exists()  # checked before the database is opened


def test_instances_are_found_by_database_id_or_prod_json_entry(tmp_path) -> None:
    import json

    from backtest.portfolio_config import build_members, load_portfolio_config
    from live.setup import member_instances

    config = tmp_path / "prod.json"
    config.write_text(
        json.dumps(
            {
                "instances": [
                    {"family": "sr_breakout", "symbol": SYMBOL, "interval": "5m", "instance_id": 7},
                    {"family": "sr_breakout", "symbol": SYMBOL, "interval": "1h"},
                ]
            }
        )
    )
    members = build_members(load_portfolio_config(config))
    assert list(member_instances(members, config).values()) == [7, None]
    db_member = PortfolioMember("#12 sr_breakout[ETH/BTC 5m]", members[0].strategy, SYMBOL, "5m")
    assert member_instances([db_member], None) == {db_member.label: 12}
