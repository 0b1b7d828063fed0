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
4. the controls, vectorised over seeds on the without run's trades (ml/controls.py):
   - placebo, per method and seed: the placebo fold models' decisions;
   - random skip, per method and seed: trades skipped at random at the with-model run's skip
     rate (a method that never skips, like size, gives the without-model figures);
   - the real model's decisions replayed the same way (`sortino_with_replay`), so the controls
     are compared like for like.
`placebo_margin` = (replayed - placebo mean) / (placebo p95 - placebo mean): how many placebo
half-bands the real model stands above the placebos (about 1 happens by chance).
`improved` = the with-model engine run beats without, and the replayed real model beats the
random skips' p95 and the placebos' p95 by a margin of at least MIN_MARGIN (with a handful of
placebo seeds, p95 alone is beaten by chance too often).

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
from backtest.run import BacktestConfig, equity_curve, run_backtest, trades_frame
from core.intervals import interval_ns
from ml.apply import ModelGate
from ml.controls import (
    MIN_LOSING_DAYS,
    Replay,
    band_note,
    gate_weights,
    mean_note,
    random_weights,
)
from ml.dataset import Dataset, build_dataset
from ml.features import FeatureBuilder, signal_positions
from ml.models import METHODS, ModelSpec
from ml.walkforward import WalkForward, placebo_labels, walk_forward

WARMUP_BARS = 300
MIN_MARGIN = 2.0
EVAL_COLUMNS = (
    "instance_id",
    "method",
    "trades_without",
    "trades_with",
    "sortino_without",
    "sortino_with",
    "sortino_placebo_mean",
    "sortino_placebo_p95",
    "sortino_random_skip_p95",
    "sortino_with_replay",
    "expectancy_without",
    "expectancy_with",
    "max_drawdown_without",
    "max_drawdown_with",
    "skip_rate",
    "placebo_margin",
    "improved",
    "oos_start",
    "oos_end",
    "kind",
    "selection",
    "placebo_seeds",
    "random_seeds",
    "replay_note",
    "placebo_note",
    "placebo_mean_note",
    "random_note",
    "with_note",
    "without_note",
)


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


def instance_dataset(
    inst: Instance,
    builder: FeatureBuilder,
    config: BacktestConfig,
    trades: pd.DataFrame | None = None,
) -> Dataset:
    """The instance's dataset from its stored run's `trades` (trades.csv columns), or from a
    backtest run here when it has none."""
    if trades is None:
        trades = run_backtest(inst.strategy, inst.bars, inst.symbol, inst.interval, config).trades
    return build_dataset(trades, inst.bars, inst.interval, builder)


def evaluate_instance(
    inst: Instance,
    spec: ModelSpec,
    settings: EvalSettings = EvalSettings(),
    builder: FeatureBuilder | None = None,
    trades: pd.DataFrame | None = None,
    trade_log: list | None = None,
) -> list[dict[str, Any]]:
    """One row per application method (EVAL_COLUMNS); see the module docstring. `trades`: the
    stored run's trades (None: backtest here); `trade_log` gets the trades of every engine run
    (trades.csv columns plus instance_id, method, p)."""
    builder = builder or FeatureBuilder()
    ds = instance_dataset(inst, builder, settings.config, trades)
    real = walk_forward(ds, spec, settings.n_folds, settings.first_train)
    placebos = [
        walk_forward(
            ds, spec, settings.n_folds, settings.first_train, *placebo_labels(ds, seed), score=False
        )
        for seed in range(settings.placebo_seeds)
    ]
    window = OosWindow.of(inst, real)
    features = window.candidate_features(inst, builder, ds.features.columns)
    without = window.run(inst, None, settings.config)
    replay = Replay.of(
        without.equity, without.trades, settings.config.cash, trade_signal_ns(inst, without.trades)
    )
    real_gate = ModelGate(real.folds, features, "filter")  # decisions replayed; method set below
    placebo_gates = [ModelGate(p.folds, features, "filter") for p in placebos]
    _log(trade_log, inst, "none", without.trades, real_gate)
    rows = []
    for method in settings.methods:
        gate = ModelGate(real.folds, features, method)
        with_model = window.run(inst, gate, settings.config)
        for g in (real_gate, *placebo_gates):
            g.method = method
        real_weights = gate_weights([real_gate], replay.signal_ns)
        placebo_weights = gate_weights(placebo_gates, replay.signal_ns)
        replayed = replay.sortinos(real_weights)[0]
        placebo = replay.sortinos(placebo_weights)
        rate = gate.skip_rate
        random_w = (
            random_weights(rate, settings.random_seeds, len(replay.pnl)) if rate > 0 else None
        )
        random = (
            replay.sortinos(random_w)
            if random_w is not None
            else np.array([without.metrics["sortino"]])
        )
        notes = _notes(replay, real_weights, placebo_weights, placebo, random_w, random)
        rows.append(
            _row(
                inst,
                spec,
                method,
                window,
                without.metrics,
                with_model.metrics,
                replayed,
                placebo,
                random,
                rate,
                settings,
            )
            | notes
        )
        _log(trade_log, inst, method, with_model.trades, gate)
    return rows


def _notes(replay, real_w, placebo_w, placebo, random_w, random) -> dict[str, str]:
    """Which Sortinos of a row are ill-conditioned (ml/controls.py), for the table and eval.csv:
    the numbers stay (except a replay through zero equity, NaN), the table says n/a."""
    placebo_notes = replay.notes(placebo_w)
    return {
        "replay_note": replay.notes(real_w)[0] or "",
        "placebo_note": band_note(placebo, placebo_notes),
        "placebo_mean_note": mean_note(placebo, placebo_notes),
        "random_note": band_note(random, replay.notes(random_w)) if random_w is not None else "",
    }


def _log(
    trade_log: list | None, inst: Instance, method: str, trades: pd.DataFrame, gate: ModelGate
) -> None:
    if trade_log is None:
        return
    frame = trades.copy()
    signal_ns = trade_signal_ns(inst, trades)
    frame.insert(0, "method", method)
    frame.insert(0, "instance_id", inst.instance_id)
    frame["p"] = [gate.probability(ts) for ts in signal_ns.tolist()]
    trade_log.append(frame)


def trade_signal_ns(inst: Instance, trades: pd.DataFrame) -> np.ndarray:
    """Close time of each trade's signal bar (what a gate was asked about)."""
    if len(trades) == 0:
        return np.array([], dtype=np.int64)
    close_ns = pd.DatetimeIndex(inst.bars.index).as_unit("ns").asi8 + interval_ns(inst.interval)
    return close_ns[signal_positions(inst.bars, inst.interval, trades["entry_time"])]


@dataclass
class WindowRun:
    metrics: dict[str, Any]  # trades, expectancy, max_drawdown, sortino (out of sample)
    trades: pd.DataFrame  # trades.csv columns
    equity: pd.DataFrame  # timestamp, equity of the out-of-sample bars


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

    def candidate_features(
        self, inst: Instance, builder: FeatureBuilder, columns: pd.Index
    ) -> pd.DataFrame:
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

    def run(self, inst: Instance, gate: Any, config: BacktestConfig) -> WindowRun:
        """A real engine backtest from the warm-up on; metrics over the out-of-sample bars (only
        the ones compared here: computed as analysis/metrics.py does, without its other work)."""
        from analysis.metrics import max_drawdown, period_returns, sortino, trade_stats

        bars = inst.bars.iloc[self.first_bar :]
        output = run_kernel(
            inst.strategy,
            bars,
            inst.symbol,
            inst.interval,
            config,
            signal_gate=WindowGate(self.start_ns, gate),
        )
        trades = trades_frame(output.trades)
        equity = equity_curve(bars, output.trades, config.cash)
        equity = equity[equity["timestamp"] >= inst.bars.index[self.oos_bar]]
        curve = equity.set_index("timestamp")["equity"]
        # No minimum span here: the with/without/placebo Sortinos are compared with each other
        # on the same out-of-sample window, never shown as a strategy's annualised figure.
        stats = trade_stats(trades["pnl"].to_numpy(dtype=float))
        daily = period_returns(curve, config.cash, "day", True)
        metrics = {
            "trades": stats["trades"],
            "expectancy": stats["expectancy"],
            "max_drawdown": max_drawdown(curve),
            "sortino": sortino(daily),
            "losing_days": int((daily < 0).sum()),
            "total_return": float(curve.iloc[-1]) / config.cash - 1 if len(curve) else 0.0,
        }
        metrics["sortino"] = sortino_value(metrics)
        return WindowRun(metrics, trades, equity)


def sortino_value(metrics: dict[str, Any]) -> float:
    value = metrics.get("sortino")
    if value is not None:
        return float(value)
    return float("inf") if (metrics.get("total_return") or 0.0) > 0 else 0.0


def few_losing_days(metrics: dict[str, Any]) -> str:
    """ "n/a (k losing days)" when an engine run's Sortino rests on too few losing days to mean
    anything (ml/controls.py MIN_LOSING_DAYS), else ""."""
    losing = metrics.get("losing_days")
    return f"n/a ({losing} losing days)" if losing is not None and losing < MIN_LOSING_DAYS else ""


def _row(
    inst, spec, method, window, without, with_model, replayed, placebo_s, random_s, rate, settings
) -> dict[str, Any]:
    # controls replayed through zero equity (ml/controls.py) are NaN: left out of the band
    placebo_s, random_s = placebo_s[~np.isnan(placebo_s)], random_s[~np.isnan(random_s)]
    placebo_p95 = float(np.percentile(placebo_s, 95)) if len(placebo_s) else float("nan")
    random_p95 = float(np.percentile(random_s, 95)) if len(random_s) else float("nan")
    with_s = with_model["sortino"]
    placebo_mean = float(np.mean(placebo_s)) if len(placebo_s) else float("nan")
    spread = placebo_p95 - placebo_mean
    margin = (replayed - placebo_mean) / spread if spread > 1e-12 else float("nan")
    beats = with_s > without["sortino"] and replayed > max(placebo_p95, random_p95)
    improved = beats and (margin >= MIN_MARGIN or (spread <= 1e-12 and replayed > placebo_mean))
    return {
        "instance_id": inst.instance_id,
        "method": method,
        "trades_without": int(without["trades"]),
        "trades_with": int(with_model["trades"]),
        "sortino_without": without["sortino"],
        "sortino_with": with_s,
        "sortino_placebo_mean": placebo_mean,
        "sortino_placebo_p95": placebo_p95,
        "sortino_random_skip_p95": random_p95,
        "sortino_with_replay": float(replayed),
        "with_note": few_losing_days(with_model),
        "without_note": few_losing_days(without),
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
