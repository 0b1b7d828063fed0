"""Walk-forward validation in time order with a purge gap (docs/ml.md#the-method).

The trades (rows in signal-time order) are split into an initial training part and `n_folds`
test blocks of equal size that follow it. Fold k tests on its block and trains on every EARLIER
trade that ended before the block starts and whose signal is at least `purge` before it; the purge
is at least the longest trade (signal to exit), so no training trade overlaps a test trade.

Inside each fold's training part, the decisions an application method needs (the filter
threshold, the size references) are chosen in-sample: the model is fitted on the first 70 % of
the training trades, its predictions on the last 30 % (purged again) choose them, and the model is
then refitted on all training trades. Only the test blocks are scored: `oos_p` holds the
out-of-sample prediction of every tested trade.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.errors import UserError
from ml.apply import Calibration, calibrate
from ml.dataset import Dataset
from ml.fitness import score_all
from ml.models import Model, ModelSpec, fit

INNER_SHARE = 0.7
MIN_TRAIN = 15


@dataclass(frozen=True)
class Fold:
    train: np.ndarray  # row numbers
    test: np.ndarray
    start_ns: int  # signal time of the first test trade
    end_ns: int  # start of the next block (exclusive); the last fold runs to the end


@dataclass
class FoldModel:
    fold: Fold
    model: Model
    calibration: Calibration


@dataclass
class WalkForward:
    spec: ModelSpec
    folds: list[FoldModel]
    oos_rows: np.ndarray
    oos_p: np.ndarray
    scores: dict = field(default_factory=dict)  # fitness name -> out-of-sample value

    @property
    def oos_start_ns(self) -> int:
        return self.folds[0].fold.start_ns


class WalkForwardError(UserError):
    """Too few trades for the folds asked; the message says how many are needed."""


def make_folds(
    ds: Dataset, n_folds: int = 4, first_train: float = 0.4, purge_ns: int | None = None
) -> list[Fold]:
    n = len(ds)
    purge = max(int(purge_ns or 0), ds.longest_trade_ns())
    start = int(n * first_train)
    bounds = np.linspace(start, n, n_folds + 1).astype(int)
    folds = []
    for k in range(n_folds):
        test = np.arange(bounds[k], bounds[k + 1])
        if len(test) == 0:
            continue
        begin = int(ds.signal_ns[test[0]])
        end = int(ds.signal_ns[bounds[k + 1]]) if bounds[k + 1] < n else np.iinfo(np.int64).max
        before = np.arange(bounds[k])
        keep = (ds.exit_ns[before] < begin) & (ds.signal_ns[before] <= begin - purge)
        folds.append(Fold(before[keep], test, begin, int(end)))
    if not folds or min(len(f.train) for f in folds) < MIN_TRAIN:
        raise WalkForwardError(_too_few(n, first_train, folds[0].train.size if folds else 0))
    return folds


def min_trades(first_train: float = 0.4) -> int:
    """The fewest trades whose first training part holds MIN_TRAIN trades (before the purge)."""
    n = MIN_TRAIN
    while int(n * first_train) < MIN_TRAIN:
        n += 1
    return n


def _too_few(n: int, first_train: float, first_fold: int) -> str:
    """Why: the first fold trains on the first `first_train` of the trades whatever --folds is,
    so fewer folds never help; only more trades do."""
    return (
        f"{n} trades are too few: walk-forward trains its first fold on the first "
        f"{first_train:.0%} of the trades ({first_fold} after the purge) and needs >= {MIN_TRAIN}, "
        f"so at least {min_trades(first_train)} trades (more if trades are long); give it more "
        "bars (a longer history, `cli.py data download`) or pick instances that trade more often"
    )


def fit_in_sample(
    ds: Dataset,
    rows: np.ndarray,
    spec: ModelSpec,
    won: np.ndarray | None = None,
    returns: np.ndarray | None = None,
) -> tuple[Model, Calibration]:
    """Model and calibration from the training rows only (labels/returns may be a placebo's)."""
    won = ds.won if won is None else won
    returns = ds.returns if returns is None else returns
    cut = int(len(rows) * INNER_SHARE)
    inner, held = rows[:cut], rows[cut:]
    if len(held):
        purge = ds.longest_trade_ns()
        begin = ds.signal_ns[held[0]]
        inner = inner[(ds.exit_ns[inner] < begin) & (ds.signal_ns[inner] <= begin - purge)]
    features = ds.features
    if len(inner) >= MIN_TRAIN // 2 and len(held) >= MIN_TRAIN // 2:
        first = fit(features.iloc[inner], won[inner], spec)
        calibration = calibrate(first.predict_proba(features.iloc[held]), returns[held])
    else:  # too little data for an inner split: take every signal at normal size
        calibration = Calibration()
    model = fit(features.iloc[rows], won[rows], spec)
    return model, calibration


def walk_forward(
    ds: Dataset,
    spec: ModelSpec,
    n_folds: int = 4,
    first_train: float = 0.4,
    won: np.ndarray | None = None,
    returns: np.ndarray | None = None,
    score: bool = True,
) -> WalkForward:
    """Fit every fold in-sample, predict its test block; score the out-of-sample predictions
    (against the TRUE labels and returns, whatever the model was trained on) unless `score` is
    False (placebos: only their fold models are used)."""
    fold_models, rows, probs = [], [], []
    for fold in make_folds(ds, n_folds, first_train):
        model, calibration = fit_in_sample(ds, fold.train, spec, won, returns)
        fold_models.append(FoldModel(fold, model, calibration))
        rows.append(fold.test)
        probs.append(model.predict_proba(ds.features.iloc[fold.test]))
    oos_rows, oos_p = np.concatenate(rows), np.concatenate(probs)
    if not score:
        return WalkForward(spec, fold_models, oos_rows, oos_p, {})
    calibrations = [fm.calibration for fm in fold_models for _ in range(len(fm.fold.test))]
    scores = score_all(ds.won[oos_rows], oos_p, ds.returns[oos_rows], 0.5)
    # trading fitness under the spec's application method, with each fold's own calibration
    for name in ("sortino", "expectancy"):
        scores[name] = _applied(name, spec.method, oos_p, ds.returns[oos_rows], calibrations)
    return WalkForward(spec, fold_models, oos_rows, oos_p, scores)


def _applied(name: str, method: str, p: np.ndarray, returns: np.ndarray, calibrations: list):
    """Sortino / expectancy of the trades the method takes, each return times its size
    multiplier (filter: the trades with p >= threshold at normal size)."""
    from ml.apply import decide
    from ml.fitness import MIN_TAKEN, trade_sortino

    decisions = [decide(method, float(v), c) for v, c in zip(p, calibrations, strict=True)]
    taken = np.array([r * size for r, (take, size) in zip(returns, decisions, strict=True) if take])
    if len(taken) < MIN_TAKEN:
        return None
    return trade_sortino(taken) if name == "sortino" else float(np.mean(taken))


def placebo_labels(ds: Dataset, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and returns shuffled TOGETHER (a trade keeps its own pair, moved to other
    features): shuffling labels alone would still leak the returns into a trading fitness."""
    order = np.random.default_rng(seed).permutation(len(ds))
    return ds.won[order], ds.returns[order]
