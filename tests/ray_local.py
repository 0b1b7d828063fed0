"""The Ray a test module starts for itself: on 127.0.0.2 (docs/ray.md#ray-on-these-machines), stopped when the
module ends, also when a test fails."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest


@contextlib.contextmanager
def local_test_ray(env: dict[str, str] | None = None, **options: Any) -> Iterator[Any]:
    """`env`: variables the Ray workers must see (API keys read in an actor), set before Ray
    starts and removed after it stopped."""
    ray = pytest.importorskip("ray")
    os.environ.update(env or {})
    try:
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2", **options)
        yield ray
    finally:
        ray.shutdown()
        for name in env or {}:
            os.environ.pop(name, None)
