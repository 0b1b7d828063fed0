"""The public file layouts of docs/design.md#public-formats, defined once (engine, analysis and exports).

Constants and the one time formatter, importing only pandas: the analysis side
(analysis/trades_io.py) reads trades files without loading the engine.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

# trades.csv, in file order
TRADE_COLUMNS = (
    "trade_id",
    "strategy",
    "symbol",
    "interval",
    "side",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "quantity",
    "fees",
    "pnl",
    "return_pct",
    "exit_reason",
)
EQUITY_COLUMNS = ("timestamp", "equity", "cash")  # equity.csv
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # ISO-8601 UTC as written in trades.csv and equity.csv


def iso_utc(value: Any) -> str:
    """One time as written in every output file: ISO-8601 UTC, TIME_FORMAT (2024-01-31T12:05:00Z).

    Naive values are taken as UTC; None, NaN and NaT give "" (an empty CSV cell).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return ""
    return (ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")).strftime(TIME_FORMAT)


def quote_currency(symbol: Any) -> str | None:
    """The currency a market's prices, pnl and cash are counted in: "ETH/BTC" -> "BTC",
    ccxt's "BTC/USDT:USDT" (a perpetual settled in USDT) -> "USDT"; None without a quote."""
    text = str(symbol or "").strip()
    base, slash, quote = text.partition("/")
    if not slash or not quote:
        return None
    quote, colon, settle = quote.partition(":")
    return (settle if colon and settle else quote).strip().upper() or None


def currency_of(symbols: Any) -> str | None:
    """The one quote currency of some symbols, "mixed (BTC, ETH)" for several, None if unknown."""
    found = sorted({c for c in map(quote_currency, symbols) if c})
    if not found:
        return None
    return found[0] if len(found) == 1 else f"mixed ({', '.join(found)})"
