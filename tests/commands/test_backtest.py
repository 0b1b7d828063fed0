"""`cli.py backtest`: files, stored run, options and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "sample" / "ETH_BTC-5m.csv.gz"
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["backtest", *args])


def test_backtest_from_file_writes_files_and_stores_the_run(tmp_path, sqlite_url) -> None:
    from store.runs import load_runs, load_trades

    out = tmp_path / "out"
    result = run(
        "--strategy",
        "sr_breakout",
        "--symbol",
        "ETH/BTC",
        "--interval",
        "5m",
        "--param",
        "lookback=30",
        "--param",
        "allow_short=true",
        "--data",
        str(DATA),
        "--db",
        sqlite_url,
        "--out",
        str(out),
        "--fee-bps",
        "5",
        "--slippage-bps",
        "1",
        "--cash",
        "2000",
        "--start",
        "2018-01-12",
        "--end",
        "2018-01-25",
    )
    assert result.exit_code == 0, result.output
    assert "trades" in result.output and "results.json" in result.output
    trades = pd.read_csv(out / "trades.csv")
    equity = pd.read_csv(out / "equity.csv")
    doc = json.loads((out / "results.json").read_text())
    assert doc["params"]["lookback"] == 30 and doc["params"]["allow_short"] is True
    assert doc["start"] == "2018-01-12T00:00:00Z" and doc["end"] == "2018-01-25T00:00:00Z"
    assert doc["bars"] == len(equity) == 13 * 288 + 1
    assert equity["equity"].iloc[0] == 2000.0
    assert len(trades) == doc["metrics"]["trades"] > 0
    runs = load_runs(sqlite_url)
    assert list(runs["id"]) == [doc["run_id"]]
    assert runs["engine_version"].iloc[0].startswith("raytrader-engine")
    stored = load_trades(sqlite_url, doc["run_id"])
    assert len(stored) == len(trades)
    assert abs(stored["pnl"].sum() - trades["pnl"].sum()) < 1e-6


def test_backtest_from_stored_bars(tmp_path, db_url) -> None:
    from store.bar_files import read_bar_file
    from store.bars import save_bars

    save_bars(db_url, "binance", "ETH/BTC", "5m", read_bar_file(DATA, "5m")[0])
    result = run(
        "--strategy",
        "sr_breakout",
        "--symbol",
        "ETH/BTC",
        "--interval",
        "5m",
        "--db",
        db_url,
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    from_db = pd.read_csv(tmp_path / "trades.csv")
    run(
        "--strategy",
        "sr_breakout",
        "--symbol",
        "ETH/BTC",
        "--interval",
        "5m",
        "--data",
        str(DATA),
        "--db",
        db_url,
        "--out",
        str(tmp_path / "file"),
    )
    pd.testing.assert_frame_equal(from_db, pd.read_csv(tmp_path / "file" / "trades.csv"))


def test_user_strategy_file(tmp_path, sqlite_url) -> None:
    source = tmp_path / "mine.py"
    source.write_text(
        "from dataclasses import dataclass\n"
        "import pandas as pd\n"
        "from strategies.base import Strategy\n\n"
        "@dataclass(frozen=True)\n"
        "class P:\n    max_bars: int = 3\n\n"
        "class EveryTenth(Strategy):\n"
        "    name = 'every_tenth'\n    Params = P\n"
        "    def signals(self, bars):\n"
        "        flags = pd.Series(range(len(bars)), index=bars.index) % 10 == 0\n"
        "        return pd.DataFrame({'enter_long': flags}, index=bars.index)\n"
    )
    result = run(
        "--strategy",
        f"{source}:EveryTenth",
        "--symbol",
        "ETH/BTC",
        "--interval",
        "5m",
        "--data",
        str(DATA),
        "--db",
        sqlite_url,
        "--out",
        str(tmp_path / "o"),
    )
    assert result.exit_code == 0, result.output
    trades = pd.read_csv(tmp_path / "o" / "trades.csv")
    assert set(trades["exit_reason"]) <= {"time", "end_of_data"} and len(trades) > 100
    held = pd.to_datetime(trades["exit_time"]) - pd.to_datetime(trades["entry_time"])
    assert (held[trades["exit_reason"] == "time"] == pd.Timedelta(minutes=15)).all()


def test_help_lists_the_engine_options() -> None:
    text = run("--help").output
    for option in (
        "--strategy",
        "--param",
        "--data",
        "--db",
        "--out",
        "--fee-bps",
        "--slippage-bps",
        "--cash",
        "--risk",
        "--all",
        "--portfolio",
    ):
        assert option in text


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "backtest", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_user_mistakes_give_one_error_line(tmp_path) -> None:
    base = [
        "--symbol",
        "ETH/BTC",
        "--interval",
        "5m",
        "--data",
        str(DATA),
        "--db",
        f"sqlite:///{tmp_path / 'x.db'}",
    ]
    cases = {
        ("--strategy", "nope", "--out", "o", *base): "unknown strategy 'nope'",
        ("--strategy", "sr_breakout", *base): "backtest needs --out",
        ("--strategy", "sr_breakout", "--out", "o", "--risk", "2", *base): "--risk",
        ("--strategy", "sr_breakout", "--out", "o", "--param", "lookback=x", *base): "lookback",
        ("--strategy", "sr_breakout", "--out", "o", "--start", "2030-01-01", *base): "no bars",
    }
    for args, expected in cases.items():
        done = cli(*args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("error:") and expected in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_factors_csv_only_with_the_flag(tmp_path, sqlite_url) -> None:
    out = tmp_path / "out"
    result = run(
        "--strategy",
        "sr_breakout",
        "--symbol",
        "ETH/BTC",
        "--interval",
        "5m",
        "--data",
        str(DATA),
        "--db",
        sqlite_url,
        "--out",
        str(out),
        "--start",
        "2018-01-12",
        "--end",
        "2018-01-25",
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["equity.csv", "results.json", "trades.csv"]
    assert "factors.csv" not in result.output


def test_backtest_writes_factors_known_at_each_signal_bar(tmp_path, sqlite_url) -> None:
    out = tmp_path / "out"
    result = run(
        "--strategy",
        "sr_breakout",
        "--symbol",
        "ETH/BTC",
        "--interval",
        "5m",
        "--data",
        str(DATA),
        "--db",
        sqlite_url,
        "--out",
        str(out),
        "--start",
        "2018-01-12",
        "--end",
        "2018-01-25",
        "--factors",
    )
    assert result.exit_code == 0, result.output
    assert "factors.csv" in result.output
    trades = pd.read_csv(out / "trades.csv")
    factors = pd.read_csv(out / "factors.csv")
    assert list(factors["trade_id"]) == list(trades["trade_id"])
    assert {"range_10", "atr_14", "bar_of_day", "day_open"} <= set(factors.columns)
    # by hand for the first trade: the signal bar is the one that CLOSED at the entry fill
    raw = pd.read_csv(DATA)
    raw.index = pd.to_datetime(raw["timestamp"], unit="ms", utc=True)
    entry = pd.Timestamp(trades["entry_time"].iloc[0])
    signal_open = entry - pd.Timedelta("5min")
    last10 = raw.loc[signal_open - pd.Timedelta("45min") : signal_open]
    assert len(last10) == 10 and last10.index[-1] < entry  # nothing from the entry bar itself
    expected = (last10["high"].max() - last10["low"].min()) / last10["close"].iloc[-1]
    first = factors.iloc[0]
    assert pd.Timestamp(first["entry_time"]) == entry
    assert first["range_10"] == pytest.approx(expected, rel=1e-12)
    day = signal_open.normalize()
    assert first["bar_of_day"] == (signal_open - day) / pd.Timedelta("5min")
    assert first["day_open"] == raw.loc[day, "open"]


def test_help_groups_the_options_by_kind_of_run() -> None:
    text = run("--help").output
    for panel in (
        "Single backtest",
        "Every stored instance (--all)",
        "Portfolio (--portfolio)",
        "Ray (--all, --portfolio)",
    ):
        assert panel in text
    assert "With --all: Ray" not in text  # --ray-address serves --portfolio too


@pytest.fixture
def instance_db(sqlite_url) -> str:
    """ETH/BTC 5m bars (2,000) with one enabled sr_breakout instance: --all has work to do."""
    from store.bar_files import read_bar_file
    from store.bars import save_bars
    from store.instances import add_instance

    save_bars(sqlite_url, "binance", "ETH/BTC", "5m", read_bar_file(DATA, "5m")[0].iloc[:2000])
    add_instance(sqlite_url, "sr_breakout", "binance", "ETH/BTC", "5m", {"lookback": 20})
    return sqlite_url


def test_all_with_a_bad_date_or_filters_that_match_nothing_fails_with_one_line(
    tmp_path, instance_db
) -> None:
    base = ["--all", "--db", instance_db, "--out", str(tmp_path / "o")]
    cases = {
        ("--start", "2018-13-45"): ["--start '2018-13-45' is not a date/time"],
        ("--end", "yesterday-ish"): ["--end 'yesterday-ish' is not a date/time"],
        ("--start", "2030-01-01"): ["no runs selected", "start=2030-01-01", "ETH/BTC 5m"],
        ("--symbol", "ETH/BTC", "--end", "2001-01-01"): [
            "no runs selected",
            "symbol=ETH/BTC, end=2001-01-01",
        ],
    }
    for args, expected in cases.items():
        done = cli(*base, *args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
        assert all(text in lines[0] for text in expected), lines[0]
    from store.runs import load_runs

    assert load_runs(instance_db).empty  # nothing ran


def test_stray_arguments_are_one_clear_error(tmp_path, instance_db) -> None:
    base = ["--all", "--db", instance_db, "--out", str(tmp_path / "o")]
    cases = {
        ("--grid", "lookback=10,20", "oops"): "unexpected argument 'oops'",
        ("--grid", "lookback=10,20", "--lookbak", "5"): "unexpected argument '--lookbak'",
        ("lookback=10,20",): "--grid lookback=10,20",  # a grid entry without --grid: the hint
    }
    for args, expected in cases.items():
        done = cli(*base, *args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
        assert expected in lines[0], lines[0]
    single = cli(
        "--strategy",
        "sr_breakout",
        "--symbol",
        "ETH/BTC",
        "--interval",
        "5m",
        "--data",
        str(DATA),
        "--out",
        "o",
        "lookback=5",
        cwd=tmp_path,
    )
    assert single.returncode == 2 and single.stderr.startswith("error:"), single.stderr
    assert "unexpected argument 'lookback=5'" in single.stderr
