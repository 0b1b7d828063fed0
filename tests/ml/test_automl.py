"""POST /automl's limits (ml/automl.py) over real HTTP: jobs at once, a bounded queue, 429
beyond it, num_strategies capped by the enabled instances; a stand-in command plays
`model experiment` and ends when the test says so."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import requests

from ml.api_limits import ApiLimits
from ml.serve import create_app
from store.instances import add_instance
from tests.ml.http_server import serving

# waits for the file `go` in its output directory, then exits with the code written there
STAND_IN = (
    "import pathlib, sys, time\n"
    "go = pathlib.Path(sys.argv[1]) / 'go'\n"
    "while not go.exists(): time.sleep(0.02)\n"
    "sys.exit(int(go.read_text() or 0))\n"
)


def stand_in(num_strategies: int, out: Path) -> list[str]:
    return [sys.executable, "-c", STAND_IN, str(out), str(num_strategies)]


@pytest.fixture
def url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    for symbol in ("ETH/BTC", "LTC/BTC"):
        add_instance(url, "sr_breakout", "binance", symbol, "5m", {})
    return url


def post(base: str, n: int) -> requests.Response:
    return requests.post(f"{base}/automl?num_strategies={n}", timeout=60)


def until(base: str, job: dict, status: str) -> dict:
    """GET the job until it has `status` (a liveness wait, not a timing check)."""
    deadline = time.monotonic() + 60
    while (now := requests.get(f"{base}/automl/{job['id']}", timeout=60).json())[
        "status"
    ] != status:
        assert time.monotonic() < deadline, now
        time.sleep(0.05)
    return now


def release(job: dict, code: int = 0) -> None:
    (Path(job["out"]) / "go").write_text(str(code))


def test_one_job_at_a_time_a_bounded_queue_and_429_beyond(url, tmp_path) -> None:
    app = create_app(url, tmp_path / "jobs", 0, ApiLimits(max_jobs=1, max_queued=1), None, stand_in)
    with serving(app) as base:
        first = post(base, 1).json()
        assert first["status"] == "running" and first["num_strategies"] == 1
        second = post(base, 100_000).json()
        assert second["status"] == "queued" and second["queue_position"] == 1
        # the database has 2 enabled instances: the experiment would take no more
        assert second["num_strategies"] == 2
        assert second["note"] == (
            "num_strategies capped from 100000 to 2: the database has 2 enabled strategy "
            "instance(s)"
        )
        refused = post(base, 1)
        assert refused.status_code == 429
        assert refused.json()["detail"].startswith("1 automl job(s) running and 1 queued")
        assert not (Path(second["out"]) / "job.log").exists()  # queued: no process yet
        release(first, 3)
        assert until(base, first, "failed")["returncode"] == 3
        until(base, second, "running")  # the freed place goes to the queued job
        third = post(base, 2).json()
        assert third["status"] == "queued"  # the queue has room again
        jobs = app.state.jobs
        running = jobs._jobs[second["id"]].process
        assert running.poll() is None
    # the server stopped: its running experiment was ended, the queued one never started
    assert running.poll() is not None
    assert jobs._jobs[third["id"]].status == "cancelled" and jobs._jobs[third["id"]].process is None


def test_two_jobs_at_once_and_no_queue(url, tmp_path) -> None:
    """The same requests with other limits: the limits, not chance, decide the answers."""
    app = create_app(url, tmp_path / "jobs", 0, ApiLimits(max_jobs=2, max_queued=0), None, stand_in)
    with serving(app) as base:
        first, second = post(base, 1).json(), post(base, 1).json()
        assert first["status"] == second["status"] == "running"
        assert post(base, 1).status_code == 429
        release(second)
        assert until(base, second, "done")["returncode"] == 0
        assert post(base, 1).json()["status"] == "running"
        release(first)


def test_automl_without_enabled_instances_is_refused(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    app = create_app(url, tmp_path / "jobs", 0, ApiLimits(), None, stand_in)
    with serving(app) as base:
        answer = post(base, 3)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("no enabled strategy instances in the database")
    assert not (tmp_path / "jobs").exists()
