"""How much of a selection from `backtest --all` is luck: the Deflated Sharpe Ratio and the
Probability of Backtest Overfitting (analysis/overfitting.py) of the single best run and of the
set the fitness rule selects, from the daily returns of every run (docs/analysis.md#overfitting).

Daily returns are those of analysis/metrics.py (the equity rebuilt from each run's trades, as
`weights --split` measures an instance: initial cash plus cumulative pnl at exit times, sampled at
the end of each UTC day), put on one calendar: from the first entry to the last exit of all runs,
a day on which a run has no exit is a day of zero return. Every run of results.csv is a trial,
with or without trades.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from analysis.overfitting import (
    CSCV_BLOCKS,
    SIGNIFICANT,
    DeflatedSharpe,
    Overfitting,
    SampleFigures,
    block_sums,
    deflated_sharpe,
    pbo_best,
    pbo_selection,
    sharpe_per_day,
)
from analysis.weights import (
    KEY_COLUMNS,
    FitnessRule,
    compute_weights,
    instance_key,
    load_results,
    load_split_trades,
)

PERIODS_PER_YEAR = 365  # analysis.metrics: Sharpe ratios are shown annualised like the reports'
MIN_DAYS = 2 * CSCV_BLOCKS  # blocks of at least two days


@dataclass(frozen=True)
class RunDays:
    """Every run's daily figures on one calendar: (T days, N runs) arrays."""

    days: pd.DatetimeIndex
    returns: np.ndarray
    pnl: np.ndarray  # pnl of the trades that exited that day
    trades: np.ndarray  # trades that exited that day


def run_days(trades: pd.DataFrame, keys: list[tuple], cash: float) -> RunDays:
    """Daily returns of each run (a key of KEY_COLUMNS, params as canonical text) from its trades,
    each run starting with `cash`. Equal to analysis.metrics.period_returns of
    equity_from_trades for each run on its own days, and 0 on the others."""
    unique = list(dict.fromkeys(keys))  # a key repeated in results.csv: the same run twice
    runs = len(unique)
    if trades.empty or not keys:
        empty = np.zeros((0, len(keys)))
        return RunDays(pd.DatetimeIndex([], tz="UTC"), empty, empty, empty)
    trade_keys = pd.MultiIndex.from_frame(trades[list(KEY_COLUMNS)].astype(str))
    owner = pd.MultiIndex.from_tuples(unique, names=list(KEY_COLUMNS)).get_indexer(trade_keys)
    mine = owner >= 0
    exits = pd.DatetimeIndex(trades["exit_time"]).floor("D")
    first = pd.DatetimeIndex(trades["entry_time"]).min().floor("D")
    days = pd.date_range(first, exits.max(), freq="D")
    day = ((exits - first) // pd.Timedelta(days=1)).to_numpy()
    pnl = np.zeros((len(days), runs))
    count = np.zeros((len(days), runs))
    np.add.at(pnl, (day[mine], owner[mine]), trades["pnl"].to_numpy(dtype=float)[mine])
    np.add.at(count, (day[mine], owner[mine]), 1.0)
    equity = cash + np.cumsum(pnl, axis=0)
    previous = np.vstack([np.full((1, runs), float(cash)), equity[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = equity / previous - 1
    returns = np.where(np.isfinite(returns), returns, 0.0)  # as period_returns: a wiped-out day
    column = {key: i for i, key in enumerate(unique)}
    order = [column[key] for key in keys]
    return RunDays(days, returns[:, order], pnl[:, order], count[:, order])


# ---------------------------------------------------------------- the rule, vectorised


def rule_chooser(rule: FitnessRule, method: str):
    """The fitness rule and weighting method over in-sample figures of many splits at once:
    trades >= min_trades, sortino > min_sortino, expectancy > min_expectancy (the sample-length
    part is left out: every half of the CSCV has the same days). Rows of weights sum to 1."""

    def choose(figures: SampleFigures) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            passing = (
                (figures.trades >= rule.min_trades)
                & (figures.sortino > rule.min_sortino)
                & (figures.expectancy > rule.min_expectancy)
            )
        if method == "sortino":
            raw = np.where(passing, np.nan_to_num(figures.sortino).clip(min=0.0), 0.0)
        elif method == "inverse_vol":
            volatility = figures.volatility
            safe = np.where(volatility > 0, volatility, 1.0)
            raw = np.where(passing & (volatility > 0), 1.0 / safe, 0.0)
        else:
            raw = passing.astype(float)
        total = raw.sum(axis=1, keepdims=True)
        return np.divide(raw, total, out=np.zeros_like(raw), where=total > 0)

    return choose


# ---------------------------------------------------------------- the statistics


@dataclass(frozen=True)
class Chosen:
    """One selection: its DSR and its PBO (None with a reason when the sample is too small)."""

    label: str
    runs: int  # runs in it
    deflated: DeflatedSharpe | None
    overfitting: Overfitting | None


@dataclass(frozen=True)
class SelectionStatistics:
    trials: int  # N: every run of results.csv
    days: int  # T: days of daily returns
    best: Chosen
    selected: Chosen
    sample: str  # which trades, e.g. "trades that exited before 2025-09-01"
    reason: str | None = None  # why some figures are missing

    @property
    def selected_pbo(self) -> float | None:
        overfitting = self.selected.overfitting
        return overfitting.pbo if overfitting is not None else None


def selection_statistics(
    results: pd.DataFrame,
    weights: pd.Series,
    trades: pd.DataFrame,
    cash: float,
    rule: FitnessRule,
    method: str,
    sample: str = "all trades",
) -> SelectionStatistics:
    """DSR and PBO of the best run (highest Sharpe of daily returns) and of the runs the rule
    selected (`weights`, one per results row; the set's daily returns are the weighted mean of
    its runs')."""
    keys = [instance_key(row) for _, row in results.iterrows()]
    matrix = run_days(trades, keys, cash)
    trials, days = len(keys), len(matrix.days)
    chosen = weights.to_numpy(dtype=float).clip(min=0.0)
    count = int((chosen > 0).sum())
    set_label = f"selected set ({count} run{'' if count == 1 else 's'}, {method} weights)"
    if trials < 2 or days < 2:
        reason = f"{trials} run(s) over {days} day(s) of trades: nothing to compare"
        return SelectionStatistics(
            trials,
            days,
            Chosen("best run", 1, None, None),
            Chosen(set_label, int((chosen > 0).sum()), None, None),
            sample,
            reason,
        )
    sharpes = sharpe_per_day(matrix.returns)
    best = int(np.argmax(sharpes))
    reason = None
    if days >= MIN_DAYS:
        best_pbo = pbo_best(matrix.returns)
        sums = block_sums(matrix.returns, CSCV_BLOCKS, matrix.pnl, matrix.trades)
        set_pbo = pbo_selection(sums, rule_chooser(rule, method))
    else:
        best_pbo = set_pbo = None
        reason = (
            f"PBO needs {MIN_DAYS} days ({CSCV_BLOCKS} blocks of 2 days), these trades span {days}"
        )
    total = chosen.sum()
    set_deflated = (
        deflated_sharpe(matrix.returns @ (chosen / total), sharpes) if total > 0 else None
    )
    return SelectionStatistics(
        trials,
        days,
        Chosen(_label(keys[best]), 1, deflated_sharpe(matrix.returns[:, best], sharpes), best_pbo),
        Chosen(set_label, int((chosen > 0).sum()), set_deflated, set_pbo),
        sample,
        reason,
    )


def _label(key: tuple) -> str:
    strategy, symbol, interval, params = key
    try:
        text = " ".join(f"{k}={v}" for k, v in json.loads(params).items())
    except (ValueError, AttributeError):
        text = str(params)
    return f"best run: {strategy} {symbol} {interval} {text}".strip()


# ---------------------------------------------------------------- text


def annualised(sharpe: float) -> float:
    return sharpe * math.sqrt(PERIODS_PER_YEAR)


def statistics_table(stats: SelectionStatistics) -> Table:
    """The text report's table: one row for the best run, one for the selected set."""
    table = Table(
        title=(
            f"Selection statistics: {stats.trials} runs tried, {stats.days} days of daily returns "
            f"({stats.sample})"
        ),
        title_justify="left",
        caption=caption(stats),
        caption_justify="left",
    )
    for column in ("selection", "sharpe", "best of N by luck", "DSR probability", "PBO"):
        table.add_column(column, justify="left" if column == "selection" else "right")
    for row in (stats.best, stats.selected):
        table.add_row(*cells(row))
    return table


def cells(chosen: Chosen) -> list[str]:
    """selection, sharpe, expected best by luck (both annualised), DSR probability, PBO."""
    deflated, overfitting = chosen.deflated, chosen.overfitting
    if deflated is None:
        sharpe = benchmark = probability = "-"
    else:
        sharpe = f"{annualised(deflated.sharpe):.3f}"
        benchmark = f"{annualised(deflated.benchmark):.3f}"
        probability = "-" if math.isnan(deflated.probability) else f"{deflated.probability:.3f}"
        if probability != "-":
            probability += " significant" if deflated.significant else " not significant"
    pbo = "-" if overfitting is None else f"{overfitting.pbo:.3f}"
    return [chosen.label, sharpe, benchmark, probability, pbo]


def caption(stats: SelectionStatistics) -> str:
    lines = [
        "sharpe: of daily returns, annualised (x sqrt 365); best of N by luck: the Sharpe the best "
        "of this many runs without skill is expected to reach (their Sharpe ratios' variance)",
        f"DSR probability: that the true Sharpe is above 0 after the selection (significant >= "
        f"{SIGNIFICANT:g}); PBO: share of the {_splits(stats)} splits of {CSCV_BLOCKS} blocks in "
        "which the in-sample choice ranks at or below the out-of-sample median run "
        "(docs/analysis.md#overfitting)",
    ]
    if stats.reason:
        lines.append(f"-: {stats.reason}")
    return "\n".join(lines)


def _splits(stats: SelectionStatistics) -> str:
    overfitting = stats.best.overfitting
    return f"{overfitting.splits:,}" if overfitting is not None else "C(16, 8) = 12,870"


def directory_statistics(directory: Path, cash: float) -> SelectionStatistics | None:
    """`analyze` of a `backtest --all` directory (results.csv and trades.csv, no equity.csv):
    the statistics of its best run and of the set `weights` would select with its defaults
    (binary weights, the default fitness rule); None for any other directory or file."""
    directory = Path(directory)
    results_csv, trades_csv = directory / "results.csv", directory / "trades.csv"
    if not (directory.is_dir() and results_csv.is_file() and trades_csv.is_file()):
        return None
    if (directory / "equity.csv").exists():
        return None  # a single backtest or a portfolio: one run, no selection
    results = load_results(results_csv)
    rule = FitnessRule()
    weights = compute_weights(results, "binary", rule)
    trades = load_split_trades(trades_csv, results_csv)
    sample = "all trades; selected set: `weights` with its defaults"
    return selection_statistics(results, weights, trades, cash, rule, "binary", sample)
