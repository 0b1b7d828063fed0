"""What a newcomer meets: every standard interval served, a replay that starts where the data
is and jumps over spans without bars, and start-up options checked with one error line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from core.errors import UserError
from live.venues.ccxt_clients import rest_client
from localexchange.replay import ReplayMarket, load_market
from localexchange.server_thread import ExchangeThread
from store.resample import resample_bars
from tests.live.helpers import KEY, SAMPLE, SECRET, T0

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def minute_bars(n: int, start: pd.Timestamp = T0) -> pd.DataFrame:
    index = pd.date_range(start, periods=n, freq="1min", tz="UTC")
    close = [100.0 + i % 7 - i % 3 for i in range(n)]
    return pd.DataFrame(
        {
            "open": close,
            "high": [c + 2 for c in close],
            "low": [c - 2 for c in close],
            "close": close,
            "volume": [1.0 + i for i in range(n)],
        },
        index=index,
    )


def test_every_standard_interval_is_served_from_the_finest_bars() -> None:
    frame = minute_bars(180)  # 3 hours from 00:00 UTC
    market = ReplayMarket()
    market.add("ETH/BTC", "1m", frame)
    market.add_standard_intervals()
    market.start_at(None)
    # complete UTC buckets only: one 2h bar, no 4h or 1d bar in three hours
    assert market.intervals("ETH/BTC") == ["1m", "3m", "5m", "15m", "30m", "1h", "2h"]
    with ExchangeThread(market) as ex:
        ex.step(180)
        c = rest_client("binance", ex.url, (KEY, SECRET))
        rows = c.fetch_ohlcv("ETH/BTC", "15m", None, 1000)
        expected = resample_bars(frame, "1m", "15m")
        assert len(rows) == len(expected) == 12
        got = pd.DataFrame(
            [r[1:] for r in rows], columns=["open", "high", "low", "close", "volume"]
        )
        assert got.to_numpy().tolist() == expected.to_numpy().tolist()
        assert [r[0] for r in rows] == list(expected.index.as_unit("ms").asi8)


def test_a_resampled_interval_streams_its_closed_bars() -> None:
    frame = minute_bars(30)
    market = ReplayMarket()
    market.add("ETH/BTC", "1m", frame)
    market.add_standard_intervals()
    market.start_at(None)
    with ExchangeThread(market) as ex:

        async def first_closed() -> dict:
            url = ex.url.replace("http", "ws") + "/ws"
            async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
                await ws.send_str(
                    json.dumps({"method": "SUBSCRIBE", "params": ["ethbtc@kline_15m"], "id": 1})
                )
                assert json.loads((await ws.receive(timeout=10)).data)["result"] is None
                await asyncio.get_running_loop().run_in_executor(None, ex.step, 15)
                while True:
                    event = json.loads((await ws.receive(timeout=10)).data)
                    if event["k"]["x"]:
                        return event["k"]

        kline = asyncio.run(first_closed())
    bucket = resample_bars(frame, "1m", "15m").iloc[0]
    assert kline["i"] == "15m" and kline["t"] == T0.value // 1_000_000
    assert float(kline["h"]) == bucket["high"] and float(kline["v"]) == bucket["volume"]


def test_the_sample_replay_starts_where_the_symbols_have_data() -> None:
    market = load_market(SAMPLE)
    market.start_where_most_data()
    eth = market.finest("ETH/BTC")
    assert market.now_ms == int(eth.open_ms[0])  # not the 2017 test file's first bar
    assert "15m" in market.intervals("ADA/BTC") and "1h" in market.intervals("ADA/BTC")
    with ExchangeThread(market, speed=60):
        started = time.monotonic()
        while eth.closed == 0:
            assert time.monotonic() - started < 8, "ETH/BTC's first bar did not close in 8 s"
            time.sleep(0.1)
    assert time.monotonic() - started < 8


def test_the_replay_jumps_over_a_span_without_bars() -> None:
    market = ReplayMarket()
    five = pd.date_range(T0, periods=2, freq="5min", tz="UTC")
    later = pd.date_range(T0 + pd.Timedelta(days=30), periods=2, freq="5min", tz="UTC")
    for symbol, index in (("ETH/BTC", five), ("LTC/BTC", later)):
        bars = pd.DataFrame({c: 1.0 for c in ("open", "high", "low", "close", "volume")}, index)
        market.add(symbol, "5m", bars)
    market.start_at(None)
    with ExchangeThread(market, speed=600) as ex:  # a 5m bar every 0.5 s
        started = time.monotonic()
        while market.finest("LTC/BTC").closed == 0:
            assert time.monotonic() - started < 5, "the 30 days without bars were not skipped"
            time.sleep(0.05)
        state = json.loads(urllib.request.urlopen(ex.url + "/_local/state", timeout=5).read())
    assert state["now"] >= int(later[0].value // 1_000_000)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fee-bps", "-50"], "--fee-bps must be a number >= 0"),
        (["--fee-bps", "nan"], "--fee-bps must be a number >= 0"),
        (["--speed", "nan"], "--speed must be a number >= 0"),
        (["--speed", "inf"], "--speed must be a number >= 0"),
        (["--balance", "BTC=nan"], "--balance entry 'BTC=nan'"),
        (["--balance", "BTC=inf"], "--balance entry 'BTC=inf'"),
        (["--key", "nosecret"], "--key 'nosecret' is not KEY:SECRET"),
        (["--start", "2030-01-01"], "--start 2030-01-01 is after the data"),
    ],
)
def test_bad_start_up_options_are_one_clear_error(args, message) -> None:
    data = SAMPLE / "ETH_BTC-5m.csv.gz"
    result = runner.invoke(app, ["exchange", "serve", "--data", str(data), "--port", "0", *args])
    assert isinstance(result.exception, UserError), result.output
    assert message in str(result.exception)


def test_a_bad_option_exits_2_with_one_error_line() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "exchange", "serve", "--fee-bps", "-50"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --fee-bps must be a number >= 0")
