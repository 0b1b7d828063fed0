"""`cli.py exchange serve`: a local Binance-compatible exchange replaying stored bars."""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import time
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
        help="Replay from this time (ISO, UTC); earlier bars are history (REST klines). "
        "Default: where the most symbols have data (the latest first bar among them).",
    ),
]
FeeOpt = Annotated[float, typer.Option("--fee-bps", help="Fee per fill, bps of notional.")]
KeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--key",
        help="An API key and its own secret, KEY:SECRET (repeatable). With --key or --keys only "
        "those keys are accepted; without either, any key signed with the demo secret "
        "`local-secret` is.",
    ),
]
KeysOpt = Annotated[
    Path | None,
    typer.Option("--keys", help="A file of KEY:SECRET lines (# comments), as --key."),
]
WeightLimitOpt = Annotated[
    int,
    typer.Option(
        "--weight-limit",
        help="Binance's request-weight limit per client per minute (Binance: 6000): past it "
        "429 with Retry-After, then 418 for a client that keeps going. 0: no limit.",
    ),
]
AllowRemoteControlOpt = Annotated[
    bool,
    typer.Option(
        "--allow-remote-control",
        help="Answer /_local/* (step, drop, state) from any client, not only from loopback.",
    ),
]
ExchangeOpt = Annotated[str, typer.Option("--exchange", help="Exchange of the stored bars.")]
FaultsOpt = Annotated[
    str | None,
    typer.Option(
        "--faults",
        help="Seeded faults, KIND=VALUE,...: timeout_after_accept, drop_before_accept, "
        "http_5xx_after_accept, http_5xx_read, http_429, partial_fill (probabilities 0..1), "
        "ws_drop_every (s), latency_ms (A-B), hang_ms (how long a timeout holds the answer, "
        "default 15000). See docs/live.md#fault-mode.",
    ),
]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Seed of --faults: the same seed replays the same faults.")
]


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
    key: KeyOpt = None,
    keys: KeysOpt = None,
    allow_remote_control: AllowRemoteControlOpt = False,
    weight_limit: WeightLimitOpt = 0,
    faults: FaultsOpt = None,
    seed: SeedOpt = 0,
) -> None:
    """Serve a local exchange (Binance REST + websocket paths) replaying stored bars."""
    from factors.bars import parse_utc
    from localexchange.faults import FaultPlan, FaultSpec
    from localexchange.rate_limit import WeightLimit
    from localexchange.server import LocalExchange, parse_balance, parse_keys
    from ml.serve import bind_warning

    funding = parse_balance(balance)
    if not (math.isfinite(speed) and speed >= 0):
        raise UserError(f"--speed must be a number >= 0 (x real time), got {speed}")
    if not (math.isfinite(fee_bps) and fee_bps >= 0):
        raise UserError(f"--fee-bps must be a number >= 0 (bps of notional), got {fee_bps}")
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be 0..65535, got {port}")
    if weight_limit < 0:
        raise UserError(f"--weight-limit must be >= 0 (0: no limit), got {weight_limit}")
    secrets = parse_keys(key or [], keys)
    plan = None if faults is None else FaultPlan(FaultSpec.parse(faults), seed)
    market = _market(data, symbol, interval, db, exchange)
    begin = parse_utc(start, "--start")
    if begin is None:
        market.start_where_most_data()
    else:
        begin_ms = int(begin.value // 1_000_000)
        if begin_ms >= market.end_ms():
            raise UserError(
                f"--start {start} is after the data, which ends at {_utc(market.end_ms())}; "
                "give an earlier --start or omit it"
            )
        market.start_at(begin_ms)
    warning = bind_warning(host)
    if warning:
        console.print(warning.replace("serving models", "serving the local exchange"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    local = LocalExchange(
        market,
        funding,
        speed,
        fee_rate=fee_bps / 1e4,
        keys=secrets,
        remote_control=allow_remote_control,
        weight_limit=WeightLimit(weight_limit) if weight_limit else None,
        faults=plan,
    )
    asyncio.run(_serve(local, host, port, len(market.series)))


def fault_line(plan) -> str:
    """The start-up line of the fault mode: which faults are on, and the seed."""
    return (
        f"fault mode on (seed {plan.seed}): {plan.spec.describe()}; "
        "each fault is logged, GET /_local/faults lists them"
    )


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


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
    market.add_standard_intervals()
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
    market = local.market
    window = f"replaying {_utc(market.now_ms)} .. {_utc(market.end_ms())}"
    console.print(
        f"local exchange on http://{host}:{bound} ({series} series, {mode}, {window}; "
        "spans without bars are skipped)",
        highlight=False,
    )
    if local.faults is not None:
        console.print(fault_line(local.faults), highlight=False)
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
