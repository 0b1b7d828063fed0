"""`cli.py weights RESULTS`: weights from backtest results, prod.json, and the database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from commands.options import DbOpt

if TYPE_CHECKING:
    from analysis.weights import FitnessRule

# analysis.weights.METHODS, spelled out so that `--help` does not import pandas and the analysis
# modules (issue 13: start-up under 0.4 s of CPU); a test keeps the two equal.
METHODS = ("binary", "sortino", "inverse_vol")
# analysis.spans' minimum sample for annualised figures, spelled out for the same reason.
MIN_ANNUALISED_DAYS = 30.0
MIN_DAILY_RETURNS = 20

SPLIT_KEYS = (
    "trades",
    "win_rate",
    "expectancy",
    "profit_factor",
    "total_return",
    "cagr",
    "max_drawdown",
    "sortino",
    "sharpe",
    "pct_months_profitable",
    "pct_weeks_profitable",
    "period_start",
    "period_end",
)


def weights(
    results: Path = typer.Argument(..., help="results.csv of `backtest --all`, or its directory"),
    method: str = typer.Option("binary", "--method", help=f"One of: {', '.join(METHODS)}."),
    out: Path = typer.Option(Path("prod.json"), "--out", help="Production config to write."),
    min_sortino: float = typer.Option(0.0, "--min-sortino", help="Fitness: sortino above this."),
    min_expectancy: float = typer.Option(
        0.0, "--min-expectancy", help="Fitness: expectancy (mean pnl per trade) above this."
    ),
    min_trades: int = typer.Option(20, "--min-trades", help="Fitness: at least this many trades."),
    min_days: float = typer.Option(
        MIN_ANNUALISED_DAYS, "--min-days", help="Fitness: at least this many days of data."
    ),
    min_daily_returns: int = typer.Option(
        MIN_DAILY_RETURNS, "--min-daily-returns", help="Fitness: at least this many daily returns."
    ),
    split: str | None = typer.Option(
        None,
        "--split",
        help="Choose weights on trades before this date, report the portfolio after it.",
    ),
    cash: float = typer.Option(
        10_000.0, "--cash", help="Initial cash per instance for --split and the statistics."
    ),
    max_pbo: float | None = typer.Option(
        None,
        "--max-pbo",
        help="Fitness: refuse the selection when its Probability of Backtest Overfitting is "
        "above this (0..1, e.g. 0.5).",
    ),
    rolling: bool = typer.Option(
        False,
        "--rolling",
        help="Re-select at every --every on the --lookback before it and backtest the stitched "
        "selection out of sample into the directory --out (docs/analysis.md#rolling-re-selection).",
    ),
    every: str = typer.Option(
        "1d", "--every", help="--rolling: days between re-selections: 1d, 7d or 30d (at 00:00 UTC)."
    ),
    lookback: str = typer.Option(
        "60d", "--lookback", help="--rolling: the trades that exited this many days before."
    ),
    close_on_deselect: bool = typer.Option(
        False,
        "--close-on-deselect",
        help="--rolling: close a dropped instance's open trades at the re-selection (default: "
        "they run to their exit).",
    ),
    draws: int = typer.Option(
        200,
        "--draws",
        help="--rolling: random selections (>= 200); also the bootstrap draws of p95_drawdown (at least 1,000).",
    ),
    seed: int = typer.Option(0, "--seed", help="--rolling: seed of the random selections."),
    db: DbOpt = None,
    no_db: bool = typer.Option(False, "--no-db", help="Do not write weights to the database."),
    exchange: str = typer.Option(
        "binance", "--exchange", help="Exchange of instances added to the database."
    ),
) -> None:
    """Weight 1 (binary) or proportional weights for instances passing the fitness rule; writes
    prod.json with the non-zero instances and sets weight/enabled in the database."""
    from analysis.report import report_console
    from analysis.selection_stats import statistics_table
    from analysis.weights import (
        FitnessRule,
        WeightsError,
        compute_weights,
        load_results,
        load_split_trades,
        prod_config,
        results_paths,
        write_prod,
        write_to_db,
    )

    if method not in METHODS:
        raise WeightsError(f"--method {method!r} is unknown; use one of {', '.join(METHODS)}")
    if cash <= 0:
        raise WeightsError(f"--cash {cash} must be positive, e.g. --cash 10000")
    if max_pbo is not None and not 0 <= max_pbo <= 1:
        raise WeightsError(f"--max-pbo {max_pbo} is a probability; give one from 0 to 1, e.g. 0.5")
    rule = FitnessRule(min_sortino, min_expectancy, min_trades, min_days, min_daily_returns)
    if rolling:
        from commands.weights_rolling import check_options, run_rolling

        options = check_options(
            every, lookback, split, max_pbo, draws, seed, close_on_deselect, out
        )
        run_rolling(results, method, rule, cash, options, out)
        return
    results_path, trades_path = results_paths(results)
    frame = load_results(results_path)
    console = report_console()
    trades = None  # read once: --split and the statistics share them
    if split is not None:
        frame, weights_, trades = _split(
            frame, results_path, trades_path, split, method, rule, cash
        )
    else:
        weights_ = compute_weights(frame, method, rule)
    config = prod_config(frame, weights_, method, rule, str(results_path))
    console.print(_weights_table(config["instances"], rule, len(frame)))
    if trades is None and trades_path is not None:
        trades = load_split_trades(trades_path, results_path)
    _p95_drawdowns(config, trades, split, cash, draws, seed, console)
    stats = _statistics(
        frame, weights_, results_path, trades_path, trades, split, method, rule, cash
    )
    if _refused(stats, max_pbo):
        console.print(statistics_table(stats))  # the figures behind the refusal
    _check_pbo(stats, max_pbo, out)
    write_prod(config, out)
    console.print(f"wrote {out} ({len(config['instances'])} of {len(frame)} instances)")
    _print_refusals(frame, rule, console)
    if stats is not None:
        console.print(statistics_table(stats))
    else:
        console.print("no trades.csv next to results.csv: no DSR or PBO", highlight=False)
    if not no_db:
        from store.db import resolve_url, safe_url

        url = resolve_url(db)
        updated, added = write_to_db(url, frame, weights_, exchange)
        console.print(f"database {safe_url(url)}: {updated} instances updated, {added} added")


def _split(frame, results_path, trades_path, split, method, rule, cash):
    from analysis.columns import currency_of, iso_utc
    from analysis.report import fmt, report_console
    from analysis.weights import WeightsError, load_split_trades, split_report
    from factors.bars import parse_utc

    when = parse_utc(split, "--split")
    if when is None:
        raise WeightsError("--split needs a date, e.g. --split 2024-06-01")
    trades = load_split_trades(trades_path, results_path)
    report = split_report(frame, trades, when, method, rule, cash)
    console = report_console()
    currency = currency_of(frame["symbol"]) if "symbol" in frame else None
    unit = f" (money in {currency})" if currency else ""
    table = Table(title=f"Selection on trades before {iso_utc(when)}{unit}", title_justify="left")
    table.add_column("metric")
    table.add_column("in-sample (selected)", justify="right")
    table.add_column("out-of-sample (selected)", justify="right")
    table.add_column("out-of-sample (all, equal)", justify="right")
    for key in SPLIT_KEYS:
        cells = (report[k].get(key) for k in ("in_sample", "out_of_sample", "out_of_sample_all"))
        table.add_row(key, *(fmt(key, v) for v in cells))
    console.print(table)
    for column in ("in_sample", "out_of_sample", "out_of_sample_all"):
        note = report[column].get("annualised_note")
        if note:  # why sortino / sharpe / cagr show "-"
            console.print(f"- in {column.replace('_', '-')}: {note}", highlight=False)
    console.print(
        "in-sample = trades that exited before the split; out-of-sample = trades entered at or "
        "after it; trades spanning the split are in neither"
    )
    return report["in_sample_results"], report["weights"], trades


def _p95_drawdowns(config, trades, split, cash, draws, seed, console) -> None:
    """prod.json's `p95_drawdown` per instance, from the trades the selection saw."""
    from analysis.weights import add_p95_drawdowns
    from factors.bars import parse_utc

    if trades is None:
        console.print("no trades.csv next to results.csv: no p95_drawdown in prod.json")
        return
    if split is not None:
        trades = trades[trades["exit_time"] < parse_utc(split, "--split")]
    draws = max(draws, 1_000)  # --draws of --rolling may be as few as 200; bands want 1,000
    add_p95_drawdowns(config["instances"], trades, cash, draws, seed)


def _statistics(frame, weights_, results_path, trades_path, trades, split, method, rule, cash):
    """DSR and PBO of the selection over the trades it was chosen on (before --split), or None
    with a note when results.csv has no trades.csv beside it."""
    from analysis.columns import iso_utc
    from analysis.selection_stats import selection_statistics
    from analysis.weights import load_split_trades
    from factors.bars import parse_utc

    if trades_path is None:
        return None
    if trades is None:
        trades = load_split_trades(trades_path, results_path)
    sample = "all trades"
    if split is not None:
        when = parse_utc(split, "--split")
        trades = trades[trades["exit_time"] < when]
        sample = f"trades that exited before {iso_utc(when)}, the selection's sample"
    return selection_statistics(frame, weights_, trades, cash, rule, method, sample)


def _refused(stats, max_pbo: float | None) -> bool:
    pbo = stats.selected_pbo if stats is not None else None
    return max_pbo is not None and pbo is not None and pbo > max_pbo


def _check_pbo(stats, max_pbo: float | None, out: Path) -> None:
    """--max-pbo: refuse (no prod.json) a selection more likely overfitted than allowed."""
    from analysis.weights import WeightsError

    if max_pbo is None:
        return
    pbo = stats.selected_pbo if stats is not None else None
    if pbo is None:
        why = stats.reason if stats is not None else "no trades.csv next to results.csv"
        raise WeightsError(
            f"--max-pbo needs the selection's PBO, which cannot be computed here ({why}); "
            f"{out} not written; drop --max-pbo or give a `backtest --all` directory with more data"
        )
    if pbo > max_pbo:
        raise WeightsError(
            f"selection refused: its Probability of Backtest Overfitting is {pbo:.3f} > --max-pbo "
            f"{max_pbo:g} (in {pbo:.0%} of the in/out-of-sample splits the runs chosen in-sample "
            f"ranked at or below the median run out-of-sample); {out} not written; try fewer "
            "variants, a stricter fitness rule or more data, or raise --max-pbo"
        )


def _weights_table(instances: list[dict], rule: FitnessRule, total: int) -> Table:
    table = Table(
        title=f"Weights: {len(instances)} of {total} instances weighted (rule: {rule.describe()})",
        title_justify="left",
    )
    for col in ("family", "symbol", "interval", "params", "weight"):
        table.add_column(col, justify="right" if col == "weight" else "left")
    for inst in instances:
        params = " ".join(f"{k}={v}" for k, v in inst["params"].items())
        table.add_row(
            inst["family"], inst["symbol"], inst["interval"], params, f"{inst['weight']:.4f}"
        )
    return table


def _print_refusals(frame, rule: FitnessRule, console) -> None:
    """How many instances the rule refused, by reason (a short sample first of all)."""
    import pandas as pd

    reasons = [rule.refusal(row) for _, row in frame.iterrows()]
    counts = pd.Series([r for r in reasons if r], dtype=object).value_counts()
    for reason, count in counts.items():
        console.print(f"refused {count} instance(s): {reason}", highlight=False)
