"""`cli.py model run`: the inference API over HTTP (FastAPI + uvicorn, on loopback by default).

- POST /predict          {"instance_id": 7, "features": {...}} -> probability and decision
- POST /predict/batch    {"requests": [{"instance_id": .., "features": {..}}, ...]}
- GET  /models           every instance's newest model: version, features, method, metrics
- GET  /health           {"status": "ok", "models": n}
- POST /automl?num_strategies=n   starts (or queues) `model experiment` as a background job
- GET  /automl/{id}      that job's status and, once done, its result (the best combination)

Limits (ApiLimits, `model run` options): automl jobs run one at a time with a bounded queue
(429 beyond it, ml/automl.py); a batch has at most --max-batch requests (413 above) and is
computed in a small pool of its own, so single predictions never wait behind batches. Beyond
loopback every request needs a bearer token from RAYTRADER_API_TOKEN (401 without it).

FastAPI + uvicorn rather than Ray Serve: one prediction is a small sklearn call, and on these
machines uvicorn answers in ~2 ms where a Serve deployment adds ~10 ms of proxying
(docs/ml.md#the-method). Bad requests get a 4xx whose `detail` says what to fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from ml.api_limits import TOKEN_ENV, ApiLimits, is_loopback
from ml.automl import AutomlJobs, Command
from ml.registry import ModelRegistry, RequestError

BATCH_CHUNK = 64  # rows per turn of a batch in its pool: other requests are served in between


def create_app(
    url: str,
    jobs_dir: Path,
    refresh_seconds: float = 2.0,
    limits: ApiLimits = ApiLimits(),
    token: str | None = None,
    automl_command: Command | None = None,
) -> FastAPI:
    """The API; `token`: every request must carry `Authorization: Bearer <token>` (401 else).
    `automl_command`: what a job runs (tests give a stand-in for `model experiment`)."""
    registry = ModelRegistry(url, refresh_seconds)
    jobs = AutomlJobs(url, jobs_dir, limits.max_jobs, limits.max_queued, automl_command)
    batch_pool = ThreadPoolExecutor(limits.batch_workers, thread_name_prefix="predict-batch")

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.stop_all()  # no experiment outlives the server that started it
        batch_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="raytrader models", version="1", lifespan=lifespan)
    app.state.registry, app.state.jobs = registry, jobs

    @app.exception_handler(RequestError)
    async def refused(_request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    if token:

        @app.middleware("http")
        async def authenticated(request: Request, call_next: Any) -> Any:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return JSONResponse(
                    {"detail": f"give the header Authorization: Bearer <the {TOKEN_ENV} token>"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return await call_next(request)

    @app.post("/predict")
    def predict(body: dict[str, Any]) -> dict[str, Any]:
        return registry.predict(*_one_request(body))

    @app.post("/predict/batch")
    async def predict_batch(body: dict[str, Any]) -> dict[str, Any]:
        requests = body.get("requests")
        if not isinstance(requests, list):
            raise RequestError('give {"requests": [{"instance_id": .., "features": {..}}, ...]}')
        if len(requests) > limits.max_batch:
            raise RequestError(
                f"{len(requests)} requests in one batch; this server takes at most "
                f"{limits.max_batch} (`model run --max-batch`): split it",
                status=413,
            )
        # in the bounded batch pool, a chunk at a time: however many batches arrive, single
        # /predict requests keep the server's own threads and never wait behind a batch
        loop, out = asyncio.get_running_loop(), []
        for k in range(0, len(requests), BATCH_CHUNK):
            chunk = requests[k : k + BATCH_CHUNK]
            out += await loop.run_in_executor(batch_pool, _predict_all, registry, chunk)
        return {"predictions": out}

    @app.get("/models")
    def models() -> dict[str, Any]:
        return {"models": [m.describe() for m in registry.all_models()]}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "models": len(registry.all_models())}

    @app.post("/automl")
    def automl(num_strategies: int = Query(..., ge=1, le=100_000)) -> dict[str, Any]:
        return jobs.submit(num_strategies)

    @app.get("/automl/{job_id}")
    def automl_status(job_id: str) -> dict[str, Any]:
        return jobs.status(job_id)

    return app


def _predict_all(registry: ModelRegistry, requests: list[Any]) -> list[dict[str, Any]]:
    return [registry.predict(*_one_request(r)) for r in requests]


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
    if is_loopback(host):
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
    limits: ApiLimits = ApiLimits(),
    token: str | None = None,
) -> None:
    """Run the API until Ctrl-C / SIGTERM (uvicorn handles both and shuts down cleanly)."""
    import socket

    import uvicorn

    if not is_loopback(host):
        announce(
            f"warning: serving models on {host}, which other machines may reach; every request "
            f"needs the {TOKEN_ENV} bearer token"
        )
    app = create_app(url, jobs_dir, refresh_seconds, limits, token)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # connections queue from now on: the announced address answers at once
    announce(f"serving models on http://{host}:{sock.getsockname()[1]} (Ctrl-C stops)")
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
