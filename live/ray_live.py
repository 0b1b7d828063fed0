"""Ray for the live actors: the one already initialised, $RAY_ADDRESS, or a local one of its own
on loopback, with its dashboard and metrics on free ports."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Protocol


class Printer(Protocol):
    """Where the Ray lines go (a rich Console)."""

    def print(self, text: str) -> object: ...


@contextlib.contextmanager
def ray_for_live(console: Printer) -> Iterator[ModuleType]:
    """Ray for the live actors: the one already initialised, $RAY_ADDRESS, or a local one of its
    own (never another program's cluster found on this machine: live owns its actors). A local
    one listens on loopback only, its dashboard and metrics on free ports (never Ray's fixed 8265:
    another Ray on the machine, e.g. a backtest, may hold it)."""
    from cluster.ray_setup import (
        _connect,
        _dashboard_url,
        _free_port,
        _restore_environment,
        _single_machine_mode,
        _start_local,
        prefer_token_auth,
    )

    prefer_token_auth()
    import ray

    if ray.is_initialized():
        yield ray
        return
    address = os.environ.get("RAY_ADDRESS")
    dashboard = os.environ.get("RAYTRADER_DASHBOARD", "1") != "0"
    restore = None if address else _single_machine_mode()
    try:
        if address:
            context = _connect(address)
        else:
            context = _start_local(
                dashboard, None, _free_port() if dashboard else None, log_to_driver=True
            )  # actors' log lines (model API fallbacks)
        url = _dashboard_url(context)
        if url:
            console.print(f"Ray dashboard: {url} (actors: bars, strategies, portfolio, orders)")
        metrics = _metrics_url(ray)
        if metrics:
            console.print(f"Ray metrics (Prometheus text): {metrics}")
        yield ray
    finally:
        ray.shutdown()
        if restore is not None:
            _restore_environment(restore)


def _metrics_url(ray: ModuleType) -> str | None:
    """Where this node serves its metrics (live/ops/metrics.py), for Prometheus or curl."""
    for node in ray.nodes():
        if node.get("Alive") and node.get("MetricsExportPort"):
            return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
    return None
