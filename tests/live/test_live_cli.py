"""`cli.py live` and `cli.py exchange serve` from the command line: bad input is one `error:`
line with exit 2 and nothing written; a real run against a served exchange stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from cli import app
from live.venues.ccxt_clients import rest_client
from localexchange.server_thread import ExchangeThread
from store.db import get_engine
from store.instances import add_instance
from tests.live.helpers import SAMPLE, SECRET, market_of, sample

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(scope="module")
def exchange():
    with ExchangeThread(market_of(sample(n=50))) as ex:  # ETH/BTC 5m only
        yield ex


def live(*args: str) -> BaseException | None:
    result = runner.invoke(app, ["live", *args])
    return result.exception


def rows(db_url: str, table: str, where: str = "1=1") -> int:
    with get_engine(db_url).connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one()


@pytest.mark.parametrize(
    ("instance", "args", "message"),
    [
        (None, ["--exchange", "nosuchexchange"], "unknown exchange 'nosuchexchange'"),
        (None, [], "no strategy instances enabled for binance"),
        (("ETH/BTC", "5m"), ["--instances", "3,x"], "--instances '3,x' must be instance ids"),
        (("DOGE/BTC", "5m"), [], "symbol DOGE/BTC"),
        (("ETH/BTC", "15m"), [], "does not serve 15m bars for ETH/BTC"),
        (("ETH/BTC", "5m"), ["--url", "http://127.0.0.1:1"], "cannot reach exchange binance"),
    ],
)
def test_bad_input_is_one_clear_error_and_nothing_is_written(
    exchange, sqlite_url, instance, args, message
) -> None:
    if instance is not None:
        add_instance(sqlite_url, "sr_breakout", "binance", instance[0], instance[1], {})
    error = live("--url", exchange.url, "--db", sqlite_url, *args)
    assert isinstance(error, ValueError) and message in str(error), error
    assert rows(sqlite_url, "bars") == 0 and rows(sqlite_url, "orders") == 0


def test_real_mode_without_keys_exits_2_with_one_error_line(tmp_path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RAYTRADER_") or k == "RAYTRADER_DB"
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "live", "--real"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --real needs API keys")
    assert "RAYTRADER_BINANCE_API_KEY" in lines[0]


@pytest.mark.ray
def test_serve_and_trade_real_orders_until_sigterm(tmp_path) -> None:
    """`cli.py live --real` against `cli.py exchange serve`, both real processes: keys from the
    environment only, orders seen on the exchange under the account of those keys, never a key in
    the output; SIGTERM stops it cleanly (exit 0, the summary says what is left as it is).
    (One trader process for both: each starts its own Ray, the slow part of this test.)
    (sr_breakout enters at 09:00 on this series: a few bars after the start; the exchange steps a
    bar at a time on request.)"""
    db = f"sqlite:///{tmp_path / 'live.db'}"
    add_instance(db, "sr_breakout", "binance", "ETH/BTC", "5m", {})
    key = "cli-real-key"
    env = {
        **os.environ,
        "RAYTRADER_DASHBOARD": "0",
        "RAYTRADER_DB": db,
        "RAYTRADER_API_KEY": key,
        "RAYTRADER_API_SECRET": SECRET,
    }
    serve = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            "exchange",
            "serve",
            "--data",
            str(SAMPLE / "ETH_BTC-5m.csv.gz"),
            "--port",
            "0",
            "--speed",
            "0",
            "--start",
            "2018-01-10T08:30",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    trader = None
    try:
        url = f"http://127.0.0.1:{_port(serve)}"
        trader = subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), "live", "--real", "--url", url],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        errors: list[str] = []
        outputs: list[str] = []
        readers = [
            threading.Thread(target=lambda: errors.extend(trader.stderr), daemon=True),
            threading.Thread(target=lambda: outputs.extend(trader.stdout), daemon=True),
        ]
        for reader in readers:
            reader.start()
        client = rest_client("binance", url, (key, SECRET))  # the same account as the trader's
        seen: list[dict] = []
        _wait_for(lambda: any("live REAL orders (spot) on binance" in line for line in errors), 180)

        def step_and_look() -> bool:  # one bar per look: the exchange moves only when asked
            urllib.request.urlopen(urllib.request.Request(f"{url}/_local/step?n=1", method="POST"))
            seen[:] = client.fetch_orders("ETH/BTC")
            return bool(seen)

        _wait_for(step_and_look, 120)
        trader.send_signal(signal.SIGTERM)
        trader.wait(timeout=60)
        for reader in readers:
            reader.join(timeout=30)
        text_all = "".join(errors + outputs)
        assert trader.returncode == 0, text_all
        assert "live REAL orders (spot) on binance" in text_all
        stopped = next(line for line in errors if line.startswith("stopped:"))
        assert int(stopped.split()[1]) >= 1 and "left as they are" in stopped
        assert all(o["clientOrderId"].startswith("rt-") for o in seen)
        assert key not in text_all and SECRET not in text_all  # keys are never logged
        sent = {o["clientOrderId"] for o in seen}
        stored = _ids(db, "SELECT id FROM orders")
        assert sent and len(stored) >= len(sent)
    finally:
        for proc in (trader, serve):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


def test_dry_run_cash_is_in_the_quote_currency(exchange) -> None:
    from actors.weighted_portfolio import PortfolioMember
    from live.setup import starting_cash
    from localexchange.server_thread import DEFAULT_FUNDING
    from strategies.registry import make_strategy

    def member(symbol: str) -> PortfolioMember:
        return PortfolioMember(symbol, make_strategy("sr_breakout", {}), symbol, "5m")

    def cash(keys, members, given):
        return [s.amount for s in starting_cash(client, keys, members, given, DEFAULT_FUNDING)]

    eth_btc = [member("ETH/BTC")]
    client = rest_client("binance", exchange.url, ("cash-key", SECRET))
    assert cash(None, eth_btc, None) == [10.0]  # the local default: 10 BTC
    assert cash(("cash-key", SECRET), eth_btc, None) == [10.0]  # the account's
    assert cash(None, eth_btc, 2.5) == [2.5]
    both = [*eth_btc, member("BTC/USDT")]  # one portfolio per quote currency: BTC, USDT
    assert cash(None, both, None) == [10.0, 100_000.0]
    assert cash(None, both, {"BTC": 1.0, "USDT": 50.0}) == [1.0, 50.0]
    with pytest.raises(ValueError, match="one amount, but .* quoted in BTC, USDT"):
        cash(None, both, 2.5)
    with pytest.raises(ValueError, match="pass --cash AMOUNT \\(in EUR\\)"):
        cash(None, [member("BTC/EUR")], None)


def _ids(db_url: str, query: str) -> list:
    with get_engine(db_url).connect() as conn:
        return [r[0] for r in conn.execute(text(query))]


def _port(proc: subprocess.Popen) -> int:
    for line in proc.stdout:
        if line.startswith("port "):
            return int(line.split()[1])
    raise AssertionError("exchange serve printed no port")


def _wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"not reached within {timeout}s")
