"""`cli.py factors ...` commands: list the factor families, export a factor table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from commands.errors import UserError
from commands.options import DbOpt

if TYPE_CHECKING:
    import pandas as pd

# factors.cache.DEFAULT_CACHE_DIR, spelled out so that `--help` does not import pandas and the
# factor engine (issue 13: start-up under 0.4 s of CPU); a test keeps the two equal.
DEFAULT_CACHE_DIR = ".factor_cache"

app = typer.Typer(no_args_is_help=True)

_DESCRIPTIONS = {
    "range": "(max high - min low) / close over the last N bars",
    "atr": "mean true range over the last N bars",
    "true_range": "max(high - low, |high - prev close|, |low - prev close|)",
    "trend": "efficiency ratio |close_t - close_t-N| / sum |delta close| over N bars",
    "slope": "OLS slope of close over the last N bars / close_t (fraction per bar)",
    "r2": "r^2 of that OLS fit",
    "daily": "previous UTC day context, visible from the first bar of the next day",
}


@app.command("list")
def list_factors(
    family: str = typer.Option(None, help="Only this family (volatility, trend, daily)."),
) -> None:
    """List the default factors by family (any window N works: range_7, slope_250...)."""
    from factors.engine import FAMILIES, parse_name

    if family is not None and family not in FAMILIES:
        raise UserError(f"unknown factor family {family!r}; use one of {', '.join(FAMILIES)}")
    for name_of_family, names in FAMILIES.items():
        if family and family != name_of_family:
            continue
        typer.echo(f"{name_of_family}:")
        for name in names:
            typer.echo(f"  {name:<18} {_DESCRIPTIONS[parse_name(name).kind]}")
    typer.echo("any factor may be shown from a higher interval: e.g. range_20@1h, prev_day_atr@1h")


def read_bar_file(path: Path) -> pd.DataFrame:
    """A bar frame from CSV (.csv, .csv.gz) or Parquet: timestamp (epoch ms or ISO) + OHLCV."""
    import numpy as np
    import pandas as pd

    if path.is_dir():
        raise FileNotFoundError(f"bar file {path} is a directory; pass a --data FILE")
    if not path.exists():
        raise FileNotFoundError(f"bar file {path} not found; pass an existing --data FILE")
    suffixes = "".join(path.suffixes).lower()
    try:
        raw = pd.read_parquet(path) if suffixes.endswith(".parquet") else pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, ImportError) as exc:  # pandas' and pyarrow's parsers
        raise UserError(f"{path}: cannot read file: {_first_line(exc)}") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    if "timestamp" not in raw.columns and raw.index.name == "timestamp":
        raw = raw.reset_index()
    missing = [c for c in ("timestamp", "open", "high", "low", "close", "volume") if c not in raw]
    if missing:
        raise UserError(
            f"{path}: missing columns {missing}; a bar file needs timestamp (epoch ms or ISO), "
            "open, high, low, close, volume"
        )
    stamp = raw["timestamp"]
    try:
        if pd.api.types.is_numeric_dtype(stamp):
            index = pd.to_datetime(stamp.astype(np.int64), unit="ms", utc=True)
        else:
            index = pd.to_datetime(stamp, utc=True)
        frame = raw[["open", "high", "low", "close", "volume"]].astype(np.float64)
    except (ValueError, TypeError, OverflowError) as exc:
        raise UserError(
            f"{path}: unreadable timestamps or prices ({_first_line(exc)}); timestamps are epoch "
            "ms or ISO times, prices and volumes numbers"
        ) from None
    frame.index = pd.DatetimeIndex(index, name="timestamp")
    if not frame.index.is_monotonic_increasing or not frame.index.is_unique:
        raise UserError(f"{path}: timestamps must be unique and ascending; sort and deduplicate")
    return frame


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load(
    data: Path | None,
    db: str | None,
    exchange: str,
    symbol: str,
    interval: str,
    start: str | None,
    end: str | None,
) -> tuple[pd.DataFrame, str]:
    """(bars, series id for the cache) from --data FILE or the database."""

    from factors.bars import parse_utc

    if data is not None:
        bars = read_bar_file(data)
        lo, hi = parse_utc(start, "--start"), parse_utc(end, "--end")  # ISO-8601 only
        if lo is not None:
            bars = bars[bars.index >= lo]
        if hi is not None:
            bars = bars[bars.index <= hi]
        return bars, f"file:{data.resolve()}:{symbol}:{interval}"
    from store.bars import load_bars
    from store.db import resolve_url

    url = resolve_url(db)
    return load_bars(url, exchange, symbol, interval, start, end), f"{exchange}:{symbol}:{interval}"


@app.command("export")
def export(
    symbol: str = typer.Option(..., help="Market symbol, e.g. BTC/USDT."),
    interval: str = typer.Option(..., help="Bar interval, e.g. 1m, 5m, 1h."),
    out: Path = typer.Option(..., help="CSV file to write (timestamp + one column per factor)."),
    exchange: str = typer.Option("binance", help="Exchange the bars were stored under."),
    db: DbOpt = None,
    data: Path = typer.Option(None, help="Read bars from this CSV/Parquet file, not the database."),
    factors: str = typer.Option(None, help="Comma-separated factor names (default: all)."),
    start: str = typer.Option(None, help="First bar open time (UTC), e.g. 2024-01-01."),
    end: str = typer.Option(None, help="Last bar open time (UTC)."),
    cache_dir: Path = typer.Option(Path(DEFAULT_CACHE_DIR), help="Factor cache directory."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Compute without the cache."),
) -> None:
    """Compute factors for one series and write them as CSV."""
    from factors.bars import interval_delta
    from factors.cache import FactorCache
    from factors.engine import compute_factors, parse_name

    interval_delta(interval)
    names = [n.strip() for n in factors.split(",") if n.strip()] if factors else None
    if names is not None:
        for name in names:
            parse_name(name)  # unknown names fail before loading any data
    bars, series_id = _load(data, db, exchange, symbol, interval, start, end)
    if bars.empty:
        raise UserError(f"no bars for {symbol} {interval} in the chosen range; widen --start/--end")
    if no_cache:
        table = compute_factors(bars, names, interval=interval)
    else:
        cache = FactorCache(cache_dir)
        table = cache.get_or_compute(
            series_id, bars, names, compute=lambda b, n: compute_factors(b, n, interval=interval)
        )
        state = "hit" if cache.hits else "miss"
        typer.echo(f"factor cache {state} ({cache_dir})", err=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = table.copy()
    written.index = written.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    written.index.name = "timestamp"
    written.to_csv(out)
    typer.echo(f"wrote {len(table)} rows x {table.shape[1]} factors to {out}")
