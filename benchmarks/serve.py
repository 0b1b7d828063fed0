"""Inference API latency: one prediction and a batch of 100 instances over HTTP on loopback.

Starts `cli.py model run --port 0` on a temporary SQLite database holding 100 instances' models
(logistic regression over 20 features, as `model train` stores them), then times, with one kept-
alive HTTP connection (requests.Session, as a live strategy host would hold):
- POST /predict for one instance, --requests times: p50 / p99 / max in ms;
- POST /predict/batch with all 100 instances, --requests / 10 times: p50 / p99 per batch and the
  cost per instance.
Target (issue 12): p99 <= 20 ms for one prediction on this 2-core machine.
Usage: python benchmarks/serve.py [--requests 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ml.apply import calibrate  # noqa: E402
from ml.models import ModelSpec, fit  # noqa: E402
from ml.modelstore import TrainedModel, save_model  # noqa: E402

INSTANCES, FEATURES = 100, 20


def store_models(url: str, folder: Path) -> list[str]:
    rng = np.random.default_rng(0)
    columns = [f"f{i}" for i in range(FEATURES)]
    for instance in range(1, INSTANCES + 1):
        x = pd.DataFrame(rng.normal(size=(300, FEATURES)), columns=columns)
        won = (x["f0"] + rng.normal(size=300) > 0).to_numpy(int)
        model = fit(x, won, ModelSpec(kind="logreg", method="filter"))
        p = model.predict_proba(x)
        trained = TrainedModel(instance, model.spec, model, calibrate(p, np.where(won, 1, -1)), {})
        save_model(url, f"bench-{instance}", trained, folder, {"trades": 300})
    return columns


def percentiles(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"p50 {np.median(ms):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms, max {ms.max():.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        columns = store_models(url, Path(tmp) / "models")
        command = [
            sys.executable,
            "cli.py",
            "model",
            "run",
            "--port",
            "0",
            "--db",
            url,
            "--jobs-dir",
            f"{tmp}/jobs",
        ]
        server = subprocess.Popen(
            command,
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            base = server.stderr.readline().split()[3]
            run(base, columns, args.requests)
        finally:
            server.terminate()
            server.wait(timeout=30)


def run(base: str, columns: list[str], count: int) -> None:
    session = requests.Session()
    session.get(base + "/health", timeout=120)
    rng = np.random.default_rng(1)

    def body(instance: int) -> dict:
        return {
            "instance_id": instance,
            "features": dict(zip(columns, rng.normal(size=FEATURES).tolist(), strict=True)),
        }

    for instance in range(1, INSTANCES + 1):  # warm: every model loaded once
        session.post(base + "/predict", json=body(instance), timeout=60).raise_for_status()
    single = []
    for i in range(count):
        payload = body(1 + i % INSTANCES)
        began = time.perf_counter()
        session.post(base + "/predict", json=payload, timeout=60).raise_for_status()
        single.append(time.perf_counter() - began)
    batches = []
    for _ in range(max(count // 10, 10)):
        payload = {"requests": [body(i) for i in range(1, INSTANCES + 1)]}
        began = time.perf_counter()
        session.post(base + "/predict/batch", json=payload, timeout=60).raise_for_status()
        batches.append(time.perf_counter() - began)
    print(f"one prediction over HTTP ({count} requests): {percentiles(single)}")
    print(
        f"batch of {INSTANCES} instances ({len(batches)} requests): {percentiles(batches)}; "
        f"{np.median(batches) / INSTANCES * 1000:.3f} ms per instance (median)"
    )
    verdict = "meets" if np.percentile(single, 99) * 1000 <= 20 else "misses"
    print(f"target p99 <= 20 ms for one prediction: {verdict}")


if __name__ == "__main__":
    main()
