"""backtest --all on one local Ray: every run stored once, resume, failures, grid, batching."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from backtest.fanout import RunSpec, run_all
from backtest.fanout_batches import Batcher, estimated_seconds
from cluster.ray_setup import RayClusterError, RaySession, check_database_for_cluster

ROOT = Path(__file__).resolve().parents[2]
RAISING_STRATEGY = """
from dataclasses import dataclass
from strategies.base import Strategy


@dataclass(frozen=True)
class BoomParams:
    when: int = 1


class Boom(Strategy):
    name = "boom"
    Params = BoomParams

    def signals(self, bars):
        raise RuntimeError("boom: this strategy always fails")
"""
SLOW_STRATEGY = """
import time
from dataclasses import dataclass
from pathlib import Path
from strategies.sr_breakout import SRBreakout, SRBreakoutParams

SLOW = Path(__file__).with_suffix(".slow")  # outside the run key: a rerun can be fast


@dataclass(frozen=True)
class SlowParams(SRBreakoutParams):
    pass


class Slow(SRBreakout):
    name = "slow"
    Params = SlowParams

    def signals(self, bars):
        if SLOW.exists():
            time.sleep(float(SLOW.read_text()))
        return super().signals(bars)
"""
FLAKY_STRATEGY = """
from dataclasses import dataclass
from pathlib import Path
from strategies.sr_breakout import SRBreakout, SRBreakoutParams

BROKEN = Path(__file__).with_suffix(".broken")  # outside the run key: same key when fixed


@dataclass(frozen=True)
class FlakyParams(SRBreakoutParams):
    pass


class Flaky(SRBreakout):
    name = "flaky"
    Params = FlakyParams

    def signals(self, bars):
        if BROKEN.exists():
            raise RuntimeError("flaky: broken for now")
        return super().signals(bars)
"""

DYING_STRATEGY = '''
import os
from dataclasses import dataclass
from pathlib import Path
from strategies.sr_breakout import SRBreakout, SRBreakoutParams

MARKER = Path(__file__).with_suffix(".died")


@dataclass(frozen=True)
class DyingParams(SRBreakoutParams):
    pass


class Dying(SRBreakout):
    """Kills its worker process the first time it runs (a crashed worker), then behaves."""

    name = "dying"
    Params = DyingParams

    def signals(self, bars):
        if not MARKER.exists():
            MARKER.write_text("died once")
            os._exit(1)
        return super().signals(bars)
'''


def slow_instances(
    db: str, folder: Path, seconds: float, lookbacks: range, symbol: str = "ETH/BTC"
) -> Path:
    """Instances of SLOW_STRATEGY (each run sleeps `seconds`, read from the .slow file outside
    the run key) with these lookbacks; returns the strategy file."""
    from store.instances import add_instance

    file = folder / "slow.py"
    file.write_text(SLOW_STRATEGY)
    file.with_suffix(".slow").write_text(str(seconds))
    for lookback in lookbacks:
        add_instance(db, f"{file}:Slow", "binance", symbol, "5m", {"lookback": lookback})
    return file


def sample_bars(sample_dir: Path, name: str, rows: int | None = None) -> pd.DataFrame:
    raw = pd.read_csv(sample_dir / name)
    index = pd.DatetimeIndex(
        pd.to_datetime(raw["timestamp"], unit="ms", utc=True), name="timestamp"
    )
    frame = raw[["open", "high", "low", "close", "volume"]].astype("float64").set_index(index)
    return frame.iloc[:rows] if rows else frame


@pytest.fixture(scope="module")
def ray_local(ray_shared):
    return ray_shared  # the session's Ray (tests/ray_local.py)


@pytest.fixture
def demo_db(sqlite_url: str, sample_dir: Path) -> str:
    """ETH/BTC and LTC/BTC 5m (2,000 bars each) with sr_breakout on 5m and 15m (resampled)."""
    from store.bars import save_bars
    from store.instances import add_instance

    for symbol, file in (("ETH/BTC", "ETH_BTC-5m.csv.gz"), ("LTC/BTC", "LTC_BTC-5m.csv.gz")):
        save_bars(sqlite_url, "binance", symbol, "5m", sample_bars(sample_dir, file, 2000))
        for interval in ("5m", "15m"):
            add_instance(sqlite_url, "sr_breakout", "binance", symbol, interval, {"lookback": 20})
    return sqlite_url


def stored_runs(url: str) -> pd.DataFrame:
    from sqlmodel import select

    from store.db import session_scope
    from store.models import BacktestRun

    with session_scope(url) as session:
        rows = list(session.exec(select(BacktestRun)))
    return pd.DataFrame(
        [{"run_key": r.run_key, "status": r.status, "error": r.error, "id": r.id} for r in rows],
        columns=["run_key", "status", "error", "id"],
    )


@pytest.mark.ray
def test_every_instance_runs_once_and_a_second_run_does_nothing(ray_local, demo_db, tmp_path):
    out = tmp_path / "out"
    first = run_all(demo_db, out, separate=True)
    assert (first.total, first.done, first.failed, first.skipped) == (4, 4, 0, 0)
    runs = stored_runs(demo_db)
    assert len(runs) == 4 and runs["run_key"].is_unique and set(runs["status"]) == {"done"}
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 4 and set(results["run_key"]) == set(runs["run_key"])
    assert set(results["interval"]) == {"5m", "15m"}
    assert {"win_rate", "sharpe", "max_drawdown", "profit_factor"} <= set(results.columns)
    assert (results["node_ip"] == "127.0.0.2").all()
    assert results.loc[results["interval"] == "15m", "bars"].max() < 2000 / 3 + 2
    trades = pd.read_csv(out / "trades.csv")
    assert len(trades) == results["trades"].sum() > 0
    assert set(trades["run_id"]) <= set(results["run_id"])
    assert json.loads(trades["params"].iloc[0])["lookback"] == 20
    run_dirs = sorted((out / "runs").iterdir())
    assert len(run_dirs) == 4 and all((d / "trades.csv").is_file() for d in run_dirs)

    again = run_all(demo_db, out)
    assert (again.total, again.done, again.failed, again.skipped) == (4, 0, 0, 4)
    assert again.nodes == set()  # nothing was sent to Ray
    assert len(stored_runs(demo_db)) == 4
    rewritten = pd.read_csv(out / "results.csv")
    pd.testing.assert_series_equal(rewritten["sharpe"], results["sharpe"])


@pytest.mark.ray
def test_a_raising_strategy_is_recorded_failed_and_the_others_complete(
    ray_local, demo_db, tmp_path
):
    from store.instances import add_instance

    file = tmp_path / "boom.py"
    file.write_text(RAISING_STRATEGY)
    add_instance(demo_db, f"{file}:Boom", "binance", "ETH/BTC", "5m", {})
    summary = run_all(demo_db, tmp_path / "out", separate=True)
    assert (summary.done, summary.failed) == (4, 1)
    (boom_dir,) = (tmp_path / "out" / "runs").glob("Boom_*")  # a failed run gets its directory
    doc = json.loads((boom_dir / "results.json").read_text())
    assert doc["status"] == "failed" and "always fails" in doc["error"]
    assert pd.read_csv(boom_dir / "trades.csv").empty and not (boom_dir / "equity.csv").exists()
    runs = stored_runs(demo_db)
    failed = runs[runs["status"] == "failed"]
    assert (
        len(failed) == 1
        and "RuntimeError: boom: this strategy always fails" in failed.iloc[0]["error"]
    )
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    row = results[results["status"] == "failed"].iloc[0]
    assert row["strategy"].endswith("boom.py:Boom") and "always fails" in row["error"]
    assert (results["status"] == "done").sum() == 4


@pytest.mark.ray
def test_grid_expands_instances_and_filters_select(ray_local, demo_db, tmp_path):
    summary = run_all(
        demo_db, tmp_path / "g", symbol="ETH/BTC", interval="5m", grid=["lookback=10,20,30"]
    )
    assert (summary.total, summary.done) == (3, 3)
    results = pd.read_csv(tmp_path / "g" / "results.csv")
    assert sorted(json.loads(p)["lookback"] for p in results["params"]) == [10, 20, 30]
    # lookback=20 is the instance itself; the grid's other values are not instances.
    by_lookback = {
        json.loads(p)["lookback"]: i
        for p, i in zip(results["params"], results["instance_id"], strict=True)
    }
    assert pd.notna(by_lookback[20]) and pd.isna(by_lookback[10]) and pd.isna(by_lookback[30])
    # The same selection without the grid is the lookback=20 run: already stored.
    plain = run_all(demo_db, tmp_path / "p", symbol="ETH/BTC", interval="5m")
    assert (plain.total, plain.skipped, plain.done) == (1, 1, 0)
    with pytest.raises(ValueError, match="belongs to none"):
        run_all(demo_db, tmp_path / "x", grid=["lookbak=10"])


def test_no_matching_instance_is_a_clear_error(demo_db, tmp_path):
    with pytest.raises(ValueError, match=r"no enabled strategy instances matching symbol=BTC/USDT"):
        run_all(demo_db, tmp_path, symbol="BTC/USDT")


def test_sqlite_is_refused_on_a_multi_node_cluster():
    many = RaySession("127.0.0.2:6379", False, False, None, alive_nodes=2, cpus=2)
    with pytest.raises(RayClusterError) as info:
        check_database_for_cluster("sqlite:///x.db", many)
    assert str(info.value) == (
        "the database sqlite:///x.db is a SQLite file, which cannot be shared by the 2 nodes of "
        "the Ray cluster at 127.0.0.2:6379; use PostgreSQL for a cluster: "
        "--db postgresql+psycopg://user@host:5432/name (or set RAYTRADER_DB)"
    )
    # accepted (nothing raised, nothing returned): PostgreSQL on a cluster, SQLite on one node
    assert check_database_for_cluster("postgresql+psycopg://u@h/db", many) is None
    one = RaySession("local", True, False, None, alive_nodes=1, cpus=2)
    assert check_database_for_cluster("sqlite:///x.db", one) is None


def _spec(i: int, bars: int, series=("binance", "ETH/BTC", "5m")) -> RunSpec:
    key = f"{i:064x}"
    return RunSpec(key, key[:24], None, "sr_breakout", "sr_breakout", *series, {}, series, bars)


def test_batches_cover_every_run_once_aim_at_a_second_and_learn_the_real_cost():
    big = [_spec(i, 200_000) for i in range(400)]  # ~0.17 s each by the model
    batcher = Batcher(big, cpus=2)
    first = batcher.next_batch()
    work = sum(estimated_seconds(s.bars) for s in first)
    assert 1.0 <= work < 1.0 + estimated_seconds(200_000)
    batcher.observe(first, seconds=4 * work)  # the real runs took 4x the estimate
    second = batcher.next_batch()
    assert len(second) == math.ceil(len(first) / 4)  # sized to ~1 real second
    rest = []
    while batch := batcher.next_batch():
        rest.append(batch)
    everything = [s.run_key for b in [first, second, *rest] for s in b]
    assert sorted(everything) == sorted(s.run_key for s in big)  # each run exactly once
    assert len(rest[-1]) <= len(second)  # the tail shrinks for balance


def test_a_small_job_still_spreads_over_every_cpu():
    small = [_spec(i, 1000) for i in range(20)]  # ~0.26 s of work in all
    batcher = Batcher(small, cpus=2)
    batches = []
    while batch := batcher.next_batch():
        batches.append(batch)
    assert len(batches) >= 4 and sum(len(b) for b in batches) == 20


def as_from_a_terminal() -> None:
    """In the child before exec: SIGINT unblocked and at its default, as a shell starts a
    command. A blocked or ignored SIGINT is inherited through exec, and earlier tests in the
    same pytest process (threads of servers and Ray clients) may leave it so."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.ray
def test_ctrl_c_keeps_finished_runs_and_a_rerun_completes_without_duplicates(
    ray_local, demo_db, tmp_path
):
    """The CLI in a subprocess (its own local Ray) gets SIGINT once a first batch is stored.

    24 runs of 1 s each: the batcher's first four batches hold 3..6 runs (3..6 s each) and two
    run at a time on 2 CPUs, so when the first batch is stored at least two batches (>= 3 s of
    work) are still unfinished: far more than the time SIGINT needs even on a loaded machine.
    """
    file = slow_instances(demo_db, tmp_path, 1.0, range(5, 29), "LTC/BTC")
    env = {**os.environ, "RAYTRADER_DASHBOARD": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "cli.py", "backtest", "--all", "--db", demo_db]
    cmd += ["--family", f"{file}:Slow", "--out", str(tmp_path / "o1")]
    log = (tmp_path / "cli.log").open("w+")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=as_from_a_terminal
    )
    try:
        deadline = time.monotonic() + 240  # Ray start + first batch, on a loaded machine
        while len(stored_runs(demo_db)) == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"no batch stored before SIGINT (exit {proc.poll()}):\n{log.read()}")
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.seek(0)
        output = log.read()
        log.close()
    partial = stored_runs(demo_db)
    assert proc.returncode == 130, output
    assert "interrupted" in output
    # the count is the database's, not what the driver had counted when Ctrl-C landed
    assert f"{len(partial)} of 24 selected runs are stored as done" in output, output
    assert 1 <= len(partial) < 24 and partial["run_key"].is_unique, output
    # Re-run (in this process, on the module's Ray, fast now): only the missing runs are computed.
    file.with_suffix(".slow").unlink()
    rerun = run_all(demo_db, tmp_path / "o2", family=f"{file}:Slow")
    assert (rerun.skipped, rerun.done) == (len(partial), 24 - len(partial))
    runs = stored_runs(demo_db)
    assert len(runs) == 24 and runs["run_key"].is_unique
    assert set(partial["run_key"]) <= set(runs["run_key"])


@pytest.mark.ray
def test_a_failed_run_is_retried_with_the_same_key_and_stored_once(ray_local, demo_db, tmp_path):
    from store.instances import add_instance

    file = tmp_path / "flaky.py"
    file.write_text(FLAKY_STRATEGY)
    file.with_suffix(".broken").touch()
    add_instance(demo_db, f"{file}:Flaky", "binance", "ETH/BTC", "5m", {"lookback": 9})
    first = run_all(demo_db, tmp_path / "o1")
    assert (first.total, first.done, first.failed) == (5, 4, 1)
    failed = stored_runs(demo_db).query("status == 'failed'")
    assert len(failed) == 1 and "flaky: broken for now" in failed.iloc[0]["error"]

    file.with_suffix(".broken").unlink()  # fixed outside the key: the same run key again
    second = run_all(demo_db, tmp_path / "o2")
    assert (second.total, second.skipped, second.done, second.failed) == (5, 4, 1, 0)
    runs = stored_runs(demo_db)
    assert len(runs) == 5 and runs["run_key"].is_unique and set(runs["status"]) == {"done"}
    retried = runs[runs["run_key"] == failed.iloc[0]["run_key"]]
    assert len(retried) == 1 and pd.isna(retried.iloc[0]["error"])
    results = pd.read_csv(tmp_path / "o2" / "results.csv")
    assert len(results) == 5 and set(results["status"]) == {"done"}
    third = run_all(demo_db, tmp_path / "o3")  # done now: skipped like every other run
    assert (third.skipped, third.done) == (5, 0)


@pytest.mark.ray
def test_separate_writes_a_directory_for_every_selected_run(ray_local, demo_db, tmp_path):
    """Runs done by an earlier invocation get a directory too, from the database."""
    run_all(demo_db, tmp_path / "first")  # the 4 instances (lookback=20), no --separate
    out = tmp_path / "sep"
    summary = run_all(demo_db, out, grid=["lookback=20,30"], separate=True)
    assert (summary.total, summary.skipped, summary.done) == (8, 4, 4)
    results = pd.read_csv(out / "results.csv")
    dirs = sorted((out / "runs").iterdir())
    assert len(dirs) == 8
    parts, with_equity = [], 0
    for folder in dirs:
        doc = json.loads((folder / "results.json").read_text())
        row = results[results["run_id"] == doc["run_id"]].iloc[0]
        assert doc["run_key"] == row["run_key"] and doc["status"] == "done"
        assert doc["metrics"]["trades"] == row["trades"] and doc["bars"] == row["bars"]
        assert doc["params"] == json.loads(row["params"])
        trades = pd.read_csv(folder / "trades.csv", dtype={"params": str, "run_id": str})
        assert {"strategy", "symbol", "interval", "params", "run_id"} <= set(trades.columns)
        assert len(trades) == doc["metrics"]["trades"]
        assert set(trades["run_id"]) <= {doc["run_id"]}
        assert set(trades["params"]) <= {row["params"]}
        parts.append(trades)
        if (folder / "equity.csv").is_file():  # only the runs computed in this invocation
            with_equity += 1
            equity = pd.read_csv(folder / "equity.csv")
            assert list(equity.columns) == ["timestamp", "equity", "cash"]
            assert len(equity) == doc["bars"]
            assert json.loads(row["params"])["lookback"] == 30
    assert with_equity == 4
    # The per-run files combine back into the combined trades CSV.
    combined = pd.read_csv(out / "trades.csv", dtype={"params": str, "run_id": str})
    key = ["run_id", "trade_id"]
    again = pd.concat(parts, ignore_index=True).sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(
        again[combined.columns], combined.sort_values(key, ignore_index=True)
    )


@pytest.mark.ray
def test_the_cli_takes_the_grid_unquoted_quoted_and_repeated(ray_local, demo_db, tmp_path):
    from typer.testing import CliRunner

    from cli import app

    base = ["backtest", "--all", "--db", demo_db, "--symbol", "ETH/BTC", "--interval", "5m"]
    forms = [
        ["--grid", "lookback=10,20,50", "sl_pct=0.01,0.02"],  # the form
        ["--grid", "lookback=10,20,50 sl_pct=0.01,0.02"],
        ["--grid", "lookback=10,20,50", "--grid", "sl_pct=0.01,0.02"],
    ]
    keys = []
    for i, form in enumerate(forms):
        done = CliRunner().invoke(app, [*base, *form, "--out", str(tmp_path / f"o{i}")])
        assert done.exit_code == 0, (form, done.output, done.exception)
        results = pd.read_csv(tmp_path / f"o{i}" / "results.csv")
        combos = {(json.loads(p)["lookback"], json.loads(p)["sl_pct"]) for p in results["params"]}
        assert combos == {(lb, sl) for lb in (10, 20, 50) for sl in (0.01, 0.02)}
        keys.append(set(results["run_key"]))
    assert keys[0] == keys[1] == keys[2] and len(keys[0]) == 6
    assert len(stored_runs(demo_db)) == 6  # the later forms found every run already done


@pytest.mark.ray
def test_a_dead_worker_is_retried_and_nothing_is_lost_or_doubled(ray_local, demo_db, tmp_path):
    from store.instances import add_instance

    file = tmp_path / "dying.py"
    file.write_text(DYING_STRATEGY)
    add_instance(demo_db, f"{file}:Dying", "binance", "ETH/BTC", "5m", {"lookback": 7})
    summary = run_all(demo_db, tmp_path / "out")
    assert file.with_suffix(".died").exists()  # the worker really died once
    assert (summary.done, summary.failed, summary.lost) == (5, 0, 0)
    runs = stored_runs(demo_db)
    assert len(runs) == 5 and runs["run_key"].is_unique and set(runs["status"]) == {"done"}


def test_an_address_where_nothing_listens_fails_fast_with_a_hint():
    import socket

    from cluster.ray_setup import _connect

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.2", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        RayClusterError, match=r"cannot connect to Ray at '127.0.0.2:\d+'.*ray status"
    ):
        _connect(f"127.0.0.2:{port}")
