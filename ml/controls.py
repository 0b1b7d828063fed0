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

# Below this many losing days a Sortino's downside deviation rests on a handful of days and the
# ratio can reach hundreds (a placebo that skipped nearly every loser): shown as "n/a".
MIN_LOSING_DAYS = 5


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

    def curves(self, weights: np.ndarray) -> np.ndarray:
        """Replayed end-of-day equity, one row per row of `weights` (seeds x trades)."""
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        removed = np.zeros((len(weights), len(self.daily_last)))
        if self.pnl.size:
            lost = (1.0 - weights) * self.pnl[None, :]
            for k in range(len(weights)):  # per seed: realised pnl removed per day
                removed[k] = np.bincount(self.exit_day, lost[k], len(self.daily_last))
        return self.daily_last[None, :] - np.cumsum(removed, axis=1)

    def sortinos(self, weights: np.ndarray) -> np.ndarray:
        """Sortino of each row of `weights` (seeds x trades: 0 skips a trade, w scales it);
        NaN where the replayed equity reaches zero (no return is defined there). A Sortino on
        few losing days stays a number: `notes` says it is ill-conditioned."""
        curves = self.curves(weights)
        daily = self._daily(curves)
        gained = curves[:, -1] > self.initial_cash
        values = np.array([_sortino(row, up) for row, up in zip(daily, gained, strict=True)])
        return np.where(curves.min(axis=1, initial=np.inf) > 0, values, np.nan)

    def notes(self, weights: np.ndarray) -> list[str | None]:
        """Why each row's Sortino is ill-conditioned (None: it is not), e.g. "n/a (2 losing
        days)"."""
        curves = self.curves(weights)
        return ill_conditioned(curves, self._daily(curves))

    def _daily(self, curves: np.ndarray) -> np.ndarray:
        previous = np.concatenate(
            [np.full((len(curves), 1), self.initial_cash), curves[:, :-1]], axis=1
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            daily = curves / previous - 1.0
        return np.where(np.isfinite(daily), daily, 0.0)


def ill_conditioned(curves: np.ndarray, daily: np.ndarray) -> list[str | None]:
    """Rows whose Sortino says nothing: the replayed account went to zero or below (its pnl is
    kept in money while the engine would have shrunk or stopped the positions, and a return on
    an equity near or below zero is huge or flips sign), or fewer than MIN_LOSING_DAYS losing
    days (the downside deviation of a handful of days is near zero and the ratio explodes)."""
    notes: list[str | None] = []
    for curve, row in zip(curves, daily, strict=True):
        losing = int((row < 0).sum())
        if curve.size and curve.min() <= 0:
            notes.append("n/a (equity <= 0)")
        elif losing < MIN_LOSING_DAYS:
            notes.append(f"n/a ({losing} losing days)")
        else:
            notes.append(None)
    return notes


def _sortino(daily: np.ndarray, gained: bool) -> float:
    """analysis.metrics.sortino; None there (no downside) is +inf when it gained, else 0, as
    ml.evaluate.sortino_value reports it."""
    if len(daily) >= 2:
        downside = math.sqrt(float((np.minimum(daily, 0.0) ** 2).mean()))
        if downside > 1e-15:
            return math.sqrt(PERIODS_PER_YEAR) * float(daily.mean()) / downside
    return float("inf") if gained else 0.0


def band_note(values: np.ndarray, notes: list[str | None], q: float = 95.0) -> str:
    """ "" when the q-th percentile of the seeds' `values` (numpy's linear interpolation, NaN
    seeds left out) rests on well-conditioned seeds; else "n/a (...)" naming why; "k of N seeds
    left out (equity <= 0)" when some were dropped but the band still stands."""
    kept = [i for i, value in enumerate(values) if not np.isnan(value)]
    if not kept:
        return f"n/a (all {len(values)} seeds: equity <= 0)" if len(values) else ""
    order = sorted(kept, key=lambda i: values[i])
    position = q / 100 * (len(order) - 1)
    used = sorted({order[math.floor(position)], order[math.ceil(position)]})
    for i in used:
        if notes[i] is not None:
            return f"n/a (p{q:g} seed: {notes[i][len('n/a (') : -1]})"
    dropped = len(values) - len(kept)
    return f"{dropped} of {len(values)} seeds left out (equity <= 0)" if dropped else ""


def mean_note(values: np.ndarray, notes: list[str | None]) -> str:
    """ "n/a (k of N seeds ...)" when a seed of the mean is ill-conditioned, else ""."""
    few = sum(1 for value, note in zip(values, notes, strict=True) if note and not np.isnan(value))
    return f"n/a ({few} of {len(values)} seeds under {MIN_LOSING_DAYS} losing days)" if few else ""


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
