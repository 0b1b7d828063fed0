"""`cli.py exchange serve`: a local Binance-compatible exchange replaying stored bars."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from commands.errors import UserError
from commands.options import DbOpt

app = typer.Typer(no_args_is_help=True)
console = Console(soft_wrap=True)

DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Bar file, or a directory of files "
        "named BASE_QUOTE-INTERVAL.csv.gz (default: the database's bars, with "
        "--symbol and --interval).",
    ),
]
SymbolOpt = Annotated[
    str | None,
    typer.Option("--symbol", help="Symbol of a single --data file (or the one series to replay)."),
]
IntervalOpt = Annotated[
    str | None,
    typer.Option(
        "--interval", help="Interval of a single --data file (or the one series to replay)."
    ),
]
SpeedOpt = Annotated[
    float,
    typer.Option(
        "--speed", help="Replay speed, x real time (0: bars advance only on POST /_local/step)."
    ),
]
PortOpt = Annotated[int, typer.Option("--port", help="TCP port (0: a free one, printed).")]
HostOpt = Annotated[str, typer.Option("--host", help="Address to listen on.")]
BalanceOpt = Annotated[str, typer.Option("--balance", help="Funds of each new account.")]
StartOpt = Annotated[
    str | None,
    typer.Option(
        "--start",
        help="Replay from this time (ISO, UTC); "
        "earlier bars are history (REST klines). Default: the first bar.",
    ),
]
FeeOpt = Annotated[float, typer.Option("--fee-bps", help="Fee per fill, bps of notional.")]
ExchangeOpt = Annotated[str, typer.Option("--exchange", help="Exchange of the stored bars.")]


@app.command("serve")
def serve(
    data: DataOpt = None,
    symbol: SymbolOpt = None,
    interval: IntervalOpt = None,
    speed: SpeedOpt = 60.0,
    port: PortOpt = 8765,
    host: HostOpt = "127.0.0.1",
    balance: BalanceOpt = "BTC=10,ETH=100,USDT=100000",
    start: StartOpt = None,
    fee_bps: FeeOpt = 10.0,
    db: DbOpt = None,
    exchange: ExchangeOpt = "binance",
) -> None:
    """Serve a local exchange (Binance REST + websocket paths) replaying stored bars."""
    from factors.bars import parse_utc
    from localexchange.server import DEFAULT_SECRET, LocalExchange, parse_balance

    funding = parse_balance(balance)
    if speed < 0:
        raise UserError(f"--speed must be >= 0 (x real time), got {speed}")
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be 0..65535, got {port}")
    market = _market(data, symbol, interval, db, exchange)
    begin = parse_utc(start, "--start")
    market.start_at(None if begin is None else int(begin.value // 1_000_000))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    local = LocalExchange(market, funding, speed, DEFAULT_SECRET, fee_bps / 1e4)
    asyncio.run(_serve(local, host, port, len(market.series)))


def _market(
    data: Path | None, symbol: str | None, interval: str | None, db: str | None, exchange: str
):
    from localexchange.replay import ReplayMarket, load_market

    if data is not None:
        if not data.exists():
            raise UserError(f"--data {str(data)!r} does not exist; give a bar file or directory")
        return load_market(data, symbol, interval)
    if not (symbol and interval):
        raise UserError(
            "give --data PATH (files) or --symbol and --interval (bars in the database)"
        )
    from store.bars import load_bars
    from store.db import resolve_url

    market = ReplayMarket()
    market.add(symbol, interval, load_bars(resolve_url(db), exchange, symbol, interval))
    return market


async def _serve(local, host: str, port: int, series: int) -> None:
    try:
        bound = await local.start(host, port)
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port "
            "(0 picks a free one)"
        ) from None
    mode = f"speed {local.speed:g}x" if local.speed else "stepped (POST /_local/step)"
    console.print(f"local exchange on http://{host}:{bound} ({series} series, {mode})")
    console.print(f"port {bound}", highlight=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await local.stop()
        console.print("local exchange stopped")
