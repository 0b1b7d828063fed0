"""cluster/ray_reaper.py: no Ray process of a local run outlives its driver, even after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster import ray_reaper

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="Linux /proc only")

DRIVER = """
import sys, time
sys.path.insert(0, {root!r})
from cluster.ray_setup import _start_local_on_loopback
_start_local_on_loopback(False, 1)
import ray

@ray.remote
def one():
    return 1

assert ray.get(one.remote()) == 1
print("ready", flush=True)
time.sleep(600)
"""


def of_run(owner: int) -> dict[int, str]:
    """pid -> command name of the processes carrying the marker of driver `owner`."""
    out = {}
    for pid, value in ray_reaper._markers().items():
        if value.split(":")[0] == str(owner):
            try:
                out[pid] = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
    return {pid: name.decode(errors="replace") for pid, name in out.items()}


def wait_until_gone(owner: int, seconds: float) -> dict[int, str]:
    deadline = time.monotonic() + seconds
    left = of_run(owner)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = {p: n for p, n in of_run(owner).items() if ray_reaper.alive(p)}
    return left


def sleeper(marker: str) -> subprocess.Popen:
    env = {**os.environ, ray_reaper.MARKER: marker}
    return subprocess.Popen(["sleep", "120"], env=env)


@pytest.mark.ray
def test_a_sigkilled_driver_leaves_no_ray_process_behind(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER.format(root=str(ROOT))],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert driver.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20  # the raylet starts its agents after ray.init returns
        while "Agent" not in " ".join(of_run(driver.pid).values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        names = " ".join(of_run(driver.pid).values())
        # the head processes and, usually by now, the raylet's agents (which alone outlived a
        # killed driver; on a loaded machine they may still be starting: they are killed too)
        assert "raylet" in names and "gcs_server" in names, names
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        # bounded: the watchdog polls every 0.2 s; Ray's own agents took 45-60 s
        assert wait_until_gone(driver.pid, 20) == {}
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        for pid in of_run(driver.pid):  # never leave anything behind, even on failure
            os.kill(pid, signal.SIGKILL)


def test_the_watchdog_kills_the_marked_processes_when_their_driver_dies() -> None:
    owner = subprocess.Popen(["sleep", "120"])
    value = f"{owner.pid}:test"
    child, unrelated = sleeper(value), sleeper(f"{owner.pid}:other-run")
    watchdog = subprocess.Popen([sys.executable, "-S", ray_reaper.__file__, str(owner.pid), value])
    try:
        time.sleep(0.5)
        assert child.poll() is None  # the owner lives: nothing is touched
        owner.kill()
        owner.wait()
        assert child.wait(timeout=20) == -signal.SIGKILL
        assert watchdog.wait(timeout=20) == 0
        assert unrelated.poll() is None  # another run's marker: left alone
    finally:
        for p in (owner, child, unrelated, watchdog):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_the_next_start_sweeps_processes_of_a_dead_driver_only() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan, ours = sleeper(f"{dead.pid}:gone"), sleeper(f"{os.getpid()}:live")
    try:
        time.sleep(0.2)  # the environment is readable once exec has happened
        assert ray_reaper.sweep_stale() >= 1
        assert orphan.wait(timeout=20) == -signal.SIGKILL
        assert ours.poll() is None  # the driver of this one (this test) is alive
    finally:
        for p in (orphan, ours):
            if p.poll() is None:
                p.kill()
                p.wait()
