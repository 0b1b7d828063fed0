"""`cli.py model run`: a real server on loopback, spoken to over real HTTP (requests)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import requests

from ml.apply import calibrate, decide
from ml.models import ModelSpec, fit
from ml.modelstore import TrainedModel, load_model, save_model
from ml.remote_gate import RemoteModelGate
from ml.serve import bind_warning

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
    job = post(api, "/automl?num_strategies=1", None).json()
    assert job["status"] == "running"
    deadline = time.monotonic() + 120
    while (status := requests.get(api["base"] + f"/automl/{job['id']}", timeout=60).json())[
        "status"
    ] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    # this database has models but no strategy instances: the experiment refuses, and says why
    assert status["status"] == "failed" and status["returncode"] == 2
    assert any("error:" in line for line in status["log_tail"]), json.dumps(status)
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
    ],
)
def test_bad_options_are_one_error_line(args, says) -> None:
    done = subprocess.run(
        [sys.executable, "cli.py", "model", "run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.startswith("error:") and says in done.stderr
    assert "Traceback" not in done.stderr


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
