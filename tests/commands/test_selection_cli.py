"""`weights` and `analyze` of a `backtest --all` directory print the DSR and the PBO of the best
run and of the selected set; `weights --max-pbo` refuses a selection above it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from analysis.weights import WeightsError, per_instance_metrics
from cli import app

runner = CliRunner()
CASH = 10_000.0
PLANTED = 3  # the run with a real edge


def write_market(out: Path, planted: bool, seed: int = 4, runs: int = 12, days: int = 240) -> Path:
    """results.csv and trades.csv of `runs` runs with one trade a day each (pnl noise around 0;
    with `planted`, run PLANTED earns 0.5 % a day more), as `backtest --all` writes them."""
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2025-01-01T01:00:00Z")
    for run in range(runs):
        edge = 50.0 if planted and run == PLANTED else 0.0
        for day in range(days):
            entry = start + pd.Timedelta(days=day)
            rows.append(
                {
                    "trade_id": str(len(rows) + 1),
                    "strategy": "orb",
                    "symbol": "ALPHA/USD",
                    "interval": "5m",
                    "side": "long",
                    "entry_time": entry.isoformat().replace("+00:00", "Z"),
                    "exit_time": (entry + pd.Timedelta(hours=5)).isoformat().replace("+00:00", "Z"),
                    "pnl": float(rng.normal(edge, 100.0)),
                    "fees": 0.0,
                    "exit_reason": "signal",
                    "params": json.dumps({"lookback": run}),
                    "run_id": f"run{run}",
                }
            )
    trades = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    trades.to_csv(out / "trades.csv", index=False)
    keys = [("orb", "ALPHA/USD", "5m", json.dumps({"lookback": run})) for run in range(runs)]
    parsed = trades.assign(
        entry_time=pd.to_datetime(trades["entry_time"], utc=True),
        exit_time=pd.to_datetime(trades["exit_time"], utc=True),
    )
    results = per_instance_metrics(parsed, keys, CASH)
    results.insert(0, "run_id", [f"run{run}" for run in range(runs)])
    results["params"] = [
        json.dumps({"lookback": run}, separators=(",", ":")) for run in range(runs)
    ]
    results["status"] = "done"
    results.to_csv(out / "results.csv", index=False)
    return out


def statistics_rows(output: str) -> dict[str, list[str]]:
    """The table's rows by their first word (best, selected), cells split on the table's bars."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0].startswith(("best run", "selected set")):
            rows[cells[0].split()[0]] = cells
    return rows


def test_weights_prints_dsr_and_pbo_of_the_planted_edge(tmp_path: Path) -> None:
    market = write_market(tmp_path / "planted", planted=True)
    out = tmp_path / "prod.json"
    result = runner.invoke(
        app,
        ["weights", str(market), "--no-db", "--out", str(out), "--max-pbo", "0.5"]
        + ["--min-sortino", "6"],  # a rule strict enough to leave the noise out
    )
    assert result.exit_code == 0, result.output
    assert "Selection statistics: 12 runs tried, 240 days of daily returns" in result.output
    rows = statistics_rows(result.output)
    assert f"lookback={PLANTED}" in rows["best"][0]
    assert rows["best"][3].endswith(" significant") and "not" not in rows["best"][3]
    assert float(rows["best"][4]) < 0.1  # PBO of the best run
    assert float(rows["selected"][4]) <= 0.5
    assert json.loads(out.read_text())["instances"]  # --max-pbo let it through


def test_max_pbo_refuses_a_selection_of_noise(tmp_path: Path) -> None:
    market = write_market(tmp_path / "noise", planted=False)
    out = tmp_path / "prod.json"
    result = runner.invoke(
        app, ["weights", str(market), "--no-db", "--out", str(out), "--max-pbo", "0.05"]
    )
    assert isinstance(result.exception, WeightsError), result.output
    rows = statistics_rows(result.output)
    assert "not significant" in rows["best"][3]
    pbo = float(rows["selected"][4])
    assert pbo > 0.05
    assert str(result.exception) == (
        f"selection refused: its Probability of Backtest Overfitting is {pbo:.3f} > "
        f"--max-pbo 0.05 (in {pbo:.0%} of the in/out-of-sample splits the runs chosen in-sample "
        f"ranked at or below the median run out-of-sample); {out} not written; try fewer "
        "variants, a stricter fitness rule or more data, or raise --max-pbo"
    )
    assert not out.exists()


def test_max_pbo_must_be_a_probability(tmp_path: Path) -> None:
    market = write_market(tmp_path / "noise", planted=False, runs=3, days=40)
    result = runner.invoke(app, ["weights", str(market), "--no-db", "--max-pbo", "5"])
    assert isinstance(result.exception, WeightsError)
    assert "--max-pbo 5.0 is a probability; give one from 0 to 1" in str(result.exception)


def test_analyze_of_a_backtest_all_directory_reports_both(tmp_path: Path) -> None:
    market = write_market(tmp_path / "planted", planted=True)
    html = tmp_path / "report.html"
    result = runner.invoke(app, ["analyze", str(market), "--html", str(html)])
    assert result.exit_code == 0, result.output
    rows = statistics_rows(result.output)
    assert f"lookback={PLANTED}" in rows["best"][0] and "binary weights" in rows["selected"][0]
    page = html.read_text()
    assert "Selection statistics: 12 runs tried" in page and "DSR probability" in page
