"""`cli.py model run`: serve the trained models over HTTP (ml/serve.py), until Ctrl-C."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import typer

from commands.errors import UserError
from commands.options import DbOpt


def run(
    port: int = typer.Option(8766, "--port", help="Port to listen on (0: a free one, printed)."),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to bind (loopback by default; any other needs RAYTRADER_API_TOKEN set).",
    ),
    db: DbOpt = None,
    jobs_dir: Path = typer.Option(
        Path("automl_jobs"), "--jobs-dir", help="Where POST /automl experiments write their output."
    ),
    refresh: float = typer.Option(
        2.0, "--refresh", help="Seconds between checks for a newer model version per instance."
    ),
    max_jobs: int = typer.Option(1, "--max-jobs", help="POST /automl experiments run at once."),
    max_queued: int = typer.Option(
        4, "--max-queued", help="POST /automl jobs waiting beyond those (more: HTTP 429)."
    ),
    max_batch: int = typer.Option(
        1000, "--max-batch", help="Requests in one POST /predict/batch (more: HTTP 413)."
    ),
) -> None:
    """Serve POST /predict, GET /models, GET /health and POST /automl for the trained models."""
    from ml.api_limits import ApiLimits, api_token

    # the plain checks first, before FastAPI, SQLAlchemy and the models are imported
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port} is not a port; use 1..65535, or 0 for a free one")
    if not 0 <= refresh < math.inf:
        raise UserError(f"--refresh {refresh} must be >= 0 seconds")
    limits = ApiLimits(max_jobs, max_queued, max_batch)
    limits.check()
    token = api_token(host)
    from ml.serve import serve
    from store.db import get_engine, resolve_url

    url = resolve_url(db)
    get_engine(url)  # a bad --db is one error now, not a 500 on the first request
    _check_jobs_dir(jobs_dir)  # after the --db check: a mistake there leaves no directory
    try:
        serve(
            url,
            host,
            port,
            jobs_dir,
            refresh,
            announce=lambda text: typer.echo(text, err=True),
            limits=limits,
            token=token,
        )
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port "
            "(0 picks a free one)"
        ) from exc


def _check_jobs_dir(jobs_dir: Path) -> None:
    """POST /automl writes there: a directory it cannot write is one error now, not a 500 on
    the first job. Made if missing, then written to once (a permission check alone would pass
    for root on a read-only file system)."""
    try:
        jobs_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=jobs_dir):
            pass
    except OSError as exc:
        raise UserError(
            f"--jobs-dir {str(jobs_dir)!r} is not a writable directory ({exc.strerror or exc}); "
            "give one POST /automl can write its experiments to"
        ) from None
