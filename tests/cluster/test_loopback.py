"""A local Ray started by `backtest --all` keeps its ports off the network: every listener the run
starts (GCS, raylet, workers, agents, dashboard and its metrics endpoints) is on 127.0.0.0/8
(see cluster/ray_setup.py). The token file is 0600."""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.backtest.test_fanout import sample_bars, slow_instances

ROOT = Path(__file__).resolve().parents[2]
PLAIN_RAY = """
import sys, time, ray
ray.init(num_cpus=1, include_dashboard=False, _node_ip_address="127.0.0.2")
ray.get(ray.remote(lambda: 1).remote())
time.sleep(4)
ray.shutdown()
"""
LISTENER = re.compile(r"^\S+\s+\d+\s+\d+\s+(\S+):(\d+)\s+\S+\s+users:\(\(\"([^\"]+)\",pid=(\d+)")


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in found]
        found.update(children)
        frontier.extend(children)
    return found


def _listeners(pids: set[int]) -> set[tuple[str, int, str]]:
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    rows = set()
    for line in out.splitlines():
        match = LISTENER.match(line.strip())
        if match and int(match.group(4)) in pids:
            rows.add((match.group(1).strip("[]"), int(match.group(2)), match.group(3)))
    return rows


def _on_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # "*": every interface
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # [::ffff:127.0.0.1] is IPv4 loopback
    return (mapped or address).is_loopback


def _run_and_watch(cmd: list[str], tmp_path: Path, env_extra: dict[str, str]) -> tuple[set, str]:
    """`cmd` in a subprocess; the listeners of its process tree, sampled all along."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **env_extra}
    env.pop("RAY_ADDRESS", None)
    seen: set = set()
    with (tmp_path / "cli.log").open("w+") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while proc.poll() is None:
                seen |= _listeners(_descendants(proc.pid))
                time.sleep(0.3)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)
        log.seek(0)
        output = log.read()
    assert proc.returncode == 0, output
    assert any(name == "gcs_server" for _, _, name in seen), (seen, output)  # we saw Ray up
    return seen, output


@pytest.fixture
def slow_db(tmp_path: Path, sample_dir: Path) -> tuple[str, Path]:
    from store.bars import save_bars

    folder = tmp_path
    db = f"sqlite:///{folder / 'r.db'}"
    save_bars(db, "binance", "ETH/BTC", "5m", sample_bars(sample_dir, "ETH_BTC-5m.csv.gz", 2000))
    slow_instances(db, folder, 0.5, range(5, 17))
    return db, folder


@pytest.mark.ray
def test_backtest_all_with_its_dashboard_listens_on_loopback_only(slow_db):
    db, folder = slow_db
    token = folder / "auth_token"
    cmd = [sys.executable, "cli.py", "backtest", "--all", "--db", db]
    cmd += ["--family", f"{folder / 'slow.py'}:Slow", "--out", str(folder / "out")]
    seen, output = _run_and_watch(cmd, folder, {"RAY_AUTH_TOKEN_PATH": str(token)})
    assert {row for row in seen if not _on_loopback(row[0])} == set()
    names = {name for _, _, name in seen}
    assert {"gcs_server", "raylet"} <= names and any(n.startswith("ray::") for n in names)
    assert len(seen) >= 8  # GCS, raylet x2, driver, worker, agents, dashboard, metrics
    assert "Ray dashboard: http://127.0.0.1:" in output and "stops when this command ends" in output
    # The token the run authenticated with was created readable by its owner only.
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert len(token.read_text().strip()) == 64


@pytest.mark.ray
def test_the_check_sees_ray_on_another_node_address_listen_on_every_interface(tmp_path):
    """Ray as docs/ray.md#ray-on-these-machines starts it in tests (node 127.0.0.2, cluster mode): its gRPC
    servers bind every interface. The same check fails there, so it can fail."""
    slow_machine = {"RAY_raylet_start_wait_time_s": "180"}  # a loaded machine starts slowly
    seen, _ = _run_and_watch([sys.executable, "-c", PLAIN_RAY], tmp_path, slow_machine)
    assert {row for row in seen if not _on_loopback(row[0])}


def test_an_existing_token_file_is_tightened_to_0600(tmp_path, monkeypatch):
    from cluster.ray_setup import secure_token_file

    token = tmp_path / "auth_token"
    token.write_text("x" * 64)
    token.chmod(0o644)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    assert secure_token_file() == token
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "new" / "auth_token"))
    assert secure_token_file() is None  # without create: nothing made
    made = secure_token_file(create=True)
    assert made is not None and stat.S_IMODE(made.stat().st_mode) == 0o600
