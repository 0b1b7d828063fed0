"""`cli.py model run`: serve the trained models over HTTP (ml/serve.py), until Ctrl-C."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from commands.errors import UserError
from commands.options import DbOpt


def run(
    port: int = typer.Option(8766, "--port", help="Port to listen on (0: a free one, printed)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    db: DbOpt = None,
    jobs_dir: Path = typer.Option(
        Path("automl_jobs"), "--jobs-dir", help="Where POST /automl experiments write their output."
    ),
    refresh: float = typer.Option(
        2.0, "--refresh", help="Seconds between checks for a newer model version per instance."
    ),
) -> None:
    """Serve POST /predict, GET /models, GET /health and POST /automl for the trained models."""
    from ml.serve import serve
    from store.db import get_engine, resolve_url

    if not 0 <= port <= 65535:
        raise UserError(f"--port {port} is not a port; use 1..65535, or 0 for a free one")
    if not 0 <= refresh < math.inf:
        raise UserError(f"--refresh {refresh} must be >= 0 seconds")
    url = resolve_url(db)
    get_engine(url)  # a bad --db is one error now, not a 500 on the first request
    try:
        serve(url, host, port, jobs_dir, refresh, announce=lambda text: typer.echo(text, err=True))
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port "
            "(0 picks a free one)"
        ) from exc
