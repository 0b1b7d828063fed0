"""The tests' Ray, on 127.0.0.2 (docs/ray.md#ray-on-these-machines).

One Ray serves the whole test session (`shared_ray`): the first test that asks for it starts it,
tests/conftest.py stops it when the session ends (also after failures). Starting a Ray takes
~15-20 s on these machines: one start instead of one per module saves minutes. Its workers see
WORKER_ENV (through the job's runtime_env, so this process's environment never changes): the
repository on PYTHONPATH and the API keys real mode reads inside a Ray worker (RAY_KEY).

A test whose workers need other variables (the crash hook of the kill tests) starts a Ray of its
own with `local_test_ray(env)` (or stops it with `stop_shared_ray()`, as the `no_ray` fixture does):
mark it `own_ray` and it runs after the others (tests/conftest.py), so the shared one starts once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RAY_KEY = "ray-tests"  # the exchange account of every real-mode node on the shared Ray
RAY_SECRET = "local-secret"  # the local exchange's default secret
WORKER_ENV = {
    "PYTHONPATH": str(ROOT),
    "RAYTRADER_BINANCE_API_KEY": RAY_KEY,
    "RAYTRADER_BINANCE_API_SECRET": RAY_SECRET,
}
_OPTIONS: dict[str, Any] = {
    "num_cpus": 2,
    "include_dashboard": False,
    "_node_ip_address": "127.0.0.2",
}


class _State:
    shared_up = False  # the Ray initialised in this process is the shared one


def shared_ray() -> Any:
    """The session's Ray, started on first use."""
    ray = pytest.importorskip("ray")
    if not _State.shared_up:
        if ray.is_initialized():  # a test's own Ray that was not stopped: never reuse it
            ray.shutdown()
        ray.init(runtime_env={"env_vars": WORKER_ENV}, **_OPTIONS)
        _State.shared_up = True
    return ray


def stop_shared_ray() -> None:
    if _State.shared_up:
        import ray

        _State.shared_up = False
        ray.shutdown()


@contextlib.contextmanager
def local_test_ray(env: dict[str, str] | None = None, **options: Any) -> Iterator[Any]:
    """A Ray of the test's own, stopped after the block, also when a test fails. `env`:
    variables the Ray workers must see, set before Ray starts and removed after it stopped."""
    ray = pytest.importorskip("ray")
    stop_shared_ray()
    os.environ.update(env or {})
    try:
        ray.init(**{**_OPTIONS, **options})
        yield ray
    finally:
        ray.shutdown()
        for name in env or {}:
            os.environ.pop(name, None)
