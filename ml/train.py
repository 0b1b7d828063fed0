"""`model train`: the chosen configuration trained for every selected instance, on Ray.

Each Ray task backtests its instance over the data range, builds the dataset, scores the
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


@dataclass
class TrainSummary:
    selected: int = 0
    skipped: int = 0  # already trained with this key
    trained: int = 0
    failed: list[str] = field(default_factory=list)
    no_data: list[int] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)


def train_task(ref: InstanceRef, bars: pd.DataFrame, spec: ModelSpec, n_folds: int,
               config: Any) -> dict:  # fmt: skip
    """Ray task: {"trained": TrainedModel, "metrics": ..., ...} or {"error": why}."""
    from ml.evaluate import Instance, instance_dataset
    from ml.features import FeatureBuilder, FeatureConfig
    from ml.modelstore import TrainedModel
    from ml.walkforward import fit_in_sample, walk_forward
    from strategies.registry import make_strategy

    features = FeatureConfig.from_dict(spec.features)
    try:
        inst = Instance(ref.instance_id, make_strategy(ref.family, ref.params), bars,
                        ref.symbol, ref.interval)  # fmt: skip
        ds = instance_dataset(inst, FeatureBuilder(features), config)
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
        "metrics": {**scores, "win_rate": float(ds.won.mean()), "features": len(model.columns),
                    "threshold": calibration.threshold, "fit_seconds": model.fit_seconds},
        "data_start": bars.index[0].to_pydatetime(),
        "data_end": bars.index[-1].to_pydatetime(),
        "error": None,
    }  # fmt: skip


def train_models(url: str, refs: list[InstanceRef], series: dict, spec: ModelSpec,
                 folder: Path, config: Any, console: Console, n_folds: int = 4) -> TrainSummary:  # fmt: skip
    """Train (or resume) every instance; see the module docstring."""
    import ray

    from backtest.runkeys import data_range
    from ml.modelstore import model_key, save_model, stored_keys

    summary = TrainSummary(selected=len(refs))
    done = stored_keys(url)
    jobs, keys = [], []
    bar_refs: dict = {}
    for ref in refs:
        bars = series.get(ref.series)
        if bars is None:
            summary.no_data.append(ref.instance_id)
            continue
        key = model_key(ref.instance_id, ref.family, ref.params, spec.as_dict(), data_range(bars))
        if key in done:
            summary.skipped += 1
            continue
        if ref.series not in bar_refs:
            bar_refs[ref.series] = ray.put(bars)
        jobs.append((ref, bar_refs[ref.series], spec, n_folds, config))
        keys.append(key)

    def store(k: int, outcome: dict) -> None:
        if outcome.get("error"):
            summary.failed.append(f"#{outcome['instance_id']}: {outcome['error']}")
            return
        record = save_model(url, keys[k], outcome["trained"], folder, outcome)
        summary.trained += 1
        summary.rows.append({"instance_id": record.instance_id, "version": record.version,
                             "trades": record.trades, **outcome["metrics"],
                             "path": record.path})  # fmt: skip

    if jobs:
        fan_out(train_task, jobs, "training", console, on_result=store)
    return summary
