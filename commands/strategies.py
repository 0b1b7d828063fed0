"""`cli.py strategies ...` commands.

This module owns `list` (the built-in families). Instance commands (add, enable, disable,
list-instances, load) are registered onto the same `app` from another module.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True)


def _type_name(kind: object) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


def parameter_lines(cls: type) -> str:
    """One `name: type = default` line per parameter of a strategy class."""
    return "\n".join(
        f"{key}: {_type_name(kind)} = {default!r}"
        for key, (kind, default) in cls.parameters().items()
    )


def exit_summary(cls: type) -> str:
    """The default exits of a strategy class, one per line, e.g. `sl 1%`, `session end`."""
    rules = cls().exit_rules()
    parts = [f"sl {rules.sl_pct * 100:g}%"] if rules.sl_pct else []
    parts += [f"tp {rules.tp_pct * 100:g}%"] if rules.tp_pct else []
    parts += [f"after {rules.max_bars} bars"] if rules.max_bars else []
    parts += ["session end"] if rules.session_end else []
    return "\n".join(parts) or "signals only"


def strategies_table(specs: list[str] | None = None) -> Table:
    """A rich table of the built-in families (or of the given specs, e.g. a user file)."""
    # Imported here: the strategy modules pull in pandas and the factors; `--help` stays fast.
    from strategies.registry import BUILTIN, strategy_class

    classes = [strategy_class(spec) for spec in specs] if specs else list(BUILTIN.values())
    table = Table(title="strategy families", show_lines=True)
    headers = (
        "name",
        "family",
        "summary",
        "intervals",
        "default exits",
        "parameters (type = default)",
    )
    for header in headers:
        # Names and parameter lines must stay copy-pasteable: never wrap them.
        wrap = header == "summary"
        table.add_column(header, overflow="fold", no_wrap=not wrap)
    for cls in classes:
        table.add_row(
            cls.name,
            cls.family or "-",
            cls.summary or (cls.__doc__ or "").strip().split("\n")[0],
            " ".join(cls.intervals),
            exit_summary(cls),
            parameter_lines(cls) or "-",
        )
    return table


@app.command("list")
def list_strategies(
    strategy: list[str] = typer.Option(
        None,
        "--strategy",
        "-s",
        help="Show only these: a built-in name or path/to/file.py:ClassName (repeatable).",
    ),
) -> None:
    """List strategy families with their intervals, parameters and defaults."""
    # A pipe or file gets a wide table rather than rich's 80-column fallback.
    width = None if sys.stdout.isatty() else 160
    Console(width=width).print(strategies_table(strategy or None))
