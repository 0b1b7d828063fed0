"""No Ray process outlives the driver that started a local Ray, even after a SIGKILL.

Ray 2.60 ties its head processes (GCS, raylet, dashboard, log monitor) to the driver with
PR_SET_PDEATHSIG, but the raylet's own children (ray::DashboardAgent, ray::RuntimeEnvAgent) only
notice their raylet is gone after about a minute: a `backtest --all` killed with SIGKILL left
them running for 45-60 s (measured). So before `ray.init` the driver puts a marker in its
environment, `RAYTRADER_RAY_OWNER=<driver pid>:<random>`, which every Ray process of that run
inherits (raylet -> agents and workers), and starts this file as a watchdog in a session of its
own: when the driver is gone (exited, killed, or a zombie) it SIGKILLs every process carrying
the marker, within about `POLL_SECONDS`. It also exits once the run's Ray processes are gone
(after `ray.shutdown()`). As a second line, each new local start sweeps processes whose marker
names a dead driver (a watchdog that was killed too).

Only processes of this user carrying our marker are touched (read from /proc/<pid>/environ;
Linux only: elsewhere nothing is done). Standard library only: it runs as a plain script.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

MARKER = "RAYTRADER_RAY_OWNER"
POLL_SECONDS = 0.2
IDLE_CHECK_SECONDS = 2.0
PROC = Path("/proc")


def new_marker() -> str:
    return f"{os.getpid()}:{secrets.token_hex(4)}"


def _markers() -> dict[int, str]:
    """pid -> its marker value, for every process of ours that carries one."""
    found: dict[int, str] = {}
    key = f"{MARKER}=".encode()
    for entry in PROC.iterdir() if PROC.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's process
            continue
        for item in environ.split(b"\0"):
            if item.startswith(key):
                found[int(entry.name)] = item[len(key) :].decode(errors="replace")
                break
    return found


def alive(pid: int) -> bool:
    """Running (a zombie counts as dead: it only waits for its parent to reap it)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _kill(pids: list[int]) -> int:
    killed = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except OSError:
            pass
    return killed


def kill_marked(value: str) -> int:
    return _kill([pid for pid, v in _markers().items() if v == value])


def sweep_stale() -> int:
    """Kill the Ray processes of runs whose driver is dead; returns how many."""
    stale = [pid for pid, v in _markers().items() if not alive(int(v.split(":", 1)[0] or 0))]
    return _kill(stale)


def watch(owner: int, value: str) -> None:
    """Wait for the driver to go, then kill its Ray processes; return early once they are gone."""
    last_check, seen = time.monotonic(), False
    while alive(owner):
        time.sleep(POLL_SECONDS)
        if time.monotonic() - last_check > IDLE_CHECK_SECONDS:
            last_check = time.monotonic()
            running = value in _markers().values()
            if seen and not running:
                return  # ray.shutdown() stopped them: nothing left to guard
            seen = seen or running
    for _ in range(3):  # a process may be forking at the moment of the first sweep
        kill_marked(value)
        time.sleep(POLL_SECONDS)


def start_watchdog(value: str) -> subprocess.Popen | None:
    """This file as a watchdog of the current process (None where /proc is missing)."""
    if not PROC.is_dir():
        return None
    env = {k: v for k, v in os.environ.items() if k != MARKER}
    return subprocess.Popen(
        [sys.executable, "-S", str(Path(__file__).resolve()), str(os.getpid()), value],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # not in the driver's process group: a Ctrl-C is not for it
        close_fds=True,
    )


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.argv[2])
