"""The public file layouts of DESIGN.md section 6, defined once (engine, analysis and exports).

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
