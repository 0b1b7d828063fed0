"""The model API's limits and its token (`cli.py model run`), light to import: the command
checks its options with these before FastAPI, pandas and the models are loaded.

The token comes from the environment only (never an option, so it stays out of shell history and
`ps`); beyond loopback, where other machines may connect, the server refuses to start without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from core.errors import UserError

TOKEN_ENV = "RAYTRADER_API_TOKEN"


@dataclass(frozen=True)
class ApiLimits:
    """What one server takes at once (docs/ml.md#serving-models)."""

    max_jobs: int = 1  # automl experiments running at once
    max_queued: int = 4  # automl jobs waiting beyond them; more get HTTP 429
    max_batch: int = 1000  # requests in one POST /predict/batch; more get HTTP 413
    batch_workers: int = 1  # threads computing batches: singles keep the server's other threads

    def check(self) -> None:
        for name, value, least in (
            ("--max-jobs", self.max_jobs, 1),
            ("--max-queued", self.max_queued, 0),
            ("--max-batch", self.max_batch, 1),
            ("--batch-workers", self.batch_workers, 1),
        ):
            if value < least:
                raise UserError(f"{name} {value} must be >= {least}")


def is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost
        return False


def api_token(host: str, environ: dict[str, str] | None = None) -> str | None:
    """The bearer token every request must carry: from the environment (never an option, so it
    stays out of shell history and `ps`). Required beyond loopback, where others may connect."""
    token = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip() or None
    if token is None and not is_loopback(host):
        raise UserError(
            f"--host {host} is reachable from other machines: set {TOKEN_ENV} to a secret "
            "(clients send `Authorization: Bearer <it>`), or serve on --host 127.0.0.1"
        )
    return token
