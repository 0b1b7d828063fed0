"""The Deflated Sharpe Ratio and the Probability of Backtest Overfitting (analysis/overfitting.py),
and the daily returns of every run they read (analysis/selection_stats.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import overfitting
from analysis.metrics import equity_from_trades, period_returns
from analysis.overfitting import (
    EULER_MASCHERONI,
    block_sums,
    deflated_sharpe,
    expected_max_sharpe,
    pbo_best,
    pbo_selection,
    probabilistic_sharpe,
    relative_ranks,
    sharpe_per_day,
)
from analysis.selection_stats import run_days

# ---------------------------------------------------------------- DSR by hand


def test_the_papers_worked_example() -> None:
    """Bailey & Lopez de Prado (2014), section 5: an annualised Sharpe of 2.5 over 5 years of
    daily returns (T = 1250, 250 days a year), the best of N = 100 trials whose annualised Sharpe
    ratios have variance 0.5, skewness -3, kurtosis 10: DSR = 0.9004."""
    per_year = 250
    sharpe, variance = 2.5 / math.sqrt(per_year), 0.5 / per_year
    benchmark = expected_max_sharpe(100, variance)
    assert benchmark * math.sqrt(per_year) == pytest.approx(1.7894, abs=1e-3)
    probability = probabilistic_sharpe(sharpe, benchmark, 1250, -3.0, 10.0)
    assert probability == pytest.approx(0.9004, abs=1e-3)


def test_dsr_equals_an_independent_computation_with_scipy() -> None:
    rng = np.random.default_rng(5)
    returns = rng.standard_t(df=5, size=(300, 20)) * 0.01 + 0.0008
    sharpes = returns.mean(axis=0) / returns.std(axis=0)
    best = returns[:, np.argmax(sharpes)]
    # the textbook formulas, written out again with scipy
    trials, variance = 20, np.var(sharpes, ddof=1)
    sr0 = math.sqrt(variance) * (
        (1 - 0.5772156649) * stats.norm.ppf(1 - 1 / trials)
        + 0.5772156649 * stats.norm.ppf(1 - 1 / (trials * math.e))
    )
    sr = best.mean() / best.std()
    skew, kurt = stats.skew(best), stats.kurtosis(best, fisher=False)
    z = (sr - sr0) * math.sqrt(len(best) - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    result = deflated_sharpe(best, sharpes)
    assert result.benchmark == pytest.approx(sr0, rel=1e-9)
    assert (result.skew, result.kurtosis) == pytest.approx((skew, kurt), rel=1e-9)
    assert result.probability == pytest.approx(stats.norm.cdf(z), rel=1e-9)
    assert (result.trials, result.days) == (20, 300)


def test_one_trial_is_no_selection() -> None:
    assert expected_max_sharpe(1, 0.3) == 0.0
    assert EULER_MASCHERONI == pytest.approx(0.5772156649)


# ---------------------------------------------------------------- PBO by hand

# S = 4 blocks of 2 days, 3 runs. A block with mean m holds the days m + 1 and m - 1 (in 0.01), so
# the Sharpe over blocks i and j is ((m_i + m_j) / 2) / sqrt(1 + ((m_i - m_j) / 2)^2).
BLOCK_MEANS = {"A": [3, 3, -3, -3], "B": [-1, -1, 2, 2], "C": [1, 1, 1, 1]}


def hand_market() -> np.ndarray:
    columns = [[0.01 * (m + d) for m in means for d in (1, -1)] for means in BLOCK_MEANS.values()]
    return np.array(columns).T  # 8 days x 3 runs


def test_pbo_of_the_best_run_by_hand() -> None:
    """The six splits (in-sample blocks):
    {0,1}: A 3, B -1, C 1 -> A; out {2,3}: A -3, B 2, C 1 -> A is worst: omega 1/4, overfit.
    {2,3}: A -3, B 2, C 1 -> B; out {0,1}: A 3, B -1, C 1 -> B is worst: omega 1/4, overfit.
    {0,2}, {0,3}, {1,2}, {1,3}: A 0, B 0.5/sqrt(3.25) = 0.277, C 1 -> C; out the same -> C is
    best: omega 3/4, not overfit.  PBO = 2/6."""
    result = pbo_best(hand_market(), blocks=4)
    assert result.splits == 6 and result.days == 8 and result.runs == 3
    assert result.pbo == pytest.approx(1 / 3)
    assert sorted(result.logits) == pytest.approx([math.log(1 / 3)] * 2 + [math.log(3)] * 4)


def test_pbo_of_a_selection_by_hand() -> None:
    """Choose the runs whose in-sample Sharpe is above 1.5, equally weighted: A in split {0,1},
    B in {2,3} (omega 1/4 each, as above); nothing in the other four, which then counts as a run
    of Sharpe 0 joining the three out-of-sample (A 0, B 0.277, C 1): tied with A, its rank is
    1.5 of 4, omega 1.5 / 5 = 0.3: overfit too. PBO = 1; with the threshold at 0.5, {0,1} takes A
    and C (omegas 1/4, 2/4: 3/8), {2,3} B and C (3/8), the others C alone (3/4): PBO = 2/6."""

    def above(threshold: float):
        def choose(figures):
            chosen = (figures.sharpe > threshold).astype(float)
            total = chosen.sum(axis=1, keepdims=True)
            return np.divide(chosen, total, out=np.zeros_like(chosen), where=total > 0)

        return choose

    sums = block_sums(hand_market(), 4)
    strict = pbo_selection(sums, above(1.5))
    assert strict.pbo == 1.0
    assert sorted(strict.logits) == pytest.approx([math.log(1 / 3)] * 2 + [math.log(0.3 / 0.7)] * 4)
    loose = pbo_selection(sums, above(0.5))
    assert loose.pbo == pytest.approx(1 / 3)
    assert sorted(loose.logits) == pytest.approx([math.log(3 / 5)] * 2 + [math.log(3)] * 4)


def test_relative_ranks_share_ties_like_scipy() -> None:
    values = np.random.default_rng(2).integers(0, 5, size=(50, 9)).astype(float)
    expected = stats.rankdata(values, axis=1, method="average") / 10
    assert relative_ranks(values) == pytest.approx(expected)


def test_too_few_days_for_the_blocks_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot make 16 blocks"):
        block_sums(np.zeros((31, 3)))


# ---------------------------------------------------------------- noise and a planted edge

NOISE_SEEDS = range(8)


def noise_market(seed: int, runs: int = 40, days: int = 400) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.01, size=(days, runs))


def planted_market(seed: int) -> np.ndarray:
    """Noise, and run 7 with a real edge: a daily Sharpe of 0.25 (about 4.8 a year)."""
    market = noise_market(seed)
    market[:, 7] += 0.0025
    return market


def best_dsr(market: np.ndarray) -> overfitting.DeflatedSharpe:
    sharpes = sharpe_per_day(market)
    return deflated_sharpe(market[:, np.argmax(sharpes)], sharpes)


def test_on_pure_noise_pbo_is_near_one_half_and_the_best_is_not_significant() -> None:
    pbos = [pbo_best(noise_market(seed)).pbo for seed in NOISE_SEEDS]
    dsrs = [best_dsr(noise_market(seed)).probability for seed in NOISE_SEEDS]
    print(f"noise: PBO {np.round(pbos, 3)} mean {np.mean(pbos):.3f}; DSR {np.round(dsrs, 3)}")
    assert 0.35 <= np.mean(pbos) <= 0.65
    assert max(dsrs) < 0.95


def test_one_planted_edge_gives_a_low_pbo_and_a_significant_dsr() -> None:
    for seed in NOISE_SEEDS[:3]:
        market = planted_market(seed)
        result, dsr = pbo_best(market), best_dsr(market)
        print(f"planted seed {seed}: PBO {result.pbo:.3f}, DSR {dsr.probability:.4f}")
        assert np.argmax(sharpe_per_day(market)) == 7
        assert result.pbo < 0.1
        assert dsr.probability > 0.95 and dsr.significant


def test_without_the_deflation_noise_looks_significant() -> None:
    """The check can fail: the same best noise run, judged as if it were the only trial (the
    Probabilistic Sharpe Ratio against 0), is called significant in most markets."""
    naive = []
    for seed in NOISE_SEEDS:
        market = noise_market(seed)
        best = market[:, np.argmax(sharpe_per_day(market))]
        naive.append(deflated_sharpe(best, np.array([0.0])).probability)
    assert sum(p >= 0.95 for p in naive) >= len(naive) // 2


def test_a_broken_ranking_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: ranking out-of-sample upside down (best = worst) makes the planted
    edge look overfitted, which the planted-edge assertion would refuse."""
    flipped = overfitting._omega_of
    monkeypatch.setattr(
        overfitting, "_omega_of", lambda values, out, member: 1 - flipped(values, out, member)
    )
    assert pbo_best(planted_market(0)).pbo > 0.95


# ---------------------------------------------------------------- daily returns of the runs


def test_run_days_are_the_metrics_daily_returns_of_each_run() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for run in range(4):
        for _ in range(30):
            entry = pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(
                minutes=int(rng.integers(0, 60 * 24 * 40))
            )
            exit_ = entry + pd.Timedelta(minutes=int(rng.integers(1, 60 * 24 * 3)))
            rows.append(
                {
                    "strategy": "orb",
                    "symbol": "ALPHA/USD",
                    "interval": "5m",
                    "params": f'{{"n":{run}}}',
                    "entry_time": entry,
                    "exit_time": exit_,
                    "pnl": float(rng.normal(5, 100)),
                }
            )
    trades = pd.DataFrame(rows)
    keys = [("orb", "ALPHA/USD", "5m", f'{{"n":{run}}}') for run in (2, 0, 1, 3, 9)]
    matrix = run_days(trades, keys, 1_000.0)
    for column, key in enumerate(keys):
        own = trades[trades["params"] == key[3]]
        curve = equity_from_trades(own, 1_000.0).set_index("timestamp")["equity"]
        expected = period_returns(curve, 1_000.0, "day")
        got = pd.Series(matrix.returns[:, column], index=matrix.days)
        if own.empty:  # run 9 never traded: a flat line
            assert (got == 0).all()
            continue
        assert got.reindex(expected.index).to_numpy() == pytest.approx(expected.to_numpy())
        assert (got.drop(expected.index) == 0).all()
        assert matrix.trades[:, column].sum() == len(own)
