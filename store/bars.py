"""Bulk save and load of bar series.

Bars bypass the ORM: SQLite gets one `INSERT OR IGNORE` executemany in one transaction,
PostgreSQL a binary COPY into a temporary table followed by `INSERT ... ON CONFLICT DO NOTHING`.
Both are idempotent on the key (exchange, symbol, interval, ts): re-importing a file adds only
the bars not yet stored. Loading reads raw rows (binary COPY on PostgreSQL) straight into numpy.

`load_bars` of an interval that is not stored resamples on the fly from the coarsest stored
interval of the same market that divides it (see store/resample.py: complete buckets only).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import text

from factors.bars import INTERVALS, OHLCV, interval_delta, parse_utc
from store.catalog import SERIES_SQL, sort_series_rows
from store.db import backend, get_engine
from store.resample import resample_bars
from store.validate import (
    BarDataError,
    arrays_to_frame,
    frame_arrays,
    validate_arrays,
)

__all__ = [
    "BarDataError",
    "save_bars",
    "load_bars",
    "bar_range",
    "list_series",
    "stored_intervals",
]

_COLUMNS = "ts, open, high, low, close, volume"
# PostgreSQL binary COPY: 11-byte signature, int32 flags, int32 header-extension length.
_PG_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_ROW = np.dtype([("ts", np.int64)] + [(c, np.float64) for c in OHLCV])
_PG_ROW = np.dtype(
    [("n", ">i2"), ("l0", ">i4"), ("ts", ">i8")]
    + [item for c in OHLCV for item in ((f"l_{c}", ">i4"), (c, ">f8"))]
)


def save_bars(url: str, exchange: str, symbol: str, interval: str, frame: pd.DataFrame) -> int:
    """Store a validated bar frame; returns how many bars were new (already stored ones are kept)."""
    interval_delta(interval)  # unknown interval -> IntervalError
    ts, cols = frame_arrays(frame)
    validate_arrays(ts, cols, interval, f"{exchange} {symbol} {interval}")
    if len(ts) == 0:
        return 0
    engine = get_engine(url)
    with engine.begin() as conn:
        dbapi = conn.connection.driver_connection
        if backend(url) == "postgresql":
            inserted = _save_postgres(dbapi, exchange, symbol, interval, ts, cols)
        else:
            inserted = _save_generic(dbapi, exchange, symbol, interval, ts, cols, url)
        _refresh_series(conn, exchange, symbol, interval)
    return inserted


def differing_bars(url: str, exchange: str, symbol: str, interval: str, frame: pd.DataFrame) -> int:
    """How many bars of `frame` are stored already with other OHLCV values (an import keeps the
    stored ones, so the user should hear that the file disagrees with the database)."""
    if frame.empty or interval not in stored_intervals(url, exchange, symbol):
        return 0
    first, last = (int(t.value // 1_000_000) for t in (frame.index[0], frame.index[-1]))
    stored = _load_raw(url, exchange, symbol, interval, first, last)
    common = stored.index.intersection(frame.index)
    if common.empty:
        return 0
    ours, theirs = stored.loc[common, list(OHLCV)], frame.loc[common, list(OHLCV)]
    return int((~np.isclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-12)).any(axis=1).sum())


def _save_generic(dbapi: Any, exchange, symbol, interval, ts, cols, url: str) -> int:
    key = (exchange, symbol, interval)
    rows = zip(
        *(np.broadcast_to(np.array(k, dtype=object), ts.shape) for k in key),
        ts.tolist(),
        *(cols[c].tolist() for c in OHLCV),
        strict=True,
    )
    verb = "INSERT OR IGNORE" if backend(url) == "sqlite" else "INSERT"
    mark = "?" if backend(url) == "sqlite" else "%s"
    cursor = dbapi.cursor()
    cursor.executemany(
        f"{verb} INTO bars (exchange, symbol, interval, {_COLUMNS}) "
        f"VALUES ({', '.join([mark] * 9)})",
        list(rows),
    )
    return int(cursor.rowcount)


def _save_postgres(dbapi: Any, exchange, symbol, interval, ts, cols) -> int:
    rows = np.empty(len(ts), dtype=_PG_ROW)
    rows["n"] = 6
    rows["l0"] = 8
    rows["ts"] = ts
    for c in OHLCV:
        rows[f"l_{c}"] = 8
        rows[c] = cols[c]
    payload = _PG_HEADER + rows.tobytes() + b"\xff\xff"
    with dbapi.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS bars_incoming (ts bigint, open float8, high float8, "
            "low float8, close float8, volume float8) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY bars_incoming ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(payload)
        cur.execute(
            f"INSERT INTO bars (exchange, symbol, interval, {_COLUMNS}) "
            f"SELECT %s, %s, %s, {_COLUMNS} FROM bars_incoming ON CONFLICT DO NOTHING",
            (exchange, symbol, interval),
        )
        return int(cur.rowcount)


def _refresh_series(conn: Any, exchange: str, symbol: str, interval: str) -> None:
    """Recompute the bar_series summary row (first/last bar, count, gaps) of one series in SQL."""
    key = {"e": exchange, "s": symbol, "i": interval, "step": _step_ms(interval)}
    series = "FROM bars WHERE exchange=:e AND symbol=:s AND interval=:i"
    count, first, last = conn.execute(
        text(f"SELECT COUNT(*), MIN(ts), MAX(ts) {series}"), key
    ).one()
    gaps, missing, largest = conn.execute(
        text(
            "SELECT COUNT(*), COALESCE(SUM(d / :step - 1), 0), COALESCE(MAX(d), 0) FROM "
            f"(SELECT ts - LAG(ts) OVER (ORDER BY ts) AS d {series}) AS steps WHERE d > :step"
        ),
        key,
    ).one()
    conn.execute(
        text("DELETE FROM bar_series WHERE exchange=:e AND symbol=:s AND interval=:i"), key
    )
    if not count:
        return
    conn.execute(
        text(
            "INSERT INTO bar_series (exchange, symbol, interval, first_ts, last_ts, bars, gaps, "
            "missing_bars, largest_gap_ms, updated_at) "
            "VALUES (:e, :s, :i, :f, :l, :n, :g, :m, :lg, :u)"
        ),
        {
            **key,
            "f": int(first),
            "l": int(last),
            "n": int(count),
            "g": int(gaps),
            "m": int(missing),
            # The stretch without bars is the hole minus the one bar that closes it.
            "lg": max(int(largest) - key["step"], 0),
            "u": pd.Timestamp.now(tz="UTC").to_pydatetime(),
        },
    )


def _step_ms(interval: str) -> int:
    return int(interval_delta(interval).value // 1_000_000)


def load_bars(
    url: str,
    exchange: str,
    symbol: str,
    interval: str,
    start: Any = None,
    end: Any = None,
) -> pd.DataFrame:
    """Bars with start <= open time <= end (both optional; str, datetime or Timestamp, UTC).

    A series not stored at `interval` is resampled on the fly from the coarsest stored interval
    that divides it. An empty result raises BarDataError naming the series.
    """
    interval_delta(interval)
    lo, hi = _bound(start, "start"), _bound(end, "end")
    stored = stored_intervals(url, exchange, symbol)
    if interval in stored:
        frame = _load_raw(url, exchange, symbol, interval, lo, hi)
    else:
        source = _resample_source(interval, stored)
        frame = _load_resampled(url, exchange, symbol, source, interval, lo, hi)
    if frame.empty:
        span = "" if lo is None and hi is None else f" between {start} and {end}"
        have = ", ".join(stored) or "none"
        raise BarDataError(
            f"no {interval} bars for {exchange} {symbol}{span} (stored intervals: {have}); "
            "see `cli.py data list`, import with `cli.py data import` or `cli.py data demo`"
        )
    return frame


def bar_range(
    url: str, exchange: str, symbol: str, interval: str, start: Any = None, end: Any = None
) -> tuple[int, int, int] | None:
    """(first open time ms, last open time ms, number of bars) of what load_bars would return,
    counted in the database without loading a bar; None when that takes loading: the interval
    is resampled from another, or no bar is in range (load_bars words that error)."""
    interval_delta(interval)
    lo, hi = _bound(start, "start"), _bound(end, "end")
    if interval not in stored_intervals(url, exchange, symbol):
        return None
    where = "exchange = :e AND symbol = :s AND interval = :i"
    params: dict[str, Any] = {"e": exchange, "s": symbol, "i": interval}
    if lo is not None:
        where += " AND ts >= :lo"
        params["lo"] = int(lo)
    if hi is not None:
        where += " AND ts <= :hi"
        params["hi"] = int(hi)
    with get_engine(url).connect() as conn:
        first, last, count = conn.execute(
            text(f"SELECT MIN(ts), MAX(ts), COUNT(*) FROM bars WHERE {where}"), params
        ).one()
    if not count:
        return None
    return int(first), int(last), int(count)


def _resample_source(interval: str, stored: list[str]) -> str | None:
    target = interval_delta(interval)
    candidates = [
        i
        for i in stored
        if interval_delta(i) < target and target % interval_delta(i) == pd.Timedelta(0)
    ]
    # The coarsest source: fewer rows, and the exchange's own bars (a stored 5m bar is complete
    # even when a minute without trades is missing from the 1m series).
    return max(candidates, key=interval_delta) if candidates else None


def _load_resampled(url, exchange, symbol, source, interval, lo, hi) -> pd.DataFrame:
    if source is None:
        return arrays_to_frame(np.empty(0, np.int64), {c: np.empty(0) for c in OHLCV})
    step = int(interval_delta(interval).value // 1_000_000)
    # Load whole buckets: from the bucket holding `lo` to the end of the bucket holding `hi`.
    raw_lo = None if lo is None else lo // step * step
    raw_hi = None if hi is None else hi // step * step + step - 1
    raw = _load_raw(url, exchange, symbol, source, raw_lo, raw_hi)
    frame = resample_bars(raw, source, interval)
    ts = frame.index.as_unit("ms").asi8
    keep = np.ones(len(ts), dtype=bool)
    if lo is not None:
        keep &= ts >= lo
    if hi is not None:
        keep &= ts <= hi
    return frame[keep]


def _load_raw(url, exchange, symbol, interval, lo, hi) -> pd.DataFrame:
    where = "exchange = {} AND symbol = {} AND interval = {}"
    params: list[Any] = [exchange, symbol, interval]
    if lo is not None:
        where += " AND ts >= {}"
        params.append(int(lo))
    if hi is not None:
        where += " AND ts <= {}"
        params.append(int(hi))
    query = f"SELECT {_COLUMNS} FROM bars WHERE {where} ORDER BY ts"
    engine = get_engine(url)
    with engine.connect() as conn:
        dbapi = conn.connection.driver_connection
        if backend(url) == "postgresql":
            rows = _load_postgres(dbapi, query, params)
        else:
            mark = "?" if backend(url) == "sqlite" else "%s"
            cursor = dbapi.cursor()
            cursor.execute(query.format(*[mark] * len(params)), params)
            # Straight from the cursor into a structured array: no list of row tuples kept.
            rows = np.fromiter(cursor, dtype=_ROW, count=-1)
    return arrays_to_frame(rows["ts"].astype(np.int64), {c: rows[c] for c in OHLCV})


def _load_postgres(dbapi: Any, query: str, params: list[Any]) -> np.ndarray:
    from psycopg import sql

    select = sql.SQL(query).format(*[sql.Literal(p) for p in params])
    chunks: list[bytes] = []
    with dbapi.cursor() as cur:
        copy_sql = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(select)
        with cur.copy(copy_sql) as copy:
            for chunk in copy:
                chunks.append(bytes(chunk))
    payload = b"".join(chunks)
    return np.frombuffer(payload[len(_PG_HEADER) : len(payload) - 2], dtype=_PG_ROW)


def _bound(value: Any, what: str) -> int | None:
    stamp = parse_utc(value, what)
    return None if stamp is None else int(stamp.value // 1_000_000)


def stored_intervals(url: str, exchange: str, symbol: str) -> list[str]:
    """Intervals stored for one market, finest first."""
    with get_engine(url).connect() as conn:
        names = (
            conn.execute(
                text("SELECT interval FROM bar_series WHERE exchange=:e AND symbol=:s"),
                {"e": exchange, "s": symbol},
            )
            .scalars()
            .all()
        )
    return sorted(names, key=lambda i: INTERVALS.get(i, pd.Timedelta(0)))


def series_rows(url: str) -> list[tuple]:
    """Every stored series as raw rows (store.catalog.SeriesRow), in listing order; creates the
    tables on first use. store.catalog.sqlite_series_rows reads a SQLite file more cheaply."""
    with get_engine(url).connect() as conn:
        rows = conn.execute(text(SERIES_SQL)).all()
    return sort_series_rows([tuple(r) for r in rows])


def list_series(url: str) -> list[dict]:
    """Every stored series: exchange, symbol, interval, first, last (UTC Timestamps), bars,
    gaps, missing_bars, largest_gap (Timedelta)."""
    out = []
    for r in series_rows(url):
        out.append(
            {
                "exchange": r[0],
                "symbol": r[1],
                "interval": r[2],
                "first": pd.Timestamp(int(r[3]), unit="ms", tz="UTC"),
                "last": pd.Timestamp(int(r[4]), unit="ms", tz="UTC"),
                "bars": int(r[5]),
                "gaps": int(r[6]),
                "missing_bars": int(r[7]),
                "largest_gap": pd.Timedelta(milliseconds=int(r[8])),
            }
        )
    return out
