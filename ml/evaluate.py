"""Without model vs with model, out of sample, inside the engine; with placebo and random skip.

For one strategy instance over its bars:
1. backtest without a model; its trades are the dataset (ml/dataset.py);
2. walk-forward (ml/walkforward.py): each fold's model is trained before its test block; so are
   the placebo models, trained on labels and returns shuffled together (several seeds);
3. out of sample = from the first test trade's signal on: every run below is a real backtest of
   the same bars (a warm-up of `WARMUP_BARS` before, where every signal is skipped, so the
   strategy's lookback is filled) and its metrics cover the out-of-sample bars only:
   - without: the strategy alone;
   - with, per application method (ml/apply.py): the fold models gate the signals;
   - placebo, per method and seed: the placebo fold models gate them;
   - random skip, per method and seed: signals skipped at random at the with-model run's skip
     rate (a method that never skips, like size, gives the without-model figures).
`placebo_margin` = (with - placebo mean) / (placebo p95 - placebo mean): how many placebo
half-bands the with-model Sortino stands above the placebos (about 1 happens by chance).
`improved` = with beats without, the random skips' p95 and the placebos' p95 by a margin of at
least MIN_MARGIN (with a handful of placebo seeds, p95 alone is beaten by chance too often).

Sortino is the project's (daily equity returns, analysis/metrics.py). An equity curve with no
losing day has no downside deviation; its Sortino is reported as +inf when it gained and 0 when
it stayed flat (no trades), so such runs still compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from actors.kernel import run_kernel
from backtest.run import BacktestConfig, assemble_result, run_backtest
from factors.bars import interval_ns
from ml.apply import ModelGate, RandomSkipGate
from ml.dataset import Dataset, build_dataset
from ml.features import FeatureBuilder
from ml.models import METHODS, ModelSpec
from ml.walkforward import WalkForward, placebo_labels, walk_forward

WARMUP_BARS = 300
MIN_MARGIN = 2.0
EVAL_COLUMNS = (
    "instance_id", "method", "trades_without", "trades_with", "sortino_without", "sortino_with",
    "sortino_placebo_mean", "sortino_placebo_p95", "sortino_random_skip_p95",
    "expectancy_without", "expectancy_with", "max_drawdown_without", "max_drawdown_with",
    "skip_rate", "placebo_margin", "improved", "oos_start", "oos_end", "kind", "selection", "placebo_seeds",
    "random_seeds",
)  # fmt: skip


@dataclass(frozen=True)
class EvalSettings:
    n_folds: int = 4
    first_train: float = 0.4
    placebo_seeds: int = 5
    random_seeds: int = 20
    methods: tuple[str, ...] = METHODS
    config: BacktestConfig = field(default_factory=BacktestConfig)


@dataclass
class Instance:
    """What evaluation needs of one strategy instance."""

    instance_id: int | None
    strategy: Any
    bars: pd.DataFrame
    symbol: str
    interval: str


class WindowGate:
    """Skips every signal before `start_ns` (warm-up); asks `inner` (if any) after it."""

    def __init__(self, start_ns: int, inner: Any = None) -> None:
        self.start_ns, self.inner = start_ns, inner

    def __call__(self, signal) -> tuple[bool, float]:
        if signal.ts < self.start_ns:
            return False, 0.0
        return self.inner(signal) if self.inner is not None else (True, 1.0)


def instance_dataset(inst: Instance, builder: FeatureBuilder, config: BacktestConfig) -> Dataset:
    result = run_backtest(inst.strategy, inst.bars, inst.symbol, inst.interval, config)
    return build_dataset(result.trades, inst.bars, inst.interval, builder)


def evaluate_instance(inst: Instance, spec: ModelSpec, settings: EvalSettings = EvalSettings(),
                      builder: FeatureBuilder | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """One row per application method (EVAL_COLUMNS); see the module docstring."""
    builder = builder or FeatureBuilder()
    ds = instance_dataset(inst, builder, settings.config)
    real = walk_forward(ds, spec, settings.n_folds, settings.first_train)
    placebos = [
        walk_forward(ds, spec, settings.n_folds, settings.first_train, *placebo_labels(ds, seed))
        for seed in range(settings.placebo_seeds)
    ]
    window = OosWindow.of(inst, real)
    features = window.candidate_features(inst, builder, ds.features.columns)
    without = window.run(inst, None, settings.config)
    rows = []
    for method in settings.methods:
        gate = ModelGate(real.folds, features, method)
        with_model = window.run(inst, gate, settings.config)
        placebo = [window.run(inst, ModelGate(p.folds, features, method), settings.config)
                   for p in placebos]  # fmt: skip
        rate = gate.skip_rate
        random = [window.run(inst, RandomSkipGate(rate, seed), settings.config)
                  for seed in range(settings.random_seeds)] if rate > 0 else [without]  # fmt: skip
        rows.append(_row(inst, spec, method, window, without, with_model, placebo, random, rate,
                         settings))  # fmt: skip
    return rows


@dataclass
class OosWindow:
    start_ns: int  # signal (close) time of the first out-of-sample trade
    first_bar: int  # position of the first bar of the runs (warm-up included)
    oos_bar: int  # position of the bar that closes at start_ns

    @classmethod
    def of(cls, inst: Instance, wf: WalkForward) -> OosWindow:
        open_ns = pd.DatetimeIndex(inst.bars.index).as_unit("ns").asi8
        start = wf.oos_start_ns
        oos_bar = int(np.searchsorted(open_ns + interval_ns(inst.interval), start))
        return cls(start, max(0, oos_bar - WARMUP_BARS), oos_bar)

    def candidate_features(self, inst: Instance, builder: FeatureBuilder,
                           columns: pd.Index) -> pd.DataFrame:  # fmt: skip
        """Feature rows of every bar where an entry may fire out of sample, by close time."""
        frame = inst.strategy.compute(inst.bars)
        entries = np.zeros(len(frame), dtype=bool)
        for column in ("enter_long", "enter_short"):
            if column in frame:
                entries |= frame[column].to_numpy(bool)
        positions = np.flatnonzero(entries)
        positions = positions[positions >= self.oos_bar]
        rows = builder.rows(inst.bars, inst.interval, positions).reindex(columns=columns)
        close_ns = pd.DatetimeIndex(inst.bars.index).as_unit("ns").asi8 + interval_ns(inst.interval)
        rows.index = pd.Index(close_ns[positions], name="signal_ns")
        return rows

    def run(self, inst: Instance, gate: Any, config: BacktestConfig) -> dict[str, Any]:
        bars = inst.bars.iloc[self.first_bar :]
        output = run_kernel(inst.strategy, bars, inst.symbol, inst.interval, config,
                            signal_gate=WindowGate(self.start_ns, gate))  # fmt: skip
        result = assemble_result(inst.strategy, bars, inst.symbol, inst.interval, config, output)
        oos_from = inst.bars.index[self.oos_bar]
        equity = result.equity[result.equity["timestamp"] >= oos_from]
        from analysis.metrics import compute_metrics
        from analysis.spans import NO_MINIMUM

        # No minimum span here: the with/without/placebo Sortinos are compared with each other
        # on the same out-of-sample window, never shown as a strategy's annualised figure.
        metrics = compute_metrics(result.trades, equity, config.cash, NO_MINIMUM)
        metrics["sortino"] = sortino_value(metrics)
        return metrics


def sortino_value(metrics: dict[str, Any]) -> float:
    value = metrics.get("sortino")
    if value is not None:
        return float(value)
    return float("inf") if (metrics.get("total_return") or 0.0) > 0 else 0.0


def _row(inst, spec, method, window, without, with_model, placebo, random, rate,
         settings) -> dict[str, Any]:  # fmt: skip
    placebo_s = np.array([m["sortino"] for m in placebo], dtype=float)
    random_s = np.array([m["sortino"] for m in random], dtype=float)
    placebo_p95 = float(np.percentile(placebo_s, 95)) if len(placebo_s) else float("nan")
    random_p95 = float(np.percentile(random_s, 95))
    with_s, placebo_mean = with_model["sortino"], float(np.mean(placebo_s))
    spread = placebo_p95 - placebo_mean
    margin = (with_s - placebo_mean) / spread if spread > 1e-12 else float("nan")
    beats = with_s > max(without["sortino"], placebo_p95, random_p95)
    improved = beats and (margin >= MIN_MARGIN or (spread <= 1e-12 and with_s > placebo_mean))
    return {
        "instance_id": inst.instance_id,
        "method": method,
        "trades_without": int(without["trades"]),
        "trades_with": int(with_model["trades"]),
        "sortino_without": without["sortino"],
        "sortino_with": with_model["sortino"],
        "sortino_placebo_mean": placebo_mean,
        "sortino_placebo_p95": placebo_p95,
        "sortino_random_skip_p95": random_p95,
        "expectancy_without": without.get("expectancy"),
        "expectancy_with": with_model.get("expectancy"),
        "max_drawdown_without": without.get("max_drawdown"),
        "max_drawdown_with": with_model.get("max_drawdown"),
        "skip_rate": rate,
        "placebo_margin": margin,
        "improved": bool(improved),
        "oos_start": str(inst.bars.index[window.oos_bar]),
        "oos_end": str(inst.bars.index[-1]),
        "kind": spec.kind,
        "selection": spec.selection,
        "placebo_seeds": settings.placebo_seeds,
        "random_seeds": settings.random_seeds if rate > 0 else 0,
    }


def write_eval_csv(rows: list[dict[str, Any]], path) -> None:
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in EVAL_COLUMNS]
    frame.reindex(columns=[*EVAL_COLUMNS, *extra]).to_csv(path, index=False)
