"""`cli.py weights`: prod.json, --split report, database update."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from tests.analysis.analysis_data import write_results_dir

runner = CliRunner()


def test_binary_weights_prod_json_and_db(tmp_path: Path, sqlite_url: str) -> None:
    from store.instances import list_instances

    results = write_results_dir(tmp_path / "all")
    out = tmp_path / "prod.json"
    result = runner.invoke(
        app, ["weights", str(results), "--method", "binary", "--out", str(out), "--db", sqlite_url]
    )
    assert result.exit_code == 0, result.output
    config = json.loads(out.read_text())
    assert [(i["family"], i["params"], i["weight"]) for i in config["instances"]] == [
        ("sr_breakout", {"lookback": 20}, 1.0),
        ("orb", {"minutes": 30}, 1.0),
    ]
    assert (
        "2 of 5 instances weighted" in result.output
        and "0 instances updated, 2 added" in result.output
    )
    assert {(i.family, i.weight, i.enabled) for i in list_instances(sqlite_url)} == {
        ("sr_breakout", 1.0, True),
        ("orb", 1.0, True),
    }


def test_rule_flags_and_results_csv_path(tmp_path: Path) -> None:
    results = write_results_dir(tmp_path / "all") / "results.csv"
    out = tmp_path / "prod.json"
    args = ["weights", str(results), "--out", str(out), "--no-db", "--method", "sortino"]
    result = runner.invoke(app, [*args, "--min-trades", "10", "--min-sortino", "1.5"])
    assert result.exit_code == 0, result.output
    # sortino > 1.5 with >= 10 trades: D (sortino 3, 10 trades) and A (sortino 2): 3:2
    instances = json.loads(out.read_text())["instances"]
    assert [(i["params"], i["weight"]) for i in instances] == [
        ({"lookback": 50}, pytest.approx(0.6)),
        ({"lookback": 20}, pytest.approx(0.4)),
    ]


def test_split_reports_side_by_side(tmp_path: Path) -> None:
    results = write_results_dir(tmp_path / "all")
    out = tmp_path / "prod.json"
    result = runner.invoke(
        app,
        [
            "weights",
            str(results),
            "--split",
            "2024-03-01",
            "--min-trades",
            "2",
            "--min-days",  # the hand-made in-sample spans a few days
            "0",
            "--min-daily-returns",
            "0",
            "--out",
            str(out),
            "--no-db",
        ],
    )
    assert result.exit_code == 0, result.output
    text = result.output
    assert "in-sample (selected)" in text and "out-of-sample (selected)" in text
    row = next(line for line in text.splitlines() if "total_return" in line)
    assert "0.15%" in row and "-0.20%" in row  # +15 then -20 on 10,000
    assert [i["family"] for i in json.loads(out.read_text())["instances"]] == ["sr_breakout"]


def test_split_with_the_default_rule_refuses_a_few_days_and_says_why(tmp_path: Path) -> None:
    results = write_results_dir(tmp_path / "all")
    out = tmp_path / "prod.json"
    args = ["weights", str(results), "--split", "2024-03-01", "--min-trades", "2"]
    result = runner.invoke(app, [*args, "--out", str(out), "--no-db"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["instances"] == []
    assert "refused 2 instance(s): sample too short (< 30 days of data)" in result.output
    assert "refused 3 instance(s): too few trades (< 2)" in result.output  # no in-sample trades
    text = " ".join(result.output.split())
    assert "- in in-sample: sharpe, sortino, cagr and volatility need >= 30 days" in text


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--method", "kelly"], "unknown"),
        (["--split", "someday"], "is not a date"),
    ],
)
def test_bad_options(tmp_path: Path, args: list[str], fragment: str) -> None:
    results = write_results_dir(tmp_path / "all")
    result = runner.invoke(
        app, ["weights", str(results), "--no-db", "--out", str(tmp_path / "p.json"), *args]
    )
    assert result.exit_code != 0 and fragment in str(result.exception)


# ---------------------------------------------------------------- --rolling


@pytest.fixture(scope="module")
def rolling_runs(tmp_path_factory) -> Path:
    from testing.rolling_market import synthetic_runs, write_runs_dir

    results, trades = synthetic_runs(8, 150, seed=4, edge=2, drift=0.006)
    return write_runs_dir(tmp_path_factory.mktemp("rolling") / "all", results, trades)


def test_rolling_writes_a_backtest_directory_that_analyze_reads(
    rolling_runs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rolling"
    args = ["weights", str(rolling_runs), "--rolling", "--every", "7d", "--lookback", "45d"]
    result = runner.invoke(app, [*args, "--min-trades", "10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "trades.csv",
        "equity.csv",
        "results.json",
        "selections.csv",
        "comparison.csv",
    }
    comparison = pd.read_csv(out / "comparison.csv")
    assert list(comparison["selection"].str.split(" ").str[0]) == [
        "rolling",
        "static",
        "equal",
        "random",
        "random",
    ]
    assert comparison["verdict"].iloc[0] in ("skill", "not distinguishable from random")
    document = json.loads((out / "results.json").read_text())
    assert document["params"]["every_days"] == 7 and document["params"]["lookback_days"] == 45
    assert document["metrics"]["trades"] == len(pd.read_csv(out / "trades.csv"))
    selections = pd.read_csv(out / "selections.csv")
    assert list(selections.columns) == ["time", "instance", "weight"]
    assert "Selection statistics" in result.output and "random p95" in result.output
    report = tmp_path / "report.html"
    analysed = runner.invoke(app, ["analyze", str(out), "--html", str(report)])
    assert analysed.exit_code == 0, analysed.output
    assert "rolling selection:" in analysed.output and "selections" in analysed.output
    assert "Rolling selection</h2>" in report.read_text()
    # the plot counts every re-selection, those that chose nothing too (no row in selections.csv)
    from analysis.html_report import build_figures
    from analysis.report import analyse
    from analysis.trades_io import load_trade_set

    trade_set = load_trade_set(out)
    counts = build_figures(trade_set, analyse(trade_set))["selections"].data[0].y
    assert len(counts) == document["selections"]
    assert sum(counts) == selections["instance"].notna().sum()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--every", "2x"], "--every '2x' is not a number of days"),
        (["--every", "3d"], "--every '3d' is not supported"),
        (["--lookback", "-1d"], "--lookback '-1d' is not a number of days"),
        (["--split", "2025-03-01"], "--rolling and --split"),
        (["--draws", "50"], "--draws 50 is too few"),
        (["--lookback", "20d"], "shorter than --min-days 30"),
        (["--lookback", "400d"], "no time is left"),
        (["--out", "prod.json"], "--rolling writes a backtest directory"),
    ],
)
def test_rolling_bad_flags_one_error_line_nothing_written(
    rolling_runs: Path, tmp_path: Path, args: list[str], fragment: str, monkeypatch, capsys
) -> None:
    from tests.commands.test_errors import run_main

    out = tmp_path / "rolling"
    code = run_main(
        monkeypatch, "weights", str(rolling_runs), "--rolling", "--out", str(out), *args
    )
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], lines
    assert not out.exists()
