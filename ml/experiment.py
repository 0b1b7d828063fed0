"""`model experiment`: every combination of modelling choices, walk-forward, on Ray.

1. one Ray task per instance builds its dataset (its stored run's trades, or a backtest when it
   has none, + features; ml/dataset.py);
2. one Ray task per (instance, combination) runs the walk-forward (ml/walkforward.py) and
   returns the out-of-sample scores of every fitness function;
3. the leaderboard ranks combinations by the mean of the chosen fitness over the instances
   (ties by label, so the same data and configuration give the same leaderboard); the best
   combination is what `model train` uses.
Rows are appended to DIR/rows.jsonl as they finish; a rerun into the same DIR skips the rows
already there (resume). DIR/experiment.json holds the settings, every row, the leaderboard and
the best combination; DIR/leaderboard.csv the table, DIR/experiment.html plots of every fitness per combination.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from core.errors import UserError
from ml.features import FeatureConfig
from ml.fitness import FITNESS
from ml.jobs import InstanceRef, fan_out
from ml.models import ModelSpec

EXPERIMENT_VERSION = 1


@dataclass(frozen=True)
class ExperimentSettings:
    kinds: tuple[str, ...] = ("logreg", "rf", "hgb", "mlp")
    selections: tuple[str, ...] = ("none", "fdr", "mi", "l1")
    fitness: str = "sortino"
    methods: tuple[str, ...] = ("filter",)
    n_folds: int = 4
    time_budget: float = 10.0
    seed: int = 0
    features: FeatureConfig = field(default_factory=FeatureConfig)

    def combinations(self) -> list[ModelSpec]:
        return [
            ModelSpec(
                kind,
                selection,
                self.fitness,
                method,
                self.seed,
                self.time_budget,
                self.features.as_dict(),
            )
            for kind, selection, method in product(self.kinds, self.selections, self.methods)
        ]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = self.features.as_dict()
        return data


def dataset_task(
    ref: InstanceRef,
    bars: pd.DataFrame,
    features: FeatureConfig,
    config: Any,
    trades: pd.DataFrame | None = None,
):
    """Ray task: (dataset, None) or (None, why not); `trades`: the stored run's (None: backtest
    here)."""
    from ml.evaluate import Instance, instance_dataset
    from ml.features import FeatureBuilder
    from strategies.registry import make_strategy

    try:
        inst = Instance(
            ref.instance_id, make_strategy(ref.family, ref.params), bars, ref.symbol, ref.interval
        )
        return instance_dataset(inst, FeatureBuilder(features), config, trades), None
    except ValueError as exc:
        return None, str(exc)


def combination_task(ref: InstanceRef, ds: Any, spec: ModelSpec, n_folds: int) -> dict:
    """Ray task: one row of scores (or the reason there are none)."""
    import warnings

    from ml.walkforward import walk_forward

    row = {
        "instance_id": ref.instance_id,
        "label": spec.label,
        "kind": spec.kind,
        "selection": spec.selection,
        "method": spec.method,
        "trades": len(ds),
    }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wf = walk_forward(ds, spec, n_folds)
        row.update({name: _finite(wf.scores.get(name)) for name in FITNESS})
        row["oos_trades"] = len(wf.oos_rows)
        row["error"] = None
    except ValueError as exc:
        row.update({name: None for name in FITNESS})
        row["oos_trades"], row["error"] = 0, str(exc)
    return row


def run_experiment(
    refs: list[InstanceRef],
    series: dict,
    settings: ExperimentSettings,
    out: Path,
    config: Any,
    console: Console,
    url: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) the experiment into `out`; returns the experiment document. With `url`,
    instances with a stored backtest run use its trades (ml/stored.py)."""
    import ray

    from ml.stored import stored_trades

    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "rows.jsonl"
    done = _done_rows(rows_path)
    usable = [r for r in refs if r.series in series]
    bar_refs = {s: ray.put(b) for s, b in series.items()}
    trades = stored_trades(url, usable, series, config) if url else {}
    jobs = [
        (r, bar_refs[r.series], settings.features, config, trades.get(r.instance_id))
        for r in usable
    ]
    datasets = fan_out(dataset_task, jobs, "datasets", console)
    combos = settings.combinations()
    todo, skipped = [], []
    for ref, (ds, why) in zip(usable, datasets, strict=True):
        if ds is None:
            skipped.append({"instance_id": ref.instance_id, "reason": why})
            continue
        ds_ref = ray.put(ds)
        todo += [
            (ref, ds_ref, spec, settings.n_folds)
            for spec in combos
            if (ref.instance_id, spec.label) not in done
        ]

    def append(_k: int, row: dict) -> None:
        with rows_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")

    if todo:
        fan_out(combination_task, todo, "combinations", console, on_result=append)
    wanted = {r.instance_id for r in usable}
    rows = [r for r in _read_rows(rows_path) if r["instance_id"] in wanted]
    board = leaderboard(rows, combos, settings.fitness)
    document = {
        "version": EXPERIMENT_VERSION,
        "settings": settings.as_dict(),
        "instances": [asdict(r) for r in refs],
        "missing_data": [r.instance_id for r in refs if r.series not in series],
        "skipped": skipped,
        "rows": sorted(rows, key=lambda r: (r["instance_id"], r["label"])),
        "leaderboard": board,
        "best": board[0]["spec"] if board and board[0]["instances"] else None,
    }
    (out / "experiment.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    pd.DataFrame([{k: v for k, v in b.items() if k != "spec"} for b in board]).to_csv(
        out / "leaderboard.csv", index=False
    )
    from ml.evalrun import write_leaderboard_html

    write_leaderboard_html(board, settings.fitness, out / "experiment.html")
    return document


def leaderboard(rows: list[dict], combos: list[ModelSpec], fitness: str) -> list[dict]:
    """One entry per combination: mean of every fitness over the instances that scored it."""
    frame = pd.DataFrame(rows)
    board = []
    for spec in combos:
        mine = frame[frame["label"] == spec.label] if len(frame) else frame
        entry: dict[str, Any] = {
            "label": spec.label,
            "kind": spec.kind,
            "selection": spec.selection,
            "method": spec.method,
        }
        scored = mine[mine[fitness].notna()] if len(mine) else mine
        entry["instances"] = int(len(scored))
        for name in FITNESS:
            values = mine[name].dropna() if len(mine) else []
            entry[name] = float(values.mean()) if len(values) else None
        entry["spec"] = spec.as_dict()
        board.append(entry)
    board.sort(key=lambda e: (-(e[fitness] if e[fitness] is not None else -math.inf), e["label"]))
    for rank, entry in enumerate(board, 1):
        entry["rank"] = rank
    return board


def load_best(path: Path) -> ModelSpec:
    """The best combination of an experiment directory (or experiment.json)."""
    file = path / "experiment.json" if path.is_dir() else path
    if not file.is_file():
        raise UserError(
            f"no experiment at {str(path)!r} (experiment.json missing); run "
            "`cli.py model experiment --out DIR` first or pass its --experiment DIR"
        )
    try:
        best = json.loads(file.read_text()).get("best")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise UserError(
            f"{str(file)!r} is not an experiment.json (not a JSON object); give the directory "
            "`cli.py model experiment --out DIR` wrote"
        ) from None
    if not best:
        raise UserError(f"experiment {str(path)!r} has no best combination (no instance scored)")
    return ModelSpec(**best)


def _done_rows(path: Path) -> set[tuple[int, str]]:
    return {(r["instance_id"], r["label"]) for r in _read_rows(path)}


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
