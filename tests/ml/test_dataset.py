"""ml/dataset.py and ml/features.py: rows per trade, no lookahead per group, cleaning, report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.run import run_backtest
from factors.synthetic import random_walk_bars
from ml.dataset import build_dataset, clean_features, distribution_report, report_text
from ml.features import GROUPS, FeatureBuilder, FeatureConfig, check_no_lookahead, signal_positions
from strategies.sr_breakout import SRBreakout


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return random_walk_bars(3000, "5m", seed=7)


@pytest.fixture(scope="module")
def result(bars):
    return run_backtest(SRBreakout(sl_pct=0.004, tp_pct=0.004), bars, "X/Y", "5m")


@pytest.mark.parametrize("group", GROUPS)
def test_every_feature_group_is_unchanged_when_the_data_ends_at_the_signal_bar(bars, group):
    builder = FeatureBuilder(FeatureConfig(groups=(group,)))
    positions = [400, 1700, 2999]  # 2999: the last bar, where a truncation changes nothing
    assert builder.rows(bars, "5m", positions).shape[1] > 0
    assert check_no_lookahead(builder, bars, "5m", positions) == []


def test_the_lookahead_check_catches_a_feature_that_peeks_at_the_next_bar(bars):
    def next_return(frame, interval, cfg):
        return pd.DataFrame({"peek": frame["close"].shift(-1) / frame["close"]}, index=frame.index)

    builder = FeatureBuilder(FeatureConfig(groups=("time",)), extra={"peek": next_return})
    assert check_no_lookahead(builder, bars, "5m", [400, 1700]) == ["peek"]


def test_signal_bar_is_the_bar_whose_close_is_the_entry_fill(bars, result):
    trades = result.trades
    positions = signal_positions(bars, "5m", trades["entry_time"])
    # the strategy's entry column fires at each signal bar; the fill is at the next bar's open
    enter = SRBreakout(sl_pct=0.004, tp_pct=0.004).compute(bars)["enter_long"].to_numpy()
    assert enter[positions].all()
    opens = bars.index[positions + 1]
    assert (opens == pd.DatetimeIndex(trades["entry_time"])).all()


def test_one_row_per_trade_with_its_target_and_return(bars, result):
    trades = result.trades
    ds = build_dataset(trades, bars, "5m")
    assert len(ds) == len(trades) == len(ds.features)
    assert ds.won.tolist() == (trades["pnl"] > 0).astype(int).tolist()
    assert np.allclose(ds.returns, trades["return_pct"])
    assert (np.diff(ds.signal_ns) > 0).all()  # time order
    assert (ds.exit_ns > ds.signal_ns).all()
    assert any(c.startswith("ts_ret__") for c in ds.features.columns)
    assert ds.longest_trade_ns() == int((ds.exit_ns - ds.signal_ns).max())


def test_cleaning_drops_constant_missing_and_duplicate_columns_and_infinities():
    frame = pd.DataFrame(
        {
            "good": [1.0, 2.0, np.inf, 4.0],
            "constant": [3.0, 3.0, 3.0, 3.0],
            "missing": [np.nan] * 4,
            "copy": [1.0, 2.0, np.inf, 4.0],
            "partly": [np.nan, 5.0, 5.0, 5.0],  # one value plus missing: missingness informs
        }
    )
    cleaned, dropped = clean_features(frame)
    assert list(cleaned.columns) == ["good", "partly"]
    assert np.isnan(cleaned["good"][2])
    assert dropped == {"all_missing": ["missing"], "constant": ["constant"], "duplicate": ["copy"]}


def test_distribution_report_counts_classes_and_summarises_features(bars, result):
    ds = build_dataset(result.trades, bars, "5m", FeatureBuilder(FeatureConfig(groups=("time",))))
    report = distribution_report(ds)
    assert report["trades"] == len(result.trades)
    assert report["wins"] == int((result.trades["pnl"] > 0).sum())
    hours = ds.features["t_hour"]
    assert report["summary"]["t_hour"]["max"] == hours.max() <= 23
    assert "won (win rate" in report_text(report)


def test_feature_config_round_trips_through_its_recorded_form():
    config = FeatureConfig(groups=("time", "tsfresh"), window=20, tsfresh="minimal", higher=("1h",))
    assert FeatureConfig.from_dict(config.as_dict()) == config
    assert FeatureConfig.from_dict({}) == FeatureConfig()
    with pytest.raises(ValueError, match="unknown tsfresh set"):
        FeatureConfig(tsfresh="huge")


def test_a_builder_shared_by_a_series_instances_gives_the_rows_a_fresh_one_gives(bars):
    shared = FeatureBuilder(FeatureConfig())
    shared.rows(bars, "5m", [500, 900])  # an earlier instance of the same series
    again = shared.rows(bars, "5m", [5, 900, 1200])  # 5: before a full tsfresh window
    fresh = FeatureBuilder(FeatureConfig()).rows(bars, "5m", [5, 900, 1200])
    pd.testing.assert_frame_equal(again.reindex(columns=fresh.columns), fresh)
    other = random_walk_bars(1500, "5m", seed=8)  # another series: nothing of the first is reused
    pd.testing.assert_frame_equal(
        shared.rows(other, "5m", [900]), FeatureBuilder(FeatureConfig()).rows(other, "5m", [900])
    )
