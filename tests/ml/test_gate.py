"""The strategy host's signal gate (actors/strategy_host.py) and the gates of ml/apply.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from actors.kernel import run_kernel
from backtest.run import BacktestConfig, assemble_result, run_backtest
from factors.synthetic import random_walk_bars
from ml.apply import Calibration, RandomSkipGate, decide, kelly
from strategies.sr_breakout import SRBreakout

CONFIG = BacktestConfig()


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return random_walk_bars(4000, "5m", seed=11)


def gated(bars, gate, mode="fast", config=CONFIG):
    strategy = SRBreakout(sl_pct=0.004, tp_pct=0.004)
    output = run_kernel(strategy, bars, "X/Y", "5m", config, mode, signal_gate=gate)
    return assemble_result(strategy, bars, "X/Y", "5m", config, output).trades


def test_a_gate_that_takes_everything_changes_nothing(bars):
    plain = run_backtest(SRBreakout(sl_pct=0.004, tp_pct=0.004), bars, "X/Y", "5m").trades
    asked = []
    trades = gated(bars, lambda s: (asked.append(s.ts) or True, 1.0))
    pd.testing.assert_frame_equal(trades, plain)
    assert len(asked) == len(plain)  # asked once per entry signal, exits never


def test_a_skipped_signal_never_trades_and_the_next_breakout_is_taken(bars):
    plain = gated(bars, None)
    first = plain["entry_time"].iloc[0]
    close_of_first = first.value  # signal ts = close of the signal bar = entry fill time
    trades = gated(bars, lambda s: (s.ts != close_of_first, 1.0))
    assert first not in set(trades["entry_time"])
    assert trades["entry_time"].iloc[0] > first
    assert len(gated(bars, lambda s: (False, 0.0))) == 0


def test_size_multiplier_scales_the_risk_based_quantity(bars):
    small_risk = BacktestConfig(risk=0.002)  # the risk size binds, not the cash cap
    plain = gated(bars, None, config=small_risk)
    half = gated(bars, lambda s: (True, 0.5), config=small_risk)
    # same trades (entries and exits do not depend on size), about half the quantity (equity
    # differs a little once earlier trades were half as large)
    assert list(half["entry_time"]) == list(plain["entry_time"])
    assert half["quantity"].iloc[0] == pytest.approx(plain["quantity"].iloc[0] * 0.5, rel=1e-12)
    assert np.allclose(half["quantity"], plain["quantity"] * 0.5, rtol=0.05)


def test_replay_mode_asks_the_gate_the_same_way_as_fast_mode(bars):
    skip_even = lambda s: (s.ts // 300_000_000_000 % 2 == 0, 1.0)  # noqa: E731
    fast = gated(bars, skip_even, "fast")
    replay = gated(bars, skip_even, "replay")
    pd.testing.assert_frame_equal(fast, replay)


def test_application_methods_decide_by_probability():
    cal = Calibration(threshold=0.6, p_ref=0.5, payoff=1.0)
    assert decide("filter", 0.65, cal) == (True, 1.0)
    assert decide("filter", 0.55, cal) == (False, 1.0)
    assert decide("size", 0.75, cal) == (True, 1.5)
    assert decide("size", 0.01, cal) == (True, 0.25)  # clipped
    assert kelly(0.5, 1.0) == 0.0
    assert decide("kelly", 0.45, cal)[0] is False  # negative edge: skip
    take, scale = decide("kelly", 0.7, Calibration(p_ref=0.6, payoff=1.0))
    assert take and scale == pytest.approx((0.7 - 0.3) / (0.6 - 0.4))


def test_random_skip_gate_skips_at_its_rate():
    gate = RandomSkipGate(0.3, seed=1)
    taken = [gate(None)[0] for _ in range(5000)]
    assert abs(1 - np.mean(taken) - 0.3) < 0.03


def test_online_gate_computing_features_at_each_signal_decides_like_the_precomputed_gate():
    from ml.apply import ModelGate, OnlineGate, closed_bars
    from ml.dataset import build_dataset
    from ml.features import FeatureBuilder, FeatureConfig
    from ml.models import ModelSpec
    from ml.modelstore import TrainedModel
    from ml.synthetic import planted_market
    from ml.walkforward import Fold, FoldModel, fit_in_sample

    bars = planted_market(6000, effect=True, seed=5)
    strategy = SRBreakout(sl_pct=0.005, tp_pct=0.005)
    config = FeatureConfig(groups=("factors", "time", "tsfresh"))
    builder = FeatureBuilder(config)
    train_bars, test_bars = bars.iloc[:3500], bars.iloc[3500:]
    trades = run_backtest(strategy, train_bars, "X/Y", "5m").trades
    ds = build_dataset(trades, train_bars, "5m", builder)
    model, calibration = fit_in_sample(ds, np.arange(len(ds)), ModelSpec(kind="logreg"))
    trained = TrainedModel(1, model.spec, model, calibration, config.as_dict())
    # precomputed: every entry-flag bar of the test part, features from the whole series
    flags = np.flatnonzero(strategy.compute(bars)["enter_long"].to_numpy())
    flags = flags[flags >= 3500]
    rows = builder.rows(bars, "5m", flags).reindex(columns=ds.features.columns)
    rows.index = pd.DatetimeIndex(bars.index[flags] + pd.Timedelta("5min")).as_unit("ns").asi8
    everything = Fold(np.arange(0), np.arange(0), 0, np.iinfo(np.int64).max)
    precomputed = ModelGate([FoldModel(everything, model, calibration)], rows, "filter")
    online = OnlineGate(trained, "filter", "5m", closed_bars(bars, "5m"))

    def on_test_part(gate):
        output = run_kernel(strategy, test_bars, "X/Y", "5m", CONFIG, signal_gate=gate)
        return assemble_result(strategy, test_bars, "X/Y", "5m", CONFIG, output).trades

    expected = on_test_part(precomputed)
    assert 0 < precomputed.taken < precomputed.asked  # the model really filters
    pd.testing.assert_frame_equal(on_test_part(online), expected)
