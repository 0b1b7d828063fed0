"""Connect to a running Ray cluster, or start a local one (docs/ray.md#ray-on-these-machines).

Order: an explicit address (`--ray-address`) beats RAY_ADDRESS beats a new local Ray.
`ray submit cluster.yaml cli.py ...` runs the CLI on the head node with RAY_ADDRESS unset, so, as
`ray.init(address="auto")` does, the cluster that `ray start` recorded on this machine is used
when there is one; otherwise a local Ray starts with every CPU of the machine.

Ray traffic stays on loopback. A local Ray runs in Ray's single-machine mode
(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, the default on macOS and Windows) on 127.0.0.1: only then
does Ray bind every server to loopback (GCS, raylet, workers, agents, dashboard and its metrics
endpoints; checked with ray 2.60 by tests/cluster/test_loopback.py). On any other node address,
even 127.0.0.2, its gRPC servers listen on all interfaces and its Prometheus endpoints, which
have no authentication, on 0.0.0.0. A driver connecting to a cluster whose address is a
loopback address joins with that address as its node IP.

Security: `ray start` and `ray.init()` turn token authentication on; a driver joining such a
cluster needs RAY_AUTH_MODE=token and the token (~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or
RAY_AUTH_TOKEN). When a token is available and RAY_AUTH_MODE is unset we turn token mode on, as
Ray itself does for address "auto". Authentication is never disabled here. The token file is
created (or tightened) with mode 0600: Ray writes it with the default umask (0644).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from core.errors import UserError

LOCAL_NODE_IP = "127.0.0.1"  # with single-machine mode Ray keeps it (else: the network address)
# Ray gives a starting node's raylet a fixed 30 s to register with the GCS; a busy machine can
# pass it. The node is then stopped and started once more (here and in cluster/local_cluster.py).
START_ATTEMPTS = 2


def raylet_timed_out(exc: BaseException) -> bool:
    """Ray's own error for a node whose raylet did not register in time."""
    return "timed out during startup" in str(exc)


SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
DASHBOARD_ENV = "RAYTRADER_DASHBOARD"  # "0" turns the dashboard of a local Ray off
TOKEN_MODE = 0o600


class RayClusterError(UserError):
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
    secure_token_file()


def token_path() -> Path:
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def secure_token_file(create: bool = False) -> Path | None:
    """The token file readable by its owner only; with `create`, a new token when none exists
    (before Ray makes one with the default umask). Returns the file, or None without one."""
    path = token_path().expanduser()
    if not path.is_file():
        if not create or os.environ.get("RAY_AUTH_TOKEN"):
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, TOKEN_MODE)
        except FileExistsError:  # another process made one meanwhile: tighten that one
            return secure_token_file()
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))  # Ray's own tokens: 64 hex characters
        return path
    info = path.stat()
    if info.st_mode & 0o077 and info.st_uid == os.getuid():
        path.chmod(TOKEN_MODE)
    return path


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _single_machine_mode() -> dict[str, str | None]:
    """Environment for the Ray processes about to start here (they inherit it): single-machine
    mode keeps every server on loopback; the metrics endpoints on free ports, not Ray's fixed
    44227/44217 (another Ray on the machine may hold them). Returns what to restore."""
    import ray._private.ray_constants as ray_constants

    names = (SINGLE_MACHINE_ENV, "DASHBOARD_METRIC_PORT", "AUTOSCALER_METRIC_PORT")
    previous = {name: os.environ.get(name) for name in names}
    os.environ[SINGLE_MACHINE_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False  # read once at import; this process has it already
    os.environ.setdefault("DASHBOARD_METRIC_PORT", str(_free_port()))
    os.environ.setdefault("AUTOSCALER_METRIC_PORT", str(_free_port()))
    return previous


def _restore_environment(previous: dict[str, str | None]) -> None:
    import ray._private.ray_constants as ray_constants

    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    ray_constants.ENABLE_RAY_CLUSTER = previous[SINGLE_MACHINE_ENV] != "0"


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


def _start_local(
    dashboard: bool,
    num_cpus: int | None,
    dashboard_port: int | None = None,
    log_to_driver: bool = False,
):
    """A local Ray whose every process dies with this driver (cluster/ray_reaper.py), after
    sweeping what a killed run left. `log_to_driver`: the actors' log lines are printed by the
    driver (live: a model API fallback is logged in a strategy actor and must be seen)."""
    import ray

    from cluster import ray_reaper

    swept = ray_reaper.sweep_stale()
    if swept:
        logging.getLogger("raytrader.ray").warning(
            "stopped %d Ray process(es) left by a run whose driver was killed", swept
        )
    secure_token_file(create=os.environ.get("RAY_AUTH_MODE", "token") == "token")
    marker = ray_reaper.new_marker()
    ray_reaper.start_watchdog(marker)
    os.environ[ray_reaper.MARKER] = marker  # inherited by every Ray process of this run
    try:
        # a free port, never Ray's fixed 8265: another Ray on this machine (a live run, another
        # backtest) may hold it
        port = dashboard_port or (_free_port() if dashboard else None)
        extra = {"dashboard_port": port} if port else {}
        options = dict(
            **extra,
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=dashboard,
            dashboard_host="127.0.0.1",
            _node_ip_address=LOCAL_NODE_IP,
            log_to_driver=log_to_driver,
            logging_level=logging.WARNING,  # we print the address and dashboard URL ourselves
        )
        for _ in range(START_ATTEMPTS - 1):
            try:
                return ray.init(**options)
            except Exception as exc:
                if not raylet_timed_out(exc):
                    raise
                logging.getLogger("raytrader.ray").warning(
                    "the local Ray did not start in time (its raylet has 30 s to register; "
                    "the machine is busy): starting it once more"
                )
                ray.shutdown()
                ray_reaper.kill_marked(marker)  # what the first attempt left running
        return ray.init(**options)
    finally:
        os.environ.pop(ray_reaper.MARKER, None)  # later children of the driver are not Ray's


@contextlib.contextmanager
def ray_session(
    ray_address: str | None = None,
    dashboard: bool | None = None,
    num_cpus: int | None = None,
    console: Console | None = None,
    keep: bool = False,
) -> Iterator[RaySession]:
    """Ray ready for tasks while the block runs; disconnects (or stops what it started) after.

    When Ray is already initialised in this process (tests, notebooks) it is used as it is.
    `keep`: the caller keeps Ray up after its work (--keep-dashboard); only the notice differs.
    """
    prefer_token_auth()
    import ray

    console = console or Console(stderr=True)
    if dashboard is None:
        dashboard = os.environ.get(DASHBOARD_ENV, "1") != "0"
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    restore: dict[str, str | None] | None = None
    if ray.is_initialized():
        session_kind = ("current", False, True)
        context = None
    elif address or (address := _cluster_on_this_machine()):
        context = _connect(address)
        session_kind = (address, False, False)
    else:
        context, restore = _start_local_on_loopback(dashboard, num_cpus)
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
            console.print(f"Ray dashboard: {info.dashboard_url}{_dashboard_lifetime(info, keep)}")
        yield info
    finally:
        if not session_kind[2]:
            ray.shutdown()
        if restore is not None:
            _restore_environment(restore)


def _start_local_on_loopback(dashboard: bool, num_cpus: int | None):
    """A local Ray in single-machine mode; returns its context and the environment to restore
    once it is shut down."""
    restore = _single_machine_mode()
    try:
        return _start_local(dashboard, num_cpus), restore
    except BaseException:
        _restore_environment(restore)
        raise


def _dashboard_lifetime(info: RaySession, keep: bool = False) -> str:
    if not info.started_here:
        return ""
    if keep:
        return " (kept up after the run until Ctrl-C: --keep-dashboard)"
    return (
        " (it stops when this command ends; to watch a run, start Ray first with `ray start` "
        "and pass its address: docs/ray.md#watching-a-run-in-the-dashboard)"
    )


def check_database_for_cluster(db_url: str, session: RaySession) -> None:
    """SQLite is one file on one machine: refuse it when the Ray cluster has several nodes."""
    if session.alive_nodes > 1 and db_url.startswith("sqlite"):
        from store.db import safe_url

        raise RayClusterError(
            f"the database {safe_url(db_url)} is a SQLite file, which cannot be shared by the "
            f"{session.alive_nodes} nodes of the Ray cluster at {session.address}; use PostgreSQL "
            "for a cluster: --db postgresql+psycopg://user@host:5432/name (or set RAYTRADER_DB)"
        )
