"""Checks on bar data before anything is written: one clear error per problem class.

Each check names the source (file or series), the problem, how many rows have it, the first
offending row (1-based data row, header not counted) and timestamp, and how to fix it.
Gaps (missing bars) are not errors: real exchange data has them. They are measured and
reported, never filled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import UserError
from factors.bars import INTERVALS, OHLCV, interval_delta
from store.catalog import format_duration  # noqa: F401 (kept importable from here)

PRICES = ("open", "high", "low", "close")


class BarDataError(UserError):
    """Bar data that cannot be used as given; the message says what, where and how to fix it."""


class BarFormatError(BarDataError):
    """Missing columns, unreadable file or unparseable timestamps."""


class MissingValueError(BarDataError):
    """NaN / empty / non-numeric cells."""


class UnsortedBarsError(BarDataError):
    """Timestamps not in ascending order."""


class DuplicateBarsError(BarDataError):
    """The same timestamp more than once."""


class NonPositivePriceError(BarDataError):
    """A price <= 0 (or a negative volume)."""


class HighBelowLowError(BarDataError):
    """high < low in a bar."""


class OutsideRangeError(BarDataError):
    """open or close outside the bar's [low, high] range (e.g. close > high)."""


class NoBarsError(BarDataError):
    """A file with a header but no data rows."""


class OffGridError(BarDataError):
    """A timestamp that is not a multiple of the interval (UTC-aligned)."""


class TimeRangeError(BarDataError):
    """A timestamp before 1970 or after 2262 (e.g. microseconds read as milliseconds)."""


class PriceRangeError(BarDataError):
    """A price no market quotes (1e308, 1e-320): a unit or parsing mistake."""


class IntervalMismatchError(BarDataError):
    """Every bar is a coarser interval apart than --interval says (a 5m file as 1m)."""


# Bar open times must be representable as nanoseconds since 1970 (pandas, the engine's clock).
MIN_MS = 0  # 1970-01-01T00:00Z
MAX_MS = int(pd.Timestamp.max.value // 1_000_000)  # 2262-04-11T23:47:16.854Z
# Prices outside this range are unit or parsing mistakes (sizes and fees overflow or vanish).
MIN_PRICE, MAX_PRICE = 1e-12, 1e12
MAX_VOLUME = 1e18
# open/close may exceed [low, high] by float rounding (a float32 column next to a float64 one):
# up to this relative amount they are clipped into the range, beyond it they are an error.
RANGE_TOLERANCE = 1e-6
# Spacing is judged only with enough bars (a handful may all sit on a coarser grid by chance).
MIN_BARS_FOR_SPACING = 10


@dataclass(frozen=True)
class GapReport:
    gaps: int  # holes between consecutive bars
    missing_bars: int  # bars missing inside [first, last]
    largest_ms: int  # longest stretch without bars, in ms (0 if none)

    @property
    def largest(self) -> pd.Timedelta:
        return pd.Timedelta(milliseconds=self.largest_ms)

    def describe(self) -> str:
        if not self.gaps:
            return "no gaps"
        return (
            f"{self.gaps} gaps ({self.missing_bars} missing bars), "
            f"largest {format_duration(self.largest_ms)}"
        )


def gap_report(ts_ms: np.ndarray, interval: str) -> GapReport:
    """Gaps of a sorted, unique, on-grid series of bar open times (epoch ms)."""
    if len(ts_ms) < 2:
        return GapReport(0, 0, 0)
    step = int(interval_delta(interval).value // 1_000_000)
    diffs = np.diff(np.asarray(ts_ms, dtype=np.int64))
    holes = diffs[diffs > step]
    if holes.size == 0:
        return GapReport(0, 0, 0)
    missing = int((holes // step - 1).sum())
    # The stretch without bars is the hole minus the one bar that closes it.
    return GapReport(int(holes.size), missing, int(holes.max() - step))


def validate_arrays(
    ts_ms: np.ndarray, columns: dict[str, np.ndarray], interval: str, source: str
) -> None:
    """Raise the BarDataError of the first problem class found; return None when all is well.

    Order of the checks: missing values, times outside 1970..2262 or with fractions of a
    millisecond, unsorted, duplicates, non-positive prices, prices out of range, high < low,
    open/close outside [low, high] (float rounding up to RANGE_TOLERANCE is clipped into the
    range, in `columns`), off the interval grid, a coarser spacing than the interval.
    """
    ts_ms = np.asarray(ts_ms)
    _check_missing(ts_ms, columns, source)
    _check_time_values(ts_ms, source)
    ts = ts_ms.astype(np.int64)
    _check_order(ts, source)
    _check_prices(ts, columns, source)
    _check_grid(ts, interval, source)
    _check_spacing(ts, interval, source)


def _check_time_values(ts_ms: np.ndarray, source: str) -> None:
    """Epoch ms inside the nanosecond range, whole milliseconds (before any cast to int)."""
    values = ts_ms.astype(np.float64) if ts_ms.dtype.kind == "f" else ts_ms
    outside = (values < MIN_MS) | (values > MAX_MS)
    if outside.any():
        first = int(np.argmax(outside))
        raise TimeRangeError(
            f"{source}: timestamps outside 1970-01-01 .. 2262-04-11: {int(outside.sum())} rows, "
            f"first at row {first + 1} (value {values[first]:.6g}); fix: timestamps are epoch "
            "MILLISECONDS (a value like 1.6e15 is microseconds: divide by 1000; 1.6e18 is "
            "nanoseconds: divide by 1e6) or ISO-8601 dates after 1970"
        )
    if values.dtype.kind == "f":
        fraction = values != np.floor(values)
        example = f" (e.g. {values[fraction][0]:.3f})" if fraction.any() else ""
        _fail_where(
            fraction,
            None,
            OffGridError,
            source,
            f"timestamps with a fraction of a millisecond{example}",
            "bar open times are whole epoch milliseconds; check the unit or round them",
        )


def _check_order(ts: np.ndarray, source: str) -> None:
    diffs = np.diff(ts)
    _fail_where(
        diffs < 0,
        ts[1:],
        UnsortedBarsError,
        source,
        "timestamps not in ascending order",
        "sort the rows by timestamp (oldest first)",
        offset=1,
    )
    _fail_where(
        diffs == 0,
        ts[1:],
        DuplicateBarsError,
        source,
        "duplicate timestamps",
        "keep one row per bar (remove the repeated timestamps)",
        offset=1,
    )


def _check_prices(ts: np.ndarray, columns: dict[str, np.ndarray], source: str) -> None:
    bad_price = np.zeros(len(ts), dtype=bool)
    for name in PRICES:
        bad_price |= columns[name] <= 0
    bad_price |= columns["volume"] < 0
    _fail_where(
        bad_price,
        ts,
        NonPositivePriceError,
        source,
        "non-positive prices (or negative volume)",
        "prices must be > 0 and volume >= 0; drop or correct those rows",
    )
    absurd = columns["volume"] > MAX_VOLUME
    for name in PRICES:
        absurd |= (columns[name] < MIN_PRICE) | (columns[name] > MAX_PRICE)
    _fail_where(
        absurd,
        ts,
        PriceRangeError,
        source,
        f"prices outside [{MIN_PRICE:g}, {MAX_PRICE:g}] (or volume above {MAX_VOLUME:g})",
        "check the unit and the number format of those rows; no market quotes such prices",
    )
    high, low = columns["high"], columns["low"]
    _fail_where(
        high < low,
        ts,
        HighBelowLowError,
        source,
        "high below low",
        "check the column order (timestamp, open, high, low, close, volume)",
    )
    outside = np.zeros(len(ts), dtype=bool)
    slack = RANGE_TOLERANCE * high
    for name in ("open", "close"):
        outside |= (columns[name] > high + slack) | (columns[name] < low - slack)
    _fail_where(
        outside,
        ts,
        OutsideRangeError,
        source,
        "open or close outside the bar's [low, high] range",
        "every bar needs low <= open, close <= high; check the column order "
        "(timestamp, open, high, low, close, volume) or correct those rows",
    )
    for name in ("open", "close"):  # float rounding within the tolerance: back into the range
        columns[name] = np.clip(columns[name], low, high)


def _check_grid(ts: np.ndarray, interval: str, source: str) -> None:
    step = int(interval_delta(interval).value // 1_000_000)
    _fail_where(
        ts % step != 0,
        ts,
        OffGridError,
        source,
        f"timestamps off the {interval} grid (not bar open times aligned to UTC)",
        f"check --interval {interval} matches the file, and that timestamps are bar OPEN "
        "times in epoch milliseconds or ISO-8601 UTC",
    )


def _check_spacing(ts: np.ndarray, interval: str, source: str) -> None:
    """Refuse bars that are all a coarser interval apart (a 5m file imported as 1m)."""
    if len(ts) < MIN_BARS_FOR_SPACING:
        return
    step = int(interval_delta(interval).value // 1_000_000)
    spacing = int(np.gcd.reduce(np.diff(ts)))
    coarser = [name for name, delta in INTERVALS.items() if delta.value // 1_000_000 == spacing]
    if spacing > step and coarser:
        raise IntervalMismatchError(
            f"{source}: every bar is a multiple of {coarser[0]} apart, but the interval is "
            f"{interval}: these look like {coarser[0]} bars; fix: use --interval {coarser[0]}"
        )


def check_unique_columns(names: list[str], needed: tuple[str, ...], source: str) -> None:
    """Refuse a needed column given twice ('close' and 'Close', or 'close.1' as pandas renames
    a repeated CSV header): which one holds the data would be a guess."""
    seen: dict[str, int] = {}
    for name in names:
        base = str(name).strip().lower()
        stem, dot, suffix = base.rpartition(".")
        if dot and suffix.isdigit() and stem in needed:
            base = stem
        seen[base] = seen.get(base, 0) + 1
    repeated = [n for n in needed if seen.get(n, 0) > 1]
    if repeated:
        raise BarFormatError(
            f"{source}: column {repeated[0]!r} appears {seen[repeated[0]]} times in the header; "
            "fix: keep exactly one column per name (timestamp,open,high,low,close,volume)"
        )


def _check_missing(ts_ms: np.ndarray, columns: dict[str, np.ndarray], source: str) -> None:
    bad = pd.isna(ts_ms) if ts_ms.dtype.kind not in "iu" else np.zeros(len(ts_ms), dtype=bool)
    names = ["timestamp"] if bad.any() else []
    for name in OHLCV:
        column_bad = ~np.isfinite(columns[name])
        if column_bad.any():
            names.append(name)
        bad = bad | column_bad
    _fail_where(
        bad,
        None,
        MissingValueError,
        source,
        f"missing, NaN or non-numeric values (columns: {', '.join(names)})",
        "remove those rows or fill them from the exchange; bars are never filled silently",
    )


def _fail_where(
    mask: np.ndarray,
    ts: np.ndarray | None,
    error: type[BarDataError],
    source: str,
    problem: str,
    fix: str,
    offset: int = 0,
) -> None:
    mask = np.asarray(mask, dtype=bool)
    count = int(mask.sum())
    if not count:
        return
    first = int(np.argmax(mask))
    where = f"first at row {first + offset + 1}"
    if ts is not None:
        where += f" (timestamp {pd.Timestamp(int(ts[first]), unit='ms', tz='UTC').isoformat()})"
    raise error(f"{source}: {problem}: {count} rows, {where}; fix: {fix}")


def frame_arrays(frame: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(epoch-ms int64 array, {column: float64 array}) of a bar frame indexed by open time."""
    missing = [c for c in OHLCV if c not in frame.columns]
    if missing:
        raise BarFormatError(f"bar frame lacks columns {missing}; needs {', '.join(OHLCV)}")
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise BarFormatError("bar frame must be indexed by a DatetimeIndex of bar open times")
    if index.tz is None:
        index = index.tz_localize("UTC")
    ts = index.tz_convert("UTC").as_unit("ms").asi8.astype(np.int64)
    cols = {c: frame[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in OHLCV}
    return ts, cols


def arrays_to_frame(ts_ms: np.ndarray, cols: dict[str, np.ndarray]) -> pd.DataFrame:
    """The bar frame of factors/bars.py from epoch-ms times and float columns."""
    index = pd.DatetimeIndex(
        pd.to_datetime(np.asarray(ts_ms, dtype=np.int64), unit="ms", utc=True), name="timestamp"
    )
    return pd.DataFrame({c: np.asarray(cols[c], dtype=np.float64) for c in OHLCV}, index=index)


def unreadable_time_hint(text: str) -> str:
    """The fix for a timestamp text that could not be read: a year beyond 2262 (or before 1970)
    is readable but out of range, anything else is not ISO-8601."""
    year = str(text).strip()[:4]
    if year.isdigit() and not 1970 <= int(year) <= 2262:
        return (
            f"year {year} is outside 1970 .. 2262, the range of bar times; check the year (or "
            "the unit of numeric timestamps)"
        )
    return "use epoch milliseconds or ISO-8601 like 2018-01-10T00:00Z"


def time_text_range_error(texts: pd.Series, source: str) -> TimeRangeError:
    """The error for ISO timestamps beyond what a bar time can hold (pandas refuses them)."""
    years = pd.to_numeric(texts.str.slice(0, 4), errors="coerce")
    outside = ((years < 1970) | (years > 2262)).to_numpy()
    row = int(np.argmax(outside)) if outside.any() else 0
    return TimeRangeError(
        f"{source}: timestamps outside 1970-01-01 .. 2262-04-11: {int(outside.sum())} rows, "
        f"first at row {row + 1} ({texts.iloc[row]!r}); fix: "
        f"{unreadable_time_hint(texts.iloc[row])}"
    )
