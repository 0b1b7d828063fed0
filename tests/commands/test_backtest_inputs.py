"""`cli.py backtest`: bad --out, --db, dates, --grid values and repeated --param are each one
error before anything runs, and nothing is written (issue 14, "Bad input still accepted")."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from factors.bars import TimeValueError, parse_utc

runner = CliRunner()
SINGLE = ["backtest", "--strategy", "sr_breakout", "--symbol", "ETH/BTC", "--interval", "5m"]


@pytest.fixture
def sample_file(sample_dir: Path) -> str:
    return str(sample_dir / "ETH_BTC-5m.csv.gz")


@pytest.fixture
def instances_db(sqlite_url: str, sample_dir: Path) -> str:
    """ETH/BTC 5m (1,000 bars) with one enabled sr_breakout instance."""
    from store.bar_files import read_bar_file
    from store.bars import save_bars
    from store.instances import add_instance

    frame, _ = read_bar_file(sample_dir / "ETH_BTC-5m.csv.gz", "5m")
    save_bars(sqlite_url, "binance", "ETH/BTC", "5m", frame.iloc[:1000])
    add_instance(sqlite_url, "sr_breakout", "binance", "ETH/BTC", "5m", {"lookback": 20})
    return sqlite_url


def _runs(url: str) -> int:
    from store.runs import load_runs

    return len(load_runs(url))


def _error(result) -> str:
    assert result.exit_code != 0 and isinstance(result.exception, ValueError), result.output
    return str(result.exception)


def _read_only_dir(tmp_path: Path) -> Path:
    """A directory nobody may write: /proc for root (it ignores permission bits), else 0o555."""
    if os.geteuid() == 0:
        return Path("/proc")
    path = tmp_path / "ro"
    path.mkdir()
    path.chmod(0o555)
    return path


@pytest.mark.parametrize("kind", ["empty", "file", "read_only"])
@pytest.mark.parametrize("mode", ["single", "all", "portfolio"])
def test_a_bad_out_fails_before_anything_runs(
    tmp_path: Path, instances_db: str, sample_file: str, kind: str, mode: str
) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    out = {"empty": "", "file": str(a_file), "read_only": str(_read_only_dir(tmp_path))}[kind]
    prod = tmp_path / "prod.json"
    prod.write_text(
        '{"instances": [{"family": "sr_breakout", "symbol": "ETH/BTC", '
        '"interval": "5m", "weight": 1}]}'
    )
    args = {
        "single": [*SINGLE, "--data", sample_file],
        "all": ["backtest", "--all"],
        "portfolio": ["backtest", "--portfolio", str(prod)],
    }[mode]
    message = _error(runner.invoke(app, [*args, "--db", instances_db, "--out", out]))
    expected = {
        "empty": "--out is empty",
        "file": "is not a directory",
        "read_only": "not writable",
    }
    assert expected[kind] in message
    assert _runs(instances_db) == 0


@pytest.mark.parametrize("mode", ["single", "portfolio"])
def test_a_bad_db_fails_before_any_file_is_written(
    tmp_path: Path, sample_file: str, instances_db: str, mode: str
) -> None:
    out = tmp_path / "out"
    bad_db = f"sqlite:///{tmp_path}/missing_dir/x.db"
    prod = tmp_path / "prod.json"
    prod.write_text(
        '{"instances": [{"family": "sr_breakout", "symbol": "ETH/BTC", '
        '"interval": "5m", "weight": 1}]}'
    )
    args = (
        [*SINGLE, "--data", sample_file]
        if mode == "single"
        else ["backtest", "--portfolio", str(prod)]
    )
    message = _error(runner.invoke(app, [*args, "--db", bad_db, "--out", str(out)]))
    assert "cannot open database" in message
    assert not out.exists() or list(out.iterdir()) == []


def test_all_with_a_bad_db_is_one_error(tmp_path: Path) -> None:
    bad_db = f"sqlite:///{tmp_path}/missing_dir/x.db"
    message = _error(
        runner.invoke(app, ["backtest", "--all", "--db", bad_db, "--out", str(tmp_path / "o")])
    )
    assert "cannot open database" in message


@pytest.mark.parametrize("value", ["01/02/2018", "13/01/2018", "2018-1-5", "Jan 5 2018"])
def test_dates_are_iso_8601_or_an_error(value: str) -> None:
    with pytest.raises(TimeValueError, match="ISO-8601"):
        parse_utc(value, "--start")


def test_iso_forms_are_read_as_utc() -> None:
    assert parse_utc("2018-01-05") == pd.Timestamp("2018-01-05", tz="UTC")
    assert parse_utc("2018-01-05T12:00Z") == pd.Timestamp("2018-01-05 12:00", tz="UTC")
    assert parse_utc("2018-01-05T12:00+02:00") == pd.Timestamp("2018-01-05 10:00", tz="UTC")
    assert parse_utc(pd.Timestamp("2018-01-05")) == pd.Timestamp("2018-01-05", tz="UTC")


@pytest.mark.parametrize("all_", [False, True])
def test_a_day_first_date_on_the_cli_is_refused(
    tmp_path: Path, instances_db: str, sample_file: str, all_: bool
) -> None:
    args = ["backtest", "--all"] if all_ else [*SINGLE, "--data", sample_file]
    out = tmp_path / "out"
    result = runner.invoke(
        app, [*args, "--start", "13/01/2018", "--db", instances_db, "--out", str(out)]
    )
    assert "--start '13/01/2018' is not a date/time; use ISO-8601 (year-month-day" in _error(result)
    assert _runs(instances_db) == 0 and not out.exists()


def test_a_grid_value_of_the_wrong_type_is_an_error_not_a_failed_run(
    tmp_path: Path, instances_db: str
) -> None:
    result = runner.invoke(
        app,
        [
            "backtest",
            "--all",
            "--grid",
            "lookback=10,abc",
            "--db",
            instances_db,
            "--out",
            str(tmp_path / "o"),
        ],
    )
    message = _error(result)
    assert "--grid lookback=10,abc" in message and "lookback='abc' is not a valid int" in message
    assert _runs(instances_db) == 0


def test_a_repeated_param_is_an_error(tmp_path: Path, sample_file: str, sqlite_url: str) -> None:
    args = [*SINGLE, "--data", sample_file, "--db", sqlite_url, "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [*args, "--param", "lookback=10", "--param", "lookback=30"])
    assert "parameter 'lookback' given twice (lookback=10, lookback=30)" in _error(result)
    assert _runs(sqlite_url) == 0


@pytest.mark.parametrize(
    "args",
    [
        ["backtest", "--portfolio", "{dir}", "--out", "{tmp}/o"],
        ["strategies", "load", "{dir}"],
        [
            "factors",
            "export",
            "--symbol",
            "X/BTC",
            "--interval",
            "1m",
            "--data",
            "{dir}",
            "--out",
            "{tmp}/f.csv",
        ],
        ["data", "import", "{dir}", "--symbol", "X/BTC", "-i", "1m"],
    ],
)
def test_a_directory_is_called_a_directory(tmp_path: Path, sqlite_url: str, args) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    filled = [a.format(dir=folder, tmp=tmp_path) for a in args]
    result = runner.invoke(app, [*filled, "--db", sqlite_url] if args[0] != "factors" else filled)
    assert isinstance(result.exception, (ValueError, FileNotFoundError)), result.output
    assert "is a directory" in str(result.exception) and "not found" not in str(result.exception)
