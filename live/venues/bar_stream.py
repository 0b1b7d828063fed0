"""The websocket routine of one exchange: closed bars of every active (symbol, interval).

A plain class run inside one async Ray actor (or any event loop). For each series a task runs
ccxt.pro `watch_ohlcv`; ccxt drops Binance's "closed" flag, so a bar counts as closed when a bar
with a later timestamp arrives (docs/live.md#how-it-runs); a bar still forming is never delivered.
On every (re)connect the task first catches up with REST `fetch_ohlcv` from the last bar it
delivered, so a dropped connection skips no bar; a bar at or before the last delivered one is
never delivered again. Connection errors are retried with exponential backoff. Every delivered
bar is saved to the bars table (the one backtests read) before it is handed out.
Beside the bars, one task per active symbol runs ccxt.pro `watch_ticker` (REST `fetch_ticker`
first, so a mark exists before the first update) and keeps the last ticker of each symbol
(`tickers()`): the mark price shown in the status and used for marks between bars.
`stop()` sets an asyncio.Event, cancels the watchers and closes the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypedDict

from actors.messages import BarClosed
from core.intervals import interval_ns
from live.venues.ccxt_clients import Candle, CcxtJson, StreamClient

if TYPE_CHECKING:
    from ccxt.async_support.base.ws.cache import ArrayCacheByTimestamp

log = logging.getLogger("raytrader.live.bars")
MS = 1_000_000
SeriesKey = tuple[str, str]


class Mark(TypedDict):
    """A symbol's last ticker: the mark price shown between bars."""

    last: float
    bid: float | None
    ask: float | None
    ms: int | None


class BarStream:
    def __init__(
        self,
        exchange: str,
        url: str | None,
        series: list[SeriesKey],
        last_delivered_ms: dict[SeriesKey, int],
        db_url: str | None = None,
        backoff: tuple[float, float] = (0.2, 10.0),
        quiet_s: float = 5.0,
        client_factory: Callable[[], StreamClient] | None = None,
    ) -> None:
        self.exchange, self.url = exchange, url
        self.series = list(series)
        self.last = dict(last_delivered_ms)  # series -> open ms of the last bar delivered
        self.db_url = db_url
        self.backoff = backoff
        self.quiet_s = quiet_s  # no stream message this long: confirm closed bars through REST
        self._factory = client_factory
        self._queue: asyncio.Queue | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self.client: StreamClient | None = None
        self.connects = {key: 0 for key in self.series}
        self._connections: dict[SeriesKey, frozenset[int]] = {}
        self.received = 0
        self.errors: list[str] = []
        self.symbols = sorted({symbol for symbol, _ in self.series})
        self._tickers: dict[str, Mark] = {}  # symbol -> its last ticker
        if client_factory is None:  # while the actor boots, not when the node waits for start
            import ccxt.pro  # noqa: F401

    # -- lifecycle (async actor methods) ------------------------------------------------------
    async def start(self) -> bool:
        from live.venues.ccxt_clients import ws_client

        self._queue, self._stop = asyncio.Queue(), asyncio.Event()
        self.client = self._factory() if self._factory else ws_client(self.exchange, self.url)
        await self.client.load_markets()
        self._tasks = [asyncio.create_task(self._watch(key)) for key in self.series]
        self._tasks += [asyncio.create_task(self._watch_ticker(s)) for s in self.symbols]
        return True

    async def stop(self) -> bool:
        if self._stop is not None:
            self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.client is not None:
            await self.client.close()
        return True

    async def next_bars(self, max_wait: float = 0.5) -> list[BarClosed]:
        """Bars closed since the last call (waits up to max_wait for the first)."""
        bars: list[BarClosed] = []
        try:
            bars.append(await asyncio.wait_for(self._queue.get(), max_wait))
        except TimeoutError:
            return bars
        while not self._queue.empty():
            bars.append(self._queue.get_nowait())
        return sorted(bars, key=lambda b: (b.ts, b.symbol, b.interval))

    def tickers(self) -> dict[str, Mark]:
        """The last ticker of every active symbol: {symbol: {last, bid, ask, ms}}."""
        return {symbol: Mark(**t) for symbol, t in self._tickers.items()}

    def state(self) -> dict[str, object]:
        return {
            "received": self.received,
            "connects": {f"{s} {i}": n for (s, i), n in self.connects.items()},
            "last": dict(self.last),
            "errors": self.errors[-5:],
            "tickers": self.tickers(),
        }

    # -- per symbol ---------------------------------------------------------------------------
    async def _watch_ticker(self, symbol: str) -> None:
        delay = self.backoff[0]
        while not self._stop.is_set():
            try:
                if symbol not in self._tickers:  # a mark before the stream's first update
                    self._keep_ticker(symbol, await self.client.fetch_ticker(symbol))
                while not self._stop.is_set():
                    self._keep_ticker(symbol, await self.client.watch_ticker(symbol))
                    delay = self.backoff[0]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # as for bars: reconnect after a pause
                self.errors.append(f"{symbol} ticker: {type(exc).__name__}: {exc}")
                log.warning("ticker stream %s: %s; reconnecting in %.1fs", symbol, exc, delay)
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, self.backoff[1])

    def _keep_ticker(self, symbol: str, ticker: CcxtJson) -> None:
        last = ticker.get("last")
        if last is None or float(last) <= 0:
            return  # an empty ticker (no trade yet) is no mark
        self._tickers[symbol] = Mark(
            last=float(last),
            bid=ticker.get("bid"),
            ask=ticker.get("ask"),
            ms=ticker.get("timestamp"),
        )

    # -- per series ---------------------------------------------------------------------------
    async def _watch(self, key: SeriesKey) -> None:
        delay = self.backoff[0]
        waiting: asyncio.Future | None = None
        while not self._stop.is_set():
            try:
                self.connects[key] += 1
                await self._catch_up(key, None)
                while not self._stop.is_set():
                    if waiting is None:
                        waiting = asyncio.ensure_future(self.client.watch_ohlcv(key[0], key[1]))
                        await self._missed_wakeup(key)
                    done, _ = await asyncio.wait({waiting}, timeout=self.quiet_s)
                    if not done:  # quiet stream: a bar may have closed before we subscribed
                        await self._catch_up(key, None)
                        continue
                    waiting, finished = None, waiting
                    finished.result()  # raises the stream's error, if any
                    await self._after_reconnect(key)
                    # ccxt returns only the new updates; its cache holds every recent candle,
                    # and may grow while we deliver (REST, database): read it until it is quiet
                    while await self._closed_from_stream(key, self._cached(key)):
                        pass
                    delay = self.backoff[0]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # ccxt NetworkError & co: reconnect after a pause
                waiting = None
                self.errors.append(f"{key[0]} {key[1]}: {type(exc).__name__}: {exc}")
                log.warning("bar stream %s %s: %s; reconnecting in %.1fs", *key, exc, delay)
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, self.backoff[1])

    async def _missed_wakeup(self, key: SeriesKey) -> None:
        """ccxt wakes a watcher only if its future exists when an update is handled; an update
        handled between our last read of the cache and the new future (a kline split over two
        reads) wakes nobody, and its bar would wait `quiet_s` for the REST check. Let the new
        watch register (one loop turn), then read the cache again, on the same connection only
        (after a reconnect `_after_reconnect` decides what the cache may still be trusted for)."""
        await asyncio.sleep(0)
        connections = frozenset(id(c) for c in self.client.clients.values())
        if connections == self._connections.get(key):
            while await self._closed_from_stream(key, self._cached(key)):
                pass

    async def _after_reconnect(self, key: SeriesKey) -> None:
        """ccxt reconnects by itself; a candle cached before the drop may have missed its last
        updates, so after a new connection every bar before the newest comes from REST."""
        connections = frozenset(id(c) for c in self.client.clients.values())
        if connections == self._connections.get(key):
            return
        self._connections[key] = connections
        cached = self._cached(key)
        if cached:
            newest = max(int(c[0]) for c in cached)
            await self._catch_up(key, newest)
            # read the cache again: updates that arrived during the REST call are kept (the
            # snapshot from before it would drop them, and their bar would wait for `quiet_s`)
            self.client.ohlcvs[key[0]][key[1]] = _only_newest(
                self._cached(key), newest, self.client
            )

    def _cached(self, key: SeriesKey) -> list[Candle]:
        return list(self.client.ohlcvs.get(key[0], {}).get(key[1]) or [])

    async def _closed_from_stream(self, key: SeriesKey, candles: list[Candle]) -> bool:
        """Deliver the closed bars among `candles`; True when there were any."""
        if not candles:
            return False
        newest = max(int(c[0]) for c in candles)
        closed = sorted(
            (c for c in candles if self._is_new(key, c) and int(c[0]) < newest), key=lambda c: c[0]
        )
        if not closed:
            return False
        step = interval_ns(key[1]) // MS
        last = self.last.get(key)
        if last is None or int(closed[0][0]) > last + step:
            await self._catch_up(key, int(closed[0][0]))  # the stream skipped bars: ask REST
        await self._deliver(key, [c for c in closed if self._is_new(key, c)])
        return True

    async def _catch_up(self, key: SeriesKey, before_ms: int | None) -> None:
        """Closed bars after the last delivered one (and before `before_ms`), through REST."""
        since = self.last.get(key)
        while True:
            start = None if since is None else since + 1
            rows = await self.client.fetch_ohlcv(key[0], key[1], start, 1000)
            if not rows:
                return
            # the newest row of an open market is the bar in progress: not closed yet
            closed = [r for r in rows[:-1] if self._is_new(key, r)]
            if before_ms is not None:
                closed = [r for r in closed if int(r[0]) < before_ms]
            await self._deliver(key, closed)
            if len(rows) < 1000 or not closed:
                return
            since = self.last[key]

    def _is_new(self, key: SeriesKey, candle: list) -> bool:
        last = self.last.get(key)
        return last is None or int(candle[0]) > last

    async def _deliver(self, key: SeriesKey, rows: list[Candle]) -> None:
        if not rows:
            return
        if self.db_url:
            await asyncio.to_thread(save_live_bars, self.db_url, self.exchange, key, rows)
        step_ns = interval_ns(key[1])
        for t, o, h, low, c, v in (r[:6] for r in rows):
            bar_ts = int(t) * MS
            self._queue.put_nowait(
                BarClosed(
                    bar_ts + step_ns,
                    key[0],
                    key[1],
                    bar_ts,
                    float(o),
                    float(h),
                    float(low),
                    float(c),
                    float(v or 0.0),
                )
            )
            self.last[key] = int(t)
            self.received += 1


def _only_newest(cached: list[Candle], newest: int, client: StreamClient) -> ArrayCacheByTimestamp:
    """A fresh ccxt candle cache holding only the candles from `newest` on (the forming one and
    any that came after it on the new connection)."""
    from ccxt.async_support.base.ws.cache import ArrayCacheByTimestamp

    fresh = ArrayCacheByTimestamp(client.safe_integer(client.options, "OHLCVLimit", 1000))
    for candle in cached:
        if int(candle[0]) >= newest:
            fresh.append(candle)
    return fresh


def save_live_bars(db_url: str, exchange: str, key: SeriesKey, rows: list[Candle]) -> None:
    """Live bars into the bars table (kept if already stored: the import rule)."""
    import pandas as pd

    from store.bars import save_bars

    frame = pd.DataFrame(
        [r[:6] for r in rows], columns=["timestamp", "open", "high", "low", "close", "volume"]
    )
    frame.index = pd.to_datetime(frame.pop("timestamp").astype("int64"), unit="ms", utc=True)
    save_bars(db_url, exchange, key[0], key[1], frame.astype("float64"))
