"""The public file layouts of DESIGN.md section 6, defined once (engine, analysis and exports).

Plain constants, no imports: the analysis side (research/trades_io.py) reads trades files
without loading the engine.
"""

from __future__ import annotations

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
