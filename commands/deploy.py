"""`cli.py deploy`: the daily step that turns the bars stored since the last step into the prod.json
that `cli.py live --config` follows (docs/live.md#following-the-config-and-deploy).

One step:
1. the re-selection time t: 00:00 UTC of the day in which the newest stored bar of the candidates'
   pairs closed (a live run stores every bar, so t is today's midnight);
2. the backtests of every candidate (each instance of the exchange in the database, enabled or not:
   enabled means deployed, which live changes) on its bars up to t, with `backtest --all`'s
   machinery on Ray (backtest/fanout.py): a run whose key (family, parameters, data range,
   settings) is stored already is not run again, so a step without new bars computes nothing and
   an interrupted step resumes;
3. the rolling selection's newest weights: the method and fitness rule of `weights` on the
   trades that exited in [t - lookback, t) (analysis/rolling.py, as `weights --rolling` chooses
   at each re-selection), with each instance's p95 drawdown as `weights` writes it;
4. with `--retrain`, a model trained for every selected instance on its bars up to t (the best
   configuration of the latest experiment, as `model train`; a model whose key is stored already
   is not trained again), so the live run that picks up the file finds its models;
5. prod.json written atomically (a temporary file in the same directory, then os.replace), so a
   live run that follows the file never reads half of it.
`--once` runs one step (for cron); otherwise a step runs at once and then every `--every` days,
a few minutes after 00:00 UTC, until Ctrl-C (exit 130).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from commands.errors import UserError
from commands.options import DbOpt, ExchangeIdOpt
from commands.weights import METHODS, MIN_ANNUALISED_DAYS, MIN_DAILY_RETURNS

if TYPE_CHECKING:
    import pandas as pd

    from analysis.weights import FitnessRule

app = typer.Typer(invoke_without_command=True)
console = Console(stderr=True, soft_wrap=True, highlight=False)
DAY_S = 86_400
AFTER_MIDNIGHT_S = 300  # a step waits this long after 00:00 UTC: the last bar of the day is stored


@dataclass(frozen=True)
class DeployPlan:
    """A step's inputs, checked before anything is read or written."""

    db_url: str
    exchange: str
    out: Path
    work: Path  # the backtests' results.csv and trades.csv
    every: int  # days
    lookback: int  # days
    method: str
    rule: FitnessRule
    cash: float
    family: str | None = None
    symbol: str | None = None
    interval: str | None = None
    ray_address: str | None = None
    history: int | None = None  # days of bars backtested before t (None: all stored)
    models: Path | None = None  # --retrain: where the model files go (None: no retrain)


@dataclass
class StepResult:
    at: pd.Timestamp  # the re-selection time t
    runs: int  # backtests selected
    skipped: int  # already stored: not run again
    computed: int  # run now
    selected: int  # instances in prod.json (0: prod.json left as it was)
    written: bool
    retrained: str = ""  # --retrain: what the training did, one line


@app.callback()
def deploy(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", help="The prod.json to write (live --config follows it).")
    ] = Path("prod.json"),
    work: Annotated[
        Path, typer.Option("--dir", help="Where the backtests' results.csv and trades.csv go.")
    ] = Path("deploy_out"),
    every: Annotated[
        str, typer.Option("--every", help="Days between steps (re-selections): 1d, 7d or 30d.")
    ] = "1d",
    once: Annotated[
        bool, typer.Option("--once", help="One step, then exit (for a cron line).")
    ] = False,
    lookback: Annotated[
        str,
        typer.Option("--lookback", help="Select on the trades that exited this many days before."),
    ] = "60d",
    history: Annotated[
        str | None,
        typer.Option(
            "--history",
            help="Backtest only the bars of this many days before the re-selection, e.g. 120d "
            "(at least --lookback; default: every stored bar).",
        ),
    ] = None,
    method: Annotated[str, typer.Option("--method", help=f"One of: {', '.join(METHODS)}.")] = (
        "sortino"
    ),
    min_sortino: Annotated[float, typer.Option("--min-sortino", help="Fitness.")] = 0.0,
    min_expectancy: Annotated[float, typer.Option("--min-expectancy", help="Fitness.")] = 0.0,
    min_trades: Annotated[int, typer.Option("--min-trades", help="Fitness.")] = 20,
    min_days: Annotated[float, typer.Option("--min-days", help="Fitness.")] = MIN_ANNUALISED_DAYS,
    min_daily_returns: Annotated[int, typer.Option("--min-daily-returns", help="Fitness.")] = (
        MIN_DAILY_RETURNS
    ),
    cash: Annotated[
        float, typer.Option("--cash", help="Initial cash per instance for the figures.")
    ] = 10_000.0,
    family: Annotated[str | None, typer.Option("--family", help="Only this family.")] = None,
    symbol: Annotated[str | None, typer.Option("--symbol", help="Only this symbol.")] = None,
    interval: Annotated[str | None, typer.Option("--interval", help="Only this interval.")] = None,
    exchange: ExchangeIdOpt = "binance",
    db: DbOpt = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster for the backtests.")
    ] = None,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain",
            help="Also train a model for every selected instance on its bars up to the "
            "re-selection (the latest experiment's best configuration), before prod.json.",
        ),
    ] = False,
    models_dir: Annotated[
        Path, typer.Option("--models-dir", help="With --retrain: where model files are written.")
    ] = Path("models"),
) -> None:
    """Backtest the bars stored since the last step, choose the newest weights of the rolling
    selection and write prod.json atomically; --once, or every --every days until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from store.db import resolve_url

    plan = check_plan(
        resolve_url(db), exchange, out, work, every, lookback, method, cash,
        (min_sortino, min_expectancy, min_trades, min_days, min_daily_returns),
        (family, symbol, interval), ray_address, history,
    )  # fmt: skip
    if retrain:
        plan = dataclasses.replace(plan, models=checked_models_dir(models_dir))
    if once:
        report(run_step(plan))
        return
    loop(plan)


def check_plan(
    db_url, exchange, out, work, every, lookback, method, cash, fitness, filters, ray_address,
    history=None,
) -> DeployPlan:  # fmt: skip
    """Every flag checked before anything is read, run or written (one `error:` line)."""
    from analysis.rolling import EVERY_CHOICES, parse_days
    from analysis.weights import FitnessRule

    every_days = parse_days(every, "--every", EVERY_CHOICES)
    lookback_days = parse_days(lookback, "--lookback")
    history_days = None if history is None else parse_days(history, "--history")
    if history_days is not None and history_days < lookback_days:
        raise UserError(
            f"--history {history_days}d is shorter than --lookback {lookback_days}d: the "
            "selection would see fewer days than it looks back; give a longer --history"
        )
    if method not in METHODS:
        raise UserError(f"--method {method!r} is unknown; use one of {', '.join(METHODS)}")
    if not cash > 0 or cash == float("inf"):
        raise UserError(f"--cash {cash} must be a positive amount, e.g. --cash 10000")
    rule = FitnessRule(*fitness)
    if lookback_days < rule.min_days:
        raise UserError(
            f"--lookback {lookback_days}d is shorter than --min-days {rule.min_days:g}: no "
            "instance could pass the fitness rule; give a longer --lookback or a lower --min-days"
        )
    out = Path(out)
    if out.is_dir() or out.suffix.lower() != ".json":
        raise UserError(
            f"--out {str(out)!r} must name a .json file (the prod.json), e.g. prod.json"
        )
    if Path(work).exists() and not Path(work).is_dir():
        raise UserError(f"--dir {str(work)!r} is a file; give a directory for the backtests")
    return DeployPlan(
        db_url, exchange, out, Path(work), every_days, lookback_days, method, rule, float(cash),
        *filters, ray_address, history_days,
    )  # fmt: skip


def checked_models_dir(path: Path) -> Path:
    if Path(path).exists() and not Path(path).is_dir():
        raise UserError(f"--models-dir {str(path)!r} is a file; give a directory for the models")
    return Path(path)


def run_step(plan: DeployPlan, say: Callable[[str], object] = console.print) -> StepResult:
    """One step: backtests up to t (stored runs skipped), the newest weights, prod.json."""
    import pandas as pd

    from backtest.fanout import run_all

    candidates = _candidates(plan)
    at = selection_time(plan.db_url, candidates)
    say(f"deploy step at {at:%Y-%m-%d %H:%M} UTC: {len(candidates)} candidate instance(s)")
    end = at - pd.Timedelta(milliseconds=1)  # bars that opened before t (closed by t)
    start = None if plan.history is None else at - pd.Timedelta(days=plan.history)
    summary = run_all(
        plan.db_url, plan.work, plan.family, plan.symbol, plan.interval, start, end, None,
        plan.ray_address, False, None, plan.exchange, instances=candidates,
    )  # fmt: skip
    result = StepResult(at, summary.total, summary.skipped, summary.done + summary.failed, 0, False)
    if summary.lost:  # a selection without them could drop instances that are fine
        say(
            f"warning: {summary.lost} backtest(s) lost on Ray; {plan.out} left as it was; run "
            "the step again to finish them (the stored runs are not run again)"
        )
        return result
    config = newest_selection(plan, summary.results_csv, summary.trades_csv, at)
    if not config["instances"]:
        say(
            f"warning: no instance passed the fitness rule ({plan.rule.describe()}) on the "
            f"{plan.lookback} days before {at:%Y-%m-%d}; {plan.out} left as it was"
        )
        return result
    if plan.models is not None:
        result.retrained = retrain(plan, config, candidates, at, say)
    write_atomic(config, plan.out)
    result.selected, result.written = len(config["instances"]), True
    return result


def retrain(
    plan: DeployPlan,
    config: dict[str, Any],
    candidates: list,
    at: pd.Timestamp,
    say: Callable[[str], object],
) -> str:
    """`model train` for the selected instances on their bars that closed by t (from t -
    --history when given): the models live finds when it picks up the new prod.json. An
    instance with too few trades keeps trading without a model (as live does for one that
    never had one); the line returned says how many."""
    import pandas as pd

    from backtest.run import BacktestConfig
    from ml.jobs import InstanceRef, load_series, ray_for_commands
    from ml.train import spec_for_training, train_models

    chosen = {e.get("instance_id") for e in config["instances"]}
    refs = [
        InstanceRef(int(c.id), c.family, c.params, c.exchange, c.symbol, c.interval)
        for c in candidates
        if c.id in chosen
    ]
    end = at - pd.Timedelta(milliseconds=1)
    start = None if plan.history is None else at - pd.Timedelta(days=plan.history)
    series = load_series(plan.db_url, refs, start, end)
    spec = spec_for_training(plan.db_url, None, say)
    plan.models.mkdir(parents=True, exist_ok=True)
    with ray_for_commands(plan.ray_address, console):
        summary = train_models(
            plan.db_url, refs, series, spec, plan.models, BacktestConfig(), console
        )
    return (
        f"models ({spec.label}): {summary.trained} trained, {summary.skipped} already trained "
        f"(skipped), {len(summary.failed)} not trainable (too few trades or another reason `model "
        f"train` names; they trade without a model) of {len(refs)} selected; model files in "
        f"{plan.models}"
    )


def report(result: StepResult) -> None:
    console.print(
        f"backtests: {result.runs} run(s), {result.skipped} already stored (skipped), "
        f"{result.computed} computed; "
        + (
            f"wrote the selection of {result.at:%Y-%m-%d}: {result.selected} instance(s)"
            if result.written
            else "nothing written"
        )
    )
    if result.retrained:
        console.print(result.retrained)


def _candidates(plan: DeployPlan) -> list:
    from store.instances import list_instances

    found = list_instances(
        plan.db_url, False, plan.family, plan.symbol, plan.interval, exchange=plan.exchange
    )
    if not found:
        given = ", ".join(
            f"{k}={v}"
            for k, v in (
                ("family", plan.family),
                ("symbol", plan.symbol),
                ("interval", plan.interval),
            )
            if v
        )
        raise UserError(
            f"no strategy instances for {plan.exchange} in the database"
            + (f" matching {given}" if given else "")
            + "; register some with `cli.py strategies add ...` or `cli.py data demo`"
        )
    return found


def selection_time(db_url: str, candidates: list) -> pd.Timestamp:
    """00:00 UTC of the day in which the newest stored bar of the candidates' pairs closed
    (any stored interval: a resampled one is built from them)."""
    import pandas as pd

    from core.intervals import interval_ns
    from store.bars import bar_range, stored_intervals

    closes = []
    for exchange, symbol in sorted({(c.exchange, c.symbol) for c in candidates}):
        # the stored series of the pair (a resampled interval is built from one of them)
        for interval in stored_intervals(db_url, exchange, symbol):
            counted = bar_range(db_url, exchange, symbol, interval)
            if counted is not None:
                closes.append(counted[1] * 1_000_000 + interval_ns(interval))
    if not closes:
        raise UserError(
            "no stored bars for the candidates' series; import or download bars first "
            "(`cli.py data list` shows what is stored)"
        )
    return pd.Timestamp(max(closes), tz="UTC").floor("D")


def newest_selection(
    plan: DeployPlan, results_csv: Path | None, trades_csv: Path | None, at: pd.Timestamp
) -> dict[str, Any]:
    """prod.json of the rolling selection at t: the rule on the trades that exited in
    [t - lookback, t), one weight per candidate (analysis/rolling.py's window rule)."""
    import numpy as np
    import pandas as pd

    from analysis.rolling import choose, market, window_figures
    from analysis.weights import (
        KEY_COLUMNS,
        add_p95_drawdowns,
        instance_key,
        load_results,
        load_split_trades,
        prod_config,
    )

    frame = load_results(results_csv).drop_duplicates(list(KEY_COLUMNS)).reset_index(drop=True)
    trades = load_split_trades(trades_csv, results_csv)
    keys = [instance_key(r) for _, r in frame.iterrows()]
    since = at - pd.Timedelta(days=plan.lookback)
    exits = pd.to_datetime(trades["exit_time"], utc=True) if len(trades) else None
    seen = trades[(exits >= since) & (exits < at)] if exits is not None else trades
    weights = pd.Series(0.0, index=frame.index)
    if len(seen):
        m = market(seen, keys, plan.cash)
        day = int(m.day_of(np.array([at.value]))[0])
        chosen = choose(
            window_figures(m, day - plan.lookback, day, plan.rule), plan.method, plan.rule
        )
        weights = pd.Series(chosen[[m.keys.index(k) for k in keys]], index=frame.index)
    config = prod_config(frame, weights, plan.method, plan.rule, str(results_csv))
    config = {
        "exchange": plan.exchange,
        "selected_at": f"{at:%Y-%m-%dT%H:%M:%SZ}",
        "lookback_days": plan.lookback,
        **config,
    }
    if config["instances"]:
        add_p95_drawdowns(config["instances"], seen, plan.cash, 1_000, 0)
    return config


def write_atomic(config: dict[str, Any], path: Path) -> None:
    """The whole file or the old one, never half: a temporary file in the same directory (the
    same file system), flushed to disk, then renamed over `path` (os.replace is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(config, indent=2, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def next_step(now: float, every: int) -> float:
    """Epoch seconds of the next step: `every` days after today's 00:00 UTC, a few minutes in."""
    today = now - now % DAY_S
    return today + every * DAY_S + AFTER_MIDNIGHT_S


def loop(
    plan: DeployPlan,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> None:
    """A step now, then one every `every` days until Ctrl-C (exit 130). A step that fails on
    the data (no trades yet, a series without bars) is one `warning:` line; the loop goes on."""
    try:
        while True:
            try:
                report(run_step(plan))
            except UserError as exc:
                console.print(f"warning: this step stopped: {exc}")
            due = next_step(clock(), plan.every)
            console.print(f"next step at {time.strftime('%Y-%m-%d %H:%M', time.gmtime(due))} UTC")
            while (left := due - clock()) > 0:
                sleep(min(left, 60.0))
    except KeyboardInterrupt:
        console.print("deploy stopped (Ctrl-C); prod.json is as the last step wrote it")
        raise typer.Exit(130) from None
