"""Rolling re-selection (analysis/rolling.py) and its stitched account (backtest/rolling.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.rolling import (
    DAY_NS,
    Schedule,
    choose,
    market,
    random_band,
    random_returns,
    rolling_schedule,
    selection_returns,
    selections_frame,
    window_figures,
)
from analysis.weights import (
    METHODS,
    FitnessRule,
    compute_weights,
    instance_key,
    per_instance_metrics,
)
from backtest.account import AccountSettings
from backtest.rolling import DESELECTED, replay
from testing.rolling_market import synthetic_runs

CASH = 10_000.0
RULE = FitnessRule(min_trades=10)


def _keys(results: pd.DataFrame) -> list[tuple]:
    return [instance_key(row) for _, row in results.iterrows()]


@pytest.fixture(scope="module")
def noise():
    results, trades = synthetic_runs(12, 200, seed=3)
    return results, trades, market(trades, _keys(results), CASH)


# ---------------------------------------------------------------- the rule, vectorised


@pytest.mark.parametrize("method", METHODS)
def test_window_weights_are_compute_weights_of_the_window_trades(noise, method) -> None:
    """The vectorised rule gives weights' own weights on the trades that exited in the window."""
    results, trades, m = noise
    schedule = rolling_schedule(m, 30, 45, method, RULE)
    chosen = 0
    for p in (0, len(schedule.starts) // 2, len(schedule.starts) - 1):  # compute_metrics is slow
        when = schedule.times[p]
        window = trades[
            (trades["exit_time"] >= when - pd.Timedelta(days=45)) & (trades["exit_time"] < when)
        ]
        metrics = per_instance_metrics(window, m.keys, CASH, RULE.minimum)
        expected = compute_weights(metrics, method, RULE).to_numpy()
        np.testing.assert_allclose(schedule.weights[p], expected, rtol=1e-9, atol=1e-12)
        chosen += int((expected > 0).sum())
    assert 0 < chosen < schedule.weights.size  # some chosen, some refused: the rule did work


# ---------------------------------------------------------------- no lookahead


def _changed_after(trades: pd.DataFrame, when: pd.Timestamp, seed: int) -> pd.DataFrame:
    """The same trades before `when`; every trade exiting at or after it gets another pnl."""
    later = trades["exit_time"] >= when
    out = trades.copy()
    rng = np.random.default_rng(seed)
    out.loc[later, "pnl"] = rng.normal(0, 500, int(later.sum()))
    return out


def _weights_before_unchanged(results, trades, chooser=None) -> bool:
    """At every re-selection t, rewriting the trades that exit at or after t changes nothing."""
    m = market(trades, _keys(results), CASH)
    base = rolling_schedule(m, 7, 45, "sortino", RULE, chooser)
    assert (base.weights > 0).any()  # a check on empty selections could not fail
    for p, when in enumerate(base.times):
        other = market(_changed_after(trades, when, p), _keys(results), CASH)
        again = rolling_schedule(other, 7, 45, "sortino", RULE, chooser)
        if not np.array_equal(again.weights[: p + 1], base.weights[: p + 1]):
            return False
    return True


def test_trades_exiting_after_t_are_not_seen_at_t(noise) -> None:
    results, trades, _m = noise
    assert _weights_before_unchanged(results, trades)


def test_a_selection_that_peeks_past_t_is_caught(noise) -> None:
    """Broken on purpose: the window reaches one day past t; the same check must fail."""
    results, trades, _m = noise

    def peeking(m, start, stop):
        return choose(window_figures(m, start + 1, stop + 1, RULE), "sortino", RULE)

    assert not _weights_before_unchanged(results, trades, peeking)


# ---------------------------------------------------------------- a hand-built schedule

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2025-01-01", tz="UTC")


def _trade(family_k, symbol, entry, exit_, entry_price, exit_price, quantity):
    pnl = quantity * (exit_price - entry_price)
    return {
        "strategy": "hand",
        "symbol": symbol,
        "interval": "1h",
        "params": f'{{"k":{family_k}}}',
        "side": "long",
        "entry_time": T0 + entry,
        "entry_price": entry_price,
        "exit_time": T0 + exit_,
        "exit_price": exit_price,
        "quantity": quantity,
        "fees": 0.0,
        "pnl": pnl,
        "return_pct": pnl / (quantity * entry_price),
        "exit_reason": "signal",
    }


def _hand_schedule() -> Schedule:
    """Instances A (AAA/USD) and B (BBB/USD); re-selections on days 5, 10 and 12 with weights
    A 1, B 0 / A 1, B 0.5 / A 0, B 0.5."""
    hour = pd.Timedelta(hours=1)
    trades = pd.DataFrame(
        [
            _trade(0, "AAA/USD", 1 * hour, 2 * hour, 100.0, 100.0, 10.0),  # before day 5: no
            _trade(1, "BBB/USD", 7 * DAY, 8 * DAY, 50.0, 50.0, 20.0),  # B has weight 0: no
            _trade(0, "AAA/USD", 10 * DAY + hour, 12 * DAY + 2 * hour, 100.0, 110.0, 10.0),
            _trade(1, "BBB/USD", 11 * DAY + hour, 13 * DAY, 50.0, 45.0, 20.0),
            _trade(0, "AAA/USD", 12 * DAY + 5 * hour, 14 * DAY, 100.0, 120.0, 10.0),  # A dropped
        ]
    )
    keys = [("hand", "AAA/USD", "1h", '{"k":0}'), ("hand", "BBB/USD", "1h", '{"k":1}')]
    m = market(trades, keys, CASH)
    weights = np.array([[1.0, 0.0], [1.0, 0.5], [0.0, 0.5]])
    return Schedule(m, np.array([5, 10, 12]), weights, 0, 5)


def test_hand_built_schedule_stitches_the_known_trades() -> None:
    """A's trade entered under weight 1 runs to its exit after A is dropped on day 12: risk 1 % x
    1 x 10,000 / its implied stop 10 (= 1 % x 10,000 / 10 units) = 10 units, pnl +100. B's trade:
    equity 10,000 (cash 9,000 + A marked at 100) x 1 % x 0.5 / stop 5 = 10 units of the 20
    stored, pnl -100 x 10/20 = -50. Equity 10,000 -> 10,100 -> 10,050."""
    schedule = _hand_schedule()
    account = replay(schedule, AccountSettings(cash=CASH, fee_bps=0.0))
    taken = account.trades
    assert list(taken["symbol"]) == ["AAA/USD", "BBB/USD"]
    assert list(taken["quantity"]) == pytest.approx([10.0, 10.0])
    assert list(taken["pnl"]) == pytest.approx([100.0, -50.0])
    assert list(taken["exit_reason"]) == ["signal", "signal"]
    equity = account.equity.set_index("timestamp")["equity"]
    assert equity.iloc[0] == pytest.approx(10_000.0)
    assert equity[T0 + 5 * DAY] == pytest.approx(10_000.0)  # the first re-selection: the start
    assert equity[T0 + 12 * DAY + pd.Timedelta(hours=2)] == pytest.approx(10_100.0)  # A exits
    # day 12 00:00: cash 8,500 + A 10 x 100 + B 10 x 50 (marked at their entries)
    assert equity[T0 + 13 * DAY - DAY] == pytest.approx(10_000.0)
    assert equity.iloc[-1] == pytest.approx(10_050.0)
    assert account.metrics["total_return"] == pytest.approx(0.005)
    rows = selections_frame(schedule)
    assert list(rows["time"]) == [
        "2025-01-06T00:00:00Z",
        "2025-01-11T00:00:00Z",
        "2025-01-11T00:00:00Z",
        "2025-01-13T00:00:00Z",
    ]
    assert list(rows["weight"]) == [1.0, 1.0, 0.5, 0.5]
    assert rows["instance"].iloc[0] == "hand[AAA/USD 1h k=0]"


def test_close_on_deselect_closes_at_the_last_known_price() -> None:
    """Dropped on day 12, A's trade is closed at 00:00 at its mark (100, its entry: no later
    AAA price is known then) for pnl 0; B's is as before. Equity 10,000 -> 9,950."""
    account = replay(_hand_schedule(), AccountSettings(cash=CASH, fee_bps=0.0), True)
    taken = account.trades
    assert list(taken["exit_reason"]) == [DESELECTED, "signal"]
    assert taken["exit_time"].iloc[0] == T0 + 12 * DAY
    assert list(taken["pnl"]) == pytest.approx([0.0, -50.0])
    assert account.equity["equity"].iloc[-1] == pytest.approx(9_950.0)


# ---------------------------------------------------------------- against random selections


def test_one_real_edge_among_noise_beats_the_random_band() -> None:
    results, trades = synthetic_runs(30, 240, seed=11, edge=7, drift=0.006)
    m = market(trades, _keys(results), CASH)
    schedule = rolling_schedule(m, 7, 60, "binary", FitnessRule(min_trades=10, min_sortino=1.0))
    assert schedule.weights[:, 7].mean() > 0.9  # the edge is chosen almost every time
    band = random_band(schedule, 200, seed=1)
    assert band.rolling > band.p95 and band.verdict == "skill"


def test_pure_noise_is_not_distinguishable_from_random() -> None:
    results, trades = synthetic_runs(30, 240, seed=11)
    m = market(trades, _keys(results), CASH)
    schedule = rolling_schedule(m, 7, 60, "binary", FitnessRule(min_trades=10, min_sortino=1.0))
    band = random_band(schedule, 200, seed=1)
    assert band.verdict == "not distinguishable from random"
    assert band.p50 < band.p95


def test_a_draw_of_every_instance_is_the_selection_itself() -> None:
    """With every instance chosen at equal weights a draw has no choice left: each of its daily
    returns must be the selection's own (the two attribute trades to selections alike)."""
    results, trades = synthetic_runs(10, 120, seed=2)
    schedule = rolling_schedule(market(trades, _keys(results), CASH), 7, 45, "binary", RULE)
    everyone = schedule.held(np.ones_like(schedule.weights))
    own = selection_returns(everyone)
    assert np.abs(own).sum() > 0
    np.testing.assert_allclose(random_returns(everyone, 5, 0), np.tile(own, (5, 1)), atol=1e-15)


def test_the_band_is_seeded() -> None:
    results, trades = synthetic_runs(10, 120, seed=2)
    schedule = rolling_schedule(market(trades, _keys(results), CASH), 7, 45, "binary", RULE)
    assert np.isfinite(random_band(schedule, 200, 5).rolling)
    assert random_band(schedule, 200, 5) == random_band(schedule, 200, 5)
    assert random_band(schedule, 200, 5).p95 != random_band(schedule, 200, 6).p95


def test_day_arithmetic() -> None:
    assert DAY_NS == pd.Timedelta(days=1).value
