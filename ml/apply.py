"""Application methods: how a model's P(win) changes what the engine does with a signal.

A gate is the strategy host's optional `signal_gate` (actors/strategy_host.py): called with every
entry signal before the portfolio sees it, it answers (take, size multiplier). The portfolio then
sizes the position as usual (risk, cash, exposure caps) times the multiplier, so a with-model
backtest is a real backtest, and live trading uses the same host and gate.

Methods (every number chosen in-sample, see `calibrate`):
- filter: take the signal only when p >= the in-sample threshold; normal size;
- size: take every signal, size x clip(p / p_ref, 0.25, 2), p_ref = in-sample median of p;
- kelly (ours): the Kelly fraction f = p - (1 - p) / b with b = in-sample average win / average
  loss; skip when f <= 0 (no edge expected), else size x clip(f / f_ref, 0.25, 2), f_ref = the
  Kelly fraction at p_ref. It both filters and sizes, by the expected edge rather than by p.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.fitness import choose_threshold

SIZE_RANGE = (0.25, 2.0)


@dataclass(frozen=True)
class Calibration:
    """In-sample references of one fold's model (defaults: take everything at normal size)."""

    threshold: float = 0.0
    p_ref: float = 0.5
    payoff: float = 1.0  # average win / |average loss|

    @property
    def kelly_ref(self) -> float:
        return kelly(self.p_ref, self.payoff)


def kelly(p: float, payoff: float) -> float:
    return p - (1.0 - p) / payoff


def calibrate(p: np.ndarray, returns: np.ndarray) -> Calibration:
    """References from in-sample (held-out inner) predictions and those trades' returns."""
    wins, losses = returns[returns > 0], returns[returns <= 0]
    payoff = 1.0
    if len(wins) and len(losses) and abs(losses.mean()) > 1e-12:
        payoff = float(wins.mean() / abs(losses.mean()))
    return Calibration(choose_threshold(p, returns), float(np.median(p)), payoff)


def decide(method: str, p: float, cal: Calibration) -> tuple[bool, float]:
    """(take, size multiplier) of one signal with win probability p."""
    lo, hi = SIZE_RANGE
    if method == "filter":
        return p >= cal.threshold, 1.0
    if method == "size":
        return True, float(np.clip(p / max(cal.p_ref, 1e-9), lo, hi))
    f = kelly(p, cal.payoff)
    if f <= 0:
        return False, 0.0
    ref = cal.kelly_ref
    return True, float(np.clip(f / ref, lo, hi)) if ref > 0 else 1.0


class ModelGate:
    """Asks the fold model responsible for each signal's time (walk-forward: the model trained
    before that fold). `features` holds the rows of the candidate signal bars, indexed by the
    signal bar's close time (int ns); their predictions are made once, up front, per fold."""

    def __init__(self, folds: Sequence, features: pd.DataFrame, method: str) -> None:
        self.method = method
        self.asked = self.taken = 0
        self._p: dict[int, tuple[float, Calibration]] = {}
        stamps = features.index.to_numpy(np.int64)
        for fold_model in folds:
            fold = fold_model.fold
            inside = (stamps >= fold.start_ns) & (stamps < fold.end_ns)
            if inside.any():
                p = fold_model.model.predict_proba(features.loc[inside])
                for ts, value in zip(stamps[inside].tolist(), p.tolist(), strict=True):
                    self._p[ts] = (value, fold_model.calibration)

    def __call__(self, signal) -> tuple[bool, float]:
        self.asked += 1
        known = self._p.get(int(signal.ts))
        if known is None:  # outside every fold (before the out-of-sample period): unchanged
            self.taken += 1
            return True, 1.0
        take, scale = decide(self.method, *known)
        self.taken += int(take)
        return take, scale

    def probability(self, ts: int) -> float | None:
        """The model's P(win) for the signal at close time `ts` (None outside every fold)."""
        known = self._p.get(int(ts))
        return None if known is None else known[0]

    @property
    def skip_rate(self) -> float:
        return 1.0 - self.taken / self.asked if self.asked else 0.0


class RandomSkipGate:
    """Skips each signal with probability `rate` (seeded): the control for a filter's skips."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self._rng = np.random.default_rng(seed)

    def __call__(self, signal) -> tuple[bool, float]:
        return bool(self._rng.random() >= self.rate), 1.0


class OnlineGate:
    """The live path: each signal's features are computed when it is asked, from the bars known
    at the signal (`history(ts)` returns the bars closed at or before ts), then one model call.
    In a backtest it decides exactly like ModelGate with the same model (a test proves it)."""

    def __init__(self, trained, method: str, interval: str, history) -> None:
        from ml.features import FeatureBuilder, FeatureConfig

        self.model, self.calibration = trained.model, trained.calibration
        self.builder = FeatureBuilder(FeatureConfig.from_dict(trained.features))
        self.method, self.interval, self.history = method, interval, history

    def __call__(self, signal) -> tuple[bool, float]:
        bars = self.history(int(signal.ts))
        row = self.builder.rows(bars, self.interval, [len(bars) - 1])
        return decide(self.method, float(self.model.predict_proba(row)[0]), self.calibration)


def closed_bars(bars: pd.DataFrame, interval: str):
    """history(ts) for OnlineGate over a bar frame: the bars whose close is <= ts."""
    from core.intervals import interval_ns

    close_ns = pd.DatetimeIndex(bars.index).as_unit("ns").asi8 + interval_ns(interval)

    def history(ts: int) -> pd.DataFrame:
        return bars.iloc[: int(np.searchsorted(close_ns, ts, "right"))]

    return history
