"""`cli.py strategies list`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import cli
from strategies.registry import BUILTIN

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    result = CliRunner().invoke(cli.app, ["strategies", "list", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_lists_every_family_with_parameters_and_defaults() -> None:
    out = run()
    for name, cls in BUILTIN.items():
        assert name in out and cls.family in out
        for key, (_, default) in cls.parameters().items():
            assert f"{key}:" in out and repr(default) in out
    assert "range_minutes: int = 30" in out
    assert "basis: str = 'range'" in out
    assert "lookback: int = 20" in out
    assert "1m 3m 5m 15m 1h" in out
    assert "session end" in out and "sl 1%" in out and "tp 2%" in out


def test_lists_a_user_strategy_file() -> None:
    out = run("--strategy", str(ROOT / "examples" / "ema_cross.py") + ":EmaCross")
    assert "ema_cross" in out and "fast: int = 12" in out and "after 288 bars" in out
    assert "orb" not in out


def test_unknown_strategy_is_one_error_line() -> None:
    result = subprocess.run(
        [sys.executable, "cli.py", "strategies", "list", "--strategy", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "400"},  # no wrapping of the one line by the console
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown strategy 'nope'")
    assert "Traceback" not in result.stderr
