"""`cli.py model run`: a real server on loopback, spoken to over real HTTP (requests)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import requests

from core.errors import UserError
from ml.api_limits import TOKEN_ENV, ApiLimits, api_token
from ml.apply import calibrate, decide
from ml.models import ModelSpec, fit
from ml.modelstore import TrainedModel, load_model, save_model
from ml.remote_gate import RemoteModelGate
from ml.serve import bind_warning, create_app
from store.instances import add_instance
from tests.ml.http_server import serving

ROOT = Path(__file__).resolve().parents[2]
INSTANCE = 7
FEATURES = ["range_20", "hour_sin"]


def trained_model(flip: bool) -> TrainedModel:
    """A logistic model where a high range_20 wins (or loses, when flipped); hour_sin is noise."""
    rng = np.random.default_rng(3)
    x = pd.DataFrame({"range_20": rng.normal(size=400), "hour_sin": rng.normal(size=400)})
    won = ((x["range_20"] > 0) != flip).to_numpy(int)
    spec = ModelSpec(kind="logreg", method="filter", seed=0)
    model = fit(x, won, spec)
    p = model.predict_proba(x)
    returns = np.where(won == 1, 0.01, -0.01)
    return TrainedModel(INSTANCE, spec, model, calibrate(p, returns), {})


def store(url: str, folder: Path, flip: bool) -> None:
    trained = trained_model(flip)
    row = {
        "metrics": {"roc_auc": 0.9},
        "trades": 400,
        "data_start": pd.Timestamp("2024-01-01"),
        "data_end": pd.Timestamp("2024-06-01"),
    }
    save_model(url, f"key-{flip}", trained, folder, row)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """One `cli.py model run --port 0` for the module, stopped also when a test fails."""
    folder = tmp_path_factory.mktemp("serve")
    url = f"sqlite:///{folder / 'models.db'}"
    store(url, folder / "models", flip=False)
    add_instance(url, "sr_breakout", "binance", "ETH/BTC", "5m", {})  # enabled, without bars
    env = {**os.environ, "RAYTRADER_DB": url}
    command = [
        sys.executable,
        "cli.py",
        "model",
        "run",
        "--port",
        "0",
        "--refresh",
        "0",
        "--jobs-dir",
        str(folder / "jobs"),
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        assert "serving models on http://127.0.0.1:" in line, line
        base = line.split()[3]
        requests.get(base + "/health", timeout=120)  # the first answer waits for start-up
        yield {"base": base, "url": url, "folder": folder}
    finally:
        server.terminate()
        server.wait(timeout=30)


def post(api, path: str, body) -> requests.Response:
    return requests.post(api["base"] + path, json=body, timeout=60)


def test_health_and_models_list_the_stored_model(api) -> None:
    assert requests.get(api["base"] + "/health", timeout=60).json() == {"status": "ok", "models": 1}
    (model,) = requests.get(api["base"] + "/models", timeout=60).json()["models"]
    assert model["instance_id"] == INSTANCE and model["version"] == 1
    assert model["kind"] == "logreg" and model["method"] == "filter"
    assert sorted(model["features"]) == sorted(FEATURES)
    assert model["metrics"] == {"roc_auc": 0.9} and model["data_start"] == "2024-01-01T00:00:00Z"


def test_a_prediction_equals_the_model_file_applied_in_process(api) -> None:
    features = {"range_20": 1.5, "hour_sin": -0.2}
    answer = post(api, "/predict", {"instance_id": INSTANCE, "features": features}).json()
    (path,) = (api["folder"] / "models").glob("instance7_v1.pkl")
    trained = load_model(path)
    p = float(trained.model.predict_proba(pd.DataFrame([features]))[0])
    take, size = decide("filter", p, trained.calibration)
    assert answer == {
        "instance_id": INSTANCE,
        "version": 1,
        "probability": pytest.approx(p),
        "method": "filter",
        "take": take,
        "size": size,
    }
    assert answer["probability"] > 0.9 and answer["take"] is True
    low = post(api, "/predict", {"instance_id": INSTANCE, "features": {**features, "range_20": -2}})
    assert low.json()["probability"] < 0.1 and low.json()["take"] is False


def test_a_batch_answers_each_request_in_order(api) -> None:
    requests_ = [
        {"instance_id": INSTANCE, "features": {"range_20": v, "hour_sin": 0.0}}
        for v in (-1.0, 0.0, 1.0)
    ]
    answers = post(api, "/predict/batch", {"requests": requests_}).json()["predictions"]
    probabilities = [a["probability"] for a in answers]
    assert probabilities == sorted(probabilities) and probabilities[0] < 0.5 < probabilities[2]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"instance_id": 99, "features": {}}, 404, "no trained model for instance 99"),
        ({"instance_id": INSTANCE, "features": {"range_20": 1.0}}, 422, "missing ['hour_sin']"),
        (
            {"instance_id": INSTANCE, "features": {"range_20": 1, "hour_sin": 0, "x": 2}},
            422,
            "unknown ['x']",
        ),
        (
            {"instance_id": INSTANCE, "features": {"range_20": "high", "hour_sin": 0}},
            422,
            "feature 'range_20' is 'high'; give a finite number",
        ),
        ({"instance_id": "7", "features": {}}, 422, "instance_id must be an integer"),
        ({"instance_id": INSTANCE, "features": {}, "extra": 1}, 422, "unknown fields ['extra']"),
    ],
)
def test_bad_requests_get_a_4xx_that_says_what_to_fix(api, body, status, says) -> None:
    answer = post(api, "/predict", body)
    assert answer.status_code == status and says in answer.json()["detail"]


def test_nan_is_refused(api) -> None:
    body = '{"instance_id": 7, "features": {"range_20": NaN, "hour_sin": 0}}'
    answer = requests.post(
        api["base"] + "/predict",
        data=body,
        timeout=60,
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422 and "give a finite number" in answer.text


def test_a_newer_model_is_served_without_a_restart(api) -> None:
    features = {"range_20": 1.5, "hour_sin": 0.0}
    assert (
        post(api, "/predict", {"instance_id": INSTANCE, "features": features}).json()["version"]
        == 1
    )
    store(api["url"], api["folder"] / "models", flip=True)  # `model train` storing version 2
    answer = post(api, "/predict", {"instance_id": INSTANCE, "features": features}).json()
    assert answer["version"] == 2 and answer["probability"] < 0.1


def test_automl_runs_model_experiment_in_the_background(api) -> None:
    assert post(api, "/automl?num_strategies=0", None).status_code == 422
    job = post(api, "/automl?num_strategies=5", None).json()
    assert job["status"] == "running" and job["num_strategies"] == 1  # one enabled instance
    assert job["note"].startswith("num_strategies capped from 5 to 1")
    deadline = time.monotonic() + 120
    while (status := requests.get(api["base"] + f"/automl/{job['id']}", timeout=60).json())[
        "status"
    ] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    # the instance has no bars: the experiment refuses, and says why
    assert status["status"] == "failed" and status["returncode"] == 2
    assert any("error: no bars for any selected instance" in line for line in status["log_tail"])
    assert requests.get(api["base"] + "/automl/nope", timeout=60).status_code == 404


def test_binding_beyond_loopback_warns() -> None:
    assert bind_warning("127.0.0.1") is None and bind_warning("localhost") is None
    assert bind_warning("127.0.0.2") is None
    assert "other machines may reach" in bind_warning("0.0.0.0")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--port", "70000"], "--port 70000 is not a port"),
        (["--refresh", "-1"], "--refresh -1.0 must be >= 0"),
        (["--refresh", "nan"], "--refresh nan must be >= 0"),
        (["--db", "nonsense"], "not a valid SQLAlchemy URL"),
        (["--jobs-dir", "/proc/jobs"], "--jobs-dir '/proc/jobs' is not a writable directory"),
        (["--host", "0.0.0.0"], "--host 0.0.0.0 is reachable from other machines: set RAYTR"),
        (["--max-batch", "0"], "--max-batch 0 must be >= 1"),
        (["--max-jobs", "0"], "--max-jobs 0 must be >= 1"),
    ],
)
def test_bad_options_are_one_error_line(args, says, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    done = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "model", "run", "--port", "0", *args],
        cwd=tmp_path,  # automl_jobs, the default --jobs-dir, would be made here
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.startswith("error:") and says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_a_token_is_needed_beyond_loopback_and_read_from_the_environment() -> None:
    assert api_token("127.0.0.1", {}) is None and api_token("localhost", {}) is None
    assert api_token("0.0.0.0", {TOKEN_ENV: " s3cret "}) == "s3cret"
    assert api_token("127.0.0.1", {TOKEN_ENV: "s3cret"}) == "s3cret"  # set: always asked for
    with pytest.raises(UserError, match="set RAYTRADER_API_TOKEN to a secret"):
        api_token("192.168.1.5", {TOKEN_ENV: "  "})


# -- limits and the token, on an app served in a thread (tests/ml/http_server.py) ------------------
@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("limits")
    url = f"sqlite:///{folder / 'models.db'}"
    store(url, folder / "models", flip=False)
    return {"url": url, "folder": folder}


def one(value: float, instance_id: int = INSTANCE) -> dict:
    return {"instance_id": instance_id, "features": {"range_20": value, "hour_sin": 0.0}}


def test_a_batch_above_the_limit_is_413(stored) -> None:
    app = create_app(stored["url"], stored["folder"] / "jobs", 0, ApiLimits(max_batch=3))
    with serving(app) as base:
        over = requests.post(base + "/predict/batch", json={"requests": [one(0)] * 4}, timeout=60)
        at = requests.post(base + "/predict/batch", json={"requests": [one(0)] * 3}, timeout=60)
    assert over.status_code == 413
    assert over.json()["detail"] == (
        "4 requests in one batch; this server takes at most 3 (`model run --max-batch`): split it"
    )
    assert at.status_code == 200 and len(at.json()["predictions"]) == 3


@pytest.mark.parametrize("workers", [1, 2])
def test_batches_wait_for_their_pool_and_singles_do_not_wait_for_batches(stored, workers) -> None:
    """Three batches arrive while the first is held inside the model: at most `workers` of them
    compute at once, and a single /predict is answered meanwhile."""
    app = create_app(stored["url"], stored["folder"] / "jobs", 0, ApiLimits(batch_workers=workers))
    registry, real = app.state.registry, app.state.registry.predict
    held, go, lock = threading.Event(), threading.Event(), threading.Lock()
    inside = {"now": 0, "most": 0}

    def predict(instance_id: int, features: dict) -> dict:
        if instance_id != 99:  # a batch's row: counted and held until the test says go
            return real(instance_id, features)
        with lock:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
        held.set()
        go.wait(60)
        with lock:
            inside["now"] -= 1
        return {"instance_id": 99}

    registry.predict = predict
    with serving(app) as base, ThreadPoolExecutor(3) as clients:
        batches = [
            clients.submit(
                requests.post, base + "/predict/batch", json={"requests": [one(0, 99)]}, timeout=60
            )
            for _ in range(3)
        ]
        assert held.wait(60)
        single = requests.post(base + "/predict", json=one(1.5), timeout=60)
        assert single.status_code == 200 and single.json()["take"] is True
        deadline = time.monotonic() + 60
        while inside["now"] < workers and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # a pool that let more in would have let them in by now
        assert inside["now"] == workers  # the others wait for the pool, not in a server thread
        go.set()
        assert all(b.result().status_code == 200 for b in batches)
    assert inside["most"] == workers


def test_with_a_token_every_request_must_carry_it(stored, monkeypatch) -> None:
    app = create_app(stored["url"], stored["folder"] / "jobs", 0, ApiLimits(), token="s3cret")
    with serving(app) as base:
        bare = requests.get(base + "/health", timeout=60)
        wrong = requests.get(base + "/health", headers={"Authorization": "Bearer nope"}, timeout=60)
        right = requests.get(
            base + "/health", headers={"Authorization": "Bearer s3cret"}, timeout=60
        )
        refused = requests.post(base + "/automl?num_strategies=1", timeout=60)
        monkeypatch.delenv(TOKEN_ENV, raising=False)
        without = RemoteModelGate(
            base, INSTANCE, lambda s: {"range_20": 2.0, "hour_sin": 0}, "skip", 60
        )
        monkeypatch.setenv(TOKEN_ENV, "s3cret")
        with_it = RemoteModelGate(
            base, INSTANCE, lambda s: {"range_20": 2.0, "hour_sin": 0}, "skip", 60
        )
        assert without(signal(1)) == (False, 0.0) and without.fell_back == 1
        assert with_it(signal(1))[0] is True and with_it.fell_back == 0
    assert bare.status_code == wrong.status_code == refused.status_code == 401
    assert bare.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 200 and right.json() == {"status": "ok", "models": 1}


# -- the live signal gate over HTTP ---------------------------------------------------------------
def signal(signal_id: int) -> SimpleNamespace:
    return SimpleNamespace(signal_id=signal_id, ts=0)


def test_the_remote_gate_decides_as_the_model_does_in_process(api) -> None:
    rows = {
        1: {"range_20": 2.0, "hour_sin": 0.1, "unused": 5.0},
        2: {"range_20": -2.0, "hour_sin": 0.0},
    }
    gate = RemoteModelGate(api["base"], INSTANCE, lambda s: rows[s.signal_id], timeout=60)
    newest = max((api["folder"] / "models").glob("instance7_v*.pkl"))
    trained = load_model(newest)
    for signal_id, row in rows.items():
        features = pd.DataFrame([{k: row[k] for k in FEATURES}])
        p = float(trained.model.predict_proba(features)[0])
        assert gate(signal(signal_id)) == decide("filter", p, trained.calibration)
    assert gate.fell_back == 0 and gate.asked == 2


@pytest.mark.parametrize(("fallback", "decision"), [("trade", (True, 1.0)), ("skip", (False, 0.0))])
def test_the_remote_gate_falls_back_when_the_api_is_down(caplog, fallback, decision) -> None:
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    gate = RemoteModelGate(f"http://127.0.0.1:{port}", INSTANCE, lambda s: {}, fallback, 0.5)
    with caplog.at_level(logging.WARNING, logger="raytrader.ml.gate"):
        assert gate(signal(4)) == decision
    assert gate.fell_back == 1
    assert f"model API for instance {INSTANCE} unavailable at signal 4" in caplog.text
    with pytest.raises(ValueError, match="unknown fallback 'maybe'"):
        RemoteModelGate("http://127.0.0.1:1", INSTANCE, lambda s: {}, "maybe")


def test_the_remote_gate_falls_back_on_a_refused_request(api, caplog) -> None:
    gate = RemoteModelGate(api["base"], 12345, lambda s: {"range_20": 1.0}, "skip", 60)
    with caplog.at_level(logging.WARNING, logger="raytrader.ml.gate"):
        assert gate(signal(1)) == (False, 0.0)
    assert "HTTP 404: no trained model for instance 12345" in caplog.text
