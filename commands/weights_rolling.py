"""`cli.py weights RESULTS --rolling`: rolling re-selection backtested out of sample, compared with
a static selection, every instance, and random selections (docs/analysis.md#rolling-re-selection).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

COMPARISON_COLUMNS = (
    "selection",
    "instances",
    "trades",
    "refused",
    "total_return",
    "max_drawdown",
    "sortino",
    "selection_sortino",
    "verdict",
)


@dataclass(frozen=True)
class RollingOptions:
    every: int  # days
    lookback: int  # days
    close_on_deselect: bool
    draws: int
    seed: int


def check_options(
    every: str, lookback: str, split, max_pbo, draws: int, seed: int, close: bool, out: Path
) -> RollingOptions:
    """Every flag of --rolling checked before anything is read or written."""
    from analysis.rolling import EVERY_CHOICES, MIN_DRAWS, parse_days
    from analysis.weights import WeightsError

    if split is not None:
        raise WeightsError(
            "--rolling and --split are two ways to choose the sample; give one of them "
            "(--rolling re-selects at every --every on the --lookback before it)"
        )
    if max_pbo is not None:
        raise WeightsError("--max-pbo refuses one selection's prod.json; drop it with --rolling")
    if draws < MIN_DRAWS:
        raise WeightsError(f"--draws {draws} is too few for a band; give at least {MIN_DRAWS}")
    if seed < 0:
        raise WeightsError(f"--seed {seed} must be 0 or more")
    if out.suffix.lower() == ".json" or (out.exists() and not out.is_dir()):
        raise WeightsError(
            f"--rolling writes a backtest directory; --out {str(out)!r} is a file name, give a "
            "directory, e.g. --out out/rolling"
        )
    return RollingOptions(
        parse_days(every, "--every", EVERY_CHOICES),
        parse_days(lookback, "--lookback"),
        close,
        draws,
        seed,
    )


def run_rolling(results, method, rule, cash, options: RollingOptions, out: Path) -> None:
    """Schedule, random band, the three accounts, then (only then) the directory."""
    from analysis.report import report_console
    from analysis.rolling import (
        equal_schedule,
        market,
        random_band,
        rolling_schedule,
        selections_frame,
        static_schedule,
    )
    from analysis.weights import (
        WeightsError,
        instance_key,
        load_results,
        load_split_trades,
        results_paths,
    )
    from backtest.account import AccountSettings
    from backtest.rolling import replay, results_document, write_directory

    if options.lookback < rule.min_days:
        raise WeightsError(
            f"--lookback {options.lookback}d is shorter than --min-days {rule.min_days:g}: no "
            "instance could pass the fitness rule; give a longer --lookback or a lower --min-days"
        )
    settings = AccountSettings(cash=cash)
    results_path, trades_path = results_paths(results)
    frame = load_results(results_path)
    if trades_path is None:
        raise WeightsError(
            f"--rolling needs the combined trades.csv next to {results_path} (written by "
            "`cli.py backtest --all`); none found"
        )
    trades = load_split_trades(trades_path, results_path)
    started = time.perf_counter()
    m = market(trades, [instance_key(r) for _, r in frame.iterrows()], cash)
    rolling = rolling_schedule(m, options.every, options.lookback, method, rule)
    band = random_band(rolling, options.draws, options.seed)
    selection_seconds = time.perf_counter() - started
    schedules = {
        f"rolling (every {options.every}d, lookback {options.lookback}d)": rolling,
        "static (first lookback)": static_schedule(rolling),
        "equal (all instances)": equal_schedule(rolling, method),
    }
    accounts = {
        name: replay(s, settings, options.close_on_deselect) for name, s in schedules.items()
    }
    comparison = comparison_frame(schedules, accounts, band)
    params = {
        "source": str(results_path),
        "method": method,
        "rule": rule.__dict__,
        "every_days": options.every,
        "lookback_days": options.lookback,
        "close_on_deselect": options.close_on_deselect,
        "random": {"draws": band.draws, "seed": band.seed, "p50": band.p50, "p95": band.p95},
        "verdict": band.verdict,
    }
    first = next(iter(accounts.values()))
    document = results_document(first, rolling, params, settings)
    write_directory(out, first, document, selections_frame(rolling), comparison)
    seconds = time.perf_counter() - started
    console = report_console()
    console.print(comparison_table(comparison, rolling, band))
    console.print(
        f"rolling selection: {band.verdict} (its selection sortino {band.rolling:.3f} against "
        f"the random p95 {band.p95:.3f} of {band.draws} draws, seed {band.seed}); selection and "
        f"band {selection_seconds:.2f} s, with the three accounts {seconds:.2f} s",
        highlight=False,
    )
    console.print(
        f"wrote {out}: trades.csv, equity.csv, results.json (the rolling selection's account), "
        "selections.csv, comparison.csv",
        highlight=False,
    )
    _print_statistics(frame, trades, cash, rule, method)


def comparison_frame(schedules, accounts, band):
    import pandas as pd

    from analysis.rolling import selection_returns, sortino_rows

    rows = []
    for i, (name, s) in enumerate(schedules.items()):
        metrics = accounts[name].metrics
        rows.append(
            {
                "selection": name,
                "instances": float((s.weights > 0).sum(axis=1).mean()),
                "trades": metrics.get("trades"),
                "refused": accounts[name].refused,
                "total_return": metrics.get("total_return"),
                "max_drawdown": metrics.get("max_drawdown"),
                "sortino": metrics.get("sortino"),
                "selection_sortino": float(sortino_rows(selection_returns(s))[0]),
                "verdict": band.verdict if i == 0 else "",
            }
        )
    mean_count = float((next(iter(schedules.values())).weights > 0).sum(axis=1).mean())
    for name, value in (("p50", band.p50), ("p95", band.p95)):
        rows.append(
            {
                "selection": f"random {name} ({band.draws} draws, seed {band.seed})",
                "instances": mean_count,
                "selection_sortino": value,
            }
        )
    frame = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    for column in ("trades", "refused"):  # counts, empty for the random rows
        frame[column] = frame[column].astype("Int64")
    return frame


def comparison_table(frame, rolling, band) -> Table:
    table = Table(
        title=(
            f"Rolling selection: {len(rolling.starts)} re-selections from "
            f"{rolling.times[0]:%Y-%m-%d} (one shared account each; random: the same number of "
            "instances drawn at every re-selection)"
        ),
        title_justify="left",
        caption=(
            "account figures: the stitched trades on one account with the portfolio backtest's "
            "sizing; selection sortino: the selection's own returns (each trade's return on its "
            "run, weighted by its share at entry), the basis of the random band; skill = above "
            "the random p95"
        ),
        caption_justify="left",
    )
    for column in COMPARISON_COLUMNS:
        table.add_column(column, justify="left" if column in ("selection", "verdict") else "right")
    for row in frame.to_dict("records"):
        table.add_row(*(_cell(k, row[k]) for k in COMPARISON_COLUMNS))
    return table


def _cell(key: str, value) -> str:
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key in ("total_return", "max_drawdown"):
        return f"{value:.2%}"
    if key == "instances":
        return f"{value:.1f}"
    if key in ("trades", "refused"):
        return f"{int(value)}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _print_statistics(frame, trades, cash, rule, method) -> None:
    """DSR and PBO of the rule over all the trades (as `analyze` of the directory shows)."""
    from analysis.report import report_console
    from analysis.selection_stats import selection_statistics, statistics_table
    from analysis.weights import compute_weights, instance_key, per_instance_metrics

    keys = [instance_key(r) for _, r in frame.iterrows()]
    metrics = per_instance_metrics(trades, list(dict.fromkeys(keys)), cash, rule.minimum)
    weights = compute_weights(metrics, method, rule)
    stats = selection_statistics(metrics, weights, trades, cash, rule, method, "all trades")
    report_console().print(statistics_table(stats))
