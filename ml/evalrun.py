"""`model eval`: with/without/placebo per instance and method on Ray; eval.csv, HTML, table.

Each instance is evaluated with the configuration of its trained model (ml/modelstore.py), in
batches per series (ml/jobs.py), from its stored backtest run's trades when it has one. Out of
sample needs models that never saw the tested trades, so evaluation re-fits that configuration
per walk-forward fold (ml/evaluate.py); the stored final model, trained on every trade, is the
one live trading uses.
"""

from __future__ import annotations

import html
import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from ml.evaluate import EVAL_COLUMNS, EvalSettings, write_eval_csv
from ml.jobs import InstanceRef, fan_out
from ml.models import ModelSpec


def eval_task(
    ref: InstanceRef,
    bars: pd.DataFrame,
    spec: ModelSpec,
    settings: EvalSettings,
    trades: pd.DataFrame | None = None,
    builder: Any = None,
) -> dict:
    """One instance: {"rows": [...], "trades": frame of its runs' trades} or {"error": why}."""
    from ml.evaluate import Instance, evaluate_instance
    from ml.features import FeatureBuilder, FeatureConfig
    from strategies.registry import make_strategy

    builder = builder or FeatureBuilder(FeatureConfig.from_dict(spec.features))
    log: list[pd.DataFrame] = []
    try:
        inst = Instance(
            ref.instance_id, make_strategy(ref.family, ref.params), bars, ref.symbol, ref.interval
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows = evaluate_instance(inst, spec, settings, builder, trades, log)
    except ValueError as exc:
        return {"instance_id": ref.instance_id, "error": str(exc)}
    for row in rows:
        row.update({"family": ref.family, "symbol": ref.symbol, "interval": ref.interval})
    frame = pd.concat(log, ignore_index=True) if log else pd.DataFrame()
    return {"instance_id": ref.instance_id, "rows": rows, "trades": frame, "error": None}


def eval_batch(items: list[tuple], settings: EvalSettings) -> list[dict]:
    """Ray task: eval_task for each (ref, bars or its object ref, spec, stored trades or None);
    instances of one series with the same feature configuration share the feature tables."""
    from ml.features import FeatureBuilder, FeatureConfig
    from ml.jobs import resolve_series

    builders: dict[str, Any] = {}
    fetched: dict = {}
    out = []
    for ref, bars, spec, trades in items:
        config = FeatureConfig.from_dict(spec.features)
        builder = builders.setdefault(repr(config), FeatureBuilder(config))
        out.append(eval_task(ref, resolve_series(fetched, bars), spec, settings, trades, builder))
    return out


def run_eval(
    url: str,
    refs: list[InstanceRef],
    series: dict,
    specs: dict[int, ModelSpec],
    settings: EvalSettings,
    out: Path,
    console: Console,
) -> tuple[list[dict], list[str]]:
    """Evaluate every instance that has data and a spec; write eval.csv, trades_by_model.csv
    and eval.html."""
    import ray

    from ml.jobs import batches
    from ml.stored import stored_trades

    usable = [r for r in refs if r.series in series and r.instance_id in specs]
    trades = stored_trades(url, usable, series, settings.config)
    bar_refs = {s: ray.put(series[s]) for s in {r.series for r in usable}}
    groups = batches(usable)
    jobs = [
        (
            [
                (
                    usable[k],
                    bar_refs[usable[k].series],
                    specs[usable[k].instance_id],
                    trades.get(usable[k].instance_id),
                )
                for k in g
            ],
            settings,
        )
        for g in groups
    ]
    outcomes = [
        o
        for batch in fan_out(
            eval_batch, jobs, "evaluating", console, sizes=[len(g) for g in groups]
        )
        for o in batch
    ]
    rows, failed, logs = [], [], []
    for outcome in outcomes:
        if outcome.get("error"):
            failed.append(f"#{outcome['instance_id']}: {outcome['error']}")
        else:
            rows.extend(outcome["rows"])
            logs.append(outcome["trades"])
    out.mkdir(parents=True, exist_ok=True)
    write_eval_csv(rows, out / "eval.csv")
    write_trades_by_model(logs, out / "trades_by_model.csv")
    write_eval_html(rows, failed, out / "eval.html")
    return rows, failed


def write_trades_by_model(frames: list[pd.DataFrame], path: Path) -> None:
    """instance_id, method (none = without model), the trades.csv columns, p (the model's P(win)
    at the trade's signal; empty outside the out-of-sample folds)."""
    from backtest.run import TRADE_COLUMNS, iso_times

    frames = [f for f in frames if len(f)]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    columns = ["instance_id", "method", *TRADE_COLUMNS, "p"]
    iso_times(frame.reindex(columns=columns)).to_csv(path, index=False)


def eval_table(rows: list[dict]) -> Table:
    table = Table(
        title="Out of sample: Sortino without vs with model (engine runs); the real "
        "model replayed on the without run's trades vs the placebo and random-skip "
        "replays"
    )
    for name in (
        "instance",
        "method",
        "trades w/o",
        "trades with",
        "sortino w/o",
        "sortino with",
        "with (replay)",
        "placebo mean",
        "placebo p95",
        "random p95",
        "improved",
    ):
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(
            str(r["instance_id"]),
            r["method"],
            str(r["trades_without"]),
            str(r["trades_with"]),
            _cell(r["sortino_without"], r.get("without_note")),
            _cell(r["sortino_with"], r.get("with_note")),
            _cell(r["sortino_with_replay"], r.get("replay_note")),
            _cell(r["sortino_placebo_mean"], r.get("placebo_mean_note")),
            _cell(r["sortino_placebo_p95"], r.get("placebo_note")),
            _cell(r["sortino_random_skip_p95"], r.get("random_note")),
            "yes" if r["improved"] else "no",
        )
    return table


def write_eval_html(rows: list[dict], failed: list[str], path: Path) -> None:
    """Plotly bars per instance and method (plotly JS inline: opens offline) and the table."""
    import plotly.graph_objects as go
    import plotly.io as pio

    frame = pd.DataFrame(rows, columns=list(EVAL_COLUMNS) if not rows else None)
    parts = []
    if len(frame):
        labels = [f"#{i} {m}" for i, m in zip(frame["instance_id"], frame["method"], strict=True)]
        fig = go.Figure()
        for column, name in (
            ("sortino_without", "without"),
            ("sortino_with", "with model"),
            ("sortino_placebo_p95", "placebo p95"),
            ("sortino_random_skip_p95", "random skip p95"),
        ):
            fig.add_bar(x=labels, y=frame[column].clip(-1e3, 1e3), name=name)
        fig.update_layout(title="Out-of-sample Sortino", barmode="group", template="plotly_white")
        parts.append(pio.to_html(fig, include_plotlyjs=True, full_html=False, div_id="sortino"))
        trades = go.Figure()
        trades.add_bar(x=labels, y=frame["trades_without"], name="trades without")
        trades.add_bar(x=labels, y=frame["trades_with"], name="trades with model")
        trades.update_layout(title="Trades out of sample", barmode="group", template="plotly_white")
        parts.append(pio.to_html(trades, include_plotlyjs=False, full_html=False, div_id="trades"))
        parts.append(frame.to_html(index=False, float_format=lambda v: f"{v:.4g}"))
    notes = "".join(f"<p>not evaluated: {html.escape(f)}</p>" for f in failed)
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>raytrader model eval</title>"
        "</head><body><h1>Model evaluation (out of sample)</h1>"
        + notes
        + "".join(parts)
        + "</body></html>\n"
    )


def spec_from_row(spec_json: str) -> ModelSpec:
    return ModelSpec(**json.loads(spec_json))


def _cell(value: Any, note: Any) -> str:
    """A Sortino, or its note instead when it is ill-conditioned ("n/a (2 losing days)"), or
    the number with a note beside it ("-3.40 (1 of 5 seeds left out (equity <= 0))")."""
    if not isinstance(note, str) or not note:
        return _f(value)
    return note if note.startswith("n/a") else f"{_f(value)} ({note})"


def _f(value: Any) -> str:
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return "n/a"


def write_leaderboard_html(board: list[dict], fitness: str, path: Path) -> None:
    """The experiment's leaderboard: one bar per combination for each fitness, and the table."""
    import plotly.io as pio
    from plotly.subplots import make_subplots

    names = ("roc_auc", "f1", "neg_log_loss", "sortino", "expectancy")
    fig = make_subplots(rows=len(names), cols=1, subplot_titles=names, shared_xaxes=True)
    labels = [e["label"] for e in board]
    for k, name in enumerate(names, 1):
        values = [e[name] if e[name] is not None else float("nan") for e in board]
        fig.add_bar(x=labels, y=values, name=name, row=k, col=1)
    fig.update_layout(
        title=f"Out-of-sample fitness per combination (ranked by {fitness})",
        height=220 * len(names),
        showlegend=False,
        template="plotly_white",
    )
    table = pd.DataFrame([{k: v for k, v in e.items() if k != "spec"} for e in board])
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>raytrader model experiment"
        "</title></head><body><h1>Model experiment: leaderboard</h1>"
        + pio.to_html(fig, include_plotlyjs=True, full_html=False, div_id="leaderboard")
        + table.to_html(index=False, float_format=lambda v: f"{v:.4g}")
        + "</body></html>\n"
    )
