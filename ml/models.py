"""`fit(features, won, returns, spec) -> Model` and the registry of model kinds.

How a model is made stays behind this API: callers see `Model.predict_proba(features)` (the
probability that a trade wins, one value per row) and `ModelSpec`, the named, swappable choices
recorded with every result: feature selection, model kind, fitness, application method, seed,
time budget. Seeds are fixed, so the same data and spec give the same model.

Kinds: logreg (logistic regression), rf (random forest), hgb (histogram gradient boosting), mlp
(a small sklearn neural network), flaml (FLAML AutoML over lgbm/xgboost/rf/extra trees/l1
logistic regression). FLAML stops at `time_budget` seconds or after `FLAML_MAX_ITER` trials,
whichever comes first; sklearn kinds are sized to fit far inside any budget of a few seconds.
Selection: none, fdr (tsfresh relevance table, Benjamini-Hochberg at 5 %), mi (mutual
information, the best `MI_KEEP` features with MI > 0), l1 (non-zero coefficients of an
L1-penalised logistic regression). Missing values are imputed with in-sample medians. A selection
that keeps nothing, or a training set with one class, gives a constant model (the win rate):
the honest answer when the features say nothing.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.errors import UserError

KINDS = ("logreg", "rf", "hgb", "mlp", "flaml")
SELECTIONS = ("none", "fdr", "mi", "l1")
METHODS = ("filter", "size", "kelly")
MI_KEEP = 10
FLAML_MAX_ITER = 20


@dataclass(frozen=True)
class ModelSpec:
    """One combination of modelling choices; `as_dict` is what results record."""

    kind: str = "logreg"
    selection: str = "none"
    fitness: str = "sortino"
    method: str = "filter"
    seed: int = 0
    time_budget: float = 10.0
    features: dict = field(default_factory=dict)  # FeatureConfig.as_dict()

    def __post_init__(self) -> None:
        from ml.fitness import FITNESS

        for name, value, allowed in (
            ("kind", self.kind, KINDS),
            ("selection", self.selection, SELECTIONS),
            ("fitness", self.fitness, FITNESS),
            ("method", self.method, METHODS),
        ):
            if value not in allowed:
                raise UserError(f"unknown model {name} {value!r}; use one of {', '.join(allowed)}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.selection}/{self.method}"


class Model:
    """A fitted model: imputation, the selected columns and an estimator (or a constant)."""

    def __init__(
        self,
        spec: ModelSpec,
        columns: list[str],
        medians: pd.Series,
        estimator: Any,
        constant: float,
        fit_seconds: float,
    ) -> None:
        self.spec, self.columns, self.medians = spec, columns, medians
        self.estimator, self.constant, self.fit_seconds = estimator, constant, fit_seconds

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """P(win) per row; columns the model does not know are ignored, missing ones imputed."""
        if self.estimator is None or not self.columns:
            return np.full(len(features), self.constant)
        x = _filled(features.reindex(columns=self.columns), self.medians.to_numpy(np.float64))
        with single_thread():  # hgb's OpenMP predict costs ~3 ms per tree otherwise
            return self.estimator.predict_proba(x)[:, 1]


def _filled(frame: pd.DataFrame, medians: np.ndarray) -> np.ndarray:
    """float64 matrix with +-inf and NaN replaced by the column medians (numpy: pandas'
    fillna per column cost most of a walk-forward)."""
    x = frame.to_numpy(np.float64, copy=True)
    bad = ~np.isfinite(x)
    if bad.any():
        x[bad] = np.broadcast_to(medians, x.shape)[bad]
    return x


def _medians(x: np.ndarray) -> np.ndarray:
    """Column medians ignoring missing values (0 for an all-missing column)."""
    clean = np.where(np.isfinite(x), x, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.nanmedian(clean, axis=0) if len(clean) else np.zeros(x.shape[1])
    return np.nan_to_num(medians, nan=0.0)


def fit(features: pd.DataFrame, won: np.ndarray, spec: ModelSpec) -> Model:
    """Fit `spec` on features (rows in time order) and the win labels."""
    began = time.perf_counter()
    won = np.asarray(won, dtype=np.int64)
    raw = features.to_numpy(np.float64)
    medians = pd.Series(_medians(raw), index=features.columns)
    x = pd.DataFrame(_filled(features, medians.to_numpy()), columns=features.columns)
    constant = float(won.mean()) if len(won) else 0.5
    if len(set(won.tolist())) < 2 or x.shape[1] == 0:
        return Model(spec, [], medians, None, constant, time.perf_counter() - began)
    columns = select_features(x, won, spec.selection, spec.seed)
    if not columns:
        return Model(spec, [], medians, None, constant, time.perf_counter() - began)
    estimator = make_estimator(spec, len(won))
    with single_thread():  # Ray grants one CPU per task; OpenMP/BLAS pools would take more
        if spec.kind == "flaml":
            estimator.fit(x[columns].to_numpy(), won, **flaml_settings(spec))
        else:
            estimator.fit(x[columns].to_numpy(), won)
    return Model(spec, columns, medians[columns], estimator, constant, time.perf_counter() - began)


_CONTROLLER: list = []


def single_thread() -> Any:
    """Limit BLAS/OpenMP pools to one thread; the controller (a scan of the loaded libraries,
    ~17 ms) is made once per process, each limit then costs microseconds."""
    from threadpoolctl import ThreadpoolController

    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1)


def select_features(x: pd.DataFrame, won: np.ndarray, method: str, seed: int) -> list[str]:
    """The columns `method` keeps (computed on the training rows only)."""
    if method == "none":
        return list(x.columns)
    with single_thread():
        return _select(x, won, method, seed)


def _select(x: pd.DataFrame, won: np.ndarray, method: str, seed: int) -> list[str]:
    if method == "fdr":
        from tsfresh.feature_selection.relevance import calculate_relevance_table

        table = calculate_relevance_table(
            x, pd.Series(won, index=x.index), ml_task="classification", n_jobs=0, fdr_level=0.05
        )
        return [c for c in x.columns if c in set(table.index[table["relevant"]])]
    if method == "mi":
        from sklearn.feature_selection import mutual_info_classif

        scores = mutual_info_classif(x.to_numpy(), won, random_state=seed)
        ranked = [c for s, c in sorted(zip(scores, x.columns, strict=True), reverse=True) if s > 0]
        return [c for c in x.columns if c in set(ranked[:MI_KEEP])]
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaled = StandardScaler().fit_transform(x.to_numpy())
    lasso = LogisticRegression(l1_ratio=1.0, C=0.1, solver="liblinear", random_state=seed)
    lasso.fit(scaled, won)
    return [c for c, w in zip(x.columns, lasso.coef_[0], strict=True) if abs(w) > 1e-9]


def make_estimator(spec: ModelSpec, rows: int) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    seed = spec.seed
    if spec.kind == "logreg":
        from sklearn.linear_model import LogisticRegression

        return make_pipeline(
            StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, solver="newton-cholesky")
        )
    if spec.kind == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=150, min_samples_leaf=5, n_jobs=1, random_state=seed
        )
    if spec.kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=100,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=max(5, rows // 50),
            early_stopping=False,
            random_state=seed,
        )
    if spec.kind == "mlp":
        from sklearn.neural_network import MLPClassifier

        return make_pipeline(
            StandardScaler(), MLPClassifier((32, 16), alpha=1e-2, max_iter=400, random_state=seed)
        )
    from flaml import AutoML

    return AutoML()


def flaml_settings(spec: ModelSpec) -> dict[str, Any]:
    return {
        "task": "classification",
        "time_budget": spec.time_budget,
        "max_iter": FLAML_MAX_ITER,
        "metric": "roc_auc",
        "estimator_list": ["lgbm", "xgboost", "rf", "extra_tree", "lrl1"],
        "seed": spec.seed,
        "n_jobs": 1,
        "verbose": 0,
        "eval_method": "cv",
        "n_splits": 3,
        "split_type": "time",
    }
