"""The plotly figures of the HTML report (analysis/html_report.py assembles the page).

Axes say their unit: money in the account's currency, shares as percent (plotly tickformat
".0%" on fractions). Long curves (a year of 1m bars) are thinned to MAX_POINTS buckets, keeping
each bucket's last equity and its deepest drawdown, so the page stays small and fast.

Gaps of no data (analysis/spans.py: a portfolio over two windows 21 months apart) are neither
drawn nor shown: the line breaks at each gap (a NaN point, plotly does not connect across it)
and the time axis leaves the gap out (rangebreaks), so no year of nothing fills the plot.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.report import monthly_grid
from analysis.spans import data_gaps

MAX_POINTS = 4000
GREEN, RED, BLUE, GREY = "#2e9e5b", "#d0463c", "#2f6db5", "#888888"
PALETTE = (
    "#2f6db5",
    "#e07b39",
    "#2e9e5b",
    "#9b59b6",
    "#d0463c",
    "#16a2b8",
    "#b8860b",
    "#7f8c8d",
    "#c2185b",
    "#5d6d7e",
)


def drawdown(curve: pd.Series) -> pd.Series:
    """1 - equity / running peak, as a negative fraction (0 at a new high)."""
    values = curve.to_numpy(dtype=float)
    peak = np.maximum.accumulate(values) if len(values) else values
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, values / peak - 1, 0.0)
    return pd.Series(dd, index=curve.index)


def thin(curve: pd.Series, how: str = "last") -> pd.Series:
    """At most MAX_POINTS points: the last (or lowest) value of each equal time bucket."""
    if len(curve) <= MAX_POINTS:
        return curve
    span = curve.index[-1] - curve.index[0]
    grouped = curve.groupby(curve.index.floor(max(span / MAX_POINTS, pd.Timedelta("1min"))))
    return grouped.min() if how == "min" else grouped.last()


Gaps = list[tuple[pd.Timestamp, pd.Timestamp]]


def broken(curve: pd.Series, gaps: Gaps) -> pd.Series:
    """The curve with a NaN point just inside each gap: the line stops at the gap's start."""
    if curve.empty:
        return curve
    inside = [a + (b - a) * 0.001 for a, b in gaps if a >= curve.index[0] and b <= curve.index[-1]]
    if not inside:
        return curve
    holes = pd.Series(np.nan, index=pd.DatetimeIndex(inside).as_unit(curve.index.unit))
    return pd.concat([curve, holes]).sort_index()


def hide_gaps(fig: go.Figure, gaps: Gaps) -> go.Figure:
    """Leave the gaps out of every time axis (a small margin stays, so the break shows)."""
    if gaps:
        bounds = [[_iso(a + (b - a) * 0.01), _iso(b - (b - a) * 0.01)] for a, b in gaps]
        fig.update_xaxes(rangebreaks=[{"bounds": pair} for pair in bounds])
    return fig


def _iso(stamp: pd.Timestamp) -> str:
    """UTC wall-clock time without an offset, as plotly.js reads date strings."""
    stamp = pd.Timestamp(stamp)
    return (stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp).isoformat()


def equity_drawdown_figure(curve: pd.Series, currency: str) -> go.Figure:
    """Equity on top, drawdown beneath on the same time axis."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.7, 0.3],
        vertical_spacing=0.05,
        subplot_titles=(f"Equity ({currency})", "Drawdown (% below the previous peak)"),
    )
    gaps = data_gaps(curve.index)
    equity = broken(thin(curve), gaps)
    fig.add_trace(
        go.Scatter(
            x=equity.index,
            y=equity.to_numpy(),
            mode="lines",
            name="equity",
            line={"color": BLUE, "width": 1.6},
            hovertemplate=f"%{{x}}<br>%{{y:,.2f}} {currency}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    dd = broken(thin(drawdown(curve), "min"), gaps)
    fig.add_trace(
        go.Scatter(
            x=dd.index,
            y=dd.to_numpy(),
            mode="lines",
            name="drawdown",
            fill="tozeroy",
            line={"color": RED, "width": 1},
            fillcolor="rgba(208,70,60,0.25)",
            hovertemplate="%{x}<br>%{y:.2%}<extra></extra>",
        ),
        row=2,
        col=1,
    )
    fig.update_yaxes(title_text=currency, tickformat=",.0f", row=1, col=1)
    fig.update_yaxes(title_text="drawdown", tickformat=".0%", row=2, col=1)
    return hide_gaps(fig, gaps).update_layout(showlegend=False, height=560)


def monthly_heatmap(monthly: pd.Series) -> go.Figure:
    grid = monthly_grid(monthly)
    z = grid.astype(float).to_numpy()
    text = [["" if pd.isna(v) else f"{100 * v:+.1f}%" for v in row] for row in z]
    limit = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 0.01
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(grid.columns),
            y=[str(y) for y in grid.index],
            text=text,
            texttemplate="%{text}",
            textfont={"size": 13},
            colorscale="RdYlGn",
            zmid=0,
            zmin=-limit,
            zmax=limit,
            xgap=3,
            ygap=3,
            hoverongaps=False,
            colorbar={"title": "return", "tickformat": ".0%"},
            hovertemplate="%{y} %{x}: %{text}<extra></extra>",
        )
    )
    return fig.update_layout(
        title="Monthly returns (Year: compounded)",
        yaxis={"type": "category", "autorange": "reversed"},
        height=max(220, 120 + 60 * len(grid)),
    )


def trade_returns_figure(trades: pd.DataFrame, currency: str) -> go.Figure:
    """Histogram of trade returns (percent of the entry notional), winners green, losers red."""
    if "return_pct" in trades and trades["return_pct"].notna().any():
        values, axis, fmt = trades["return_pct"].dropna().astype(float), "return per trade", ".1%"
    else:
        values, axis, fmt = trades["pnl"].astype(float), f"pnl per trade ({currency})", ",.0f"
    fig = go.Figure()
    if len(values):
        low, high = float(values.min()), float(values.max())
        size = (high - low) / 50 or 1e-4
        bins = {"start": low, "end": high + size, "size": size}
        for part, name, colour in (
            (values[values <= 0], "losing", RED),
            (values[values > 0], "winning", GREEN),
        ):
            fig.add_trace(
                go.Histogram(
                    x=part, xbins=bins, name=f"{name} trades", marker_color=colour, opacity=0.85
                )
            )
        mean = float(values.mean())
        fig.add_vline(
            x=mean,
            line={"color": "#333", "dash": "dash"},
            annotation_text=f"mean {mean:{fmt.replace(',', '')}}",
        )
    return fig.update_layout(
        title=f"Distribution of trade returns ({len(values):,} trades)",
        barmode="overlay",
        xaxis={"title": axis, "tickformat": fmt},
        yaxis={"title": "trades"},
        height=380,
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
    )


def instance_lines_figure(lines: list[tuple[str, pd.Series]], title: str, currency: str):
    """One equity line per strategy instance."""
    fig = go.Figure()
    gaps = _union_gaps([curve for _name, curve in lines])
    for i, (name, curve) in enumerate(lines):
        curve = broken(curve, data_gaps(curve.index)) if len(curve) > 1 else curve
        fig.add_trace(
            go.Scatter(
                x=curve.index,
                y=curve.to_numpy(),
                mode="lines",
                name=name,
                line={"color": PALETTE[i % len(PALETTE)], "width": 1.5},
                hovertemplate=f"{name}<br>%{{x}}<br>%{{y:,.2f}} {currency}<extra></extra>",
            )
        )
    return hide_gaps(fig, gaps).update_layout(
        title=title,
        yaxis={"title": currency, "tickformat": ",.0f"},
        height=460,
        legend={"x": 1.02, "y": 1, "yanchor": "top", "font": {"size": 11}},
    )


def weights_figure(weights: pd.Series) -> go.Figure:
    """Horizontal bars: each instance's share of the account."""
    ordered = weights.sort_values()
    fig = go.Figure(
        go.Bar(
            x=ordered.to_numpy(),
            y=list(ordered.index),
            orientation="h",
            marker_color=BLUE,
            text=[f"{w:.1%}" for w in ordered],
            textposition="outside",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    top = float(ordered.max()) if len(ordered) else 1.0
    return fig.update_layout(
        title="Weight of each instance (share of the account's risk)",
        xaxis={"tickformat": ".0%", "range": [0, top * 1.2]},
        height=max(240, 90 + 30 * len(ordered)),
        margin={"l": 220},
    )


def selections_figure(counts: pd.Series) -> go.Figure:
    """A step line: how many instances each re-selection of a rolling selection chose."""
    fig = go.Figure(
        go.Scatter(
            x=counts.index,
            y=counts.to_numpy(),
            mode="lines+markers",
            line={"shape": "hv", "color": BLUE},
            hovertemplate="%{x|%Y-%m-%d}: %{y} instance(s)<extra></extra>",
        )
    )
    return fig.update_layout(
        title="Instances selected at each re-selection (held until the next)",
        yaxis={"title": "instances", "rangemode": "tozero"},
        height=320,
    )


def compare_figure(curves: dict[str, pd.Series]) -> go.Figure:
    """Each run's cumulative return from its own start, on one time axis."""
    fig = go.Figure()
    gaps = _union_gaps([c for c in curves.values() if not c.empty])
    for i, (name, curve) in enumerate(curves.items()):
        if curve.empty:
            continue
        growth = broken(thin(curve / float(curve.iloc[0]) - 1), data_gaps(curve.index))
        fig.add_trace(
            go.Scatter(
                x=growth.index,
                y=growth.to_numpy(),
                mode="lines",
                name=name,
                line={"color": (BLUE, "#e07b39", GREY)[i % 3], "width": 1.8},
                hovertemplate=f"{name}<br>%{{x}}<br>%{{y:.2%}}<extra></extra>",
            )
        )
    return hide_gaps(fig, gaps).update_layout(
        title="Cumulative return of each run from its start",
        height=380,
        yaxis={"title": "return", "tickformat": ".0%"},
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
    )


def _union_gaps(curves: list[pd.Series]) -> Gaps:
    """The gaps where none of the curves has data (what the shared time axis may leave out)."""
    stamps = [c.index for c in curves if len(c)]
    if not stamps:
        return []
    union = stamps[0].append(stamps[1:]).unique().sort_values() if len(stamps) > 1 else stamps[0]
    return data_gaps(pd.DatetimeIndex(union))
