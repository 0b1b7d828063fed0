"""cluster.yaml passes Ray's own cluster-config validation; `backtest --all` on a real two-node
Ray cluster (two `ray start` on this machine, token authentication on) with PostgreSQL."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


# -- cluster.yaml -------------------------------------------------------------------------------
def load_cluster_yaml() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_passes_rays_own_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = load_cluster_yaml()
    prepared = prepare_config(raw)  # what `ray up` does first (fills the local node type)
    validate_config(prepared)  # raises jsonschema.ValidationError on any unknown/bad field
    assert raw["provider"]["type"] == "local"
    workers = raw["provider"]["worker_ips"]
    assert prepared["available_node_types"]["local.cluster.node"]["max_workers"] == len(workers)


def test_cluster_yaml_has_placeholders_sync_install_and_secure_ray_start():
    raw = load_cluster_yaml()
    text = (ROOT / "cluster.yaml").read_text()
    assert raw["provider"]["head_ip"].startswith("<") and all(
        ip.startswith("<") for ip in raw["provider"]["worker_ips"]
    )
    assert "PLACEHOLDER" in text and "type: aws" in text  # the cloud switch is documented
    assert "." in raw["file_mounts"].values() and "~/.ray/auth_token" in raw["file_mounts"]
    assert any("pip install" in c and "raytrader" in c for c in raw["setup_commands"])
    head = " ".join(raw["head_start_ray_commands"])
    worker = " ".join(raw["worker_start_ray_commands"])
    assert "ray start --head" in head and "--include-dashboard=true" in head
    assert "RAY_AUTH_MODE=token" in head and "RAY_AUTH_MODE=token" in worker
    assert "$RAY_HEAD_IP" in worker


def test_a_broken_cluster_yaml_is_rejected_by_the_same_validation():
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = copy.deepcopy(load_cluster_yaml())
    broken["setup_comands"] = ["typo"]
    with pytest.raises(jsonschema.ValidationError, match="setup_comands"):
        validate_config(prepare_config(broken))


# -- a real two-node cluster --------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_node_cluster():
    """A head (127.0.0.2, 1 CPU) and a worker node (127.0.0.3, 1 CPU) with token auth on,
    stopped after the module (cluster/local_cluster.py)."""
    from cluster.local_cluster import cluster_auth, local_cluster

    with cluster_auth() as auth, local_cluster(auth, 2, object_store_mb=150) as cluster:
        assert cluster.head_ip == HEAD_IP
        yield {"address": cluster.address, "env": auth.env}


def _fill(url: str, sample_dir: Path, symbols: dict[str, str], lookbacks: list[int]) -> int:
    from store.bars import save_bars
    from store.instances import add_instance

    count = 0
    for symbol, file in symbols.items():
        raw = pd.read_csv(sample_dir / file).iloc[:1500]
        ts = pd.to_datetime(raw["timestamp"], unit="ms", utc=True)
        frame = raw[["open", "high", "low", "close", "volume"]].astype("float64")
        frame.index = pd.DatetimeIndex(ts, name="timestamp")
        save_bars(url, "binance", symbol, "5m", frame)
        for interval in ("5m", "15m"):
            for lookback in lookbacks:
                add_instance(
                    url, "sr_breakout", "binance", symbol, interval, {"lookback": lookback}
                )
                count += 1
    return count


def _cli(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "cli.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.ray
@pytest.mark.postgres
def test_backtest_all_on_two_nodes_stores_every_run_once(
    two_node_cluster, postgres_url, sample_dir, tmp_path
):
    symbols = {"ETH/BTC": "ETH_BTC-5m.csv.gz", "LTC/BTC": "LTC_BTC-5m.csv.gz"}
    expected = _fill(postgres_url, sample_dir, symbols, [10, 20, 30, 40])
    from store.db import dispose_engines

    dispose_engines()  # the CLI subprocess writes next; keep no connection open here
    args = ["backtest", "--all", "--db", postgres_url, "--ray-address", two_node_cluster["address"]]
    run = _cli([*args, "--out", str(tmp_path / "out")], two_node_cluster["env"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert "2 node(s)" in run.stderr

    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT run_key, status FROM backtest_runs")).all()
    engine.dispose()
    keys = [r[0] for r in rows]
    assert len(keys) == expected == 16 and len(set(keys)) == len(keys)
    assert {r[1] for r in rows} == {"done"}
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(results) == expected and set(results["run_key"]) == set(keys)
    assert set(results["node_ip"]) == {HEAD_IP, WORKER_IP}  # tasks ran on both nodes
    assert all(json.loads(p)["lookback"] in (10, 20, 30, 40) for p in results["params"])

    again = _cli([*args, "--out", str(tmp_path / "again")], two_node_cluster["env"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "16 already done (skipped), 0 to run" in again.stderr


@pytest.mark.ray
def test_a_sqlite_file_is_refused_on_a_multi_node_cluster(two_node_cluster, tmp_path, sample_dir):
    url = f"sqlite:///{tmp_path / 'one.db'}"
    _fill(url, sample_dir, {"ETH/BTC": "ETH_BTC-5m.csv.gz"}, [20])
    from store.db import dispose_engines

    dispose_engines()
    # Without RAY_AUTH_MODE: the CLI must turn token mode on itself (a token is available),
    # before Ray loads, or it cannot join the cluster and never gets to the SQLite check.
    env = {k: v for k, v in two_node_cluster["env"].items() if k != "RAY_AUTH_MODE"}
    run = _cli(
        ["backtest", "--all", "--db", url, "--ray-address", two_node_cluster["address"]], env
    )
    assert run.returncode == 2, run.stderr[-3000:]
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "SQLite" in lines[0] and "PostgreSQL" in lines[0]
    assert "Traceback" not in run.stderr
