"""Self-contained HTML report for `cli.py analyze --html`: plotly charts with the plotly JS inline
(no CDN: the report must open on a machine without internet).

Plots: equity curve, drawdown, monthly returns heatmap, distribution of trade returns, and one
equity line per strategy instance when several are present.
"""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from analysis.metrics import METRIC_KEYS, equity_from_trades
from analysis.report import Analysis, fmt, monthly_grid
from analysis.trades_io import INSTANCE_COLUMNS, TradeSet

MAX_STRATEGY_LINES = 10  # beyond this the chart is unreadable: the best and worst half are shown
MAX_PARAMS_LABEL = 28  # longer differing-parameter text becomes a short hash in the legend

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
    """One equity line per strategy instance (each from its own initial cash), at most
    MAX_STRATEGY_LINES: the best and worst half by pnl when there are more."""
    cols = [c for c in INSTANCE_COLUMNS if c in ts.trades.columns]
    if ts.trades.empty or not cols:
        return None
    groups = list(ts.trades.groupby(cols, sort=True))
    if len(groups) < 2:
        return None
    cash = ts.cash_per_run or ts.initial_cash / len(groups)
    ranked = sorted(groups, key=lambda g: -float(g[1]["pnl"].sum()))
    title = "Equity per strategy"
    if len(ranked) > MAX_STRATEGY_LINES:
        best = MAX_STRATEGY_LINES // 2
        worst = MAX_STRATEGY_LINES - best
        ranked = ranked[:best] + ranked[-worst:]
        title += f": best {best} and worst {worst} of {len(groups)} by pnl"
    keys = [dict(zip(cols, k if isinstance(k, tuple) else (k,), strict=True)) for k, _ in ranked]
    fig = go.Figure()
    for label, key, (_, group) in zip(short_labels(keys), keys, ranked, strict=True):
        eq = equity_from_trades(group, cash)
        full = html.escape(" ".join(str(v) for v in key.values()))
        fig.add_trace(
            go.Scatter(
                x=eq["timestamp"],
                y=eq["equity"],
                mode="lines",
                name=label,
                hovertemplate=f"{full}<br>%{{x}}<br>equity %{{y:,.2f}}<extra></extra>",
            )
        )
    # legend to the right of the plot (short labels): it takes width, never the plot's height
    return fig.update_layout(
        title=title,
        yaxis_title="equity",
        showlegend=True,
        legend={"x": 1.02, "y": 1, "yanchor": "top", "font": {"size": 11}},
    )


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
