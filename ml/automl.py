"""POST /automl's background jobs: `cli.py model experiment` runs, a bounded number at a time.

Each job is one child process (its own Ray driver), so the server never runs an experiment in
its own process. At most `max_jobs` run at once (default 1: an experiment already uses every
CPU through Ray); up to `max_queued` more wait in order and start as running ones end; a job
beyond that is refused with HTTP 429, so a client posting in a loop cannot start twenty Ray
drivers on one machine. `num_strategies` is capped by the enabled instances the database has
(the experiment takes the first N enabled ones), and the answer says when it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml.registry import RequestError

ROOT = Path(__file__).resolve().parent.parent
Command = Callable[[int, Path], list[str]]  # (num_strategies, out directory) -> argv


@dataclass
class AutomlJob:
    id: str
    out: Path
    num_strategies: int
    status: str = "queued"  # queued -> running -> done | failed; cancelled when the server stops
    process: subprocess.Popen | None = None
    returncode: int | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def log(self) -> Path:
        return self.out / "job.log"

    def describe(self, position: int | None = None) -> dict[str, Any]:
        tail = self.log.read_text(errors="replace").splitlines()[-5:] if self.log.exists() else []
        answer = {
            "id": self.id,
            "status": self.status,
            "num_strategies": self.num_strategies,
            "returncode": self.returncode,
            "out": str(self.out),
            "result": self.result,
            "log_tail": tail,
        }
        if position is not None:
            answer["queue_position"] = position  # 1: the next to start
        return answer


class AutomlJobs:
    def __init__(
        self,
        url: str,
        jobs_dir: Path,
        max_jobs: int = 1,
        max_queued: int = 4,
        command: Command | None = None,
    ) -> None:
        self.url, self.jobs_dir = url, jobs_dir
        self.max_jobs, self.max_queued = max_jobs, max_queued
        self.command = command or self._experiment
        self._jobs: dict[str, AutomlJob] = {}
        self._queue: deque[AutomlJob] = deque()
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = False

    def _experiment(self, num_strategies: int, out: Path) -> list[str]:
        return [
            sys.executable,
            str(ROOT / "cli.py"),
            "model",
            "experiment",
            "--strategies",
            str(num_strategies),
            "--out",
            str(out),
            "--db",
            self.url,
        ]

    def submit(self, num_strategies: int) -> dict[str, Any]:
        """Start a job now, or queue it; RequestError 429 when the queue is full."""
        enabled = enabled_instances(self.url)
        if enabled == 0:
            raise RequestError(
                "no enabled strategy instances in the database; add some (`cli.py strategies "
                "add`, `cli.py data demo`) before POST /automl"
            )
        capped = min(num_strategies, enabled)
        with self._lock:
            if self._stopping:
                raise RequestError("the server is stopping; try again later", status=503)
            if len(self._running) >= self.max_jobs and len(self._queue) >= self.max_queued:
                raise RequestError(
                    f"{len(self._running)} automl job(s) running and {len(self._queue)} queued, "
                    f"the most this server takes (`model run --max-jobs {self.max_jobs} "
                    f"--max-queued {self.max_queued}`); try again when one has finished "
                    "(GET /automl/{id} shows its status)",
                    status=429,
                )
            job_id = uuid.uuid4().hex[:12]
            job = AutomlJob(job_id, self.jobs_dir / job_id, capped)
            self._jobs[job_id] = job
            self._queue.append(job)
            self._start_queued()
            answer = self._describe(job)
        if capped < num_strategies:
            answer["note"] = (
                f"num_strategies capped from {num_strategies} to {capped}: the database has "
                f"{enabled} enabled strategy instance(s)"
            )
        return answer

    def status(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise RequestError(f"no automl job {job_id!r}; POST /automl starts one", status=404)
            return self._describe(job)

    def stop_all(self) -> None:
        """No experiment outlives the server that started it; queued ones never start."""
        with self._lock:
            self._stopping = True
            for job in self._queue:
                job.status = "cancelled"
            self._queue.clear()
            running = [self._jobs[i] for i in self._running]
        for job in running:
            if job.process is not None and job.process.poll() is None:
                job.process.terminate()
                job.process.wait(timeout=30)

    # -- inside the lock ----------------------------------------------------------------------
    def _describe(self, job: AutomlJob) -> dict[str, Any]:
        position = next((k + 1 for k, q in enumerate(self._queue) if q is job), None)
        return job.describe(position)

    def _start_queued(self) -> None:
        while self._queue and len(self._running) < self.max_jobs and not self._stopping:
            job = self._queue.popleft()
            try:
                job.out.mkdir(parents=True, exist_ok=True)
                with job.log.open("w") as handle:
                    job.process = subprocess.Popen(
                        self.command(job.num_strategies, job.out),
                        cwd=ROOT,
                        stdout=handle,
                        stderr=subprocess.STDOUT,
                    )
            except OSError as exc:  # the jobs directory went away after the start-up check
                job.status, job.result = "failed", {"error": f"cannot start: {exc}"}
                continue
            job.status = "running"
            self._running.add(job.id)
            threading.Thread(target=self._wait, args=(job,), daemon=True).start()

    # -- a waiter thread per running job ------------------------------------------------------
    def _wait(self, job: AutomlJob) -> None:
        code = job.process.wait()
        result: dict[str, Any] = {}
        experiment = job.out / "experiment.json"
        if code == 0 and experiment.is_file():
            document = json.loads(experiment.read_text())
            result = {"best": document.get("best"), "experiment": str(experiment)}
        with self._lock:
            job.returncode, job.result = code, result
            job.status = "done" if code == 0 else "failed"
            self._running.discard(job.id)
            self._start_queued()  # the next waiting job takes the freed place


def enabled_instances(url: str) -> int:
    """How many strategy instances are enabled: the most `model experiment --strategies` takes."""
    from sqlalchemy import func, select

    from store.db import get_engine
    from store.models import StrategyInstance

    c = StrategyInstance.__table__.c
    with get_engine(url).connect() as conn:
        query = select(func.count()).where(c.enabled == True)  # noqa: E712 (SQL expression)
        return int(conn.execute(query).scalar() or 0)
