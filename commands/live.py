"""`cli.py live`: trade the enabled instances (or a prod.json) live; dry run by default."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from commands.errors import UserError

app = typer.Typer(invoke_without_command=True)
console = Console(stderr=True, soft_wrap=True)

# fmt: off
ExchangeOpt = Annotated[str, typer.Option("--exchange", "-e", help="Exchange id (ccxt spelling).")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="Exchange base URL, e.g. "
                   "http://127.0.0.1:8765 for `cli.py exchange serve` (default: the exchange's own).")]
DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL (default: $RAYTRADER_DB or "
                  "sqlite:///raytrader.db).")]
FamilyOpt = Annotated[str | None, typer.Option("--family", help="Only instances of this family.")]
SymbolOpt = Annotated[str | None, typer.Option("--symbol", help="Only instances on this symbol.")]
IntervalOpt = Annotated[str | None, typer.Option("--interval", help="Only this interval.")]
InstancesOpt = Annotated[str | None, typer.Option("--instances", help="Only these instance ids, "
                         "e.g. 3,7.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Trade the instances and weights "
                      "of this prod.json instead of the database's enabled instances.")]
RealOpt = Annotated[bool, typer.Option("--real", help="Send real orders (keys from "
                    "RAYTRADER_<EXCHANGE>_API_KEY/_SECRET or RAYTRADER_API_KEY/_SECRET).")]
CashOpt = Annotated[float, typer.Option("--cash", help="Dry run: starting cash of the account.")]
RiskOpt = Annotated[float, typer.Option("--risk", help="Fraction of equity risked per trade.")]
FeeOpt = Annotated[float, typer.Option("--fee-bps", help="Dry run: fee per fill, bps.")]
SlippageOpt = Annotated[float, typer.Option("--slippage-bps", help="Dry run: slippage, bps.")]
DurationOpt = Annotated[float | None, typer.Option("--duration", help="Stop after this many "
                        "seconds (default: run until Ctrl-C or SIGTERM).")]
ReconcileOpt = Annotated[float, typer.Option("--reconcile-every", help="Real mode: minutes "
                        "between audits of the exchange for orders and fills the database does "
                        "not know (0: only at start).")]
# fmt: on


@app.callback()
def live(
    ctx: typer.Context,
    exchange: ExchangeOpt = "binance",
    url: UrlOpt = None,
    db: DbOpt = None,
    family: FamilyOpt = None,
    symbol: SymbolOpt = None,
    interval: IntervalOpt = None,
    instances: InstancesOpt = None,
    config: ConfigOpt = None,
    real: RealOpt = False,
    cash: CashOpt = 10_000.0,
    risk: RiskOpt = 0.01,
    fee_bps: FeeOpt = 10.0,
    slippage_bps: SlippageOpt = 0.0,
    duration: DurationOpt = None,
    reconcile_every: ReconcileOpt = 5.0,
) -> None:
    """Trade live until Ctrl-C or SIGTERM (dry run: the simulated exchange fed live bars)."""
    if ctx.invoked_subcommand is not None:
        return
    from live.ccxt_clients import api_keys, rest_client
    from live.node import LiveSettings
    from live.setup import check_exchange, select_members, warm_up
    from store.db import resolve_url

    ids = _ids(instances)
    if not 0 < risk <= 1:
        raise UserError(f"--risk must be in (0, 1], got {risk}")
    if not reconcile_every >= 0:
        raise UserError(f"--reconcile-every must be minutes >= 0, got {reconcile_every}")
    keys = api_keys(exchange) if real else None
    if real and keys is None:
        up = exchange.upper()
        raise UserError(
            f"--real needs API keys in the environment: RAYTRADER_{up}_API_KEY and "
            f"RAYTRADER_{up}_API_SECRET (or RAYTRADER_API_KEY and RAYTRADER_API_SECRET)"
        )
    client = rest_client(exchange, url, keys)  # an unknown exchange fails here, first
    url_db = resolve_url(db)
    members = select_members(url_db, exchange, config, family, symbol, interval, ids)
    check_exchange(client, url, members)
    warm = warm_up(client, url_db, exchange, members)
    settings = LiveSettings(exchange, url, url_db, cash, fee_bps, slippage_bps, risk, real=real,
                            reconcile_every=reconcile_every)  # fmt: skip
    _run(settings, members, warm, duration)


def _ids(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(
            f"--instances {text!r} must be instance ids separated by commas, e.g. 3,7"
        ) from None


def _run(settings, members, warm, duration: float | None) -> None:
    from live.node import LiveNode, ray_for_live
    from live.setup import commit_warmup

    stopping = {"now": False}
    with ray_for_live(console) as ray:
        # after Ray started: its driver installs a SIGTERM handler of its own that aborts
        previous = signal.signal(signal.SIGTERM, lambda *_: stopping.update(now=True))
        node = LiveNode(settings, members, warm, ray)
        node.start(stream=False)  # restore and reconcile first: a failure writes nothing
        commit_warmup(settings.db_url, settings.exchange, warm)
        node.start_stream()
        _recovered(node)
        mode = "REAL orders" if settings.real else "dry run"
        console.print(f"live {mode} on {settings.exchange} ({settings.url or 'default URL'}): "
                      f"{len(members)} instance(s); Ctrl-C stops")  # fmt: skip
        deadline = None if duration is None else time.monotonic() + duration
        shown = len(node.warnings)
        try:
            with Live(_status(node), console=console, refresh_per_second=2, transient=False) as bar:
                while not stopping["now"] and (deadline is None or time.monotonic() < deadline):
                    node.pump(0.5)
                    for warning in node.warnings[shown:]:  # found by the periodic audit
                        console.print(f"[bold red]warning:[/] {warning}", highlight=False)
                    shown = len(node.warnings)
                    bar.update(_status(node))
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            _summary(node)
            node.stop()


def _recovered(node) -> None:
    """What came back from the database, and anything at the exchange it does not know."""
    restored = node.restored
    if restored.orders or restored.trades:
        console.print(f"recovered from the database: {len(restored.trades)} open trade(s), "
                      f"{len(restored.orders)} open order(s)")  # fmt: skip
    for warning in node.warnings:
        console.print(f"[bold red]warning:[/] {warning}", highlight=False)


def _status(node) -> Text:
    s = node.status()
    return Text(
        f"{node.settings.exchange} connected | bars {s['bars']} | open {s['positions']} | "
        f"equity {s['equity']:,.2f} | orders/min {s['orders_last_minute']} | "
        f"closed {s['trades_closed']}"
    )


def _summary(node) -> None:
    trades = node.trades()
    closed = [t for t in trades if t["status"] == "CLOSED"]
    active = [t for t in trades if t["status"] == "ACTIVE"]
    if not console.is_terminal:
        console.print()  # the status line's last frame has no line end
    console.print(f"stopped: {node.bars} bars, {len(closed)} trade(s) closed, "
                  f"{len(active)} position(s) and their exchange orders left as they are")  # fmt: skip
    for t in closed:
        print(f"trade {t['strategy']} {t['side']} entry {_iso(t['entry_ts'])} @ "
              f"{t['entry_price']:.8g} exit {_iso(t['exit_ts'])} @ {t['exit_price']:.8g} "
              f"{t['exit_reason']} pnl {t['pnl']:.8g}")  # fmt: skip
    for t in active:
        print(f"open  {t['strategy']} {t['side']} entry {_iso(t['entry_ts'])} @ "
              f"{t['entry_price']:.8g} quantity {t['quantity']:.8g}")  # fmt: skip


def _iso(ns: int) -> str:
    import pandas as pd

    from analysis.columns import iso_utc

    return iso_utc(pd.Timestamp(ns, tz="UTC"))
