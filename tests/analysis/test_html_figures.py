"""analysis/html_figures.py: plots over disjoint data windows break the line and leave the gap
out of the time axis instead of drawing months of nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import html_figures as figs


def two_windows() -> pd.Series:
    """Two weeks of hourly equity, then nothing for 21 months, then two more weeks."""
    first = pd.date_range("2022-01-01", periods=14 * 24, freq="h", tz="UTC")
    second = pd.date_range("2023-10-01", periods=14 * 24, freq="h", tz="UTC")
    index = first.append(second)
    values = 10_000 + np.cumsum(np.random.default_rng(1).normal(0, 5, len(index)))
    return pd.Series(values, index=index)


def lines(trace) -> list[list[float]]:
    """The connected pieces of a plotly line (None/NaN points break it)."""
    pieces, piece = [], []
    for y in trace.y:
        if y is None or (isinstance(y, float) and np.isnan(y)):
            pieces, piece = [*pieces, piece], []
        else:
            piece.append(y)
    return [*pieces, piece]


def test_the_equity_and_drawdown_lines_break_at_the_gap_and_the_axis_leaves_it_out() -> None:
    curve = two_windows()
    fig = figs.equity_drawdown_figure(curve, "USD")
    for trace in fig.data:  # equity and drawdown
        assert [len(p) for p in lines(trace)] == [14 * 24, 14 * 24]
    breaks = fig.layout.xaxis.rangebreaks
    assert len(breaks) == 1
    start, end = (pd.Timestamp(b) for b in breaks[0].bounds)
    assert pd.Timestamp("2022-01-15") < start < pd.Timestamp("2022-02-01")
    assert pd.Timestamp("2023-09-01") < end < pd.Timestamp("2023-10-01")


def test_one_continuous_window_is_drawn_as_one_line_without_breaks() -> None:
    """The broken case: without a gap nothing is inserted (the check above can fail)."""
    curve = two_windows().iloc[: 14 * 24]
    fig = figs.equity_drawdown_figure(curve, "USD")
    assert [len(p) for p in lines(fig.data[0])] == [14 * 24]
    assert not fig.layout.xaxis.rangebreaks


def test_instance_lines_and_compare_break_at_the_gap_too() -> None:
    curve = two_windows()
    lines_fig = figs.instance_lines_figure([("a", curve), ("b", curve * 1.01)], "Instances", "USD")
    assert all(len(lines(t)) == 2 for t in lines_fig.data) and lines_fig.layout.xaxis.rangebreaks
    compare = figs.compare_figure({"in": curve, "out": curve * 0.99})
    assert all(len(lines(t)) == 2 for t in compare.data) and compare.layout.xaxis.rangebreaks
