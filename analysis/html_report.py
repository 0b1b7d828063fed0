"""Self-contained HTML report for `cli.py analyze --html`: plotly charts with the plotly JS inline
(no CDN: the report must open on a machine without internet).

Page: headline figures, (with --compare) the runs side by side, equity with its drawdown beneath,
monthly heatmap, distribution of trade returns, each instance's equity (and, for a portfolio, its
weight), then the tables of the text report: all metrics with units, the bootstrap bands, by
instance (family, symbol, interval), by family, symbol, interval, side and exit reason, monthly
and weekly returns.
Figures are in analysis/html_figures.py, tables in analysis/html_tables.py.
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from analysis import html_figures as figs
from analysis import html_tables as tables
from analysis.columns import currency_of
from analysis.metrics import equity_from_trades, trade_stats
from analysis.report import Analysis, band_caption, band_rows
from analysis.selection_stats import SelectionStatistics, caption, cells
from analysis.trades_io import INSTANCE_COLUMNS, TradeSet

MAX_STRATEGY_LINES = 10  # beyond this the chart is unreadable: the best and worst half are shown
MAX_PARAMS_LABEL = 28  # longer differing-parameter text becomes a short hash in the legend

# Element ids of the plots, in page order; the browser test checks each one rendered.
PLOT_IDS = (
    "compare",
    "equity",
    "monthly",
    "trade_returns",
    "strategies",
    "weights",
    "selections",
)


@dataclass
class Compared:
    """Another run shown next to this one (e.g. the in-sample run of an out-of-sample report)."""

    name: str
    metrics: dict
    curve: pd.Series


@dataclass
class Instances:
    table: (
        pd.DataFrame
    )  # instance, trades, win_rate, total_pnl, expectancy, profit_factor[, weight]
    lines: list[tuple[str, pd.Series]]  # the equity lines drawn (at most MAX_STRATEGY_LINES)
    title: str
    weights: pd.Series | None  # instance -> weight (a portfolio)


def account_currency(ts: TradeSet, analysis: Analysis) -> str:
    """The account's currency: given by the run, else the symbols' quote (analysis.columns)."""
    given = analysis.metrics.get("currency") or (ts.results or {}).get("currency")
    if given:
        return str(given)
    symbols = list(ts.trades["symbol"].unique()) if "symbol" in ts.trades else []
    return currency_of(symbols) or "quote currency"


def build_figures(
    ts: TradeSet, analysis: Analysis, compare: list[Compared] | None = None
) -> dict[str, go.Figure]:
    currency = account_currency(ts, analysis)
    figures: dict[str, go.Figure] = {}
    if compare:
        curves = {_run_name(ts): analysis.curve} | {c.name: c.curve for c in compare}
        figures["compare"] = figs.compare_figure(curves)
    figures["equity"] = figs.equity_drawdown_figure(analysis.curve, currency)
    figures["monthly"] = figs.monthly_heatmap(analysis.monthly)
    figures["trade_returns"] = figs.trade_returns_figure(ts.trades, currency)
    instances = instance_data(ts)
    if instances is not None and len(instances.lines) >= 2:
        figures["strategies"] = figs.instance_lines_figure(
            instances.lines, instances.title, currency
        )
    if instances is not None and instances.weights is not None and len(instances.weights):
        figures["weights"] = figs.weights_figure(instances.weights)
    rolling = rolling_files(ts)
    if rolling is not None:
        figures["selections"] = figs.selections_figure(rolling[0])
    return figures


def rolling_files(ts: TradeSet) -> tuple[pd.Series, pd.DataFrame | None] | None:
    """A `weights --rolling` directory: (instances chosen per re-selection time, comparison.csv
    or None); None for any other run."""
    directory = Path(ts.source)
    path = directory / "selections.csv"
    if not (directory.is_dir() and path.is_file()):
        return None
    selections = pd.read_csv(path, dtype={"instance": str}, keep_default_na=False)
    times = pd.to_datetime(selections["time"], utc=True, format="ISO8601")
    chosen = selections["instance"].astype(str).str.len() > 0  # "": chose nothing
    counts = chosen.groupby(times).sum().astype(int)
    comparison = directory / "comparison.csv"
    return counts, pd.read_csv(comparison) if comparison.is_file() else None


def write_html(
    ts: TradeSet,
    analysis: Analysis,
    path: Path,
    compare: list[Compared] | None = None,
    selection: SelectionStatistics | None = None,
) -> list[str]:
    """Write the report; returns the ids of the plots it holds. `selection`: the DSR and PBO of a
    `backtest --all` directory (analysis/selection_stats.py)."""
    figures = build_figures(ts, analysis, compare)
    currency = account_currency(ts, analysis)
    plots = {}
    for i, (plot_id, fig) in enumerate(figures.items()):
        fig.update_layout(
            template="plotly_white",
            margin={"t": 60, "b": 40, "r": 30},
            font={"family": "Helvetica, Arial, sans-serif"},
        )
        plots[plot_id] = pio.to_html(
            fig,
            include_plotlyjs=i == 0,  # the whole library once, inline
            full_html=False,
            div_id=plot_id,
            config={"displaylogo": False, "responsive": True},
        )
    instances = instance_data(ts)
    page = _PAGE.format(
        title=html.escape(f"raytrader report: {_run_name(ts)}"),
        subtitle=html.escape(_subtitle(ts, analysis, currency)),
        notes="".join(f"<p class='note'>{html.escape(n)}</p>" for n in analysis.notes),
        body=_body(ts, analysis, plots, instances, compare or [], currency)
        + _selection_section(selection),
    )
    Path(path).write_text(page, encoding="utf-8")
    return list(figures)


def _section(title: str, content: str, plot: str | None = None) -> str:
    if not content and not plot:
        return ""
    return f"<section><h2>{html.escape(title)}</h2>{plot or ''}{content}</section>"


def _body(ts, analysis, plots, instances, compare, currency) -> str:
    m = analysis.metrics
    parts = [tables.headline_cards(m, currency)]
    if compare:
        runs = {_run_name(ts): m} | {c.name: c.metrics for c in compare}
        title = " compared with ".join(runs)
        parts.append(_section(title, tables.compare_table(runs, currency), plots.get("compare")))
    parts.append(_section("Equity and drawdown", "", plots["equity"]))
    parts.append(
        _section("Monthly returns", tables.monthly_table(analysis.monthly), plots["monthly"])
    )
    parts.append(_section("Trade returns", "", plots["trade_returns"]))
    if instances is not None:
        weights = plots.get("weights", "")
        parts.append(
            _section(
                "Strategy instances",
                tables.instance_table(instances.table, currency),
                plots.get("strategies", "") + weights,
            )
        )
    rolling = rolling_files(ts)
    if rolling is not None:
        parts.append(_rolling_section(rolling[1], plots.get("selections")))
    parts.append(_section("All metrics", tables.metrics_tables(m, currency)))
    parts.append(_bands_section(analysis))
    if m.get("trades"):
        parts.append(_section("Breakdowns", tables.breakdown_tables(analysis.breakdowns, currency)))
    parts.append(_section("Weekly returns (ISO weeks)", tables.weekly_table(analysis.weekly)))
    return "\n".join(p for p in parts if p)


def _rolling_section(comparison: pd.DataFrame | None, plot: str | None) -> str:
    """comparison.csv as it is (rolling, static, equal, the random band) above the count plot."""
    content = ""
    if comparison is not None:
        headers = [str(c) for c in comparison.columns]
        rows = [
            "<tr>" + "".join(f"<td>{html.escape(_plain(v))}</td>" for v in row) + "</tr>"
            for row in comparison.itertuples(index=False)
        ]
        content = tables.table(headers, rows) + (
            "<p class='note'>account figures: the stitched trades on one shared account; "
            "selection_sortino: the basis of the random band (docs/analysis.md#rolling-re-selection)"
            "</p>"
        )
    return _section("Rolling selection", content, plot)


def _bands_section(analysis: Analysis) -> str:
    """The bootstrap bands (analysis/bootstrap.py) as a small table with how they were drawn."""
    if analysis.bands is None:
        return ""
    headers = ["Statistic", "Observed", "p5", "p50", "p95"]
    rows = [
        "<tr>"
        + f"<th>{html.escape(row[0])}</th>"
        + "".join(f"<td class='num'>{html.escape(cell)}</td>" for cell in row[1:])
        + "</tr>"
        for row in band_rows(analysis.bands, html=True)
    ]
    note = f"<p class='note'>{html.escape(band_caption(analysis.bands))}</p>"
    return _section("Bootstrap bands", tables.table(headers, rows) + note)


def _plain(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:.4g}"
    return str(value)


def _selection_section(selection: SelectionStatistics | None) -> str:
    """The text report's selection statistics as a table with its caption beneath."""
    if selection is None:
        return ""
    headers = ["Selection", "Sharpe", "Best of N by luck", "DSR probability", "PBO"]
    rows = [
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells(chosen)) + "</tr>"
        for chosen in (selection.best, selection.selected)
    ]
    notes = "".join(
        f"<p class='note'>{html.escape(line)}</p>" for line in caption(selection).split("\n")
    )
    title = (
        f"Selection statistics: {selection.trials} runs tried, {selection.days} days of daily "
        f"returns ({selection.sample})"
    )
    return _section(title, tables.table(headers, rows) + notes)


def _run_name(ts: TradeSet) -> str:
    return Path(ts.source).name or str(ts.source)


def _subtitle(ts: TradeSet, analysis: Analysis, currency: str) -> str:
    m = analysis.metrics
    start = str(m.get("period_start") or "-").replace("T", " ").replace("Z", "")
    end = str(m.get("period_end") or "-").replace("T", " ").replace("Z", "")
    kind = "portfolio backtest" if (ts.results or {}).get("by_strategy") else "backtest"
    return (
        f"{kind} · {start} to {end} UTC · {m.get('trades') or 0:,} trades · initial cash "
        f"{ts.initial_cash:,.2f} {currency} · {ts.source}"
    )


# -- strategy instances -------------------------------------------------------------------------
def instance_data(ts: TradeSet) -> Instances | None:
    """Per-instance statistics and equity lines: a portfolio's instances with their weights
    (portfolio_trades.csv), else the instances of a trades file with several of them."""
    portfolio = Path(ts.source) / "portfolio_trades.csv"
    if portfolio.is_file():
        by_strategy = (ts.results or {}).get("by_strategy") or {}
        return _portfolio_instances(pd.read_csv(portfolio), ts.initial_cash, by_strategy)
    cols = [c for c in INSTANCE_COLUMNS if c in ts.trades.columns]
    if ts.trades.empty or not cols:
        return None
    groups = list(ts.trades.groupby(cols, sort=True))
    if len(groups) < 2:
        return None
    keys = [dict(zip(cols, k if isinstance(k, tuple) else (k,), strict=True)) for k, _ in groups]
    names = short_labels(keys)
    frame = _stats_table([(n, g, None) for n, (_, g) in zip(names, groups, strict=True)])
    cash = ts.cash_per_run or ts.initial_cash / len(groups)
    ranked = sorted(zip(names, groups, strict=True), key=lambda x: -float(x[1][1]["pnl"].sum()))
    title = "Equity of each instance (each from its own initial cash)"
    if len(ranked) > MAX_STRATEGY_LINES:
        best = MAX_STRATEGY_LINES // 2
        ranked = ranked[:best] + ranked[-(MAX_STRATEGY_LINES - best) :]
        title += f": best {best} and worst {MAX_STRATEGY_LINES - best} of {len(groups)} by pnl"
    lines = [(name, _equity_line(group, cash)) for name, (_, group) in ranked]
    return Instances(frame, lines, title, None)


def _portfolio_instances(trades: pd.DataFrame, cash: float, by_strategy: dict) -> Instances | None:
    """Every instance of the config (results.json by_strategy), also those without trades."""
    if "instance" not in trades.columns:
        return None
    trades = trades.assign(exit_time=pd.to_datetime(trades["exit_time"], utc=True))
    empty = trades.iloc[:0]
    found = dict(list(trades.groupby("instance", sort=False)))
    weights = pd.Series(
        {name: float(info.get("weight") or 0.0) for name, info in by_strategy.items()}
    )
    if weights.empty:
        weights = pd.Series({name: float(g["weight"].iloc[0]) for name, g in found.items()})
    groups = [(name, found.get(name, empty)) for name in weights.index]
    total = float(weights.sum()) or 1.0
    frame = _stats_table([(name, g, weights[name]) for name, g in groups])
    lines = [
        (f"{name} ({weights[name] / total:.0%})", _equity_line(g, cash * weights[name] / total))
        for name, g in sorted(groups, key=lambda x: -weights[x[0]])[:MAX_STRATEGY_LINES]
    ]
    title = "Equity of each instance: its weight's share of the initial cash plus its pnl"
    return Instances(frame, lines, title, weights / total)


def _stats_table(rows: list[tuple[str, pd.DataFrame, float | None]]) -> pd.DataFrame:
    records = []
    for name, group, weight in rows:
        stats = trade_stats(group["pnl"].to_numpy(dtype=float))
        record = {
            "instance": name,
            **{
                k: stats[k]
                for k in ("trades", "win_rate", "total_pnl", "expectancy", "profit_factor")
            },
        }
        if weight is not None:
            record["weight"] = weight
        records.append(record)
    frame = pd.DataFrame(records)
    return frame.sort_values("total_pnl", ascending=False, kind="stable").reset_index(drop=True)


def _equity_line(trades: pd.DataFrame, cash: float) -> pd.Series:
    eq = equity_from_trades(trades, cash)
    return pd.Series(eq["equity"].to_numpy(dtype=float), index=pd.DatetimeIndex(eq["timestamp"]))


def short_labels(keys: list[dict]) -> list[str]:
    """Legend labels: family symbol interval plus the parameters that differ between instances
    of the same family, or a short hash of the parameters when that is long or not unique."""
    parsed = [_params(k.get("params")) for k in keys]
    families = [_family(str(k.get("strategy", "-"))) for k in keys]
    labels = []
    for key, family, params in zip(keys, families, parsed, strict=True):
        peers = [p for f, p in zip(families, parsed, strict=True) if f == family]
        differ = sorted(n for n in set().union(*peers) if len({str(p.get(n)) for p in peers}) > 1)
        extra = " ".join(f"{n}={params.get(n, '-')}" for n in differ)
        if len(extra) > MAX_PARAMS_LABEL:
            extra = "#" + _hash(params)
        base = " ".join(str(key[c]) for c in ("symbol", "interval") if c in key)
        labels.append(" ".join(part for part in (family, base, extra) if part))
    counts = {label: labels.count(label) for label in labels}
    return [
        f"{label} #{_hash(params)}" if counts[label] > 1 and "#" not in label else label
        for label, params in zip(labels, parsed, strict=True)
    ]


def _family(strategy: str) -> str:
    """sr_breakout, or ClassName for a user strategy given as path/to/file.py:ClassName."""
    return strategy.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def _params(text: object) -> dict:
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"params": text}
    return value if isinstance(value, dict) else {"params": value}


def _hash(params: dict) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(canonical.encode()).hexdigest()[:6]


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 0; color: #1f2933; background: #f4f6f8; }}
main {{ max-width: 1180px; margin: 0 auto; padding: 24px 32px 48px; }}
h1 {{ font-size: 26px; margin: 8px 0 4px; }}
h2 {{ font-size: 19px; margin: 0 0 12px; color: #243b53; }}
h3 {{ font-size: 15px; margin: 18px 0 6px; color: #334e68; }}
.subtitle {{ color: #52606d; margin-bottom: 16px; font-size: 14px; }}
section {{ background: #fff; border-radius: 8px; padding: 18px 22px; margin: 18px 0;
  box-shadow: 0 1px 3px rgba(0,0,0,0.08); }}
.cards {{ display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin: 12px 0; }}
.card {{ background: #fff; border-radius: 8px; padding: 12px 16px; box-shadow: 0 1px 3px rgba(0,0,0,0.08); }}
.card-label {{ font-size: 13px; color: #52606d; }}
.card-value {{ font-size: 24px; font-weight: 600; margin-top: 4px; }}
table.data {{ border-collapse: collapse; font-size: 13px; margin: 8px 0; }}
table.data th, table.data td {{ padding: 4px 10px; border-bottom: 1px solid #e4e7eb; }}
table.data thead th {{ background: #f0f4f8; text-align: right; font-weight: 600; }}
table.data thead th:first-child, table.data tbody th {{ text-align: left; font-weight: normal; }}
table.data td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
table.data td.name {{ text-align: left; white-space: nowrap; }}
.pos {{ color: #1e7f4c; }} .neg {{ color: #c0392b; }}
.side-by-side {{ display: flex; gap: 32px; flex-wrap: wrap; }}
table.instances {{ width: 100%; }}
.note {{ color: #8a6d00; background: #fff8e1; padding: 6px 10px; border-radius: 6px; }}
</style></head>
<body><main><h1>{title}</h1><div class="subtitle">{subtitle}</div>
{notes}
{body}
</main></body></html>
"""
