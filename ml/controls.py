"""The placebo and random-skip controls, vectorised over seeds on the without-model run's trades.

Running every control in the engine (5 placebo seeds x 3 methods + 20 random seeds x 2 methods =
55 backtests per instance) cost most of `model eval`. The controls only need the spread of
Sortinos that models WITHOUT real knowledge reach, so they are replayed on the out-of-sample
trades of the without-model engine run: a decision (take, size multiplier w) per trade, and the
equity curve of that run minus (1 - w) x the trade's pnl from its exit on. Daily returns and
Sortino are then those of analysis/metrics.py (last equity of each UTC day, sqrt(365) x mean /
downside deviation), for all seeds at once as one matrix.

What the replay cannot see: a skipped trade frees the position for a signal the engine would
then take. So the real model is replayed the same way (`sortino_with_replay`) and compared with
the controls like for like; its engine run (`sortino_with`) stays the with-model figure. A replay
where every trade is kept gives back the without-model engine Sortino exactly (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.metrics import PERIODS_PER_YEAR
from analysis.spans import outside_gaps


@dataclass
class Replay:
    """The without-model run's daily equity and where each of its trades' pnl lands."""

    daily_last: np.ndarray  # equity at the end of each kept UTC day
    initial_cash: float
    exit_day: np.ndarray  # per trade: index into daily_last of the day its pnl is realised
    pnl: np.ndarray  # per trade
    signal_ns: np.ndarray  # per trade: close time of its signal bar (what the gates are asked)

    @classmethod
    def of(
        cls, equity: pd.DataFrame, trades: pd.DataFrame, initial_cash: float, signal_ns: np.ndarray
    ) -> Replay:
        """`equity`: timestamp, equity of the out-of-sample bars; `trades` their trades."""
        curve = pd.Series(
            equity["equity"].to_numpy(np.float64), index=pd.DatetimeIndex(equity["timestamp"])
        )
        last = curve.groupby(curve.index.floor("D")).last()
        full = pd.date_range(last.index[0], last.index[-1], freq="D")
        last = last.reindex(full).ffill()
        last = last[outside_gaps(last.index, curve.index)]  # as period_returns(skip_gaps=True)
        exits = pd.to_datetime(trades["exit_time"], utc=True).dt.floor("D")
        days = pd.DatetimeIndex(last.index).as_unit("ns").asi8
        exit_day = np.searchsorted(days, exits.dt.as_unit("ns").to_numpy(np.int64), "left")
        return cls(
            last.to_numpy(np.float64),
            float(initial_cash),
            np.minimum(exit_day, len(days) - 1),
            trades["pnl"].to_numpy(np.float64),
            np.asarray(signal_ns, dtype=np.int64),
        )

    def sortinos(self, weights: np.ndarray) -> np.ndarray:
        """Sortino of each row of `weights` (seeds x trades: 0 skips a trade, w scales it)."""
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        removed = np.zeros((len(weights), len(self.daily_last)))
        if self.pnl.size:
            lost = (1.0 - weights) * self.pnl[None, :]
            for k in range(len(weights)):  # per seed: realised pnl removed per day
                removed[k] = np.bincount(self.exit_day, lost[k], len(self.daily_last))
        curves = self.daily_last[None, :] - np.cumsum(removed, axis=1)
        previous = np.concatenate(
            [np.full((len(weights), 1), self.initial_cash), curves[:, :-1]], axis=1
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            daily = curves / previous - 1.0
        daily = np.where(np.isfinite(daily), daily, 0.0)
        gained = curves[:, -1] > self.initial_cash
        return np.array([_sortino(row, up) for row, up in zip(daily, gained, strict=True)])


def _sortino(daily: np.ndarray, gained: bool) -> float:
    """analysis.metrics.sortino; None there (no downside) is +inf when it gained, else 0, as
    ml.evaluate.sortino_value reports it."""
    if len(daily) >= 2:
        downside = math.sqrt(float((np.minimum(daily, 0.0) ** 2).mean()))
        if downside > 1e-15:
            return math.sqrt(PERIODS_PER_YEAR) * float(daily.mean()) / downside
    return float("inf") if gained else 0.0


def gate_weights(gates: list, signal_ns: np.ndarray) -> np.ndarray:
    """Rows of (take, size) decisions of each gate (callable on a signal with `.ts`) per trade."""
    out = np.ones((len(gates), len(signal_ns)))
    for k, gate in enumerate(gates):
        for j, ts in enumerate(signal_ns.tolist()):
            take, size = gate(_Signal(int(ts)))
            out[k, j] = size if take else 0.0
    return out


def random_weights(rate: float, seeds: int, trades: int) -> np.ndarray:
    """Each trade skipped with probability `rate`, one seeded row per seed."""
    return (
        np.stack(
            [
                (np.random.default_rng(seed).random(trades) >= rate).astype(np.float64)
                for seed in range(seeds)
            ]
        )
        if seeds
        else np.ones((0, trades))
    )


@dataclass(frozen=True)
class _Signal:
    ts: int
