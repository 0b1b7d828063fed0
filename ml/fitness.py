"""Fitness functions of a model's predictions over trades (higher is better for all of them).

Statistical: roc_auc, f1 (at the threshold), neg_log_loss. Trading, over the trades a filter at
the threshold takes: sortino (per trade: mean return / sqrt(mean(min(r, 0)^2)), not annualised:
trades are not days; the engine's daily Sortino is what evaluation reports) and expectancy (mean
return per taken trade). A trading fitness with fewer than `MIN_TAKEN` taken trades is None: a
filter that keeps three lucky trades has not shown anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

FITNESS = ("roc_auc", "f1", "neg_log_loss", "sortino", "expectancy")
MIN_TAKEN = 5


def trade_sortino(returns: np.ndarray) -> float | None:
    if len(returns) < 2:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    mean = float(np.mean(returns))
    if downside < 1e-15:
        return None if mean <= 0 else 1e3  # no losing trade: capped, still comparable
    return mean / downside


def taken_returns(p: np.ndarray, returns: np.ndarray, threshold: float) -> np.ndarray | None:
    taken = returns[p >= threshold]
    return taken if len(taken) >= MIN_TAKEN else None


def _roc_auc(won, p, returns, threshold) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(won, p)) if len(set(won.tolist())) == 2 else None


def _f1(won, p, returns, threshold) -> float | None:
    from sklearn.metrics import f1_score

    return float(f1_score(won, (p >= threshold).astype(int), zero_division=0.0))


def _neg_log_loss(won, p, returns, threshold) -> float | None:
    from sklearn.metrics import log_loss

    return -float(log_loss(won, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1]))


def _sortino(won, p, returns, threshold) -> float | None:
    taken = taken_returns(p, returns, threshold)
    return None if taken is None else trade_sortino(taken)


def _expectancy(won, p, returns, threshold) -> float | None:
    taken = taken_returns(p, returns, threshold)
    return None if taken is None else float(np.mean(taken))


FUNCTIONS: dict[str, Callable] = {
    "roc_auc": _roc_auc,
    "f1": _f1,
    "neg_log_loss": _neg_log_loss,
    "sortino": _sortino,
    "expectancy": _expectancy,
}


def score_all(won: np.ndarray, p: np.ndarray, returns: np.ndarray, threshold: float) -> dict:
    """Every fitness function's value (None where undefined)."""
    won, p, returns = np.asarray(won), np.asarray(p, float), np.asarray(returns, float)
    return {name: FUNCTIONS[name](won, p, returns, threshold) for name in FITNESS}


def total_sortino(returns: np.ndarray) -> float:
    """sum(r) / sqrt(sum(min(r, 0)^2)) = per-trade Sortino x sqrt(trades): rewards keeping many
    good trades, not only the few best (what a threshold should trade off)."""
    downside = math.sqrt(float(np.sum(np.minimum(returns, 0.0) ** 2)))
    total = float(np.sum(returns))
    return total / downside if downside > 1e-15 else (math.inf if total > 0 else 0.0)


def choose_threshold(p: np.ndarray, returns: np.ndarray, min_share: float = 0.2) -> float:
    """The filter threshold (among the quantiles of p) whose taken trades have the best
    `total_sortino`, keeping at least `min_share` of the trades; call it on IN-SAMPLE
    predictions only. 0.0 (take everything) when nothing beats taking everything."""
    p, returns = np.asarray(p, float), np.asarray(returns, float)
    best, best_value = 0.0, total_sortino(returns)
    for q in np.linspace(0.0, 1.0 - min_share, 17)[1:]:
        threshold = float(np.quantile(p, q))
        taken = taken_returns(p, returns, threshold)
        value = None if taken is None else total_sortino(taken)
        if value is not None and value > best_value + 1e-12:
            best, best_value = threshold, value
    return best
