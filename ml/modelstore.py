"""Trained models: a file per model (pickle of `TrainedModel`) and a row in `ml_models`.

The row says which instance, configuration (ModelSpec), data range, metrics, version and file;
`key` (instance, strategy parameters, configuration, data range) makes training resumable: a
key already stored is not trained again. Versions count up per instance. Eval and live find an
instance's model as its highest version.

The table is created here (checkfirst) on first use, so store/ needs no knowledge of ML.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Text, func
from sqlmodel import Field, SQLModel, select

from store.db import get_engine, session_scope
from store.models import UTCDateTime, canonical_json, utcnow

MODEL_FORMAT = "raytrader-ml/1"


class MlModel(SQLModel, table=True):
    __tablename__ = "ml_models"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True)
    instance_id: int = Field(index=True)
    version: int = 1
    spec_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    data_start: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    data_end: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    trades: int = 0
    metrics_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    path: str = Field(default="", sa_column=Column(Text, nullable=False))
    format: str = Field(default=MODEL_FORMAT, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))


@dataclass
class TrainedModel:
    """What a model file holds: enough to gate signals (features, model, calibration)."""

    instance_id: int
    spec: Any  # ModelSpec
    model: Any  # ml.models.Model
    calibration: Any  # ml.apply.Calibration
    features: dict  # FeatureConfig.as_dict()


def _engine(url: str):
    engine = get_engine(url)
    SQLModel.metadata.create_all(engine, tables=[MlModel.__table__])
    return engine


def model_key(instance_id: int, family: str, params: dict, spec: dict, data: tuple) -> str:
    payload = {
        "instance": instance_id,
        "family": family,
        "params": params,
        "spec": spec,
        "data": list(data),
        "format": MODEL_FORMAT,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def stored_keys(url: str) -> set[str]:
    _engine(url)
    with session_scope(url) as session:
        return set(session.exec(select(MlModel.key)).all())


def save_model(url: str, key: str, trained: TrainedModel, folder: Path, row: dict) -> MlModel:
    """Write the file, then the row (a failed write leaves no row pointing at nothing)."""
    _engine(url)
    with session_scope(url) as session:
        latest = session.exec(
            select(func.max(MlModel.version)).where(MlModel.instance_id == trained.instance_id)
        ).one()
        version = int(latest or 0) + 1
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"instance{trained.instance_id}_v{version}.pkl"
        path.write_bytes(pickle.dumps(trained))
        record = MlModel(
            key=key,
            instance_id=trained.instance_id,
            version=version,
            spec_json=canonical_json(trained.spec.as_dict()),
            metrics_json=json.dumps(row.get("metrics", {}), default=str),
            data_start=row.get("data_start"),
            data_end=row.get("data_end"),
            trades=int(row.get("trades", 0)),
            path=str(path.resolve()),
        )
        session.add(record)
        return record


def latest_models(url: str, instance_ids: list[int]) -> dict[int, MlModel]:
    """instance id -> its highest-version model row (instances without one are left out)."""
    _engine(url)
    out: dict[int, MlModel] = {}
    with session_scope(url) as session:
        rows = session.exec(select(MlModel).where(MlModel.instance_id.in_(instance_ids))).all()
    for row in rows:
        if row.instance_id not in out or row.version > out[row.instance_id].version:
            out[row.instance_id] = row
    return out


def load_model(path: str | Path) -> TrainedModel:
    return pickle.loads(Path(path).read_bytes())


class MlExperiment(SQLModel, table=True):
    """An experiment run (its directory and best combination): `model train` uses the latest."""

    __tablename__ = "ml_experiments"

    id: int | None = Field(default=None, primary_key=True)
    path: str = Field(default="", sa_column=Column(Text, nullable=False))
    best_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))


def record_experiment(url: str, path: Path, best: dict | None) -> None:
    SQLModel.metadata.create_all(get_engine(url), tables=[MlExperiment.__table__])
    with session_scope(url) as session:
        session.add(MlExperiment(path=str(Path(path).resolve()), best_json=canonical_json(best)))


def latest_experiment(url: str) -> Path | None:
    SQLModel.metadata.create_all(get_engine(url), tables=[MlExperiment.__table__])
    with session_scope(url) as session:
        row = session.exec(select(MlExperiment).order_by(MlExperiment.id.desc())).first()
    return Path(row.path) if row is not None else None
