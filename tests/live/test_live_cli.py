"""`cli.py live` and `cli.py exchange serve` from the command line: bad input is one `error:`
line with exit 2 and nothing written; a real run against a served exchange stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from cli import app
from live.server_thread import ExchangeThread
from store.db import get_engine
from store.instances import add_instance
from tests.live.helpers import SAMPLE, market_of, sample

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
def test_bad_input_is_one_clear_error_and_nothing_is_written(exchange, sqlite_url, instance,
                                                             args, message) -> None:  # fmt: skip
    if instance is not None:
        add_instance(sqlite_url, "sr_breakout", "binance", instance[0], instance[1], {})
    error = live("--url", exchange.url, "--db", sqlite_url, *args)
    assert isinstance(error, ValueError) and message in str(error), error
    assert rows(sqlite_url, "bars") == 0 and rows(sqlite_url, "orders") == 0


def test_real_mode_without_keys_exits_2_with_one_error_line(tmp_path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RAYTRADER_") or k == "RAYTRADER_DB"
    }
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "live", "--real"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --real needs API keys")
    assert "RAYTRADER_BINANCE_API_KEY" in lines[0]


@pytest.mark.ray
def test_serve_and_trade_live_until_sigterm(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'live.db'}"
    add_instance(db, "sr_breakout", "binance", "ETH/BTC", "5m", {})
    env = {**os.environ, "RAYTRADER_DASHBOARD": "0", "RAYTRADER_DB": db}
    serve = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "exchange", "serve", "--data",
                              str(SAMPLE / "ETH_BTC-5m.csv.gz"), "--port", "0", "--speed", "600",
                              "--start", "2018-01-12"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    trader = None
    try:
        port = _port(serve)
        trader = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "live", "--url",
                                   f"http://127.0.0.1:{port}"], cwd=tmp_path, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        errors: list[str] = []
        outputs: list[str] = []
        # One reader per pipe, joined after the exit: communicate() would race the stderr reader
        # for the last lines (the "stopped:" summary is among them).
        readers = [threading.Thread(target=lambda: errors.extend(trader.stderr), daemon=True),
                   threading.Thread(target=lambda: outputs.extend(trader.stdout), daemon=True)]  # fmt: skip
        for reader in readers:
            reader.start()
        _wait_for(lambda: any("live dry run on binance" in line for line in errors), 180)
        warm = rows(db, "bars")  # the warm-up bars, stored before trading starts
        _wait_for(lambda: rows(db, "bars") >= warm + 5, 60)  # a 5m bar every 0.5 s
        trader.send_signal(signal.SIGTERM)
        trader.wait(timeout=60)
        for reader in readers:
            reader.join(timeout=30)
        text_err = "".join(errors)
        assert trader.returncode == 0, text_err
        stopped = next(line for line in errors if line.startswith("stopped:"))
        assert int(stopped.split()[1]) >= 5 and "left as they are" in stopped
    finally:
        for proc in (trader, serve):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


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
