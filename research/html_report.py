"""Self-contained HTML report for `cli.py analyze --html`: plotly charts with the plotly JS inline
(no CDN: the report must open on a machine without internet).

Plots: equity curve, drawdown, monthly returns heatmap, distribution of trade returns, and one
equity line per strategy instance when several are present.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from research.metrics import METRIC_KEYS, equity_from_trades
from research.report import Analysis, fmt, monthly_grid
from research.trades_io import INSTANCE_COLUMNS, TradeSet

MAX_STRATEGY_LINES = 40  # beyond this a per-strategy chart is unreadable; the best ones are shown

# Element ids of the plots, in page order; the browser test checks each one rendered.
PLOT_IDS = ("equity", "drawdown", "monthly", "trade_returns", "strategies")


def build_figures(ts: TradeSet, analysis: Analysis) -> dict[str, go.Figure]:
    figures = {
        "equity": _equity_figure(analysis.curve),
        "drawdown": _drawdown_figure(analysis.curve),
        "monthly": _monthly_figure(analysis.monthly),
        "trade_returns": _returns_figure(ts.trades),
    }
    strategies = _strategy_figure(ts)
    if strategies is not None:
        figures["strategies"] = strategies
    return figures


def write_html(ts: TradeSet, analysis: Analysis, path: Path) -> list[str]:
    """Write the report; returns the ids of the plots it holds."""
    figures = build_figures(ts, analysis)
    parts = []
    for i, (plot_id, fig) in enumerate(figures.items()):
        fig.update_layout(template="plotly_white", height=420, margin={"t": 50, "b": 40})
        div = pio.to_html(
            fig,
            include_plotlyjs=i == 0,  # the whole library once, inline
            full_html=False,
            div_id=plot_id,
            config={"displaylogo": False},
        )
        parts.append(f'<section class="plot">{div}</section>')
    page = _PAGE.format(
        title=html.escape(f"raytrader analysis: {ts.source}"),
        notes="".join(f"<p class='note'>{html.escape(n)}</p>" for n in analysis.notes),
        metrics=_metrics_html(analysis.metrics),
        plots="\n".join(parts),
    )
    Path(path).write_text(page, encoding="utf-8")
    return list(figures)


def _equity_figure(curve: pd.Series) -> go.Figure:
    fig = go.Figure(go.Scatter(x=curve.index, y=curve.to_numpy(), mode="lines", name="equity"))
    return fig.update_layout(title="Equity", yaxis_title="equity")


def _drawdown_figure(curve: pd.Series) -> go.Figure:
    values = curve.to_numpy(dtype=float)
    peak = np.maximum.accumulate(values) if len(values) else values
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, values / peak - 1, 0.0)
    fig = go.Figure(
        go.Scatter(x=curve.index, y=100 * dd, mode="lines", fill="tozeroy", name="drawdown")
    )
    return fig.update_layout(title="Drawdown", yaxis_title="% below peak")


def _monthly_figure(monthly: pd.Series) -> go.Figure:
    grid = monthly_grid(monthly).drop(columns="Year", errors="ignore")
    z = (100 * grid.astype(float)).round(2)
    text = [[("" if pd.isna(v) else f"{v:.2f}%") for v in row] for row in z.to_numpy()]
    fig = go.Figure(
        go.Heatmap(
            z=z.to_numpy(),
            x=list(grid.columns),
            y=[str(y) for y in grid.index],
            text=text,
            texttemplate="%{text}",
            colorscale="RdYlGn",
            zmid=0,
            colorbar={"title": "%"},
        )
    )
    return fig.update_layout(title="Monthly returns", yaxis={"type": "category"})


def _returns_figure(trades: pd.DataFrame) -> go.Figure:
    if "return_pct" in trades and trades["return_pct"].notna().any():
        values, label = trades["return_pct"].dropna(), "return per trade (return_pct)"
    else:
        values, label = trades["pnl"], "pnl per trade"
    fig = go.Figure(go.Histogram(x=values.to_numpy(dtype=float), nbinsx=50, name="trades"))
    return fig.update_layout(title="Distribution of trade returns", xaxis_title=label)


def _strategy_figure(ts: TradeSet) -> go.Figure | None:
    """One equity line per strategy instance (each from its own initial cash share)."""
    cols = [c for c in INSTANCE_COLUMNS if c in ts.trades.columns]
    if ts.trades.empty or not cols:
        return None
    groups = list(ts.trades.groupby(cols, sort=True))
    if len(groups) < 2:
        return None
    cash = ts.initial_cash / len(groups)
    ranked = sorted(groups, key=lambda g: -float(g[1]["pnl"].sum()))[:MAX_STRATEGY_LINES]
    fig = go.Figure()
    for key, group in ranked:
        eq = equity_from_trades(group, cash)
        label = " ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
        fig.add_trace(go.Scatter(x=eq["timestamp"], y=eq["equity"], mode="lines", name=label))
    title = "Equity per strategy"
    if len(groups) > MAX_STRATEGY_LINES:
        title += f" (best {MAX_STRATEGY_LINES} of {len(groups)} by pnl)"
    return fig.update_layout(title=title, yaxis_title="equity", showlegend=True)


def _metrics_html(metrics: dict) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(fmt(k, metrics.get(k)))}</td></tr>"
        for k in METRIC_KEYS
    )
    return f"<table class='metrics'>{rows}</table>"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table.metrics {{ border-collapse: collapse; margin-bottom: 2em; }}
table.metrics th, table.metrics td {{ padding: 2px 12px; border-bottom: 1px solid #ddd; }}
table.metrics th {{ text-align: left; font-weight: normal; }}
table.metrics td {{ text-align: right; font-variant-numeric: tabular-nums; }}
.note {{ color: #8a6d00; }}
</style></head>
<body><h1>{title}</h1>
{notes}
{metrics}
{plots}
</body></html>
"""
