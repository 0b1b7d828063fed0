"""The websocket bar routine: closed bars only, none skipped or repeated across dropped
connections, every bar stored; run on an event loop against the local exchange."""

from __future__ import annotations

import asyncio

import pandas as pd

from live.venues.bar_stream import BarStream
from localexchange.server_thread import ExchangeThread
from store.bars import load_bars
from tests.live.helpers import market_of, sample

N = 40


async def _run(ex: ExchangeThread, db_url: str, drops: set[int]) -> tuple[list, dict]:
    stream = BarStream(
        "binance", ex.url, [("ETH/BTC", "5m")], {}, db_url, backoff=(0.05, 0.2), quiet_s=0.5
    )
    await stream.start()
    loop = asyncio.get_running_loop()
    got: list = []
    try:
        for i in range(N):
            await loop.run_in_executor(None, ex.step, 1)
            if i in drops:  # the server closes every market stream
                await loop.run_in_executor(None, ex.drop_streams)
            got += await stream.next_bars(0.05)
        while len(got) < N:
            more = await stream.next_bars(5.0)
            if not more:
                break
            got += more
        return got, stream.state()
    finally:
        await stream.stop()


def test_a_dropped_stream_loses_no_bar_and_repeats_none(sqlite_url: str) -> None:
    frame = sample(n=N + 1)
    with ExchangeThread(market_of(frame)) as ex:
        got, _state = asyncio.run(_run(ex, sqlite_url, drops={5, 17, 30}))
        connections = ex.exchange.stream_connections
    opens = [b.bar_ts for b in got]
    expected = pd.DatetimeIndex(frame.index[:N]).as_unit("ns").asi8.tolist()
    assert opens == expected  # all N closed bars, in order, once each
    assert connections >= 2  # it did reconnect after a drop (ccxt reconnects on the next watch)
    first = got[0]
    assert (first.open, first.high, first.low, first.close) == tuple(
        frame.iloc[0][["open", "high", "low", "close"]]
    )
    assert first.ts == first.bar_ts + 300 * 10**9  # delivered at its close
    stored = load_bars(sqlite_url, "binance", "ETH/BTC", "5m")
    pd.testing.assert_frame_equal(stored, frame.iloc[:N], check_freq=False, check_names=False)


def test_the_bar_in_progress_is_never_delivered(sqlite_url: str) -> None:
    frame = sample(n=10)

    async def run(ex: ExchangeThread) -> list:
        stream = BarStream("binance", ex.url, [("ETH/BTC", "5m")], {}, None, quiet_s=0.3)
        await stream.start()
        try:
            await asyncio.get_running_loop().run_in_executor(None, ex.step, 3)
            got = await stream.next_bars(5.0)
            await asyncio.sleep(1.0)  # quiet: the REST confirmation runs, and adds nothing
            return got + await stream.next_bars(0.1)
        finally:
            await stream.stop()

    with ExchangeThread(market_of(frame)) as ex:
        got = asyncio.run(run(ex))
    assert len(got) == 3  # bars 0..2 closed; bar 3 is in progress


def test_the_ticker_of_each_symbol_follows_the_stream_across_a_drop() -> None:
    frame = sample(n=12)

    def price(i: int) -> float:  # the exchange's last price: the open of the bar in progress
        return float(f"{frame['open'].iloc[i]:.10f}")

    async def until_last(stream: BarStream, want: float) -> dict:
        for _ in range(100):
            ticker = stream.tickers().get("ETH/BTC")
            if ticker and ticker["last"] == want:
                return ticker
            await asyncio.sleep(0.05)
        raise AssertionError(f"ticker {stream.tickers()} never reached {want}")

    async def run(ex: ExchangeThread) -> tuple[list, set]:
        stream = BarStream(
            "binance", ex.url, [("ETH/BTC", "5m")], {}, None, backoff=(0.05, 0.2), quiet_s=0.5
        )
        await stream.start()
        loop = asyncio.get_running_loop()
        try:
            seen = [await until_last(stream, price(0))]  # REST, before any bar closed
            await loop.run_in_executor(None, ex.step, 3)
            seen.append(await until_last(stream, price(3)))  # the <sym>@ticker stream
            streams = set().union(*ex.exchange._market_ws.values())
            await loop.run_in_executor(None, ex.drop_streams)
            await asyncio.sleep(0.3)  # the watchers reconnect (backoff 0.05 s)
            await loop.run_in_executor(None, ex.step, 3)
            seen.append(await until_last(stream, price(6)))
            assert stream.state()["tickers"]["ETH/BTC"]["last"] == price(6)
            return seen, streams
        finally:
            await stream.stop()

    with ExchangeThread(market_of(frame)) as ex:
        seen, streams = asyncio.run(run(ex))
    assert {"ethbtc@miniTicker", "ethbtc@kline_5m"} <= streams  # ccxt.pro's default ticker
    assert [t["last"] for t in seen] == [price(0), price(3), price(6)]
    assert seen[1]["ms"] > seen[0]["ms"]  # a newer ticker, from the stream
