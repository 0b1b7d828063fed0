"""ccxt clients (REST and ccxt.pro websocket) pointed at an exchange URL, and API keys.

`--url http://127.0.0.1:P` replaces the host of every REST endpoint (store.download.make_exchange)
and of every websocket endpoint, so nothing can leave the machine (docs/live.md#ccxt-against-a-local-server).
Keys come only from the environment: RAYTRADER_<EXCHANGE>_API_KEY / _API_SECRET, else
RAYTRADER_API_KEY / RAYTRADER_API_SECRET; never from files or the database, never logged.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

OPTIONS = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "defaultType": "spot",
}


def api_keys(exchange: str, env: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(key, secret) from the environment, per exchange first; None when not both are set."""
    env = os.environ if env is None else env
    prefix = f"RAYTRADER_{exchange.upper()}_"
    key = env.get(prefix + "API_KEY") or env.get("RAYTRADER_API_KEY")
    secret = env.get(prefix + "API_SECRET") or env.get("RAYTRADER_API_SECRET")
    return (key, secret) if key and secret else None


def _rehost(urls: Any, http_base: str, ws_base: str) -> Any:
    if isinstance(urls, dict):
        return {k: _rehost(v, http_base, ws_base) for k, v in urls.items()}
    if isinstance(urls, str) and urls.startswith(("http", "ws")):
        base = ws_base if urls.startswith("ws") else http_base
        return base + urlsplit(urls).path
    return urls


def _configure(client: Any, url: str | None, keys: tuple[str, str] | None) -> Any:
    if url:
        base = url.rstrip("/")
        ws_base = "ws" + base[4:] if base.startswith("http") else base
        client.urls["api"] = _rehost(client.urls["api"], base, ws_base)
    if keys:
        client.apiKey, client.secret = keys
    return client


def rest_client(exchange: str, url: str | None = None, keys: tuple[str, str] | None = None) -> Any:
    import ccxt

    cls = getattr(ccxt, exchange, None)
    if cls is None:
        raise ValueError(f"unknown exchange {exchange!r}: ccxt has no such exchange (e.g. binance)")
    return _configure(cls({"enableRateLimit": False, "options": dict(OPTIONS)}), url, keys)


def ws_client(exchange: str, url: str | None = None, keys: tuple[str, str] | None = None) -> Any:
    import ccxt.pro

    cls = getattr(ccxt.pro, exchange, None)
    if cls is None:
        raise ValueError(
            f"exchange {exchange!r} has no websocket client in ccxt.pro; live trading needs one"
        )
    return _configure(cls({"enableRateLimit": False, "options": dict(OPTIONS)}), url, keys)
