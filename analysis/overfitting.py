"""Selection statistics that know how many variants were tried (docs/analysis.md#overfitting).

- The Deflated Sharpe Ratio (Bailey & Lopez de Prado 2014): the probability that the true Sharpe
  ratio of the run chosen as the best of N trials is above zero, once the number of trials, the
  dispersion of their Sharpe ratios, the chosen run's skewness and kurtosis and its sample length
  are accounted for.
- The Probability of Backtest Overfitting by combinatorially symmetric cross-validation (Bailey,
  Borwein, Lopez de Prado & Zhu 2015): cut the days x runs matrix of daily returns into S blocks;
  for every way of calling half the blocks in-sample and the other half out-of-sample, pick the
  in-sample best and see where it ranks out-of-sample. PBO is the share of splits in which it
  ranks at or below the out-of-sample median.

Everything here works on numpy arrays of daily returns (rows are days, columns runs); the
performance statistic is the Sharpe ratio of daily returns, per day (not annualised), with the
population standard deviation as in analysis/metrics.py. A column without variance has Sharpe 0
here: a run that never traded neither wins nor loses a ranking.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist

import numpy as np

EULER_MASCHERONI = 0.5772156649015329
CSCV_BLOCKS = 16  # S: C(16, 8) = 12,870 splits
SIGNIFICANT = 0.95  # a DSR probability at or above this is called significant
SPLITS_PER_CHUNK = 2048  # bounds the memory of the splits x runs arrays
_NORMAL = NormalDist()


# ---------------------------------------------------------------- Sharpe and moments


def sharpe_per_day(returns: np.ndarray) -> np.ndarray:
    """mean / population std of each column (0 where the std is 0)."""
    returns = np.asarray(returns, dtype=float)
    mean = returns.mean(axis=0)
    std = returns.std(axis=0)
    return np.divide(mean, std, out=np.zeros_like(mean), where=std > 1e-15)


def moments(returns: np.ndarray) -> tuple[float, float]:
    """(skewness, kurtosis) of one series, population moments; kurtosis is not excess (normal =
    3). A series without variance counts as normal (0, 3)."""
    values = np.asarray(returns, dtype=float)
    centred = values - values.mean()
    variance = float((centred**2).mean())
    if variance <= 1e-30:
        return 0.0, 3.0
    skew = float((centred**3).mean()) / variance**1.5
    kurtosis = float((centred**4).mean()) / variance**2
    return skew, kurtosis


# ---------------------------------------------------------------- Deflated Sharpe Ratio


def expected_max_sharpe(trials: int, variance: float) -> float:
    """E[max Sharpe] of `trials` runs without skill whose Sharpe ratios have this variance:
    sqrt(V) x ((1 - gamma) Z^-1(1 - 1/N) + gamma Z^-1(1 - 1/(N e))), gamma the Euler-Mascheroni
    constant. One trial is no selection: 0."""
    if trials < 2 or variance <= 0:
        return 0.0
    spread = (1 - EULER_MASCHERONI) * _NORMAL.inv_cdf(1 - 1 / trials)
    spread += EULER_MASCHERONI * _NORMAL.inv_cdf(1 - 1 / (trials * math.e))
    return math.sqrt(variance) * spread


def probabilistic_sharpe(
    sharpe: float, benchmark: float, days: int, skew: float, kurtosis: float
) -> float:
    """P(true Sharpe > benchmark) = Z((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1)/4 SR^2)),
    SR per day over T days, g3 the skewness, g4 the (non-excess) kurtosis."""
    if days < 2:
        return float("nan")
    spread = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if spread <= 0:  # moments so extreme the approximation breaks down
        return float("nan")
    return _NORMAL.cdf((sharpe - benchmark) * math.sqrt(days - 1) / math.sqrt(spread))


@dataclass(frozen=True)
class DeflatedSharpe:
    sharpe: float  # the chosen series' Sharpe, per day
    benchmark: float  # SR0: the expected best Sharpe of `trials` runs without skill, per day
    trials: int  # N
    variance: float  # V: variance of the trials' Sharpe ratios (per day)
    skew: float
    kurtosis: float
    days: int  # T
    probability: float  # DSR: P(true Sharpe > 0 after the selection); nan when undefined

    @property
    def significant(self) -> bool:
        return self.probability >= SIGNIFICANT


def deflated_sharpe(chosen: np.ndarray, trial_sharpes: np.ndarray) -> DeflatedSharpe:
    """The DSR of the `chosen` daily returns, picked among runs whose per-day Sharpe ratios are
    `trial_sharpes` (all of them, the chosen one included)."""
    chosen = np.asarray(chosen, dtype=float)
    trial_sharpes = np.asarray(trial_sharpes, dtype=float)
    trials = len(trial_sharpes)
    variance = float(trial_sharpes.var(ddof=1)) if trials > 1 else 0.0
    sharpe = float(sharpe_per_day(chosen.reshape(-1, 1))[0]) if len(chosen) else 0.0
    skew, kurtosis = moments(chosen) if len(chosen) else (0.0, 3.0)
    benchmark = expected_max_sharpe(trials, variance)
    probability = probabilistic_sharpe(sharpe, benchmark, len(chosen), skew, kurtosis)
    return DeflatedSharpe(
        sharpe, benchmark, trials, variance, skew, kurtosis, len(chosen), probability
    )


# ---------------------------------------------------------------- CSCV and PBO


@dataclass(frozen=True)
class Overfitting:
    pbo: float  # share of splits whose logit is <= 0
    logits: np.ndarray  # lambda of each split
    blocks: int  # S
    days: int  # days used (the oldest days beyond a multiple of S are left out)
    runs: int  # N

    @property
    def splits(self) -> int:
        return len(self.logits)


@dataclass(frozen=True)
class BlockSums:
    """Per-block sums of each run's daily figures: the Sharpe (and the rule's figures) of any
    union of blocks follow from them without touching the days again."""

    days: np.ndarray  # (S,) days per block
    returns: np.ndarray  # (S, N) sum of r
    squares: np.ndarray  # (S, N) sum of r^2
    downside: np.ndarray  # (S, N) sum of min(r, 0)^2
    pnl: np.ndarray  # (S, N) sum of pnl
    trades: np.ndarray  # (S, N) trades closed


def block_sums(
    returns: np.ndarray,
    blocks: int = CSCV_BLOCKS,
    pnl: np.ndarray | None = None,
    trades: np.ndarray | None = None,
) -> BlockSums:
    """Cut T days into `blocks` equal blocks of T // S days (the oldest T mod S days are left out:
    the halves must be equal for the splits to be symmetric)."""
    returns = np.asarray(returns, dtype=float)
    length = len(returns) // blocks
    if length < 2:
        raise ValueError(f"{len(returns)} days cannot make {blocks} blocks of at least 2 days")
    used = length * blocks
    shape = (blocks, length, returns.shape[1])

    def summed(values: np.ndarray | None) -> np.ndarray:
        if values is None:
            return np.zeros((blocks, returns.shape[1]))
        return np.asarray(values, dtype=float)[-used:].reshape(shape).sum(axis=1)

    kept = returns[-used:]
    return BlockSums(
        days=np.full(blocks, float(length)),
        returns=summed(kept),
        squares=summed(kept**2),
        downside=summed(np.minimum(kept, 0.0) ** 2),
        pnl=summed(pnl),
        trades=summed(trades),
    )


@functools.lru_cache(maxsize=4)
def split_masks(blocks: int) -> np.ndarray:
    """(C(S, S/2), S) booleans: row c marks the in-sample blocks of split c."""
    chosen = np.array(list(combinations(range(blocks), blocks // 2)))
    masks = np.zeros((len(chosen), blocks), dtype=bool)
    masks[np.arange(len(chosen))[:, None], chosen] = True
    masks.setflags(write=False)
    return masks


def _chunks(masks: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(masks), SPLITS_PER_CHUNK):
        yield masks[start : start + SPLITS_PER_CHUNK]


@dataclass(frozen=True)
class SampleFigures:
    """Each run's figures over the days of some blocks, one row per split: (C, N) arrays."""

    sharpe: np.ndarray  # per day
    sortino: np.ndarray  # annualised like analysis/metrics.py (nan without downside)
    volatility: np.ndarray  # annualised population std of daily returns
    expectancy: np.ndarray  # pnl per trade (nan without trades)
    trades: np.ndarray


def sample_figures(sums: BlockSums, masks: np.ndarray) -> SampleFigures:
    """The figures over the blocks marked in each row of `masks` ((C, S) booleans)."""
    inside = masks.astype(float)
    days = (_over(inside, sums.days))[:, None]
    mean = (_over(inside, sums.returns)) / days
    std = np.sqrt(np.maximum((_over(inside, sums.squares)) / days - mean**2, 0.0))
    downside = np.sqrt((_over(inside, sums.downside)) / days)
    trades = _over(inside, sums.trades)
    with np.errstate(divide="ignore", invalid="ignore"):
        return SampleFigures(
            sharpe=_sharpe_over(sums, masks),
            sortino=np.where(downside > 1e-15, math.sqrt(365) * mean / downside, np.nan),
            volatility=math.sqrt(365) * std,
            expectancy=np.where(trades > 0, (_over(inside, sums.pnl)) / trades, np.nan),
            trades=trades,
        )


def _over(inside: np.ndarray, block_values: np.ndarray) -> np.ndarray:
    """(C, S) 0/1 rows times (S, ...) block sums. einsum, not @: BLAS threads cost more than
    they give on arrays this small, and far more on a busy machine."""
    return np.einsum("cs,s...->c...", inside, block_values)


def _logit(omega: np.ndarray) -> np.ndarray:
    return np.log(omega / (1 - omega))


def _omega_of(values: np.ndarray, out_sample: np.ndarray, member: bool) -> np.ndarray:
    """Relative rank of one value per row among that row's N runs (ties share their average
    rank): a `member` is one of the runs (rank / (N + 1)), else it joins them (rank / (N + 2))."""
    below = (out_sample < values[:, None]).sum(axis=1)
    equal = (out_sample == values[:, None]).sum(axis=1)  # a member counts itself here
    runs = out_sample.shape[1]
    if member:
        return (below + (equal + 1) / 2) / (runs + 1)
    return (below + 1 + equal / 2) / (runs + 2)


def pbo_best(returns: np.ndarray, blocks: int = CSCV_BLOCKS) -> Overfitting:
    """PBO of choosing the run with the best in-sample Sharpe (daily returns: days x runs)."""
    sums = block_sums(returns, blocks)
    logits = []
    for masks in _chunks(split_masks(blocks)):
        in_sample = _sharpe_over(sums, masks)
        out_sample = _sharpe_over(sums, ~masks)
        best = out_sample[np.arange(len(masks)), np.argmax(in_sample, axis=1)]
        logits.append(_logit(_omega_of(best, out_sample, member=True)))
    return _overfitting(logits, sums)


def _sharpe_over(sums: BlockSums, masks: np.ndarray) -> np.ndarray:
    """Only the Sharpe of sample_figures (the best run's PBO needs nothing else)."""
    inside = masks.astype(float)
    days = (_over(inside, sums.days))[:, None]
    mean = (_over(inside, sums.returns)) / days
    std = np.sqrt(np.maximum((_over(inside, sums.squares)) / days - mean**2, 0.0))
    return np.divide(mean, std, out=np.zeros_like(mean), where=std > 1e-15)


def pbo_selection(sums: BlockSums, choose: Callable[[SampleFigures], np.ndarray]) -> Overfitting:
    """PBO of a selection rule: `choose` turns in-sample figures into weights ((C, N), each row
    summing to 1, or all 0 when nothing passes). A split's omega is the weighted mean of the
    chosen runs' out-of-sample relative ranks; an empty choice is a run of Sharpe 0 ranked among
    the runs. Averaging the ranks, not ranking the weighted portfolio, keeps diversification out:
    a set of noise runs does not beat the median run by being many."""
    logits = []
    for masks in _chunks(split_masks(len(sums.days))):
        weights = choose(sample_figures(sums, masks))
        out_sample = sample_figures(sums, ~masks).sharpe
        omega = (weights * relative_ranks(out_sample)).sum(axis=1)
        empty = weights.sum(axis=1) <= 0
        if empty.any():
            omega[empty] = _omega_of(np.zeros(int(empty.sum())), out_sample[empty], member=False)
        logits.append(_logit(omega))
    return _overfitting(logits, sums)


def _overfitting(logits: list[np.ndarray], sums: BlockSums) -> Overfitting:
    lam = np.concatenate(logits)
    runs = sums.returns.shape[1]
    return Overfitting(float((lam <= 0).mean()), lam, len(sums.days), int(sums.days.sum()), runs)


def relative_ranks(values: np.ndarray) -> np.ndarray:
    """Rank of each entry within its row, 1 = worst, ties share their average rank, divided by
    N + 1: the omega of CSCV, strictly between 0 and 1."""
    rows, runs = values.shape
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    position = np.broadcast_to(np.arange(runs), (rows, runs))
    starts = np.ones((rows, runs), dtype=bool)  # a tie group starts here
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones((rows, runs), dtype=bool)  # a tie group ends here
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, position, runs)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((rows, runs))
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=1)
    return ranks / (runs + 1)
