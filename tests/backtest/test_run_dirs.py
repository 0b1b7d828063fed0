"""`backtest --all --separate` run directories are complete or absent, also when the driver is
killed with SIGKILL; the next start removes what the dead driver left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from backtest.run_dirs import STAGING, clean_leftovers, publish, stage_equity
from cli import app
from tests.backtest.test_fanout import sample_bars, slow_instances, stored_runs
from tests.cluster.test_loopback import _descendants

ROOT = Path(__file__).resolve().parents[2]
EQUITY = pd.DataFrame({"timestamp": ["2024-01-01T00:00:00Z"], "equity": [1.0], "cash": [1.0]})


def _write(name: str, text: str):
    def write_files(folder: Path) -> None:
        (folder / name).write_text(text)

    return write_files


def test_publish_replaces_a_directory_whole_and_keeps_its_equity(tmp_path):
    stage_equity(tmp_path, "run_a", EQUITY)
    first = publish(tmp_path, "run_a", _write("results.json", "{}"))
    assert sorted(p.name for p in first.iterdir()) == ["equity.csv", "results.json"]
    assert not (tmp_path / "runs" / STAGING / "run_a.csv").exists()  # consumed
    # a later invocation (no new equity curve) rewrites the files, keeps the curve
    again = publish(tmp_path, "run_a", _write("results.json", '{"v": 2}'))
    assert (again / "results.json").read_text() == '{"v": 2}'
    assert (again / "equity.csv").read_text() == (first / "equity.csv").read_text()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [STAGING, "run_a"]


def test_clean_leftovers_removes_temporaries_and_keeps_staged_curves(tmp_path):
    runs = tmp_path / "runs"
    (runs / ".tmp-run_b-123").mkdir(parents=True)
    (runs / ".tmp-run_b-123" / "trades.csv").write_text("half")
    (runs / ".old-run_c-9").mkdir()
    staged = stage_equity(tmp_path, "run_d", EQUITY)
    (runs / STAGING / "run_e.csv.77.partial").write_text("half")
    (tmp_path / ".results.csv.77.partial").write_text("half")
    removed = clean_leftovers(tmp_path)
    assert len(removed) == 4
    assert sorted(p.name for p in runs.iterdir()) == [STAGING]
    assert staged.is_file()  # a complete curve of a stored run: still used later


@pytest.fixture
def slow_db(tmp_path: Path, sample_dir: Path) -> tuple[str, Path]:
    from store.bars import save_bars

    db = f"sqlite:///{tmp_path / 'r.db'}"
    save_bars(db, "binance", "ETH/BTC", "5m", sample_bars(sample_dir, "ETH_BTC-5m.csv.gz", 2000))
    return db, slow_instances(db, tmp_path, 1.0, range(5, 21))


def _command(db: str, file: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "cli.py",
        "backtest",
        "--all",
        "--separate",
        "--db",
        db,
        "--family",
        f"{file}:Slow",
        "--out",
        str(out),
    ]


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the driver and every process it started (its Ray), as a crash would."""
    family = _descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in family - {proc.pid}:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)


def _run_dirs(out: Path) -> list[Path]:
    root = out / "runs"
    return [p for p in root.iterdir() if not p.name.startswith(".")] if root.is_dir() else []


@pytest.mark.ray
def test_a_driver_killed_mid_run_leaves_no_half_written_directory(ray_shared, slow_db, tmp_path):
    db, file = slow_db
    out = tmp_path / "out"
    env = {**os.environ, "RAYTRADER_DASHBOARD": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    with (tmp_path / "cli.log").open("w+") as log:
        proc = subprocess.Popen(
            _command(db, file, out),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 240
            while len(stored_runs(db)) == 0:  # a first batch is stored (its curves staged)
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"no run finished before the kill:\n{log.read()}")
                time.sleep(0.1)
        finally:
            if proc.poll() is None:
                _kill_tree(proc)
    stored = len(stored_runs(db))
    assert 1 <= stored < 16
    # The old way wrote runs/<run>/equity.csv as runs finished: a directory with nothing else.
    assert _run_dirs(out) == []
    staged = {p.stem for p in (out / "runs" / STAGING).glob("*.csv")}
    (out / "runs" / ".tmp-Slow_dead-1").mkdir()  # what a kill during publishing leaves
    # The next start cleans up and finishes; every directory is complete.
    file.with_suffix(".slow").unlink()
    # (in this process, on the tests' Ray: the killed driver's own Ray start is the one tested)
    done = CliRunner().invoke(app, _command(db, file, out)[2:])
    assert done.exit_code == 0, done.output
    assert "temporary file(s) left by an interrupted run" in done.output  # ours, and any .partial
    folders = _run_dirs(out)
    assert len(folders) == 16 and len(stored_runs(db)) == 16
    for folder in folders:
        names = {p.name for p in folder.iterdir()}
        assert {"results.json", "trades.csv", "equity.csv"} == names, (folder, names)
    assert staged <= {f.name for f in folders}  # curves of the killed invocation were kept
    assert sorted(p.name for p in (out / "runs").iterdir() if p.name.startswith(".")) == []
