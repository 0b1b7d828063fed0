"""`fanout.py --cluster N`: the same fan-out on a local Ray cluster of N simulated 1-CPU nodes.

First the runs on a single local Ray node (`--cpus` CPUs, as `fanout.py` runs them), then on N
nodes started with `ray start` on 127.0.0.2.. (cluster/local_cluster.py; token authentication
on, every node stopped at the end, also on an error or Ctrl-C), `--repeat` times. Each pass
stores every batch as it arrives in a fresh database (PostgreSQL, the database a cluster needs,
or SQLite with `--db sqlite`), as `backtest --all` does. Prints:
- whether every run's record (metrics, bars, span) and trades are the same on the cluster as on
  the single node;
- the driver's own CPU per 1,000 runs (time.process_time of this process, Ray's threads in it
  included; medians of the passes), split into submitting (task submission and putting the
  series), receiving (ray.wait / ray.get: results deserialized), database writes and other;
- what a run moves through the object store (its result, pickled; the series once per node);
- from those, how many backtests per second a 100-node cluster needs from the driver, and how
  many it could take.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd

from cluster.local_cluster import ROOT, cluster_auth, exit_on_sigterm, local_cluster

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
PARTS = ("submitting", "receiving", "database", "other")


class DriverClock:
    """CPU of this process (all its threads) spent inside Ray's submit and wait/get calls,
    measured by wrapping them for the duration of a pass (a timer, not a stand-in: the calls
    are Ray's own)."""

    def __init__(self) -> None:
        self.cpu = dict.fromkeys(PARTS, 0.0)

    @contextlib.contextmanager
    def installed(self) -> Iterator[DriverClock]:
        import ray
        from ray.remote_function import RemoteFunction

        originals = (RemoteFunction._remote, ray.wait, ray.get, ray.put)

        def timed(part: str, call: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                began = time.process_time()
                try:
                    return call(*args, **kwargs)
                finally:
                    self.cpu[part] += time.process_time() - began

            return wrapper

        RemoteFunction._remote = timed("submitting", originals[0])
        ray.wait, ray.get = timed("receiving", originals[1]), timed("receiving", originals[2])
        ray.put = timed("submitting", originals[3])
        try:
            yield self
        finally:
            RemoteFunction._remote, ray.wait, ray.get, ray.put = originals


@contextlib.contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A fresh, empty database for one pass (every run is written, none skipped as stored)."""
    from store.db import dispose_engines

    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            try:
                yield f"sqlite:///{tmp}/bench.db"
            finally:
                dispose_engines()
        return
    import psycopg

    name = f"rt_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = PG_URL.format(name=name)
        from store.db import get_engine

        get_engine(url)  # tables created before the pass: not a cost per run
        yield url
    finally:
        dispose_engines()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fingerprint(run: dict, trades: pd.DataFrame | None) -> str:
    """A run's record (metrics, bars, span, status) and its trades, as one digest."""
    digest = hashlib.sha256(repr(sorted(run.items())).encode())
    if trades is not None and len(trades):
        digest.update(repr(list(trades.columns)).encode())
        digest.update(pd.util.hash_pandas_object(trades, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def one_pass(specs: list, series: dict, config: Any, cpus: float, url: str | None) -> dict:
    """The runs as `backtest --all` sends them (stream_batches), each batch stored in `url` as
    it arrives; the driver's CPU split by part, result sizes and every run's fingerprint."""
    import ray

    from backtest import fanout_io
    from backtest.fanout_batches import stream_batches
    from store.runs import RUN_INDEX

    clock, prints, result_bytes, bookkeeping, work = DriverClock(), {}, 0, 0.0, 0.0
    trades_total = 0
    began_wall, began = time.perf_counter(), time.process_time()
    with clock.installed():
        refs = {key: ray.put(series[key]) for key in {s.series for s in specs}}
        for _batch, outcomes in stream_batches(specs, refs, config, False, cpus):
            assert not isinstance(outcomes, Exception), outcomes
            if url is not None:
                cpu = time.process_time()
                fanout_io.store_batch(url, outcomes)
                clock.cpu["database"] += time.process_time() - cpu
            cpu = time.process_time()  # the benchmark's own bookkeeping: not counted
            result_bytes += len(pickle.dumps(outcomes, protocol=5))
            trades_total += len(outcomes.trades)
            by_index = dict(iter(outcomes.trades.groupby(RUN_INDEX, sort=False)))
            for i, outcome in enumerate(outcomes):
                run = outcome["run"]
                assert run["status"] == "done", run["error"]
                trades = by_index.get(i)
                if trades is not None:
                    trades = trades.drop(columns=RUN_INDEX).reset_index(drop=True)
                prints[run["run_key"]] = (fingerprint(run, trades), outcome["node_ip"])
                work += outcome["cpu_seconds"]
            bookkeeping += time.process_time() - cpu
    total = time.process_time() - began - bookkeeping
    clock.cpu["other"] = total - sum(clock.cpu[p] for p in PARTS[:3])
    return {
        "wall": time.perf_counter() - began_wall,
        "cpu": clock.cpu,
        "total": total,
        "prints": prints,
        "result_bytes": result_bytes,
        "trades": trades_total,
        "work": work,  # CPU seconds of the backtests themselves, in the workers
    }


def passes(specs: list, series: dict, config: Any, cpus: float, db: str, repeat: int) -> list[dict]:
    from benchmarks.fanout import sample

    one_pass(sample(specs, int(4 * cpus)), series, config, cpus, None)  # warm the workers
    out = []
    for _ in range(repeat):
        with fresh_database(db) as url:
            out.append(one_pass(specs, series, config, cpus, url))
    return out


def run_cluster(args: Any, specs: list, series: dict, config: Any) -> None:
    nodes = args.cluster
    db = args.db
    if db == "postgresql" and not _postgres_up():
        print("note        : PostgreSQL at 127.0.0.1:5432 not reachable: storing in SQLite")
        db = "sqlite"
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with cluster_auth() as auth:
        import ray

        env = {"env_vars": {"PYTHONPATH": str(ROOT)}}
        ray.init(
            num_cpus=args.cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.2",
            log_to_driver=False,
            runtime_env=env,
        )
        exit_on_sigterm()  # ray.init's own handler would kill the driver outright
        try:
            single = passes(specs, series, config, args.cpus, db, 1)
        finally:
            ray.shutdown()
        began = time.perf_counter()
        with local_cluster(auth, nodes) as cluster:
            started = time.perf_counter() - began
            ray.init(address=cluster.address, _node_ip_address=cluster.head_ip, log_to_driver=False)
            exit_on_sigterm()
            try:
                alive = sum(1 for n in ray.nodes() if n["Alive"])
                print(f"cluster     : {alive} nodes x 1 CPU on 127.0.0.2.. up in {started:.0f} s")
                multi = passes(specs, series, config, nodes, db, args.repeat)
            finally:
                ray.shutdown()
    report(specs, series, single, multi, nodes, db)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _postgres_up() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except Exception:
        return False


def per_thousand(result: dict, runs: int) -> dict[str, float]:
    return {p: result["cpu"][p] / runs * 1000 for p in PARTS} | {
        "total": result["total"] / runs * 1000
    }


def report(specs: list, series: dict, single: list, multi: list, nodes: int, db: str) -> None:
    runs = len(specs)
    reference = {k: v[0] for k, v in single[0]["prints"].items()}
    for i, result in enumerate(multi):
        got = {k: v[0] for k, v in result["prints"].items()}
        differ = [k for k in reference if got.get(k) != reference[k]]
        used = sorted({v[1] for v in result["prints"].values()})
        print(
            f"results     : pass {i + 1}: {len(got)} runs on nodes {', '.join(used)}; "
            + (
                "every run's record and trades the same as on the single node"
                if not differ and len(got) == len(reference)
                else f"{len(differ)} runs DIFFER from the single node (e.g. {differ[:3]})"
            )
        )
    rows = {"single node": [per_thousand(r, runs) for r in single]}
    rows[f"{nodes} nodes"] = [per_thousand(r, runs) for r in multi]
    print(
        f"driver CPU  : seconds per 1,000 runs ({db} writes; median of {len(multi)} passes on "
        f"the cluster, 1 on the single node)"
    )
    print(f"  {'':<12}" + "".join(f"{p:>12}" for p in (*PARTS, "total")))
    medians = {}
    for label, values in rows.items():
        medians[label] = {k: statistics.median(v[k] for v in values) for k in values[0]}
        print(f"  {label:<12}" + "".join(f"{medians[label][k]:>12.3f}" for k in (*PARTS, "total")))
    walls = [r["wall"] for r in multi]
    print(
        f"wall        : {runs / statistics.median(walls):.1f} runs/s on the cluster (median), "
        f"{runs / single[0]['wall']:.1f} on the single node"
    )
    project(specs, series, medians[f"{nodes} nodes"], multi, nodes)


def project(specs: list, series: dict, driver: dict, multi: list, nodes: int) -> None:
    """What a 100-node cluster needs from the driver, and what then limits it."""
    runs = len(specs)
    result_kb = statistics.median(r["result_bytes"] for r in multi) / runs / 1000
    series_mb = sum(frame.memory_usage(deep=True).sum() for frame in series.values()) / 1e6
    per_run_ms = driver["total"]  # ms of driver CPU per run (= s per 1,000)
    work_ms = statistics.median(r["work"] for r in multi) / runs * 1000
    trades = multi[0]["trades"] / runs
    print(
        f"object store: {result_kb:.1f} kB of results per run (pickled outcomes and "
        f"{trades:.0f} trades) to the driver; the series ({series_mb:.1f} MB) once per node"
    )
    for cpus in (1, 16):
        need = 100 * cpus / (work_ms / 1000)
        print(
            f"100 nodes   : x {cpus:>2} CPUs at {work_ms:.0f} ms of CPU per run produce "
            f"{need:,.0f} backtests/s: the driver needs {need * per_run_ms / 1000:.1f} CPU "
            f"({need * driver['database'] / 1000:.1f} of it database writes) and "
            f"{need * result_kb / 1000:.1f} MB/s of results"
        )
    ceiling = 1000 / per_run_ms
    print(
        f"driver limit: one driver CPU takes {ceiling:,.0f} backtests/s "
        f"({driver['database'] / per_run_ms:.0%} of it database writes, "
        f"{driver['receiving'] / per_run_ms:.0%} receiving, "
        f"{driver['submitting'] / per_run_ms:.0%} submitting); "
        f"= {ceiling * work_ms / 1000:,.0f} worker CPUs kept busy at {work_ms:.0f} ms per run"
    )
    rest = per_run_ms - driver["database"]
    print(
        f"no db writes: with the writes in other processes, one driver CPU "
        f"takes {1000 / rest:,.0f} backtests/s = {1000 / rest * work_ms / 1000:,.0f} worker CPUs"
    )
