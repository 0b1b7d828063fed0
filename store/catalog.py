"""Light reads for listing commands: the stdlib only, no pandas and no SQLAlchemy.

`cli.py data list` must start in a fraction of a second (issue 13: light commands under 0.4 s of
CPU); SQLAlchemy, SQLModel and pandas cost more than that to import. For a plain SQLite file
URL whose file already exists this module reads the `bar_series` table with the stdlib sqlite3
module. Anything else (PostgreSQL, a SQLite URL with options, a file or table not created yet,
an unreadable file) gives None and the caller takes the SQLAlchemy path (store.bars), which
also creates the tables and reports errors as the other commands do.
"""

from __future__ import annotations

import os
import sqlite3
from urllib.parse import quote

from core.intervals import INTERVAL_NS

DEFAULT_URL = "sqlite:///raytrader.db"
ENV_VAR = "RAYTRADER_DB"

SERIES_SQL = (
    "SELECT exchange, symbol, interval, first_ts, last_ts, bars, gaps, missing_bars, "
    "largest_gap_ms FROM bar_series ORDER BY exchange, symbol, interval"
)
SeriesRow = tuple  # exchange, symbol, interval, first_ms, last_ms, bars, gaps, missing, gap_ms


def resolve_url(explicit: str | None = None) -> str:
    """`--db` beats RAYTRADER_DB beats sqlite:///raytrader.db (in the working directory)."""
    if explicit:
        return explicit
    return os.environ.get(ENV_VAR) or DEFAULT_URL


def sqlite_file(url: str) -> str | None:
    """The file of a plain `sqlite:///path` URL (relative, or absolute with four slashes);
    None for any other URL, an in-memory database or a URL with options."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url or "%" in url:
        return None
    path = url[len(prefix) :]
    return None if path in ("", ":memory:") else path


def sort_series_rows(rows: list[SeriesRow]) -> list[SeriesRow]:
    """By exchange, symbol, then interval length (unknown intervals first), as listed."""
    return sorted(rows, key=lambda r: (r[0], r[1], INTERVAL_NS.get(r[2], 0)))


def sqlite_series_rows(url: str) -> list[SeriesRow] | None:
    """Every stored series of an existing SQLite file, or None: use store.bars.series_rows."""
    path = sqlite_file(url)
    if path is None or not os.path.isfile(path):
        return None
    try:
        connection = sqlite3.connect(f"file:{quote(path)}", uri=True, timeout=60)
    except sqlite3.Error:
        return None
    try:
        rows = connection.execute(SERIES_SQL).fetchall()
    except sqlite3.Error:  # no such table yet, not a database, ...: the full path says why
        return None
    finally:
        connection.close()
    return sort_series_rows(rows)


def format_duration(ms: int) -> str:
    """12 minutes -> '12m', 90 minutes -> '1h30m', 2 days 3 hours -> '2d3h'."""
    minutes = int(ms // 60_000)
    if minutes == 0:
        return f"{ms / 1000:g}s"
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{mins}m" if mins else ""]
    return "".join(parts)
