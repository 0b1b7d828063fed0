"""`cli.py data pairs list|enable|disable`: markets live may trade.

A disabled pair keeps its instances (and their enabled flags) but `cli.py live` opens nothing
new on it; a running `live` notices within a few seconds (live/ops/control.py).
"""

from __future__ import annotations

import typer
from rich.console import Console

from commands.options import DbOpt, ExchangeIdOpt

app = typer.Typer(no_args_is_help=True)
console = Console(soft_wrap=True)


@app.command("list")
def list_pairs_cmd(db: DbOpt = None) -> None:
    """Show the registered pairs and whether live may trade them."""
    from store.db import resolve_url
    from store.instances import list_pairs

    rows = list_pairs(resolve_url(db))
    for p in rows:
        console.print(f"{p.exchange} {p.symbol} {'enabled' if p.active else 'disabled'}")
    if not rows:
        console.print("no pairs; they are registered with their first instance")


@app.command("enable")
def enable(
    symbol: str = typer.Argument(..., help="e.g. ETH/BTC"),
    exchange: ExchangeIdOpt = "binance",
    db: DbOpt = None,
) -> None:
    """Let live trade this pair again (its enabled instances)."""
    _set(symbol, exchange, db, True)


@app.command("disable")
def disable(
    symbol: str = typer.Argument(..., help="e.g. ETH/BTC"),
    exchange: ExchangeIdOpt = "binance",
    db: DbOpt = None,
) -> None:
    """Stop live opening new positions on this pair (instances are kept)."""
    _set(symbol, exchange, db, False)


def _set(symbol: str, exchange: str, db: str | None, active: bool) -> None:
    from store.db import resolve_url
    from store.instances import set_pair_active

    pair = set_pair_active(resolve_url(db), exchange, symbol, active)
    console.print(f"pair {pair.exchange} {pair.symbol} {'enabled' if active else 'disabled'}")
