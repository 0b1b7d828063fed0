"""Connect to a running Ray cluster, or start a local one (DESIGN.md section 11).

Order: an explicit address (`--ray-address`) beats RAY_ADDRESS beats a new local Ray.
`ray submit cluster.yaml cli.py ...` runs the CLI on the head node with RAY_ADDRESS unset, so, as
`ray.init(address="auto")` does, the cluster that `ray start` recorded on this machine is used
when there is one; otherwise a local Ray starts with every CPU of the machine.

Ray traffic stays on loopback: a local Ray gets its own loopback address 127.0.0.2 (Ray rewrites
127.0.0.1 to the machine's network address), and a driver connecting to a cluster whose address
is a loopback address joins with that address as its node IP.

Security: `ray start` and `ray.init()` turn token authentication on; a driver joining such a
cluster needs RAY_AUTH_MODE=token and the token (~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or
RAY_AUTH_TOKEN). When a token is available and RAY_AUTH_MODE is unset we turn token mode on, as
Ray itself does for address "auto". Authentication is never disabled here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

LOCAL_NODE_IP = "127.0.0.2"
DASHBOARD_ENV = "RAYTRADER_DASHBOARD"  # "0" turns the dashboard of a local Ray off


class RayClusterError(ValueError):
    """Ray cannot be reached or used as asked; the message says how to fix it."""


@dataclass
class RaySession:
    address: str  # where we are connected ("local" for a Ray started here)
    started_here: bool  # we started Ray (and stop it at the end)
    already_running: bool  # ray was initialised by the caller; leave it alone
    dashboard_url: str | None
    alive_nodes: int
    cpus: float


def prefer_token_auth() -> None:
    """Token mode when a token is available and RAY_AUTH_MODE is unset. Call it before the
    first `import ray` in the process: Ray reads the auth mode when it loads, and a driver
    without it cannot join a `ray start` cluster (token auth is on there by default)."""
    if _token_available() and "RAY_AUTH_MODE" not in os.environ:
        os.environ["RAY_AUTH_MODE"] = "token"


def _token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return Path(path).expanduser().is_file()
    return (Path.home() / ".ray" / "auth_token").is_file()


def _loopback_host(address: str) -> str | None:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host if host.startswith("127.") else None


def _cluster_on_this_machine() -> str | None:
    """The address `ray start` recorded on this machine (the head node of `ray up`), if any.

    This is what a plain `ray.init()` connects to; a Ray started with its own --temp-dir (tests)
    records its address there and is not picked up.
    """
    try:
        from ray._private import services

        return services.find_bootstrap_address(None) or None
    except Exception:  # ray internals moved: fall back to starting a local Ray
        return None


def _alive_nodes() -> list[dict]:
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def _dashboard_url(context: object) -> str | None:
    url = getattr(context, "dashboard_url", None) or ""
    if not url:
        return None
    return url if url.startswith("http") else f"http://{url}"


def _reachable(address: str) -> str | None:
    """None when host:port accepts a TCP connection, else the reason (ray.init would wait for
    minutes on an address where nothing listens)."""
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit():
        return None  # not host:port (e.g. "auto", "ray://..."): let Ray judge
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def _connect(address: str):
    import ray

    hint = (
        "check the address (`ray status` on the head node prints it) and that the cluster "
        "is running; a cluster with token authentication needs RAY_AUTH_MODE=token and its "
        "token (~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN; "
        "`ray get-auth-token` on the head prints it)"
    )
    if address != "auto" and (reason := _reachable(address)):
        raise RayClusterError(f"cannot connect to Ray at {address!r}: {reason}; {hint}")

    kwargs: dict = {"address": address, "log_to_driver": False, "logging_level": logging.WARNING}
    host = _loopback_host(address)
    if host:
        kwargs["_node_ip_address"] = host
    try:
        return ray.init(**kwargs)
    except Exception as exc:  # ConnectionError, AuthenticationError, RuntimeError, ...
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RayClusterError(f"cannot connect to Ray at {address!r}: {text}; {hint}") from None


def _start_local(dashboard: bool, num_cpus: int | None):
    import ray

    return ray.init(
        num_cpus=num_cpus or os.cpu_count() or 1,
        include_dashboard=dashboard,
        dashboard_host="127.0.0.1",
        _node_ip_address=LOCAL_NODE_IP,
        log_to_driver=False,
        logging_level=logging.WARNING,  # we print the address and dashboard URL ourselves
    )


@contextlib.contextmanager
def ray_session(
    ray_address: str | None = None,
    dashboard: bool | None = None,
    num_cpus: int | None = None,
    console: Console | None = None,
) -> Iterator[RaySession]:
    """Ray ready for tasks while the block runs; disconnects (or stops what it started) after.

    When Ray is already initialised in this process (tests, notebooks) it is used as it is.
    """
    prefer_token_auth()
    import ray

    console = console or Console(stderr=True)
    if dashboard is None:
        dashboard = os.environ.get(DASHBOARD_ENV, "1") != "0"
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        session_kind = ("current", False, True)
        context = None
    elif address:
        context = _connect(address)
        session_kind = (address, False, False)
    elif found := _cluster_on_this_machine():
        context = _connect(found)
        session_kind = (found, False, False)
    else:
        context = _start_local(dashboard, num_cpus)
        session_kind = ("local", True, False)
    try:
        nodes = _alive_nodes()
        info = RaySession(
            address=session_kind[0],
            started_here=session_kind[1],
            already_running=session_kind[2],
            dashboard_url=_dashboard_url(context) if context is not None else None,
            alive_nodes=len(nodes),
            cpus=float(ray.cluster_resources().get("CPU", 0.0)),
        )
        where = "a local Ray" if info.started_here else f"Ray at {info.address}"
        console.print(f"using {where}: {info.alive_nodes} node(s), {info.cpus:g} CPU(s)")
        if info.dashboard_url:
            console.print(f"Ray dashboard: {info.dashboard_url}")
        yield info
    finally:
        if not session_kind[2]:
            ray.shutdown()


def check_database_for_cluster(db_url: str, session: RaySession) -> None:
    """SQLite is one file on one machine: refuse it when the Ray cluster has several nodes."""
    if session.alive_nodes > 1 and db_url.startswith("sqlite"):
        from store.db import safe_url

        raise RayClusterError(
            f"the database {safe_url(db_url)} is a SQLite file, which cannot be shared by the "
            f"{session.alive_nodes} nodes of the Ray cluster at {session.address}; use PostgreSQL "
            "for a cluster: --db postgresql+psycopg://user@host:5432/name (or set RAYTRADER_DB)"
        )
