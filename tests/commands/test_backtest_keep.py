"""`cli.py backtest`: a bad prod.json leaves no --out directory, a failed run removes the one it
created, and `--all --keep-dashboard` keeps Ray's dashboard up after the run until Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
ENTRY = {"family": "sr_breakout", "symbol": "ETH/BTC", "interval": "5m", "weight": 1}


def _error(result) -> str:
    assert result.exit_code != 0 and isinstance(result.exception, ValueError), result.output
    return str(result.exception)


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ("{not json", "is not valid JSON"),
        (json.dumps({"instances": []}), "lists no instances"),
        (json.dumps({"instances": [{**ENTRY, "family": "nosuch"}]}), "nosuch"),
        (json.dumps({"instances": [{**ENTRY, "params": {"lookback": "abc"}}]}), "lookback"),
        (json.dumps({"instances": [ENTRY, {**ENTRY, "symbol": "ETH/USDT"}]}), "one currency"),
    ],
)
def test_a_bad_prod_json_is_one_error_and_no_out_dir(
    tmp_path: Path, sqlite_url: str, document, says
) -> None:
    prod = tmp_path / "prod.json"
    prod.write_text(document)
    out = tmp_path / "nested" / "out"
    args = ["backtest", "--portfolio", str(prod), "--out", str(out), "--db", sqlite_url]
    assert says in _error(runner.invoke(app, args))
    assert not out.exists() and not out.parent.exists()


def test_a_run_that_fails_after_the_checks_removes_the_out_dir_it_created(
    tmp_path: Path, sqlite_url: str
) -> None:
    prod = tmp_path / "prod.json"
    prod.write_text(json.dumps({"instances": [ENTRY]}))  # valid, but the database has no bars
    out, kept = tmp_path / "out", tmp_path / "kept"
    kept.mkdir()
    for target in (out, kept):
        args = ["backtest", "--portfolio", str(prod), "--out", str(target), "--db", sqlite_url]
        assert runner.invoke(app, args).exit_code != 0
    assert not out.exists()  # created by the failed run: removed
    assert kept.is_dir()  # the user's own directory is never removed


def test_keep_dashboard_needs_all(tmp_path: Path) -> None:
    args = [
        "backtest",
        "--keep-dashboard",
        "--strategy",
        "sr_breakout",
        "--symbol",
        "ETH/BTC",
        "--interval",
        "5m",
        "--out",
        str(tmp_path / "o"),
    ]
    assert "--keep-dashboard is for --all" in _error(runner.invoke(app, args))
    assert not (tmp_path / "o").exists()


def as_from_a_terminal() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.ray
def test_keep_dashboard_keeps_ray_up_after_the_run_until_ctrl_c(
    tmp_path: Path, sqlite_url: str, sample_dir: Path
) -> None:
    from store.bar_files import read_bar_file
    from store.bars import save_bars
    from store.instances import add_instance

    frame, _ = read_bar_file(sample_dir / "ETH_BTC-5m.csv.gz", "5m")
    save_bars(sqlite_url, "binance", "ETH/BTC", "5m", frame.iloc[:500])
    add_instance(sqlite_url, "sr_breakout", "binance", "ETH/BTC", "5m", {"lookback": 20})
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYTRADER_DASHBOARD")}
    cmd = [
        sys.executable,
        "cli.py",
        "backtest",
        "--all",
        "--keep-dashboard",
        "--db",
        sqlite_url,
        "--out",
        str(tmp_path / "all"),
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=as_from_a_terminal,
    )
    lines: list[str] = []
    try:
        while not any("dashboard kept up at" in line for line in lines):
            line = proc.stderr.readline()
            assert line, "".join(lines)  # ended without keeping the dashboard
            lines.append(line)
        url = lines[-1].split("kept up at ")[1].split()[0]
        assert (tmp_path / "all" / "results.csv").is_file()  # the run itself is finished
        assert requests.get(url, timeout=30).status_code < 500  # the dashboard answers
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "kept up after the run until Ctrl-C" in "".join(lines)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # Ray stopped with the command: the URL goes dead
        try:
            requests.get(url, timeout=2)
        except requests.ConnectionError:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"dashboard {url} still answers after the command ended")
