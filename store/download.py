"""Download OHLCV bars through ccxt `fetch_ohlcv`, page by page, with ccxt's rate limiter.

Only closed bars are kept (a bar whose close time is still in the future is dropped). The
result is validated and stored exactly like an import (store.bars.save_bars).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from core.errors import UserError
from factors.bars import OHLCV, interval_delta
from store.validate import BarDataError, arrays_to_frame, validate_arrays

PAGE_LIMIT = 1000  # binance spot's maximum klines per request


class DownloadError(UserError):
    """The exchange could not be asked or did not answer as expected; says what to check."""


def make_exchange(exchange_id: str, api_url: str | None = None) -> Any:
    """A ccxt exchange with rate limiting on, spot markets only.

    `api_url` (scheme://host[:port]) replaces the host of every REST endpoint: for a proxy, a
    mirror or a local test server.
    """
    import ccxt

    cls = getattr(ccxt, exchange_id, None)
    if cls is None:
        raise DownloadError(f"unknown exchange {exchange_id!r} for ccxt (e.g. binance, kraken)")
    exchange = cls(
        {
            "enableRateLimit": True,
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "defaultType": "spot",
            },
        }
    )
    if api_url:
        exchange.urls["api"] = _rehost(exchange.urls.get("api"), api_url.rstrip("/"))
    return exchange


def _rehost(urls: Any, base: str) -> Any:
    if isinstance(urls, dict):
        return {key: _rehost(value, base) for key, value in urls.items()}
    if isinstance(urls, str) and urls.startswith("http"):
        parts = urlsplit(urls)
        return base + parts.path
    return urls


def download_bars(
    exchange: Any,
    symbol: str,
    interval: str,
    since: pd.Timestamp,
    until: pd.Timestamp | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Closed bars of `symbol` from `since` up to `until` (default: now), as a bar frame."""
    step = int(interval_delta(interval).value // 1_000_000)
    now_ms = int(time.time() * 1000)
    stop = now_ms if until is None else min(int(until.value // 1_000_000), now_ms)
    cursor = int(since.value // 1_000_000)
    cursor = -(-cursor // step) * step  # first bar open at or after `since`
    rows: list[list] = []
    try:
        exchange.load_markets()
        if symbol not in exchange.markets:
            raise DownloadError(
                f"{exchange.id} has no market {symbol!r}; use the ccxt spelling BASE/QUOTE "
                "(e.g. BTC/USDT)"
            )
        while cursor < stop:
            page = exchange.fetch_ohlcv(symbol, interval, since=cursor, limit=PAGE_LIMIT)
            page = [r for r in page if r[0] >= cursor]
            if not page:
                break
            rows.extend(page)
            cursor = int(page[-1][0]) + step
            if progress:
                progress(len(rows))
    except DownloadError:
        raise
    except Exception as exc:  # ccxt network/exchange errors: one line, no traceback
        raise DownloadError(
            f"download from {exchange.id} failed: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    return _to_frame(rows, interval, stop, f"{exchange.id} {symbol} {interval}")


def _to_frame(rows: list[list], interval: str, stop_ms: int, source: str) -> pd.DataFrame:
    step = int(interval_delta(interval).value // 1_000_000)
    if not rows:
        return arrays_to_frame(np.empty(0, np.int64), {c: np.empty(0) for c in OHLCV})
    data = np.array([r[:6] for r in rows], dtype=np.float64)
    ts = data[:, 0].astype(np.int64)
    closed = ts + step <= stop_ms  # keep only bars that had closed when we asked
    data, ts = data[closed], ts[closed]
    cols = {c: data[:, i + 1] for i, c in enumerate(OHLCV)}
    try:
        validate_arrays(ts, cols, interval, source)
    except BarDataError as exc:
        raise DownloadError(f"the exchange sent unusable bars: {exc}") from None
    return arrays_to_frame(ts, cols)
