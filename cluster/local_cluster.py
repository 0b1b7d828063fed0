"""A local Ray cluster of N simulated nodes on loopback, for the tests and the benchmarks
(docs/ray.md): `ray start --head` on 127.0.0.2 and `ray start --address` for each further node on
127.0.0.3, 127.0.0.4, ..., each with its own CPU count, token authentication on with a token of its own in a temporary directory
(never ~/.ray/auth_token), each `ray start --block` in its own process group. Everything it
started is stopped when the `with` block ends, also on an error or Ctrl-C (SIGTERM is turned into
the same exit: call `exit_on_sigterm()` again after `ray.init`, whose own handler kills the
driver outright), never with `ray stop` (which would stop every Ray of the user on the machine).
Should the driver die anyway (SIGKILL), the project's watchdog (cluster/ray_reaper.py) kills every
process of the cluster: they all carry its marker in their environment.

The driver must join with the environment `cluster_auth` sets (RAY_AUTH_MODE=token and the
token's path), and Ray reads it when it is imported: enter the block before `import ray`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cluster import ray_reaper
from cluster.ray_setup import START_ATTEMPTS, raylet_timed_out

ROOT = Path(__file__).resolve().parent.parent

RAY = Path(sys.executable).with_name("ray")
START_TIMEOUT_S = 120


@dataclass
class LocalCluster:
    address: str  # head's GCS address, for ray.init(address=...)
    head_ip: str  # the driver joins with this node IP
    nodes: int


def node_ip(i: int) -> str:
    return f"127.0.0.{i + 2}"


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _start_node(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "a") as out:
        return subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped precisely
        )


def _wait_started(proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    text = ""
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Ray runtime started" in text:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.3)
    raise RuntimeError(f"ray start did not come up in {START_TIMEOUT_S} s:\n{text[-3000:]}")


def _stop(procs: list[subprocess.Popen], mentioned: str) -> None:
    """Stop exactly what was started here: the `ray start --block` process groups, then any
    leftover process whose command line holds `mentioned` (the cluster's own temp dir, or one
    node's address)."""
    for proc in reversed(procs):
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 2  # a graceful stop, else SIGKILL: nothing of it is kept
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.2)
    for proc in procs:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            proc.wait(timeout=5)
    marker = mentioned.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)


def _sigterm_as_exit(_signum: int, _frame: object) -> None:
    raise SystemExit(143)  # runs the `finally` that stops the cluster


def exit_on_sigterm() -> None:
    """SIGTERM as SystemExit (the `finally` blocks run); again after each `ray.init`."""
    signal.signal(signal.SIGTERM, _sigterm_as_exit)


@dataclass
class ClusterAuth:
    temp_dir: str  # the cluster's --temp-dir (holds the token, the logs and the sockets)
    env: dict[str, str]  # environment of the `ray start` processes


@contextlib.contextmanager
def cluster_auth() -> Iterator[ClusterAuth]:
    """A temporary directory with a fresh token, and RAY_AUTH_MODE=token plus its path in this
    process's environment (restored at the end). Enter it before `import ray`."""
    temp_dir = tempfile.mkdtemp(prefix="rtb", dir="/tmp")  # short: Unix socket paths are limited
    token = Path(temp_dir) / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    previous = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key in ("RAY_ADDRESS", "RAY_AUTH_TOKEN"):
        env.pop(key, None)
    try:
        yield ClusterAuth(temp_dir, env)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def local_cluster(
    auth: ClusterAuth, nodes: int, cpus_per_node: int = 1, object_store_mb: int = 200
) -> Iterator[LocalCluster]:
    """Start `nodes` Ray nodes on 127.0.0.2.. (the first is the head); stop them at the end."""
    head = node_ip(0)
    port = free_port(head)
    common = [f"--num-cpus={cpus_per_node}", f"--temp-dir={auth.temp_dir}"]
    common += ["--disable-usage-stats", "--block"]
    common += [f"--object-store-memory={object_store_mb * 1_000_000}"]
    args = [["--head", f"--node-ip-address={head}", f"--port={port}", "--include-dashboard=false"]]
    args += [
        [f"--address={head}:{port}", f"--node-ip-address={node_ip(i)}"] for i in range(1, nodes)
    ]
    procs: list[subprocess.Popen] = []
    old_handler = signal.signal(signal.SIGTERM, _sigterm_as_exit)
    marker = ray_reaper.new_marker()  # every node process inherits it: the watchdog's target
    env = {**auth.env, ray_reaper.MARKER: marker}
    watchdog = ray_reaper.start_watchdog(marker)
    try:
        for i, extra in enumerate(args):
            log = Path(auth.temp_dir) / f"node{i}.log"
            for attempt in range(START_ATTEMPTS):
                procs.append(_start_node([str(RAY), "start", *extra, *common], env, log))
                try:
                    _wait_started(procs[-1], log)
                    break
                except RuntimeError as exc:
                    if attempt + 1 == START_ATTEMPTS or not raylet_timed_out(exc):
                        raise
                    _stop([procs.pop()], f"={node_ip(i)}")  # its group, and its processes
        yield LocalCluster(f"{head}:{port}", head, nodes)
    finally:
        _stop(procs, auth.temp_dir)
        ray_reaper.kill_marked(marker)
        if watchdog is not None:
            watchdog.kill()
            watchdog.wait(timeout=5)
        signal.signal(signal.SIGTERM, old_handler)
