"""Text report for `cli.py analyze`: metrics, monthly/weekly returns, breakdowns (rich tables).

`analyse(trade_set)` computes everything once; the text report here and the HTML report in
analysis/html_report.py only render it. Undefined values print as "-".
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from analysis.bootstrap import DEFAULT_DRAWS, DEFAULT_SEED, Bands, bootstrap
from analysis.columns import currency_of, quote_currency
from analysis.metrics import (
    METRIC_KEYS,
    compute_metrics,
    equity_from_trades,
    period_returns,
    trade_stats,
)
from analysis.spans import ANNUALISED_KEYS, MIN_ANNUALISED_DAYS, short_reason
from analysis.trades_io import TradeSet

BREAKDOWNS = ("strategy", "symbol", "interval", "side", "exit_reason")
BREAKDOWN_KEYS = (
    "trades",
    "win_rate",
    "total_pnl",
    "expectancy",
    "avg_win",
    "avg_loss",
    "profit_factor",
    "payoff_ratio",
)
PERCENT_KEYS = {
    "win_rate",
    "total_return",
    "max_drawdown",
    "pct_months_profitable",
    "pct_weeks_profitable",
    "exposure",
    "cagr",
    "best_month",
    "worst_month",
    "volatility",
}
COUNT_KEYS = {"trades", "wins", "losses", "longest_losing_streak", "longest_winning_streak"}
RATIO_KEYS = {"profit_factor", "payoff_ratio", "sortino", "sharpe"}


@dataclass
class Analysis:
    metrics: dict[str, Any]
    curve: pd.Series  # equity indexed by UTC time
    monthly: pd.Series  # index "YYYY-MM"
    weekly: pd.Series  # index "YYYY-Www"
    breakdowns: dict[str, pd.DataFrame]
    notes: list[str]
    currency: str | None = None  # quote currency of the money figures ("mixed (...)" if several)
    bands: Bands | None = (
        None  # bootstrap bands of sortino, drawdown, losing streak (no trades: None)
    )


def analyse(ts: TradeSet, draws: int = DEFAULT_DRAWS, seed: int = DEFAULT_SEED) -> Analysis:
    metrics = compute_metrics(ts.trades, ts.equity, ts.initial_cash)
    equity = ts.equity if ts.equity is not None else equity_from_trades(ts.trades, ts.initial_cash)
    curve = pd.Series(
        equity["equity"].to_numpy(dtype=float), index=pd.DatetimeIndex(equity["timestamp"])
    ).sort_index()
    currency = currency_of(ts.trades["symbol"]) if "symbol" in ts.trades else None
    notes = list(ts.notes)
    if currency and currency.startswith("mixed"):
        notes.append(
            f"trades in several quote currencies, {currency[len('mixed ') :]}: pnl, fees and "
            "equity here add different units; analyze one currency at a time"
        )
    return Analysis(
        metrics=metrics,
        curve=curve,
        monthly=period_returns(curve, ts.initial_cash, "month"),
        weekly=period_returns(curve, ts.initial_cash, "week"),
        breakdowns={by: breakdown(ts.trades, by) for by in BREAKDOWNS if by in ts.trades},
        notes=notes,
        currency=currency,
        bands=bootstrap(ts.trades, ts.initial_cash, draws, seed),
    )


def breakdown(trades: pd.DataFrame, by: str) -> pd.DataFrame:
    """Trade statistics per value of column `by` (most trades first)."""
    rows = []
    for key, group in trades.groupby(by, sort=True):
        stats = trade_stats(group["pnl"].to_numpy(dtype=float))
        rows.append({by: key, **{k: stats[k] for k in BREAKDOWN_KEYS}})
    frame = pd.DataFrame(rows, columns=[by, *BREAKDOWN_KEYS])
    return frame.sort_values("trades", ascending=False, kind="stable").reset_index(drop=True)


def fmt(key: str, value: Any, html: bool = False) -> str:
    """One cell: "-" for undefined, percent for shares, 2 decimals for money. The text report:
    ratios to 3 decimals, durations with "days". `html` (the HTML report, whose labels carry the
    units, analysis/labels.py): ratios to 2 decimals, bare durations, times without T and Z."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, str):
        return (
            value.replace("T", " ").replace("Z", "")
            if html and key.startswith("period_")
            else value
        )
    if key in COUNT_KEYS:
        return f"{int(value):,}"
    if key in PERCENT_KEYS:
        return f"{100 * value:,.2f}%"
    if key == "max_drawdown_duration_days":
        return f"{value:,.1f}" if html else f"{value:,.1f} days"
    if key in RATIO_KEYS:
        return f"{value:,.2f}" if html else f"{value:,.3f}"
    return f"{value:,.2f}"


def pct(value: Any, decimals: int = 2) -> str:
    return "-" if value is None or pd.isna(value) else f"{100 * value:,.{decimals}f}%"


def metrics_table(metrics: dict[str, Any], title: str = "Metrics") -> Table:
    note = metrics.get("annualised_note")
    table = Table(title=title, title_justify="left", caption=f"- : {note}" if note else None)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in METRIC_KEYS:
        if key == "annualised_note":
            continue  # the caption
        value = fmt(key, metrics.get(key))
        if note and key in ANNUALISED_KEYS:
            value = f"- ({short_reason(note)})"
        table.add_row(key, value)
    return table


BAND_LABELS = {
    "sortino": "sortino",
    "max_drawdown": "max drawdown",
    "longest_losing_streak": "longest losing streak",
}


def band_rows(bands: Bands, html: bool = False) -> list[tuple[str, str, str, str, str]]:
    """(statistic, observed, p5, p50, p95) cells, formatted as the metrics table does."""
    rows = []
    for key, label in BAND_LABELS.items():
        values = (bands.observed[key], *bands.bands[key])
        rows.append((label, *(_band_cell(key, v, html) for v in values)))
    return rows


def _band_cell(key: str, value: float | None, html: bool) -> str:
    if key in COUNT_KEYS and value is not None and not float(value).is_integer():
        return f"{value:,.1f}"  # a percentile between two streak lengths
    return fmt(key, value, html)


def band_caption(bands: Bands) -> str:
    """How the bands were drawn, and the draws without a sortino (no losing day drawn)."""
    text = (
        f"{bands.draws:,} draws (seed {bands.seed}) of {bands.days} days in blocks of "
        f"{bands.block_days} consecutive days; equity rebuilt from the trades at the end of each "
        "day (docs/analysis.md#bootstrap-bands)"
    )
    undefined = bands.undefined.get("sortino", 0)
    if undefined:
        text += f"; {undefined:,} draws without a losing day have no sortino and are left out"
    return text


def bands_table(bands: Bands) -> Table:
    table = Table(title="Bootstrap bands", title_justify="left", caption=band_caption(bands))
    table.add_column("statistic")
    for header in ("observed", "p5", "p50", "p95"):
        table.add_column(header, justify="right")
    for row in band_rows(bands):
        table.add_row(*row)
    return table


def monthly_grid(monthly: pd.Series) -> pd.DataFrame:
    """Months as a year x month grid (NaN where no data) plus a compounded Year column."""
    if monthly.empty:
        return pd.DataFrame(columns=[*calendar.month_abbr[1:], "Year"])
    years = sorted({int(label[:4]) for label in monthly.index})
    grid = pd.DataFrame(index=years, columns=list(calendar.month_abbr[1:]), dtype=float)
    for label, value in monthly.items():
        grid.loc[int(label[:4]), calendar.month_abbr[int(label[5:7])]] = value
    grid["Year"] = (1 + grid.fillna(0.0)).prod(axis=1) - 1
    return grid


def monthly_table(monthly: pd.Series) -> Table:
    grid = monthly_grid(monthly)
    table = Table(title="Monthly returns", title_justify="left")
    table.add_column("year")
    for col in grid.columns:
        table.add_column(col, justify="right")
    for year, row in grid.iterrows():
        table.add_row(str(year), *(_signed(v, 1) for v in row))
    return table


def weekly_table(weekly: pd.Series) -> Table:
    table = Table(title="Weekly returns (ISO weeks)", title_justify="left")
    table.add_column("week")
    table.add_column("from", justify="right")
    table.add_column("return", justify="right")
    for label, value in weekly.items():
        year, week = label.split("-W")
        monday = pd.Timestamp.fromisocalendar(int(year), int(week), 1).date().isoformat()
        table.add_row(label, monday, _signed(value))
    return table


BREAKDOWN_HEADERS = ("trades", "win %", "pnl", "expect.", "avg win", "avg loss", "PF", "payoff")


def breakdown_table(frame: pd.DataFrame, by: str) -> Table:
    table = Table(title=f"By {by.replace('_', ' ')}", title_justify="left")
    table.add_column(by)
    for header in BREAKDOWN_HEADERS:
        table.add_column(header, justify="right")
    for row in frame.to_dict("records"):
        table.add_row(str(row[by]), *(fmt(k, row[k]) for k in BREAKDOWN_KEYS))
    return table


def _signed(value: Any, decimals: int = 2) -> str:
    if value is None or pd.isna(value):
        return "-"
    colour = "green" if value > 0 else "red" if value < 0 else ""
    text = pct(value, decimals)
    return f"[{colour}]{text}[/]" if colour else text


def report_console() -> Console:
    """The terminal's width, or 160 columns when piped (rich would cut tables at 80)."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=160)


def render(ts: TradeSet, analysis: Analysis, console: Console) -> None:
    """Print the whole report."""
    m = analysis.metrics
    console.print(f"[bold]raytrader analysis[/] of {ts.source}")
    console.print(
        f"period {m.get('period_start') or '-'} .. {m.get('period_end') or '-'}, "
        f"{m['trades']} trades, initial cash {ts.initial_cash:,.2f} {analysis.currency or ''}"
    )
    for note in analysis.notes:
        console.print(f"[yellow]note:[/] {note}")
    unit = f" (money in {analysis.currency})" if analysis.currency else ""
    console.print(metrics_table(m, f"Metrics{unit}"))
    if analysis.bands is not None:
        console.print(bands_table(analysis.bands))
    console.print(monthly_table(analysis.monthly))
    console.print(weekly_table(analysis.weekly))
    if m["trades"] == 0:
        console.print("no trades: nothing to break down")
        return
    for by, frame in analysis.breakdowns.items():
        console.print(breakdown_table(frame, by))


def results_summary_table(results: pd.DataFrame) -> Table:
    """One row per family x interval over a results.csv: runs, trades and mean/best metrics."""
    done = results[results["status"] == "done"]
    short = int(pd.to_numeric(done["sortino"], errors="coerce").isna().sum()) if len(done) else 0
    caption = (
        f"best sortino among runs with >= {MIN_ANNUALISED_DAYS:g} days of data; {short} run(s) "
        "have no sortino (too short a sample, or no downside) and are not ranked"
        if short
        else None
    )
    table = Table(title=f"backtest summary: {len(done)} runs by family x interval", caption=caption)
    for column in (
        "family",
        "interval",
        "currency",
        "runs",
        "trades",
        "win rate",
        "expectancy",
        "return (mean)",
        "best sortino",
        "max drawdown (worst)",
    ):
        left = column in ("family", "interval", "currency")
        table.add_column(column, justify="left" if left else "right")
    symbols = done["symbol"] if "symbol" in done else [None] * len(done)
    done = done.assign(currency=[quote_currency(s) or "-" for s in symbols])
    grouped = done.groupby(["strategy", "interval", "currency"], sort=True)
    for (family, interval, currency), group in grouped:
        numeric = group[["win_rate", "expectancy", "total_return", "sortino", "max_drawdown"]]
        numeric = numeric.apply(pd.to_numeric, errors="coerce")
        table.add_row(
            str(family),
            str(interval),
            str(currency),
            str(len(group)),
            str(int(pd.to_numeric(group["trades"], errors="coerce").fillna(0).sum())),
            pct(_mean_or_none(numeric["win_rate"]), 1),
            fmt("expectancy", _mean_or_none(numeric["expectancy"])),
            pct(_mean_or_none(numeric["total_return"])),
            fmt("sortino", numeric["sortino"].max() if numeric["sortino"].notna().any() else None),
            pct(numeric["max_drawdown"].max() if numeric["max_drawdown"].notna().any() else None),
        )
    return table


def _mean_or_none(values: pd.Series) -> float | None:
    return float(values.mean()) if values.notna().any() else None
