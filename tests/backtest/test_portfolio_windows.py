"""A portfolio over data windows far apart warns, and reports over the time it had data
(issue 14: two windows 21 months apart gave a 620-day drawdown)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from backtest.portfolio_config import window_warnings
from cli import app
from store.bar_files import read_bar_file

runner = CliRunner()
SHIFT = pd.Timedelta(days=400)


def _series(sample_dir: Path) -> dict:
    eth, _ = read_bar_file(sample_dir / "ETH_BTC-5m.csv.gz", "5m")
    ltc, _ = read_bar_file(sample_dir / "LTC_BTC-5m.csv.gz", "5m")
    later = ltc.iloc[:1500].copy()
    later.index = later.index + SHIFT  # the same market behaviour, 400 days later
    return {("ETH/BTC", "5m"): eth.iloc[:1500], ("LTC/BTC", "5m"): later}


def test_overlapping_windows_give_no_warning(sample_dir: Path) -> None:
    eth, _ = read_bar_file(sample_dir / "ETH_BTC-5m.csv.gz", "5m")
    ltc, _ = read_bar_file(sample_dir / "LTC_BTC-5m.csv.gz", "5m")
    assert window_warnings({("ETH/BTC", "5m"): eth, ("LTC/BTC", "5m"): ltc}) == []


def test_disjoint_windows_warn_and_the_gap_is_not_counted(
    tmp_path: Path, sqlite_url: str, sample_dir: Path
) -> None:
    from store.bars import save_bars

    series = _series(sample_dir)
    for (symbol, interval), frame in series.items():
        save_bars(sqlite_url, "binance", symbol, interval, frame)
    warnings = window_warnings(series)
    assert len(warnings) == 1 and "data windows are disjoint" in warnings[0]
    assert "ETH/BTC 5m 2018-01-10.." in warnings[0]
    prod = tmp_path / "prod.json"
    instances = [
        {"family": "sr_breakout", "symbol": s, "interval": "5m", "params": {}, "weight": 1.0}
        for s in ("ETH/BTC", "LTC/BTC")
    ]
    prod.write_text(json.dumps({"instances": instances}))
    out = tmp_path / "out"
    args = ["backtest", "--portfolio", str(prod), "--out", str(out), "--db", sqlite_url]
    result = runner.invoke(app, [*args, "--risk", "0.05"])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())
    assert document["warnings"] == warnings
    metrics = document["metrics"]
    window_days = 2 * 1499 * 5 / 1440  # two windows of 1,500 5m bars
    assert abs(metrics["span_days"] - window_days) < 0.1
    assert metrics["max_drawdown_duration_days"] <= window_days < 30  # not ~400 days
    assert metrics["sortino"] is None and "this sample has 10.4 days" in metrics["annualised_note"]
