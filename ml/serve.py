"""`cli.py model run`: the inference API over HTTP (FastAPI + uvicorn, on loopback by default).

- POST /predict          {"instance_id": 7, "features": {...}} -> probability and decision
- POST /predict/batch    {"requests": [{"instance_id": .., "features": {..}}, ...]}
- GET  /models           every instance's newest model: version, features, method, metrics
- GET  /health           {"status": "ok", "models": n}
- POST /automl?num_strategies=n   starts `model experiment` as a background job -> {"id": ...}
- GET  /automl/{id}      that job's status and, once done, its result (the best combination)

FastAPI + uvicorn rather than Ray Serve: one prediction is a small sklearn call, and on these
machines uvicorn answers in ~2 ms where a Serve deployment adds ~10 ms of proxying
(docs/ml.md#the-method). Bad requests get a 4xx whose `detail` says what to fix.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from ml.registry import ModelRegistry, RequestError

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class AutomlJob:
    id: str
    out: Path
    process: subprocess.Popen
    log: Path
    status: str = "running"
    result: dict[str, Any] = field(default_factory=dict)

    def refresh(self) -> dict[str, Any]:
        code = self.process.poll()
        if code is not None and self.status == "running":
            self.status = "done" if code == 0 else "failed"
            experiment = self.out / "experiment.json"
            if code == 0 and experiment.is_file():
                document = json.loads(experiment.read_text())
                self.result = {"best": document.get("best"), "experiment": str(experiment)}
        tail = self.log.read_text(errors="replace").splitlines()[-5:] if self.log.exists() else []
        return {
            "id": self.id,
            "status": self.status,
            "returncode": code,
            "out": str(self.out),
            "result": self.result,
            "log_tail": tail,
        }


class AutomlJobs:
    """Background `cli.py model experiment` runs, one child process each (its own Ray driver)."""

    def __init__(self, url: str, jobs_dir: Path) -> None:
        self.url, self.jobs_dir = url, jobs_dir
        self._jobs: dict[str, AutomlJob] = {}
        self._lock = threading.Lock()

    def start(self, num_strategies: int) -> dict[str, Any]:
        job_id = uuid.uuid4().hex[:12]
        out = self.jobs_dir / job_id
        out.mkdir(parents=True, exist_ok=True)
        log = out / "job.log"
        command = [
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
        with log.open("w") as handle:
            process = subprocess.Popen(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
        with self._lock:
            self._jobs[job_id] = AutomlJob(job_id, out, process, log)
        return {"id": job_id, "status": "running"}

    def status(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise RequestError(f"no automl job {job_id!r}; POST /automl starts one", status=404)
        return job.refresh()

    def stop_all(self) -> None:
        for job in list(self._jobs.values()):
            if job.process.poll() is None:
                job.process.terminate()
                job.process.wait(timeout=30)


def create_app(url: str, jobs_dir: Path, refresh_seconds: float = 2.0) -> FastAPI:
    registry = ModelRegistry(url, refresh_seconds)
    jobs = AutomlJobs(url, jobs_dir)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.stop_all()  # no experiment outlives the server that started it

    app = FastAPI(title="raytrader models", version="1", lifespan=lifespan)
    app.state.registry, app.state.jobs = registry, jobs

    @app.exception_handler(RequestError)
    async def refused(_request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.post("/predict")
    def predict(body: dict[str, Any]) -> dict[str, Any]:
        return registry.predict(*_one_request(body))

    @app.post("/predict/batch")
    def predict_batch(body: dict[str, Any]) -> dict[str, Any]:
        requests = body.get("requests")
        if not isinstance(requests, list):
            raise RequestError('give {"requests": [{"instance_id": .., "features": {..}}, ...]}')
        return {"predictions": [registry.predict(*_one_request(r)) for r in requests]}

    @app.get("/models")
    def models() -> dict[str, Any]:
        return {"models": [m.describe() for m in registry.all_models()]}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "models": len(registry.all_models())}

    @app.post("/automl")
    def automl(num_strategies: int = Query(..., ge=1, le=100_000)) -> dict[str, Any]:
        return jobs.start(num_strategies)

    @app.get("/automl/{job_id}")
    def automl_status(job_id: str) -> dict[str, Any]:
        return jobs.status(job_id)

    return app


def _one_request(body: Any) -> tuple[int, dict[str, Any]]:
    if not isinstance(body, dict):
        raise RequestError('give {"instance_id": 7, "features": {"name": 1.0, ...}}')
    unknown = sorted(set(body) - {"instance_id", "features"})
    if unknown:
        raise RequestError(f"unknown fields {unknown}; a request has instance_id and features")
    instance_id = body.get("instance_id")
    if isinstance(instance_id, bool) or not isinstance(instance_id, int):
        raise RequestError(f"instance_id must be an integer, got {instance_id!r}")
    return instance_id, body.get("features")


def bind_warning(host: str) -> str | None:
    """A warning when `host` is not a loopback address: the API has no authentication."""
    import ipaddress

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost
        loopback = False
    if loopback:
        return None
    return (
        f"warning: serving models on {host}, which other machines may reach; the API has "
        "no authentication (use --host 127.0.0.1 unless you mean it)"
    )


def serve(
    url: str,
    host: str,
    port: int,
    jobs_dir: Path,
    refresh_seconds: float = 2.0,
    announce: Any = print,
) -> None:
    """Run the API until Ctrl-C / SIGTERM (uvicorn handles both and shuts down cleanly)."""
    import socket

    import uvicorn

    warning = bind_warning(host)
    if warning:
        announce(warning)
    app = create_app(url, jobs_dir, refresh_seconds)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # connections queue from now on: the announced address answers at once
    announce(f"serving models on http://{host}:{sock.getsockname()[1]} (Ctrl-C stops)")
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
