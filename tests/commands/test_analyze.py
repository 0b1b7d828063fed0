"""`cli.py analyze`: text report, --json, --html, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from core.errors import UserError
from tests.analysis.analysis_data import random_trades, write_backtest_dir, write_simple_trades

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_text_report_for_a_trades_file(tmp_path: Path) -> None:
    path = write_simple_trades(tmp_path / "trades.csv")
    result = runner.invoke(app, ["analyze", str(path), "--cash", "1000"])
    assert result.exit_code == 0, result.output
    for title in ("Metrics", "Monthly returns", "Weekly returns", "By strategy", "By exit reason"):
        assert title in result.output
    assert "equity rebuilt" in result.output and "2,000.00" in result.output


def test_json_metrics_with_nulls(tmp_path: Path) -> None:
    path = write_simple_trades(tmp_path / "trades.csv")
    result = runner.invoke(app, ["analyze", str(path), "--json", "--cash", "1000"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    metrics = payload["metrics"]
    assert metrics["trades"] == 4 and metrics["win_rate"] == 0.5
    assert metrics["profit_factor"] == pytest.approx(130 / 70)
    assert metrics["total_return"] == pytest.approx(0.03)
    assert "NaN" not in result.stdout and "rebuilt" in payload["notes"][0]


def test_json_only_losers_has_null_profit_ratio(tmp_path: Path) -> None:
    path = tmp_path / "losers.csv"
    path.write_text("entry_time,exit_time,pnl\n2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,-5\n")
    result = runner.invoke(app, ["analyze", str(path), "--json"])
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["avg_win"] is None and metrics["payoff_ratio"] is None
    assert metrics["sharpe"] is None and metrics["profit_factor"] == 0.0


def test_backtest_directory_and_html(tmp_path: Path) -> None:
    run = write_backtest_dir(tmp_path / "run")
    html = tmp_path / "report.html"
    result = runner.invoke(app, ["analyze", str(run), "--html", str(html)])
    assert result.exit_code == 0, result.output
    assert "10.00%" in result.output  # max drawdown 1100 -> ... 900 vs 1000 from equity.csv
    assert html.exists() and "Plotly.newPlot" in html.read_text()


def test_backtest_directory_without_trades(tmp_path: Path) -> None:
    run = write_backtest_dir(tmp_path / "run")
    (run / "trades.csv").write_text((run / "trades.csv").read_text().splitlines()[0] + "\n")
    result = runner.invoke(app, ["analyze", str(run), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["trades"] == 0 and metrics["win_rate"] is None and metrics["exposure"] == 0.0
    assert metrics["max_drawdown"] == pytest.approx(0.1)  # the curve still moved
    text = runner.invoke(app, ["analyze", str(run)]).output
    assert "no trades: nothing to break down" in text and "Monthly returns" in text


def test_malformed_file_prints_one_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("entry_time,exit_time,pnl\nnot-a-date,2024-01-01,5\n")
    done = subprocess.run(
        [sys.executable, "cli.py", "analyze", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "row 2" in lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_bootstrap_bands_in_text_json_and_html(tmp_path: Path) -> None:
    from analysis.bootstrap import bootstrap
    from analysis.trades_io import load_trade_set

    path = tmp_path / "trades.csv"
    random_trades().to_csv(path, index=False)
    trade_set = load_trade_set(path, None)
    expected = bootstrap(trade_set.trades, trade_set.initial_cash, 2000, 5).to_json()
    result = runner.invoke(app, ["analyze", str(path), "--json", "--draws", "2000", "--seed", "5"])
    assert result.exit_code == 0, result.output
    bands = json.loads(result.stdout)["bootstrap"]
    assert bands == expected and bands["draws"] == 2000 and bands["seed"] == 5
    stats = bands["statistics"]["max_drawdown"]
    assert stats["p5"] <= stats["p50"] <= stats["p95"]
    html = tmp_path / "report.html"
    text = runner.invoke(app, ["analyze", str(path), "--html", str(html)])
    assert text.exit_code == 0, text.output
    assert "Bootstrap bands" in text.output and "longest losing streak" in text.output
    assert "1,000 draws (seed 0)" in text.output
    page = html.read_text()
    assert "Bootstrap bands" in page and "<th>longest losing streak</th>" in page
    low = runner.invoke(app, ["analyze", str(path), "--draws", "999"])
    assert isinstance(low.exception, UserError) and "--draws 999" in str(low.exception)
