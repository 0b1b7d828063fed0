"""The models the inference API serves: loaded once, reloaded when `model train` stores a newer one.

A plain class (no web framework here): `ModelRegistry.predict(instance_id, features)` validates
the request against the model's own feature columns and answers the probability and the
application method's decision, exactly as `model eval` applies the model (ml/apply.decide).

Reload without a restart: an instance's newest version is looked up in `ml_models` at most once
per `refresh_seconds` (one indexed query); a higher version than the one in memory is loaded
from its file and replaces it. Requests in between use the model already loaded.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import UserError
from ml.apply import decide
from ml.modelstore import MlModel, latest_models, load_model


class RequestError(UserError):
    """A request the API refuses (4xx): the message says what is wrong and how to fix it."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LoadedModel:
    instance_id: int
    version: int
    columns: tuple[str, ...]
    method: str
    trained: Any  # ml.modelstore.TrainedModel
    row: MlModel

    def describe(self) -> dict[str, Any]:
        import json

        return {
            "instance_id": self.instance_id,
            "version": self.version,
            "kind": self.trained.spec.kind,
            "method": self.method,
            "features": list(self.columns),
            "trades": self.row.trades,
            "data_start": _iso(self.row.data_start),
            "data_end": _iso(self.row.data_end),
            "metrics": json.loads(self.row.metrics_json or "{}"),
        }


def _iso(value: Any) -> str | None:
    return None if value is None else pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%SZ")


class ModelRegistry:
    def __init__(self, url: str, refresh_seconds: float = 2.0) -> None:
        self.url = url
        self.refresh_seconds = refresh_seconds
        self._loaded: dict[int, LoadedModel] = {}
        self._newest: dict[int, int] = {}  # instance -> newest stored version
        self._checked = -float("inf")
        self._lock = threading.Lock()
        latest_models(url, [])  # creates the table on a fresh database

    def newest_versions(self) -> dict[int, int]:
        """instance -> newest stored version, from one query at most every refresh_seconds."""
        now = time.monotonic()
        with self._lock:
            if now - self._checked < self.refresh_seconds:
                return self._newest
        from sqlalchemy import func
        from sqlmodel import select

        from store.db import session_scope

        with session_scope(self.url) as session:
            query = select(MlModel.instance_id, func.max(MlModel.version)).group_by(
                MlModel.instance_id
            )
            newest = {int(i): int(v) for i, v in session.exec(query).all()}
        with self._lock:
            self._newest, self._checked = newest, now
        return newest

    def model(self, instance_id: int) -> LoadedModel:
        """The newest model of an instance (RequestError 404 when it has none)."""
        version = self.newest_versions().get(instance_id)
        if version is None:
            raise RequestError(
                f"no trained model for instance {instance_id}; train one with "
                f"`cli.py model train --instances {instance_id}` or see GET /models",
                status=404,
            )
        known = self._loaded.get(instance_id)
        if known is not None and known.version >= version:
            return known
        loaded = _load(latest_models(self.url, [instance_id])[instance_id])
        with self._lock:
            self._loaded[instance_id] = loaded
        return loaded

    def all_models(self) -> list[LoadedModel]:
        """Every instance's newest model (loads those not loaded yet)."""
        return [self.model(instance_id) for instance_id in sorted(self.newest_versions())]

    def predict(self, instance_id: int, features: dict[str, Any]) -> dict[str, Any]:
        loaded = self.model(instance_id)
        probability = _probability(loaded.trained.model, _feature_row(loaded, features))
        take, size = decide(loaded.method, probability, loaded.trained.calibration)
        return {
            "instance_id": instance_id,
            "version": loaded.version,
            "probability": probability,
            "method": loaded.method,
            "take": bool(take),
            "size": float(size),
        }


def _load(row: MlModel) -> LoadedModel:
    trained = load_model(row.path)
    columns = tuple(trained.model.columns) or tuple(trained.model.medians.index)
    return LoadedModel(row.instance_id, row.version, columns, trained.spec.method, trained, row)


def _probability(model: Any, row: np.ndarray) -> float:
    """ml.models.Model.predict_proba for one complete, finite row: the same estimator call
    without the frame-wide imputation (nothing is missing here), about 20x cheaper per call."""
    if model.estimator is None or not model.columns:
        return float(model.constant)
    return float(model.estimator.predict_proba(row)[0, 1])


def _feature_row(loaded: LoadedModel, features: dict[str, Any]) -> np.ndarray:
    """One row in the model's column order; RequestError for missing, extra or bad values."""
    if not isinstance(features, dict):
        raise RequestError("'features' must be an object of feature name -> number")
    wanted = set(loaded.columns)
    missing, extra = sorted(wanted - set(features)), sorted(set(features) - wanted)
    if missing or extra:
        parts = [f"missing {missing}" if missing else "", f"unknown {extra}" if extra else ""]
        raise RequestError(
            f"instance {loaded.instance_id} (model v{loaded.version}) takes exactly the features "
            f"{list(loaded.columns)}: {'; '.join(p for p in parts if p)} (see GET /models)"
        )
    values = []
    for name in loaded.columns:
        value = features[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise RequestError(f"feature {name!r} is {value!r}; give a finite number")
        values.append(float(value))
    return np.array([values], dtype=np.float64)
