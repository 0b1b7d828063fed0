"""`cli.py data ...` commands: import, download, resample, list, demo."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from commands.errors import UserError
from commands.options import DbOpt, ExchangeIdOpt

if TYPE_CHECKING:
    import pandas as pd

# The store, factors and pandas are imported inside each command: `cli.py --help` and the other
# groups' commands stay fast (issue 13: start-up under 0.4 s of CPU).

app = typer.Typer(no_args_is_help=True)
console = Console(soft_wrap=True)  # long lines and tables are never cut in pipes or logs

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = ROOT / "data" / "sample"
DEMO_STRATEGIES = ROOT / "data" / "strategies_demo.yaml"
SYNTHETIC_STRATEGIES = ROOT / "data" / "strategies_synthetic.yaml"
TEST_ONLY = ("UNITTEST_",)  # anonymised test fixtures: kept out of the demo
SAMPLE_NAME = re.compile(r"^(?P<base>[A-Z0-9]+)_(?P<quote>[A-Z0-9]+)-(?P<interval>\w+)\.csv\.gz$")


@app.command("import")
def import_file(
    file: Path = typer.Argument(
        ..., help="CSV, CSV.gz or Parquet: timestamp,open,high,low,close,volume"
    ),
    exchange: ExchangeIdOpt = "binance",
    symbol: str = typer.Option(..., "--symbol", "-s", help="Market, e.g. ETH/BTC."),
    interval: str = typer.Option(
        ..., "--interval", "-i", help="Bar interval of the file, e.g. 5m."
    ),
    db: DbOpt = None,
) -> None:
    """Validate a bar file, then store it (all or nothing; re-importing adds only new bars)."""
    from store.db import resolve_url

    url = resolve_url(db)
    added, total, gaps, differing = import_bars(url, file, exchange, symbol, interval)
    console.print(
        f"imported {file.name}: {total} bars, {added} new, {total - added} already stored "
        f"-> {exchange} {symbol} {interval}; {gaps}"
    )
    if differing:
        console.print(
            f"[yellow]warning:[/] {differing} of the already stored bars differ from the file; "
            "the stored values were kept"
        )


def import_bars(url: str, file: Path, exchange: str, symbol: str, interval: str):
    """(new bars, bars in file, gap description, stored bars that differ from the file) for one
    file; nothing written on error."""
    from store.bar_files import read_bar_file
    from store.bars import differing_bars, save_bars

    frame, gaps = read_bar_file(file, interval)
    differing = differing_bars(url, exchange, symbol, interval, frame)
    added = save_bars(url, exchange, symbol, interval, frame)
    return added, len(frame), gaps.describe(), differing


@app.command("resample")
def resample(
    exchange: ExchangeIdOpt = "binance",
    symbol: str = typer.Option(..., "--symbol", "-s"),
    source: str = typer.Option("1m", "--from", help="Stored interval to build from."),
    target: str = typer.Option(..., "--to", help="Interval to build, e.g. 5m, 15m, 1h, 1d."),
    db: DbOpt = None,
) -> None:
    """Build and store a coarser series from a stored one: UTC-aligned, complete buckets only."""
    from store.bars import load_bars, save_bars
    from store.db import resolve_url
    from store.resample import resample_bars
    from store.validate import gap_report

    url = resolve_url(db)
    frame = load_bars(url, exchange, symbol, source)
    out = resample_bars(frame, source, target)
    added = save_bars(url, exchange, symbol, target, out)
    ts = out.index.as_unit("ms").asi8
    console.print(
        f"resampled {exchange} {symbol} {source} -> {target}: {len(out)} complete bars "
        f"({added} new); {gap_report(ts, target).describe()}"
    )


@app.command("download")
def download(
    exchange: ExchangeIdOpt = "binance",
    symbol: str = typer.Option(
        ..., "--symbol", "-s", help="Market in ccxt spelling, e.g. BTC/USDT."
    ),
    interval: str = typer.Option("1m", "--interval", "-i"),
    since: str = typer.Option(..., "--since", help="First bar time, e.g. 2024-01-01 (UTC)."),
    until: str | None = typer.Option(None, "--until", help="Last time (default: now)."),
    api_url: str | None = typer.Option(
        None,
        "--api-url",
        envvar="RAYTRADER_BINANCE_URL",
        hidden=True,
        help="Replace the exchange's REST host (proxy, mirror, test server).",
    ),
    db: DbOpt = None,
) -> None:
    """Download closed bars through ccxt (paged, rate limited) and store them like an import."""
    from store.bars import save_bars
    from store.db import resolve_url
    from store.download import download_bars, make_exchange
    from store.validate import gap_report

    url = resolve_url(db)
    client = make_exchange(exchange, api_url)
    frame = download_bars(
        client, symbol, interval, _utc(since, "--since"), _utc(until, "--until") if until else None
    )
    if frame.empty:
        console.print(f"no closed {interval} bars for {exchange} {symbol} since {since}")
        return
    added = save_bars(url, exchange, symbol, interval, frame)
    gaps = gap_report(frame.index.as_unit("ms").asi8, interval).describe()
    console.print(
        f"downloaded {len(frame)} bars {frame.index[0]} .. {frame.index[-1]} "
        f"({added} new) -> {exchange} {symbol} {interval}; {gaps}"
    )


@app.command("list")
def list_cmd(db: DbOpt = None) -> None:
    """Show stored series: first/last bar, bars, gaps."""
    # stdlib sqlite3 for an existing SQLite file (fast start); SQLAlchemy for anything else
    from store.catalog import format_duration, resolve_url, sqlite_series_rows

    url = resolve_url(db)
    rows = sqlite_series_rows(url)
    if rows is None:
        from store.bars import series_rows

        rows = series_rows(url)
    if not rows:
        console.print("no bars stored; run `cli.py data demo` or `cli.py data import FILE ...`")
        return
    table = Table(
        "exchange", "symbol", "interval", "first", "last", "bars", "gaps", "missing", "largest gap"
    )
    for exchange, symbol, interval, first, last, bars, gaps, missing, largest in rows:
        table.add_row(
            exchange,
            symbol,
            interval,
            _minute_text(first),
            _minute_text(last),
            str(int(bars)),
            str(int(gaps)),
            str(int(missing)),
            format_duration(int(largest)) if gaps else "-",
        )
    Console(width=max(console.width, 160)).print(table)


def _minute_text(ms: int) -> str:
    """Epoch ms as 'YYYY-mm-dd HH:MM' UTC (integer arithmetic: no float rounding)."""
    from datetime import UTC, datetime, timedelta

    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(ms))
    return moment.strftime("%Y-%m-%d %H:%M")


@app.command("demo")
def demo(
    db: DbOpt = None,
    synthetic: bool = typer.Option(
        True, "--synthetic/--no-synthetic", help="Also generate and import the synthetic market."
    ),
    days: int = typer.Option(365, "--days", min=7, help="Days of synthetic 1m bars per pair."),
) -> None:
    """Import the real Binance samples in data/sample and a generated, seeded market (exchange
    "synthetic"), and register the demo strategy instances for both."""
    from commands.instances import load_instances_file
    from store.db import resolve_url

    url = resolve_url(db)
    files = [f for f in sorted(SAMPLE_DIR.glob("*.csv.gz")) if not f.name.startswith(TEST_ONLY)]
    if not files:
        raise FileNotFoundError(f"no sample files in {SAMPLE_DIR}")
    for file in files:
        match = SAMPLE_NAME.match(file.name)
        if not match:
            continue
        symbol = f"{match['base']}/{match['quote']}"
        added, total, gaps, _differing = import_bars(
            url, file, "binance", symbol, match["interval"]
        )
        console.print(f"{symbol:<13} {match['interval']:>4}: {total:>6} bars ({added} new); {gaps}")
    strategy_files = [DEMO_STRATEGIES]
    if synthetic:
        import_synthetic_market(url, days)
        strategy_files.append(SYNTHETIC_STRATEGIES)
    for strategies in strategy_files:
        loaded = load_instances_file(url, strategies)
        console.print(
            f"demo strategy instances: {loaded.total} ({loaded.describe()}) from "
            f"{strategies.name}; see `cli.py strategies list-instances`"
        )


def import_synthetic_market(url: str, days: int) -> None:
    """Generate each synthetic pair into a Parquet file and import it like `data import` does."""
    import tempfile

    from factors.synthetic_market import DEMO_PAIRS, EXCHANGE, synthetic_bars

    with tempfile.TemporaryDirectory(prefix="raytrader-synthetic-") as folder:
        for pair in DEMO_PAIRS:
            with console.status(f"synthetic {pair.symbol}: generating {days} days of 1m bars"):
                file = Path(folder) / f"{pair.symbol.replace('/', '_')}-1m.parquet"
                bars = synthetic_bars(pair, days=days)
                bars.index = bars.index.as_unit("ms").asi8  # epoch ms, as ccxt writes them
                bars.rename_axis("timestamp").reset_index().to_parquet(file, index=False)
            with console.status(f"synthetic {pair.symbol}: importing {file.name}"):
                added, total, gaps, _ = import_bars(url, file, EXCHANGE, pair.symbol, "1m")
            console.print(
                f"{pair.symbol:<13}   1m: {total:>6} bars ({added} new) on exchange "
                f"{EXCHANGE!r} (generated, seed {pair.seed}); {gaps}"
            )


def _utc(value: str, option: str) -> pd.Timestamp:
    from factors.bars import parse_utc

    stamp = parse_utc(value, option)
    if stamp is None:
        raise UserError(f"{option} needs a date/time, e.g. {option} 2024-01-01")
    return stamp
