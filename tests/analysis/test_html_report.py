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
    assert plots == ["equity", "monthly", "trade_returns", "strategies"]
    text = html.read_text()
    # the plotly library is inline (no <script src=...>: the machine may have no internet)
    assert not re.search(r"<script[^>]+src=", text) and len(text) > 3_000_000
    assert text.count("Plotly.newPlot") == len(plots)
    assert "equity rebuilt" in text


def test_single_strategy_has_no_per_strategy_plot(tmp_path: Path) -> None:
    ts = load_trade_set(write_backtest_dir(tmp_path / "run"))
    html = tmp_path / "r.html"
    assert write_html(ts, analyse(ts), html) == ["equity", "monthly", "trade_returns"]
    text = html.read_text()
    # human labels with units, not metric keys
    for words in (
        "Win rate (%)",
        "Max drawdown (%)",
        "Profit factor",
        "Sharpe ratio",
        "By exit reason",
        "Weekly returns",
        "Monthly returns",
    ):
        assert words in text, words
    assert "pct_months_profitable" not in text


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
    assert '<g class="y2tick">' in dom or "y2tick" in dom  # the drawdown panel beneath
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
    pnl = ts.trades.groupby(["strategy", "symbol", "interval", "params"])["pnl"].sum().sort_values()
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


# -- a portfolio on the synthetic market, out-of-sample compared with in-sample ------------------
SPLIT = "2025-03-01"
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".pytest_cache" / "screenshots"


@pytest.fixture(scope="module")
def portfolio_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two months of a 3-instance portfolio on generated bars: in-sample and out-of-sample runs
    through the CLI, as `make demo` does (smaller)."""
    from typer.testing import CliRunner

    from cli import app
    from factors.synthetic_market import DEMO_PAIRS, synthetic_bars
    from store.bars import save_bars

    folder = tmp_path_factory.mktemp("portfolio-report")
    db = f"sqlite:///{folder / 'r.db'}"
    for pair in DEMO_PAIRS[:2]:
        save_bars(db, "synthetic", pair.symbol, "1m", synthetic_bars(pair, days=120, outages=3))
    instances = [
        ("trend_day", "ALPHA/USD", "5m", {}, 0.5),
        ("sr_breakout", "BETA/USD", "15m", {"lookback": 30}, 0.3),
        ("volatility_breakout", "ALPHA/USD", "1h", {}, 0.2),
    ]
    prod = folder / "prod.json"
    prod.write_text(
        json.dumps(
            {
                "exchange": "synthetic",
                "instances": [
                    {"family": f, "symbol": s, "interval": i, "params": p, "weight": w}
                    for f, s, i, p, w in instances
                ],
            }
        )
    )
    runner = CliRunner()
    for name, window in (("in_sample", ["--end", SPLIT]), ("out_of_sample", ["--start", SPLIT])):
        args = ["backtest", "--portfolio", str(prod), "--db", db, *window]
        done = runner.invoke(app, [*args, "--out", str(folder / name)])
        assert done.exit_code == 0, done.output
    return folder


def test_portfolio_report_compares_runs_and_shows_weights(portfolio_runs: Path) -> None:
    from commands.analyze import _compared

    ts = load_trade_set(portfolio_runs / "out_of_sample")
    html = portfolio_runs / "report.html"
    compare = _compared(portfolio_runs / "in_sample", None)
    plots = write_html(ts, analyse(ts), html, compare)
    assert plots == ["compare", "equity", "monthly", "trade_returns", "strategies", "weights"]
    text = html.read_text()
    assert "out_of_sample compared with in_sample" in text
    assert "Net profit (USD)" in text and "Weight (%)" in text  # currency from the quote
    for label in ("trend_day[ALPHA/USD 5m]", "sr_breakout[BETA/USD 15m lookback=30]"):
        assert label in text  # the instance table: family + symbol + interval
    fig = build_figures(ts, analyse(ts), compare)
    weights = dict(zip(fig["weights"].data[0].y, fig["weights"].data[0].x, strict=True))
    assert weights["trend_day[ALPHA/USD 5m]"] == pytest.approx(0.5)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert fig["equity"].layout.yaxis2.tickformat == ".0%"  # drawdown beneath, in percent
    assert fig["compare"].layout.yaxis.tickformat == ".0%"


@pytest.mark.browser
def test_portfolio_report_screenshot_shows_every_plot(
    portfolio_runs: Path, chromium: str, tmp_path: Path
) -> None:
    from commands.analyze import _compared

    ts = load_trade_set(portfolio_runs / "out_of_sample")
    html = tmp_path / "report.html"
    plots = write_html(ts, analyse(ts), html, _compared(portfolio_runs / "in_sample", None))
    dom = _chromium(chromium, tmp_path, "--dump-dom", html.as_uri()).stdout
    for plot_id in plots:
        assert re.search(rf'<div id="{plot_id}" class="plotly-graph-div js-plotly-plot"', dom)
    assert "heatmaplayer" in dom or 'class="hm"' in dom
    assert dom.count('class="barlayer mlayer"') >= 2  # histogram and weight bars drew
    assert dom.count('class="bartext bartext-outside"') == 3  # a weight label per instance
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)  # kept after the run, for a human to look at
    shot = SCREENSHOTS / "portfolio-report.png"
    shot.unlink(missing_ok=True)
    _chromium(
        chromium,
        tmp_path,
        "--hide-scrollbars",
        "--window-size=1300,6200",
        f"--screenshot={shot}",
        html.as_uri(),
    )
    assert shot.exists() and shot.stat().st_size > 100_000
    print(f"screenshot: {shot}")
