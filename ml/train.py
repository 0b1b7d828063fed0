"""`model train`: the chosen configuration trained for every selected instance, on Ray.

Each Ray task takes a batch of instances (ml/jobs.py), reads each one's trades from its stored
backtest run (or backtests it when it has none), builds the dataset, scores the
configuration walk-forward (out-of-sample metrics for the row) and fits the final model on all
trades (threshold and size references chosen on an inner held-out part, as in every fold). The
driver writes each model (file + `ml_models` row, ml/modelstore.py) as its task finishes, so an
interrupted run loses nothing finished; a rerun skips the keys already stored (resume).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from ml.jobs import InstanceRef, fan_out
from ml.models import ModelSpec


def spec_for_training(url: str, experiment_dir: Path | None, say: Any = print) -> ModelSpec:
    """The configuration to train: the best of `experiment_dir`, else of the latest experiment
    stored in the database, else the default (logreg, no feature selection)."""
    from ml.experiment import load_best
    from ml.modelstore import latest_experiment

    chosen = experiment_dir or latest_experiment(url)
    if chosen is None:
        say("no experiment yet: using the default configuration (logreg, no selection)")
        return ModelSpec()
    return load_best(chosen)


@dataclass
class TrainSummary:
    selected: int = 0
    skipped: int = 0  # already trained with this key
    trained: int = 0
    failed: list[str] = field(default_factory=list)
    no_data: list[int] = field(default_factory=list)
    stored_runs: int = 0  # instances whose trades came from their stored backtest run
    rows: list[dict] = field(default_factory=list)


def train_task(
    ref: InstanceRef,
    bars: pd.DataFrame,
    spec: ModelSpec,
    n_folds: int,
    config: Any,
    trades: pd.DataFrame | None = None,
    builder: Any = None,
) -> dict:
    """One instance: {"trained": TrainedModel, "metrics": ..., ...} or {"error": why}.
    `trades`: its stored run's (None: backtest here); `builder`: shared by a batch."""
    from ml.evaluate import Instance, instance_dataset
    from ml.features import FeatureBuilder, FeatureConfig
    from ml.modelstore import TrainedModel
    from ml.walkforward import fit_in_sample, walk_forward
    from strategies.registry import make_strategy

    features = FeatureConfig.from_dict(spec.features)
    try:
        inst = Instance(
            ref.instance_id, make_strategy(ref.family, ref.params), bars, ref.symbol, ref.interval
        )
        ds = instance_dataset(inst, builder or FeatureBuilder(features), config, trades)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = walk_forward(ds, spec, n_folds).scores
            model, calibration = fit_in_sample(ds, np.arange(len(ds)), spec)
    except ValueError as exc:
        return {"instance_id": ref.instance_id, "error": str(exc)}
    trained = TrainedModel(ref.instance_id, spec, model, calibration, features.as_dict())
    return {
        "instance_id": ref.instance_id,
        "trained": trained,
        "trades": len(ds),
        "stored_run": trades is not None,
        "metrics": {
            **scores,
            "win_rate": float(ds.won.mean()),
            "features": len(model.columns),
            "threshold": calibration.threshold,
            "fit_seconds": model.fit_seconds,
        },
        "data_start": bars.index[0].to_pydatetime(),
        "data_end": bars.index[-1].to_pydatetime(),
        "error": None,
    }


def train_batch(items: list[tuple], spec: ModelSpec, n_folds: int, config: Any) -> list[dict]:
    """Ray task: train_task for each (ref, bars or its object ref, stored trades or None); one
    feature builder, so the instances of a series share its feature tables."""
    from ml.features import FeatureBuilder, FeatureConfig
    from ml.jobs import resolve_series

    builder = FeatureBuilder(FeatureConfig.from_dict(spec.features))
    fetched: dict = {}
    return [
        train_task(ref, resolve_series(fetched, bars), spec, n_folds, config, trades, builder)
        for ref, bars, trades in items
    ]


def train_models(
    url: str,
    refs: list[InstanceRef],
    series: dict,
    spec: ModelSpec,
    folder: Path,
    config: Any,
    console: Console,
    n_folds: int = 4,
) -> TrainSummary:
    """Train (or resume) every instance; see the module docstring."""
    import ray

    from backtest.runkeys import data_range
    from ml.jobs import batches
    from ml.modelstore import model_key, save_model, stored_keys
    from ml.stored import stored_trades

    summary = TrainSummary(selected=len(refs))
    done = stored_keys(url)
    todo, keys = [], []
    for ref in refs:
        bars = series.get(ref.series)
        if bars is None:
            summary.no_data.append(ref.instance_id)
            continue
        key = model_key(ref.instance_id, ref.family, ref.params, spec.as_dict(), data_range(bars))
        if key in done:
            summary.skipped += 1
            continue
        todo.append(ref)
        keys.append(key)
    trades = stored_trades(url, todo, series, config)
    summary.stored_runs = len(trades)
    bar_refs = {s: ray.put(series[s]) for s in {r.series for r in todo}}
    groups = batches(todo)
    jobs = [
        (
            [(todo[k], bar_refs[todo[k].series], trades.get(todo[k].instance_id)) for k in g],
            spec,
            n_folds,
            config,
        )
        for g in groups
    ]

    def store(b: int, outcomes: list[dict]) -> None:
        for k, outcome in zip(groups[b], outcomes, strict=True):
            if outcome.get("error"):
                summary.failed.append(f"#{outcome['instance_id']}: {outcome['error']}")
                continue
            record = save_model(url, keys[k], outcome["trained"], folder, outcome)
            summary.trained += 1
            summary.rows.append(
                {
                    "instance_id": record.instance_id,
                    "version": record.version,
                    "trades": record.trades,
                    **outcome["metrics"],
                    "path": record.path,
                }
            )

    if jobs:
        fan_out(
            train_batch, jobs, "training", console, on_result=store, sizes=[len(g) for g in groups]
        )
    return summary
