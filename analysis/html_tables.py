"""HTML tables of the report: headline cards, metrics, comparison, breakdowns, periods.

Every cell is escaped; undefined (null) values show as "-". Labels come from analysis/labels.py.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from analysis.labels import HEADLINE_KEYS, METRIC_LABELS, label, value_text
from analysis.metrics import METRIC_KEYS
from analysis.report import BREAKDOWN_KEYS, monthly_grid

BREAKDOWN_TITLES = {
    "strategy": "By strategy family",
    "symbol": "By symbol",
    "interval": "By interval",
    "side": "By side",
    "exit_reason": "By exit reason",
}


def _cell(text: str, css: str = "") -> str:
    return f"<td class='{css}'>{html.escape(text)}</td>" if css else f"<td>{html.escape(text)}</td>"


def _sign_class(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or isinstance(value, str):
        return "num"
    return "num pos" if value > 0 else "num neg" if value < 0 else "num"


def table(headers: list[str], rows: list[str], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    return f"<table class='data {css}'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def headline_cards(metrics: dict[str, Any], currency: str) -> str:
    cards = []
    for key in HEADLINE_KEYS:
        value = metrics.get(key)
        signed = key in ("total_return", "cagr", "sharpe", "sortino")
        css = _sign_class(value) if signed else "num"
        name = METRIC_LABELS[key][0]
        cards.append(
            f"<div class='card'><div class='card-label'>{html.escape(name)}</div>"
            f"<div class='card-value {css}'>{html.escape(value_text(key, value))}</div></div>"
        )
    return f"<div class='cards'>{''.join(cards)}</div>"


def metrics_tables(metrics: dict[str, Any], currency: str) -> str:
    """All metrics in two side-by-side tables (label with unit, value)."""
    keys = [k for k in METRIC_KEYS if k in metrics]
    half = (len(keys) + 1) // 2
    parts = []
    for chunk in (keys[:half], keys[half:]):
        rows = [
            f"<tr><th>{html.escape(label(k, currency))}</th>"
            f"{_cell(value_text(k, metrics.get(k)), 'num')}</tr>"
            for k in chunk
        ]
        parts.append(f"<table class='data metrics'><tbody>{''.join(rows)}</tbody></table>")
    return f"<div class='side-by-side'>{''.join(parts)}</div>"


COMPARE_KEYS = (
    "period_start",
    "period_end",
    "trades",
    "total_return",
    "cagr",
    "max_drawdown",
    "sharpe",
    "sortino",
    "win_rate",
    "profit_factor",
    "expectancy",
    "pct_months_profitable",
    "exposure",
    "total_pnl",
    "fees",
)


def compare_table(runs: dict[str, dict[str, Any]], currency: str) -> str:
    """The main metrics of several runs side by side (one column per run)."""
    names = list(runs)
    rows = []
    for key in COMPARE_KEYS:
        cells = "".join(_cell(value_text(key, runs[n].get(key)), "num") for n in names)
        rows.append(f"<tr><th>{html.escape(label(key, currency))}</th>{cells}</tr>")
    return table(["", *names], rows, "compare")


def instance_table(frame: pd.DataFrame, currency: str) -> str:
    """One row per strategy instance: columns instance, trades, win_rate, total_pnl,
    expectancy, profit_factor and, for a portfolio, weight."""
    keys = [
        k
        for k in ("trades", "win_rate", "total_pnl", "expectancy", "profit_factor", "weight")
        if k in frame.columns
    ]
    headers = ["Instance (family symbol interval)"]
    headers += [label(k, currency) if k != "weight" else "Weight (%)" for k in keys]
    rows = []
    for record in frame.to_dict("records"):
        cells = "".join(
            _cell(
                f"{100 * record[k]:.1f}%" if k == "weight" else value_text(k, record[k]),
                _sign_class(record[k]) if k in ("total_pnl", "expectancy") else "num",
            )
            for k in keys
        )
        rows.append(f"<tr>{_cell(str(record['instance']), 'name')}{cells}</tr>")
    return table(headers, rows, "instances")


def breakdown_tables(breakdowns: dict[str, pd.DataFrame], currency: str) -> str:
    parts = []
    for by, frame in breakdowns.items():
        if frame.empty:
            continue
        headers = [BREAKDOWN_TITLES.get(by, by)[3:].capitalize()]
        headers += [label(k, currency) for k in BREAKDOWN_KEYS]
        rows = []
        for record in frame.to_dict("records"):
            cells = "".join(
                _cell(
                    value_text(k, record[k]),
                    _sign_class(record[k]) if k in ("total_pnl", "expectancy") else "num",
                )
                for k in BREAKDOWN_KEYS
            )
            rows.append(f"<tr>{_cell(str(record[by]), 'name')}{cells}</tr>")
        title = html.escape(BREAKDOWN_TITLES.get(by, by))
        parts.append(f"<h3>{title}</h3>{table(headers, rows)}")
    return "".join(parts)


def monthly_table(monthly: pd.Series) -> str:
    grid = monthly_grid(monthly)
    rows = []
    for year, row in grid.iterrows():
        cells = "".join(
            _cell("-" if pd.isna(v) else f"{100 * v:+.2f}%", _sign_class(v)) for v in row
        )
        rows.append(f"<tr>{_cell(str(year), 'name')}{cells}</tr>")
    return table(["Year", *grid.columns], rows, "months")


def weekly_table(weekly: pd.Series, columns: int = 4) -> str:
    """ISO weeks with their Monday and return, laid out in `columns` column groups."""
    items = []
    for week, value in weekly.items():
        year, number = str(week).split("-W")
        monday = pd.Timestamp.fromisocalendar(int(year), int(number), 1).date().isoformat()
        text = "-" if pd.isna(value) else f"{100 * value:+.2f}%"
        items.append(f"{_cell(str(week), 'name')}{_cell(monday)}{_cell(text, _sign_class(value))}")
    per_column = max(1, -(-len(items) // columns))
    rows = []
    for i in range(per_column):
        cells = [items[j] for j in range(i, len(items), per_column)]
        cells += ["<td></td><td></td><td></td>"] * (columns - len(cells))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    headers = ["Week", "Monday", "Return (%)"] * columns
    return table(headers, rows, "weeks")
