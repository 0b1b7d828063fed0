"""`cli.py analyze PATH`: statistics and plots for a trades.csv or a backtest output directory."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from commands.errors import UserError


def analyze(
    path: Path = typer.Argument(
        ..., help="trades.csv (ours or a user's file with the same columns) or a backtest --out dir"
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the metrics as JSON (null = undefined)."
    ),
    html: Path | None = typer.Option(
        None, "--html", help="Also write a self-contained HTML report with plots to this file."
    ),
    compare: Path | None = typer.Option(
        None,
        "--compare",
        help="Another run (e.g. the in-sample portfolio) shown side by side in the HTML report.",
    ),
    cash: float | None = typer.Option(
        None,
        "--cash",
        help="Initial cash per backtest when the equity is rebuilt from trades (default 10000).",
    ),
    draws: int = typer.Option(
        1_000, "--draws", help="Bootstrap draws of the bands (at least 1000; blocks of days)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap draws."),
) -> None:
    """Metrics table, monthly/weekly returns and breakdowns by strategy, symbol, interval, side
    and exit reason."""
    # Imported here (pandas, plots): `cli.py --help` and the other commands stay fast.
    from analysis.bootstrap import MIN_DRAWS
    from analysis.html_report import write_html
    from analysis.report import analyse, render, report_console
    from analysis.selection_stats import directory_statistics, statistics_table
    from analysis.trades_io import load_trade_set

    if cash is not None and cash <= 0:
        raise UserError(f"--cash {cash} must be positive, e.g. --cash 10000")
    if draws < MIN_DRAWS:
        raise UserError(f"--draws {draws} is too few for a p5/p95 band; give at least {MIN_DRAWS}")
    trade_set = load_trade_set(path, cash)
    analysis = analyse(trade_set, draws, seed)
    # a `backtest --all` directory: how much of its best run and its selection is luck
    selection = directory_statistics(path, trade_set.cash_per_run or trade_set.initial_cash)
    console = report_console()
    if as_json:
        payload = {
            "source": trade_set.source,
            "notes": analysis.notes,
            "metrics": analysis.metrics,
            "bootstrap": analysis.bands.to_json() if analysis.bands is not None else None,
        }
        typer.echo(json.dumps(payload, indent=2, allow_nan=False))
    else:
        render(trade_set, analysis, console)
        _print_rolling(trade_set, console)
        if selection is not None:
            console.print(statistics_table(selection))
    if html is not None:
        plots = write_html(trade_set, analysis, html, _compared(compare, cash), selection)
        message = f"wrote {html} ({', '.join(plots)})"
        if as_json:
            typer.echo(message, err=True)
        else:
            console.print(message)


def _print_rolling(trade_set, console) -> None:
    """A `weights --rolling` directory: its comparison.csv and the count of re-selections."""
    from rich.table import Table

    from analysis.html_report import rolling_files

    rolling = rolling_files(trade_set)
    if rolling is None:
        return
    counts, comparison = rolling
    console.print(
        f"rolling selection: {len(counts)} re-selections, {counts.mean():.1f} instances selected "
        f"on average (min {counts.min()}, max {counts.max()}; selections.csv)",
        highlight=False,
    )
    if comparison is None:
        return
    table = Table(title="Rolling selection compared (comparison.csv)", title_justify="left")
    for column in comparison.columns:
        table.add_column(str(column))
    for row in comparison.itertuples(index=False):
        table.add_row(
            *(
                "-" if v != v or v is None else _number(v) if isinstance(v, float) else str(v)
                for v in row
            )
        )
    console.print(table)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value.is_integer() else f"{value:.4g}"


def _compared(path: Path | None, cash: float | None) -> list:
    """The --compare run as analysis.html_report.Compared rows (none without --compare)."""
    from analysis.html_report import Compared
    from analysis.report import analyse
    from analysis.trades_io import load_trade_set

    if path is None:
        return []
    other = analyse(load_trade_set(path, cash))
    return [Compared(Path(path).name or str(path), other.metrics, other.curve)]
