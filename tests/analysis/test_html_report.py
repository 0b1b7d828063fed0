"""The HTML report is self-contained and its plots render in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from analysis.html_report import MAX_STRATEGY_LINES, build_figures, short_labels, write_html
from analysis.report import analyse
from analysis.trades_io import load_trade_set
from tests.analysis.analysis_data import random_trades, write_backtest_dir

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=5000",
)


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path of chromium. `make test` installs it first (`make browser`); tests never install."""
    found = shutil.which("chromium")
    if not found:
        pytest.skip(
            "headless Chromium is not installed (no `chromium` on PATH): run `make browser` "
            "(as root: apt-get install chromium) to render the plots"
        )
    return found


def _chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _many_instances(n: int = 80) -> pd.DataFrame:
    """Random trades of many instances: 3 families x 2 symbols x 8 lookbacks (> 10 lines)."""
    trades = random_trades(n, seed=3)
    trades["params"] = [
        json.dumps({"lookback": 10 + 5 * (i % 8), "sl_pct": 0.01, "tp_pct": 0.02})
        for i in range(len(trades))
    ]
    return trades


def _report(tmp_path: Path) -> tuple[Path, list[str]]:
    trades = tmp_path / "trades.csv"
    _many_instances().to_csv(trades, index=False)
    ts = load_trade_set(trades)
    html = tmp_path / "report.html"
    return html, write_html(ts, analyse(ts), html)


def test_html_is_self_contained(tmp_path: Path) -> None:
    html, plots = _report(tmp_path)
    assert plots == ["equity", "drawdown", "monthly", "trade_returns", "strategies"]
    text = html.read_text()
    # the plotly library is inline (no <script src=...>: the machine may have no internet)
    assert not re.search(r"<script[^>]+src=", text) and len(text) > 3_000_000
    assert text.count("Plotly.newPlot") == len(plots)
    assert "equity rebuilt" in text


def test_single_strategy_has_no_per_strategy_plot(tmp_path: Path) -> None:
    ts = load_trade_set(write_backtest_dir(tmp_path / "run"))
    assert write_html(ts, analyse(ts), tmp_path / "r.html") == [
        "equity",
        "drawdown",
        "monthly",
        "trade_returns",
    ]


@pytest.mark.browser
def test_plots_render_in_headless_chromium(tmp_path: Path, chromium: str) -> None:
    html, plots = _report(tmp_path)
    done = _chromium(chromium, tmp_path, "--dump-dom", html.as_uri())
    dom = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    for plot_id in plots:
        # plotly marks a rendered div js-plotly-plot and draws its svg layers inside it
        div = re.search(rf'<div id="{plot_id}" class="plotly-graph-div js-plotly-plot"', dom)
        assert div, f"plot {plot_id} did not render"
    assert dom.count('class="main-svg"') >= len(plots)
    assert dom.count('class="trace scatter') >= 3  # equity, drawdown, per-strategy lines
    assert 'class="hm"' in dom or "heatmaplayer" in dom  # the monthly heatmap drew
    # the per-strategy legend holds at most MAX_STRATEGY_LINES short entries
    strategies = dom[dom.index('<div id="strategies"') :]
    legend = re.findall(r'<text class="legendtext"[^>]*>([^<]*)</text>', strategies)
    assert 2 <= len(legend) <= MAX_STRATEGY_LINES and max(map(len, legend)) <= 40, legend
    shot = tmp_path / "report.png"
    _chromium(chromium, tmp_path, "--window-size=1200,2600", f"--screenshot={shot}", html.as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000


def test_per_strategy_chart_stays_readable_with_many_instances(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    _many_instances().to_csv(path, index=False)
    ts = load_trade_set(path)
    groups = ts.trades.groupby(["strategy", "symbol", "interval", "params"]).ngroups
    assert groups > MAX_STRATEGY_LINES
    fig = build_figures(ts, analyse(ts))["strategies"]
    assert len(fig.data) == MAX_STRATEGY_LINES
    assert fig.layout.title.text.endswith(f"best 5 and worst 5 of {groups} by pnl")
    pnl = ts.trades.groupby(["strategy", "symbol", "params"])["pnl"].sum().sort_values()
    finals = sorted(trace.y[-1] for trace in fig.data)
    # each line starts from its own cash; the lowest ends at cash + the worst instance's pnl
    assert finals[0] == pytest.approx(ts.cash_per_run + pnl.iloc[0])
    assert finals[-1] == pytest.approx(ts.cash_per_run + pnl.iloc[-1])
    names = [trace.name for trace in fig.data]
    assert len(set(names)) == len(names) and all(len(n) <= 40 for n in names)
    assert all("{" not in n for n in names)  # no parameter JSON in the legend
    assert fig.layout.legend.x > 1  # beside the plot, not under it


def test_short_labels_show_only_differing_params() -> None:
    keys = [
        {"strategy": "sr_breakout", "symbol": "ETH/BTC", "interval": "5m", "params": p}
        for p in ('{"lookback":10,"sl_pct":0.01}', '{"lookback":20,"sl_pct":0.01}')
    ]
    keys.append({"strategy": "x/my.py:Mine", "symbol": "ETH/BTC", "interval": "1h", "params": "{}"})
    assert short_labels(keys) == [
        "sr_breakout ETH/BTC 5m lookback=10",
        "sr_breakout ETH/BTC 5m lookback=20",
        "Mine ETH/BTC 1h",
    ]
    many = [{**keys[0], "params": json.dumps({f"p{i}": n for i in range(6)})} for n in (1, 2)]
    hashed = short_labels(many)
    assert hashed[0] != hashed[1] and all(
        re.fullmatch(r"sr_breakout ETH/BTC 5m #[0-9a-f]{6}", h) for h in hashed
    )
