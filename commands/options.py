"""Options several commands share: declared once here, so their flags and help read alike."""

from __future__ import annotations

from typing import Annotated, Any

import typer

DB_HELP = "Database URL (default: $RAYTRADER_DB or sqlite:///raytrader.db)."


def db_option(panel: str | None = None) -> Any:
    """--db; `panel` places it in a --help panel of a command that groups its options."""
    return typer.Option("--db", help=DB_HELP, rich_help_panel=panel)


DbOpt = Annotated[str | None, db_option()]
ExchangeIdOpt = Annotated[
    str, typer.Option("--exchange", "-e", help="Exchange id (ccxt spelling).")
]
