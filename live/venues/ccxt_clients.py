"""ccxt clients (REST and ccxt.pro websocket) pointed at an exchange URL, and API keys.

`--url http://127.0.0.1:P` replaces the host of every REST endpoint (store.download.make_exchange)
and of every websocket endpoint, so nothing can leave the machine (docs/live.md#ccxt-against-a-local-server).
Live clients run ccxt's rate limiter with the exchange's request weights (ccxt has Binance's),
send `recvWindow` with every signed request and time out after `CallSettings.timeout_ms`
(live/venues/outcomes.py; tests shorten both). Each client notes the HTTP status of its last
answer (`last_status`): a 5xx is an unknown outcome whatever ccxt made of its body.
Keys come only from the environment: RAYTRADER_<EXCHANGE>_API_KEY / _API_SECRET, else
RAYTRADER_API_KEY / RAYTRADER_API_SECRET; never from files or the database, never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

from core.errors import UserError
from live.venues.outcomes import CallSettings

if TYPE_CHECKING:
    import ccxt
    import ccxt.pro

OPTIONS = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "defaultType": "spot",
}


CcxtJson = dict[str, Any]  # ccxt's unified order, trade, ticker or balance: a JSON object
Candle = list[float]  # [open ms, open, high, low, close, volume]
Configured = TypeVar("Configured", "ccxt.Exchange", "ccxt.pro.Exchange")


class OrderClient(Protocol):
    """The async ccxt calls the broker makes (ccxt.pro's binance, or live/venues/margin.py's
    MarginClient over it): orders, fills, balances and the markets' precision."""

    async def load_markets(self) -> Mapping[str, CcxtJson]: ...
    async def close(self) -> None: ...
    def market(self, symbol: str) -> CcxtJson: ...
    def amount_to_precision(self, symbol: str, amount: float) -> str: ...
    def price_to_precision(self, symbol: str, price: float | None) -> str: ...
    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: dict | None = None,
    ) -> CcxtJson: ...
    async def cancel_order(
        self, id: str, symbol: str | None = None, params: dict | None = None
    ) -> CcxtJson: ...
    async def fetch_order(
        self, id: str | None, symbol: str | None = None, params: dict | None = None
    ) -> CcxtJson: ...
    async def fetch_open_orders(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict | None = None,
    ) -> list[CcxtJson]: ...
    async def fetch_my_trades(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict | None = None,
    ) -> list[CcxtJson]: ...
    async def fetch_balance(self, params: dict | None = None) -> CcxtJson: ...
    async def privatePostOrderListOco(self, request: dict) -> CcxtJson: ...  # noqa: N802 - ccxt's


class StreamClient(Protocol):
    """The ccxt.pro calls and state the bar stream uses: candles and tickers, by websocket and
    REST, and the websocket connections and candle caches ccxt keeps."""

    clients: dict[str, object]  # url -> websocket connection
    ohlcvs: dict[str, dict[str, list[Candle]]]  # symbol -> interval -> cached candles
    options: dict[str, Any]

    async def load_markets(self) -> Mapping[str, CcxtJson]: ...
    async def close(self) -> None: ...
    async def watch_ohlcv(self, symbol: str, timeframe: str) -> list[Candle]: ...
    async def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None = None, limit: int | None = None
    ) -> list[Candle]: ...
    async def watch_ticker(self, symbol: str) -> CcxtJson: ...
    async def fetch_ticker(self, symbol: str) -> CcxtJson: ...
    def safe_integer(self, values: Mapping[str, object], key: str, default: int) -> int: ...


def api_keys(exchange: str, env: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(key, secret) from the environment, per exchange first; None when not both are set."""
    env = os.environ if env is None else env
    prefix = f"RAYTRADER_{exchange.upper()}_"
    key = env.get(prefix + "API_KEY") or env.get("RAYTRADER_API_KEY")
    secret = env.get(prefix + "API_SECRET") or env.get("RAYTRADER_API_SECRET")
    return (key, secret) if key and secret else None


def _rehost(urls: object, http_base: str, ws_base: str) -> object:
    if isinstance(urls, dict):
        return {k: _rehost(v, http_base, ws_base) for k, v in urls.items()}
    if isinstance(urls, str) and urls.startswith(("http", "ws")):
        base = ws_base if urls.startswith("ws") else http_base
        return base + urlsplit(urls).path
    return urls


def _settings(calls: CallSettings | None) -> dict[str, Any]:
    calls = calls or CallSettings()
    options = {**OPTIONS, "recvWindow": calls.recv_window_ms}
    return {
        "enableRateLimit": calls.rate_limit,
        # Binance counts request weight per minute. ccxt's default leaky bucket holds one
        # request's worth: it spaces every call by rateLimit x cost, so the orders of one bar
        # (entry, bracket, reads) queued for 0.5-1 s. The rolling window allows the same weight
        # per minute (60 s / rateLimit) in bursts, as the exchange itself does.
        "rateLimiterAlgorithm": "rollingWindow",
        "rollingWindowSize": 60_000,
        "timeout": calls.timeout_ms,
        "options": options,
    }


def _note_status(client: Any) -> None:
    """Keep the HTTP status of the client's last answer (ccxt keeps its headers and body)."""
    original = client.on_rest_response
    client.last_status = None

    def on_rest_response(code: int, *args: Any) -> Any:
        client.last_status = int(code)
        return original(code, *args)

    client.on_rest_response = on_rest_response


def _configure(client: Configured, url: str | None, keys: tuple[str, str] | None) -> Configured:
    _note_status(client)
    if url:
        base = url.rstrip("/")
        ws_base = "ws" + base[4:] if base.startswith("http") else base
        client.urls["api"] = _rehost(client.urls["api"], base, ws_base)
    if keys:
        client.apiKey, client.secret = keys
    return client


def rest_client(
    exchange: str,
    url: str | None = None,
    keys: tuple[str, str] | None = None,
    calls: CallSettings | None = None,
) -> ccxt.Exchange:
    import ccxt

    cls = getattr(ccxt, exchange, None)
    if cls is None:
        raise UserError(f"unknown exchange {exchange!r}: ccxt has no such exchange (e.g. binance)")
    return _configure(cls(_settings(calls)), url, keys)


def ws_client(
    exchange: str,
    url: str | None = None,
    keys: tuple[str, str] | None = None,
    calls: CallSettings | None = None,
) -> ccxt.pro.Exchange:
    import ccxt.pro

    cls = getattr(ccxt.pro, exchange, None)
    if cls is None:
        raise UserError(
            f"exchange {exchange!r} has no websocket client in ccxt.pro; live trading needs one"
        )
    return _configure(cls(_settings(calls)), url, keys)
