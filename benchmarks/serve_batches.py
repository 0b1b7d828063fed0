"""Single predictions while batches arrive: does a batch starve POST /predict?

Starts `cli.py model run --port 0` (of this checkout, or of --root: another checkout, to compare)
over benchmarks/serve.py's 100 instances' models, times --singles POST /predict first alone, then
while --clients threads each post --rows-row batches in a loop, and prints p50 / p95 / max of
the singles in both and how many batches were answered meanwhile.
Usage: python benchmarks/serve_batches.py [--clients 4] [--rows 1000] [--singles 200] [--root DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.serve import INSTANCES, store_models  # noqa: E402


def summary(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"p50 {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms"


def singles(session: requests.Session, base: str, row: dict, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        session.post(f"{base}/predict", json=row, timeout=120).raise_for_status()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--singles", type=int, default=200)
    parser.add_argument("--root", type=Path, default=ROOT, help="The checkout whose API to start.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        columns = store_models(url, Path(tmp) / "models")
        rng = np.random.default_rng(1)
        rows = [
            {
                "instance_id": i % INSTANCES + 1,
                "features": dict(zip(columns, rng.normal(size=len(columns)), strict=True)),
            }
            for i in range(args.rows)
        ]
        rows = [{**r, "features": {k: float(v) for k, v in r["features"].items()}} for r in rows]
        env = {**os.environ, "RAYTRADER_DB": url, "PYTHONPATH": str(args.root)}
        command = [sys.executable, "cli.py", "model", "run", "--port", "0", "--jobs-dir", tmp]
        server = subprocess.Popen(
            command, cwd=args.root, env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            base = server.stderr.readline().split()[3]
            session = requests.Session()
            singles(session, base, rows[0], 20)  # the connection open; below, every model loaded
            session.post(f"{base}/predict/batch", json={"requests": rows[:INSTANCES]}, timeout=600)
            alone = singles(session, base, rows[0], args.singles)
            stop, answered = threading.Event(), []

            def batches() -> None:
                client = requests.Session()
                while not stop.is_set():
                    answer = client.post(
                        f"{base}/predict/batch", json={"requests": rows}, timeout=600
                    )
                    answered.append(answer.status_code)

            clients = [threading.Thread(target=batches) for _ in range(args.clients)]
            for client in clients:
                client.start()
            time.sleep(1.0)
            start = time.perf_counter()
            busy = singles(session, base, rows[0], args.singles)
            span = time.perf_counter() - start
            stop.set()
            for client in clients:
                client.join()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"singles alone: {summary(alone)}")
    print(
        f"singles while {args.clients} clients post {args.rows}-row batches: {summary(busy)} "
        f"({span:.1f} s; batches answered by the end: {len(answered)}, statuses "
        f"{sorted(set(answered))})"
    )


if __name__ == "__main__":
    main()
