"""`cli.py model experiment | train | eval`: machine learning over trade outcomes (ml/)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from commands.errors import UserError
from commands.options import DbOpt

app = typer.Typer(no_args_is_help=True, help="Learn when strategies win; apply and evaluate.")
_out = Console(width=None if sys.stdout.isatty() else 150)  # tables stay readable in logs
_err = Console(stderr=True)

StrategiesOpt = Annotated[
    str | None,
    typer.Option("--strategies", help="all, or N: the first N enabled instances (by id)."),
]
InstancesOpt = Annotated[str | None, typer.Option("--instances", help="Instance ids, e.g. 3,7,9.")]
FamilyOpt = Annotated[
    str | None, typer.Option("--family", help="With --strategies: only this family.")
]
IntervalOpt = Annotated[
    str | None, typer.Option("--interval", help="With --strategies: only this interval.")
]
StartOpt = Annotated[str | None, typer.Option("--start", help="First bar time (ISO, UTC).")]
EndOpt = Annotated[str | None, typer.Option("--end", help="Last bar time (ISO, UTC).")]
RayOpt = Annotated[str | None, typer.Option("--ray-address", help="Ray cluster (default: local).")]
FoldsOpt = Annotated[int, typer.Option("--folds", help="Walk-forward test folds.")]
ExperimentOpt = Annotated[
    Path | None,
    typer.Option(
        "--experiment",
        help="Experiment directory whose best configuration to use "
        "(default: the latest experiment).",
    ),
]
ModelsDirOpt = Annotated[Path, typer.Option("--models-dir", help="Where model files are written.")]


def _csv(text: str, allowed: tuple[str, ...], option: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise UserError(f"{option} {text!r}: use a comma-separated subset of {', '.join(allowed)}")
    return items


def _inputs(
    db: str | None,
    strategies: str | None,
    instances: str | None,
    start,
    end,
    family: str | None = None,
    interval: str | None = None,
) -> tuple:
    """(url, instance refs, series) with every input checked before Ray starts."""
    from ml.jobs import load_series, parse_selection, select_instances
    from store.db import resolve_url

    count, ids = parse_selection(strategies, instances)
    url = resolve_url(db)
    refs = select_instances(url, count, ids, family, interval)
    series = load_series(url, refs, start, end)
    if not series:
        raise UserError(
            f"no bars for any selected instance between {start or 'the start'} and "
            f"{end or 'the end'}; widen --start/--end or import data (`cli.py data list`)"
        )
    return url, refs, series


def _folds(folds: int) -> int:
    if not 2 <= folds <= 20:
        raise UserError(f"--folds {folds} is out of range; use 2..20")
    return folds


@app.command()
def experiment(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    strategies: StrategiesOpt = None,
    instances: InstancesOpt = None,
    family: FamilyOpt = None,
    interval: IntervalOpt = None,
    kinds: Annotated[str, typer.Option(help="Model kinds to try.")] = "logreg,rf,hgb,mlp",
    selections: Annotated[str, typer.Option(help="Feature selections.")] = "none,fdr,mi,l1",
    fitness: Annotated[str, typer.Option(help="Fitness that ranks combinations.")] = "sortino",
    method: Annotated[
        str,
        typer.Option(
            help="Application method(s) tried: each is a combination axis; the trading fitness "
            "(sortino, expectancy) scores the trades the method takes, sized as it sizes them."
        ),
    ] = "filter",
    tsfresh: Annotated[
        str, typer.Option(help="tsfresh set: lean|minimal|efficient|none.")
    ] = "lean",
    window: Annotated[int, typer.Option(help="Bars in the tsfresh window.")] = 30,
    time_budget: Annotated[float, typer.Option(help="Seconds per model fit (FLAML).")] = 10.0,
    folds: FoldsOpt = 4,
    start: StartOpt = None,
    end: EndOpt = None,
    db: DbOpt = None,
    ray_address: RayOpt = None,
) -> None:
    """Try every combination of model kind and feature selection, walk-forward, on Ray."""
    from backtest.run import BacktestConfig, prepare_out_dir
    from ml.experiment import ExperimentSettings, run_experiment
    from ml.features import FeatureConfig
    from ml.fitness import FITNESS
    from ml.jobs import ray_for_commands
    from ml.models import KINDS, METHODS, SELECTIONS
    from ml.modelstore import record_experiment

    if not 0 < time_budget < math.inf:
        raise UserError(f"--time-budget must be seconds > 0 per model fit, got {time_budget}")
    settings = ExperimentSettings(
        _csv(kinds, KINDS, "--kinds"),
        _csv(selections, SELECTIONS, "--selections"),
        _csv(fitness, FITNESS, "--fitness")[0],
        _csv(method, METHODS, "--method"),
        _folds(folds),
        time_budget,
        0,
        FeatureConfig(window=window, tsfresh=tsfresh),
    )
    # every input checked before the output directory is made: a mistake leaves nothing behind
    url, refs, series = _inputs(db, strategies, instances, start, end, family, interval)
    out = prepare_out_dir(out)
    with ray_for_commands(ray_address, _err):
        doc = run_experiment(refs, series, settings, out, BacktestConfig(), _err, url)
    record_experiment(url, out, doc["best"])
    _print_leaderboard(doc, settings.fitness)
    _out.print(
        f"wrote {out / 'experiment.json'}, leaderboard.csv and experiment.html", highlight=False
    )


def _print_leaderboard(doc: dict, fitness: str) -> None:
    from rich.table import Table

    table = Table(title=f"Leaderboard (out-of-sample, ranked by {fitness})")
    for name in (
        "rank",
        "combination",
        "instances",
        "roc_auc",
        "f1",
        "neg_log_loss",
        "sortino",
        "expectancy",
    ):
        table.add_column(name, justify="right")
    for e in doc["leaderboard"]:
        values = [e[k] for k in ("roc_auc", "f1", "neg_log_loss", "sortino", "expectancy")]
        table.add_row(
            str(e["rank"]),
            e["label"],
            str(e["instances"]),
            *("n/a" if v is None else f"{v:.4g}" for v in values),
        )
    _out.print(table)
    for s in doc["skipped"]:
        _out.print(f"instance {s['instance_id']} skipped: {s['reason']}", highlight=False)
    best = doc["best"]
    _out.print(
        f"best: {best['kind']}/{best['selection']}/{best['method']}"
        if best
        else "best: none (no scores)"
    )


@app.command()
def train(
    strategies: StrategiesOpt = None,
    instances: InstancesOpt = None,
    family: FamilyOpt = None,
    interval: IntervalOpt = None,
    experiment_dir: ExperimentOpt = None,
    models_dir: ModelsDirOpt = Path("models"),
    folds: FoldsOpt = 4,
    start: StartOpt = None,
    end: EndOpt = None,
    db: DbOpt = None,
    ray_address: RayOpt = None,
) -> None:
    """Train the chosen configuration for every selected instance; store file + DB row."""
    from backtest.run import BacktestConfig, prepare_out_dir
    from ml.jobs import ray_for_commands
    from ml.train import spec_for_training, train_models
    from ml.walkforward import min_trades

    _folds(folds)
    url, refs, series = _inputs(db, strategies, instances, start, end, family, interval)
    spec = spec_for_training(url, experiment_dir, _err.print)
    models_dir = prepare_out_dir(models_dir)
    with ray_for_commands(ray_address, _err):
        summary = train_models(url, refs, series, spec, models_dir, BacktestConfig(), _err, folds)
    _out.print(
        f"{spec.label}: {summary.selected} selected, {summary.trained} trained, "
        f"{summary.skipped} already trained (skipped), {len(summary.failed)} not trainable, "
        f"{len(summary.no_data)} without data ({summary.stored_runs} read their stored backtest "
        f"run's trades, the others were backtested); model files in {models_dir}",
        highlight=False,
    )
    failed = sorted(summary.failed, key=lambda line: int(line[1 : line.index(":")]))  # "#id: "
    for line in failed[:20]:
        _out.print(f"  not trained {line}", highlight=False)
    if len(summary.failed) > 20:
        _out.print(f"  ... and {len(summary.failed) - 20} more not trained", highlight=False)
    if summary.failed and not summary.trained and not summary.skipped:
        _out.print(
            f"no model trained (the reasons above): a model needs >= {min_trades()} trades of "
            "its instance over the selected bars; select more instances (--strategies all) "
            "or give them more bars (an earlier --start, a longer history)",
            highlight=False,
        )


@app.command("eval")
def eval_(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    strategies: StrategiesOpt = None,
    instances: InstancesOpt = None,
    family: FamilyOpt = None,
    interval: IntervalOpt = None,
    experiment_dir: ExperimentOpt = None,
    models_dir: ModelsDirOpt = Path("models"),
    methods: Annotated[str, typer.Option(help="Application methods.")] = "filter,size,kelly",
    placebo_seeds: Annotated[int, typer.Option(help="Placebo seeds.")] = 5,
    random_seeds: Annotated[int, typer.Option(help="Random-skip seeds.")] = 20,
    folds: FoldsOpt = 4,
    start: StartOpt = None,
    end: EndOpt = None,
    db: DbOpt = None,
    ray_address: RayOpt = None,
) -> None:
    """Out of sample, per instance and method: without vs with model, placebo, random skip."""
    from backtest.run import BacktestConfig, prepare_out_dir
    from ml.evalrun import eval_table, run_eval, spec_from_row
    from ml.evaluate import EvalSettings
    from ml.jobs import ray_for_commands
    from ml.models import METHODS
    from ml.modelstore import latest_models
    from ml.train import spec_for_training, train_models

    if not (1 <= placebo_seeds <= 100 and 1 <= random_seeds <= 1000):
        raise UserError("--placebo-seeds must be 1..100 and --random-seeds 1..1000")
    settings = EvalSettings(
        _folds(folds),
        0.4,
        placebo_seeds,
        random_seeds,
        _csv(methods, METHODS, "--methods"),
        BacktestConfig(),
    )
    url, refs, series = _inputs(db, strategies, instances, start, end, family, interval)
    out = prepare_out_dir(out)
    with ray_for_commands(ray_address, _err):
        ids = [r.instance_id for r in refs]
        missing = [r for r in refs if r.instance_id not in latest_models(url, ids)]
        if missing:
            spec = spec_for_training(url, experiment_dir, _err.print)
            _err.print(f"training {len(missing)} instance(s) without a model first")
            train_models(
                url,
                missing,
                series,
                spec,
                prepare_out_dir(models_dir),
                BacktestConfig(),
                _err,
                folds,
            )
        specs = {i: spec_from_row(m.spec_json) for i, m in latest_models(url, ids).items()}
        rows, failed = run_eval(url, refs, series, specs, settings, out, _err)
    _out.print(eval_table(rows))
    for line in failed[:20]:
        _out.print(f"not evaluated {line}", highlight=False)
    _out.print(
        f"wrote {out / 'eval.csv'}, {out / 'trades_by_model.csv'} and {out / 'eval.html'}",
        highlight=False,
    )


# `model run` lives in its own module: serving is a separate concern from the research commands.
from commands.model_run import run as _run  # noqa: E402

app.command("run")(_run)
