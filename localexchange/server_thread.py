"""Run a LocalExchange on its own event loop in a background thread (tests, benchmarks, demo).

with ExchangeThread(market) as ex:      # port chosen by the OS on 127.0.0.1
    client = local_client(ex.url)        # live/venues/ccxt_clients.py
    ex.step(3)                           # close the next three bar times (speed 0)
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from localexchange.faults import FaultPlan
from localexchange.rate_limit import WeightLimit
from localexchange.replay import ReplayMarket
from localexchange.server import DEFAULT_SECRET, LocalExchange

DEFAULT_FUNDING = {"BTC": 10.0, "ETH": 100.0, "USDT": 100_000.0}


class ExchangeThread:
    def __init__(
        self,
        market: ReplayMarket,
        funding: dict[str, float] | None = None,
        speed: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        secret: str = DEFAULT_SECRET,
        keys: dict[str, str] | None = None,
        weight_limit: WeightLimit | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        self.exchange = LocalExchange(
            market,
            funding or DEFAULT_FUNDING,
            speed,
            secret,
            keys=keys,
            weight_limit=weight_limit,
            faults=faults,
        )
        self.host, self.port = host, port
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, daemon=True, name="local-exchange"
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> ExchangeThread:
        self._thread.start()
        self.port = self.call(self.exchange.start(self.host, self.port))
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.call(self.exchange.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)

    def call(self, coroutine: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def step(self, n: int = 1) -> int:
        return self.call(self.exchange.step(n))

    def drop_streams(self) -> None:
        async def drop() -> None:
            for ws in list(self.exchange._market_ws):
                await ws.close()

        self.call(drop())
