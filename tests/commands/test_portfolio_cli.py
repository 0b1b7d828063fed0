"""`cli.py weights ... --out prod.json` then `cli.py backtest --portfolio prod.json --out DIR`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from backtest.run import TRADE_COLUMNS
from cli import app

runner = CliRunner()


def stored_db(sqlite_url: str, sample_dir: Path) -> str:
    from store.bar_files import read_bar_file
    from store.bars import save_bars

    for symbol, file in (("ETH/BTC", "ETH_BTC-5m.csv.gz"), ("LTC/BTC", "LTC_BTC-5m.csv.gz")):
        frame, _gaps = read_bar_file(sample_dir / file, "5m")
        save_bars(sqlite_url, "binance", symbol, "5m", frame.iloc[:2000])
    return sqlite_url


def write_results(path: Path) -> Path:
    """A results.csv as `backtest --all` writes it: two instances pass the rule, one fails."""
    rows = [
        ("ETH/BTC", "5m", '{"lookback":20}', 1.2, 3.0, 40),
        ("LTC/BTC", "5m", '{"allow_short":true,"lookback":30}', 0.8, 2.0, 30),
        ("ETH/BTC", "15m", '{"lookback":50}', -0.5, -1.0, 25),
    ]
    frame = pd.DataFrame(
        rows, columns=["symbol", "interval", "params", "sortino", "expectancy", "trades"]
    ).assign(strategy="sr_breakout", status="done")
    path.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path / "results.csv", index=False)
    return path / "results.csv"


def test_weights_then_portfolio_backtest_writes_the_files(
    tmp_path: Path, sqlite_url: str, sample_dir: Path
) -> None:
    url = stored_db(sqlite_url, sample_dir)
    prod = tmp_path / "prod.json"
    made = runner.invoke(
        app, ["weights", str(write_results(tmp_path / "all")), "--out", str(prod), "--no-db"]
    )
    assert made.exit_code == 0, made.output
    assert len(json.loads(prod.read_text())["instances"]) == 2
    out = tmp_path / "portfolio"
    ran = runner.invoke(
        app, ["backtest", "--portfolio", str(prod), "--out", str(out), "--db", url, "--risk", "0.5"]
    )
    assert ran.exit_code == 0, ran.output
    assert "portfolio of 2 instance(s)" in ran.output
    trades = pd.read_csv(out / "trades.csv")
    assert tuple(trades.columns) == TRADE_COLUMNS and len(trades) > 0
    assert set(trades["symbol"]) == {"ETH/BTC", "LTC/BTC"}
    combined = pd.read_csv(out / "portfolio_trades.csv")
    assert set(combined["instance"]) == {
        "sr_breakout[ETH/BTC 5m]",
        "sr_breakout[LTC/BTC 5m lookback=30,allow_short=True]",
    }
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"]["trades"] == len(trades)
    assert results["settings"]["risk"] == 0.5
    assert set(results["by_strategy"]) == set(combined["instance"])
    equity = pd.read_csv(out / "equity.csv")
    final = 10_000 + trades["pnl"].sum()
    assert abs(equity["equity"].iloc[-1] - final) < 1e-6 * final
    assert (out / "rejections.csv").exists()


def test_portfolio_errors_are_one_line(tmp_path: Path, sqlite_url: str) -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "cli.py",
            "backtest",
            "--portfolio",
            str(tmp_path / "nope.json"),
            "--out",
            str(tmp_path / "o"),
            "--db",
            sqlite_url,
        ],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "nope.json" in lines[0]
    prod = tmp_path / "prod.json"
    prod.write_text(
        json.dumps(
            {
                "instances": [
                    {"family": "sr_breakout", "symbol": "XRP/BTC", "interval": "5m", "weight": 1.0}
                ]
            }
        )
    )
    no_bars = runner.invoke(
        app,
        ["backtest", "--portfolio", str(prod), "--out", str(tmp_path / "o"), "--db", sqlite_url],
    )
    assert isinstance(no_bars.exception, ValueError)  # printed as one `error:` line by cli.py
    assert "no 5m bars for binance XRP/BTC" in str(no_bars.exception)


def test_portfolio_run_is_stored_with_its_trades(
    tmp_path: Path, db_url: str, sample_dir: Path
) -> None:
    from sqlalchemy import func, select

    from store.db import get_engine
    from store.models import OrderRecord
    from store.runs import load_runs, load_trades

    url = stored_db(db_url, sample_dir)
    instances = [
        {
            "family": "sr_breakout",
            "symbol": "ETH/BTC",
            "interval": "5m",
            "params": {"lookback": 20},
            "weight": 1.5,
        },
        {
            "family": "sr_breakout",
            "symbol": "LTC/BTC",
            "interval": "5m",
            "params": {"lookback": 30, "allow_short": True},
            "weight": 0.5,
            "instance_id": 7,
        },
    ]
    prod = tmp_path / "prod.json"
    prod.write_text(json.dumps({"instances": instances}))
    out = tmp_path / "portfolio"
    ran = runner.invoke(
        app, ["backtest", "--portfolio", str(prod), "--out", str(out), "--db", url, "--risk", "0.5"]
    )
    assert ran.exit_code == 0, ran.output
    results = json.loads((out / "results.json").read_text())
    trades = pd.read_csv(out / "trades.csv")
    runs = load_runs(url)
    assert list(runs["id"]) == [results["run_id"]]
    run = runs.iloc[0]
    assert run["strategy"] == "portfolio" and run["status"] == "done"
    assert (run["symbol"], run["interval"]) == ("ETH/BTC,LTC/BTC", "5m")
    assert run["bars"] == results["bars"] == len(pd.read_csv(out / "equity.csv"))
    config = json.loads(run["params_json"])["instances"]
    assert [(i["symbol"], i["params"], i["weight"], i["instance_id"]) for i in config] == [
        ("ETH/BTC", {"lookback": 20}, 1.5, None),
        ("LTC/BTC", {"lookback": 30, "allow_short": True}, 0.5, 7),
    ]
    assert json.loads(run["metrics_json"])["trades"] == len(trades) > 0
    stored = load_trades(url, results["run_id"])
    assert len(stored) == len(trades)
    assert sorted(stored["symbol"]) == sorted(trades["symbol"])
    assert abs(stored["pnl"].sum() - trades["pnl"].sum()) < 1e-6
    with get_engine(url).connect() as conn:
        orders = conn.execute(
            select(func.count()).where(OrderRecord.run_id == results["run_id"])
        ).scalar_one()
    assert orders >= 2 * len(trades)  # an entry and at least one exit per trade


def test_prod_json_carries_each_instances_p95_drawdown_and_still_loads(
    tmp_path: Path, sqlite_url: str, sample_dir: Path
) -> None:
    from backtest.portfolio_config import load_portfolio_config

    results = write_results(tmp_path / "all")
    day = pd.Timestamp("2024-01-01", tz="UTC")

    def trade(params: str, symbol: str, hours: int, pnl: float) -> dict:
        exit_time = day + pd.Timedelta(hours=hours)
        entry = exit_time - pd.Timedelta(minutes=30)
        return {"strategy": "sr_breakout", "symbol": symbol, "interval": "5m", "params": params}, {
            "entry_time": entry.isoformat(),
            "exit_time": exit_time.isoformat(),
            "pnl": pnl,
        }

    # ETH/BTC lookback 20: one day, +100 then -300: every resample is that day, on 10,000
    # cash the end-of-day equity 9,800 is 2 % below the start. LTC/BTC: no trades here.
    rows = [trade('{"lookback":20}', "ETH/BTC", h, p) for h, p in ((2, 100.0), (3, -300.0))]
    pd.DataFrame([{**a, **b, "side": "long", "fees": 0.0} for a, b in rows]).to_csv(
        results.parent / "trades.csv", index=False
    )
    prod = tmp_path / "prod.json"
    made = runner.invoke(app, ["weights", str(results), "--out", str(prod), "--no-db"])
    assert made.exit_code == 0, made.output
    instances = {i["symbol"]: i for i in json.loads(prod.read_text())["instances"]}
    assert instances["ETH/BTC"]["p95_drawdown"] == pytest.approx(0.02)
    assert instances["LTC/BTC"]["p95_drawdown"] is None
    # the loader shared by `backtest --portfolio` and `live --config` keeps working
    assert len(load_portfolio_config(prod)) == 2
    url = stored_db(sqlite_url, sample_dir)
    ran = runner.invoke(
        app,
        ["backtest", "--portfolio", str(prod), "--out", str(tmp_path / "p"), "--db", url],
    )
    assert ran.exit_code == 0, ran.output
