"""Read bar files (CSV, CSV.gz, Parquet) in the layout of docs/design.md#input-bars and validate them.

Columns timestamp, open, high, low, close, volume (names case-insensitive, extra columns
ignored); timestamp in epoch milliseconds or ISO-8601 (naive times count as UTC). Everything is
checked before anything is written (store/validate.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from factors.bars import OHLCV
from store.validate import (
    MAX_MS,
    MIN_MS,
    BarFormatError,
    GapReport,
    NoBarsError,
    arrays_to_frame,
    check_unique_columns,
    gap_report,
    time_text_range_error,
    unreadable_time_hint,
    validate_arrays,
)

TIME_NAMES = ("timestamp", "time", "date", "datetime", "open_time")


def read_bar_file(path: str | Path, interval: str) -> tuple[pd.DataFrame, GapReport]:
    """A validated bar frame from a file and its gap report; BarDataError on any problem."""
    file = Path(path)
    if file.is_dir():
        raise FileNotFoundError(
            f"bar file {str(file)!r} is a directory; give a .csv, .csv.gz or .parquet file"
        )
    if not file.is_file():
        raise FileNotFoundError(f"bar file {str(file)!r} not found")
    typed = _read_typed_csv(file)
    if typed is not None:
        ts, cols = typed
    else:
        raw = _read_table(file)
        ts, cols = _columns(raw, file.name)
    if len(ts) == 0:
        raise NoBarsError(
            f"no bars in {file.name}: the file has no data rows; fix: export the bars with a "
            "header row then one row per bar (timestamp,open,high,low,close,volume)"
        )
    validate_arrays(ts, cols, interval, file.name)
    ts = ts.astype(np.int64)
    return arrays_to_frame(ts, cols), gap_report(ts, interval)


def _read_typed_csv(file: Path) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """The columns of a plain CSV (epoch-ms or ISO-8601 times, numbers in every cell), read typed
    by pyarrow; None for anything else (empty or non-numeric cells, times pyarrow does not read or
    that are out of range or finer than a millisecond, odd headers, files pyarrow cannot read),
    which the general reader below handles with its exact error messages. Both paths give the
    same arrays to the same validator, so a file passes or fails alike with the same message."""
    name = file.name.lower()
    if not (name.endswith(".csv") or name.endswith(".csv.gz")):
        return None
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    try:
        table = pa_csv.read_csv(file)
    except (pa.ArrowException, OSError, ValueError):
        return None
    lower = [str(c).strip().lower() for c in table.column_names]
    time_name = next((n for n in TIME_NAMES if n in lower), None)
    if time_name is None or len(set(lower)) != len(lower) or table.num_rows == 0:
        return None
    if any(c not in lower for c in OHLCV):
        return None
    # a header like 'close.1' is how pandas spells a repeated column: the general reader
    # refuses it, and so does this one, with the same message
    check_unique_columns(table.column_names, (*TIME_NAMES, *OHLCV), file.name)
    arrays = {}
    for wanted in OHLCV:
        column = table.column(lower.index(wanted))
        numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        if not numeric or column.null_count:
            return None
        arrays[wanted] = column.to_numpy().astype(np.float64)
    times = table.column(lower.index(time_name))
    if times.null_count:
        return None
    if pa.types.is_integer(times.type) or pa.types.is_floating(times.type):
        ts = times.to_numpy().astype(np.float64)
        _check_epoch_ms(ts, file.name)
        return ts, arrays
    ts_ms = _arrow_times_ms(times)
    if ts_ms is None:
        return None
    return ts_ms.astype(np.float64), arrays


def _arrow_times_ms(times) -> np.ndarray | None:  # noqa: ANN001 (a pyarrow ChunkedArray)
    """Epoch ms (int64) of a column pyarrow read as ISO-8601 dates or times (naive = UTC, an
    offset converted to UTC, exactly as the general reader); None when pyarrow read it as
    anything else, or when a time is finer than a millisecond or outside 1970 .. 2262: the
    general reader words those errors."""
    import pyarrow as pa

    if pa.types.is_date32(times.type):
        per_ms, ms_per = 1, 86_400_000
    elif pa.types.is_timestamp(times.type):
        per_ms, ms_per = {"s": (1, 1_000), "ms": (1, 1), "us": (1_000, 1), "ns": (1_000_000, 1)}[
            times.type.unit
        ]
    else:
        return None
    raw = times.to_numpy().view(np.int64)
    if per_ms > 1:
        if (raw % per_ms).any():
            return None
        raw = raw // per_ms
    # the bounds are checked before scaling, so seconds or days far out cannot overflow int64
    if raw.min() < MIN_MS // ms_per or raw.max() > MAX_MS // ms_per:
        return None
    return raw * ms_per


def _check_epoch_ms(values: np.ndarray, source: str) -> None:
    finite = values[np.isfinite(values)]
    if finite.size and 0 <= finite.min() and finite.max() < 1e11:
        raise BarFormatError(
            f"{source}: numeric timestamps look like epoch seconds (e.g. {finite[0]:.0f}); "
            "use epoch milliseconds (multiply by 1000) or ISO-8601"
        )


def _read_table(file: Path) -> pd.DataFrame:
    name = file.name.lower()
    try:
        if name.endswith(".parquet") or name.endswith(".pq"):
            return pd.read_parquet(file)
        if name.endswith(".csv") or name.endswith(".csv.gz"):
            return pd.read_csv(file, dtype=str, keep_default_na=False)
    except Exception as exc:  # any reader failure is a user-facing format problem
        raise BarFormatError(f"{file.name}: cannot read file: {exc}") from None
    raise BarFormatError(f"{file.name}: unknown file type; use .csv, .csv.gz or .parquet")


def _columns(raw: pd.DataFrame, source: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    lower = {str(c).strip().lower(): c for c in raw.columns}
    time_col = next((lower[n] for n in TIME_NAMES if n in lower), None)
    missing = [c for c in OHLCV if c not in lower]
    if time_col is None or missing:
        need = (["timestamp"] if time_col is None else []) + missing
        raise BarFormatError(
            f"{source}: missing columns {', '.join(need)} (found: "
            f"{', '.join(map(str, raw.columns)) or 'none'}); the layout is "
            "timestamp,open,high,low,close,volume with a header row"
        )
    check_unique_columns(list(raw.columns), (*TIME_NAMES, *OHLCV), source)
    cols = {c: pd.to_numeric(raw[lower[c]], errors="coerce").to_numpy(np.float64) for c in OHLCV}
    return _timestamps(raw[time_col], source), cols


def _timestamps(column: pd.Series, source: str) -> np.ndarray:
    """Epoch ms as float64 (NaN where empty; the validator reports those)."""
    if pd.api.types.is_datetime64_any_dtype(column):
        stamps = pd.to_datetime(column, utc=True)
        return _ms(stamps)
    as_text = column.astype(str).str.strip()
    numeric = pd.to_numeric(as_text, errors="coerce")
    filled = as_text.ne("") & as_text.str.lower().ne("nan")
    if numeric[filled].notna().all():
        values = numeric.to_numpy(np.float64)
        _check_epoch_ms(values, source)
        return values
    try:
        stamps = pd.to_datetime(as_text.where(filled), utc=True, errors="coerce", format="ISO8601")
        bad = stamps.isna() & filled
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise BarFormatError(
                f"{source}: cannot read timestamp {as_text.iloc[row]!r} at row {row + 1} "
                f"({int(bad.sum())} rows); {unreadable_time_hint(as_text.iloc[row])}"
            )
        return _ms(stamps)
    except pd.errors.OutOfBoundsDatetime:  # a year past 2262: pandas raises despite "coerce"
        raise time_text_range_error(as_text, source) from None


def _ms(stamps: pd.Series) -> np.ndarray:
    epoch = pd.Timestamp(0, tz="UTC")
    # Timedelta / Timedelta: float64 ms, NaN where the time is missing (NaT), and a fraction of
    # a millisecond stays visible to the validator
    return ((stamps.dt.tz_convert("UTC") - epoch) / pd.Timedelta(milliseconds=1)).to_numpy(
        np.float64, na_value=np.nan
    )
