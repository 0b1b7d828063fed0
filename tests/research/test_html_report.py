"""The HTML report is self-contained and its plots render in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from research.html_report import write_html
from research.report import analyse
from research.trades_io import load_trade_set
from tests.research.analysis_data import random_trades, write_backtest_dir

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


def _apt(*args: str, timeout: int) -> bool:
    try:
        done = subprocess.run(
            ["apt-get", *args],
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            capture_output=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path of chromium; installed with apt-get when missing, else the test is skipped."""
    found = shutil.which("chromium")
    if found:
        return found
    install = ("install", "-y", "--no-install-recommends", "chromium", "chromium-driver")
    if not _apt(*install, timeout=600):
        _apt("update", timeout=300) and _apt(*install, timeout=600)
    found = shutil.which("chromium")
    if not found:
        pytest.skip(
            "headless Chromium unavailable: `apt-get install chromium chromium-driver` failed"
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


def _report(tmp_path: Path) -> tuple[Path, list[str]]:
    trades = tmp_path / "trades.csv"
    random_trades(80, seed=3).to_csv(trades, index=False)
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
    shot = tmp_path / "report.png"
    _chromium(chromium, tmp_path, "--window-size=1200,2600", f"--screenshot={shot}", html.as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000
