"""raytrader command line: `python cli.py --help`."""

from __future__ import annotations

import os
import sys

import typer

from commands import (
    analyze,
    backtest,
    data,
    deploy,
    exchange,
    factors,
    instances,
    live,
    model,
    pairs,
    strategies,
    weights,
)
from commands.errors import report_user_errors

app = typer.Typer(
    help="raytrader: event-driven trading research and live trading on Ray.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data", help="Import, download, resample and list bar data.")
data.app.add_typer(pairs.app, name="pairs", help="Pairs live may trade: list, enable, disable.")
app.add_typer(strategies.app, name="strategies", help="Strategy families and instances.")
for _name, _func in (
    ("add", instances.add),
    ("list-instances", instances.list_instances_cmd),
    ("load", instances.load),
):
    strategies.app.command(_name)(_func)
for _name, _func in (("enable", instances.enable), ("disable", instances.disable)):
    strategies.app.command(_name, context_settings=instances.ID_CONTEXT)(_func)
app.add_typer(factors.app, name="factors", help="Compute and export factor tables.")
app.command(
    "backtest",
    help="Backtest one strategy, a portfolio, or every instance (--all).",
    context_settings=backtest.CONTEXT_SETTINGS,
)(backtest.backtest)
app.command("analyze", help="Report statistics and plots for trades or a backtest directory.")(
    analyze.analyze
)
app.command("weights", help="Turn backtest results into weights and a production config.")(
    weights.weights
)
app.add_typer(live.app, name="live", help="Trade live (dry run by default) on an exchange.")
app.add_typer(
    deploy.app,
    name="deploy",
    help="The daily step: backtest the new bars, re-select, write prod.json for live.",
)
app.add_typer(exchange.app, name="exchange", help="A local exchange for tests and paper trading.")
app.add_typer(model.app, name="model", help="Machine learning over trade outcomes.")


def main() -> None:
    with report_user_errors(debug=bool(os.environ.get("RAYTRADER_DEBUG"))):
        app()


if __name__ == "__main__":
    sys.exit(main())
