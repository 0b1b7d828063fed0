"""Weights from results: fitness rule, the three methods, prod.json, in/out-of-sample, database."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.weights import (
    FitnessRule,
    WeightsError,
    compute_weights,
    load_results,
    load_split_trades,
    prod_config,
    results_paths,
    split_report,
    write_prod,
    write_to_db,
)
from tests.analysis.analysis_data import write_results_dir

# the hand-made trades span a few weeks: a rule that accepts any sample length
SHORT_OK = FitnessRule(min_trades=2, min_days=0, min_daily_returns=0)


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    return write_results_dir(tmp_path / "all")


@pytest.fixture
def results(results_dir: Path) -> pd.DataFrame:
    return load_results(results_paths(results_dir)[0])


def test_load_drops_failed_runs(results: pd.DataFrame) -> None:
    assert len(results) == 5 and '{"lookback":99}' not in set(results["params"])


def test_fitness_rule_and_flags() -> None:
    rule = FitnessRule()
    assert rule.passes({"sortino": 0.1, "expectancy": 0.1, "trades": 20})
    assert not rule.passes({"sortino": 0.0, "expectancy": 1, "trades": 50})  # strictly above
    assert not rule.passes({"sortino": 1, "expectancy": 0.0, "trades": 50})
    assert not rule.passes({"sortino": 1, "expectancy": 1, "trades": 19})
    assert not rule.passes({"sortino": None, "expectancy": 1, "trades": 50})
    assert not rule.passes({"sortino": float("nan"), "expectancy": 1, "trades": 50})
    assert FitnessRule(min_trades=5).passes({"sortino": 1, "expectancy": 1, "trades": 5})
    assert not FitnessRule(min_sortino=1.5).passes({"sortino": 1, "expectancy": 1, "trades": 50})


def test_fitness_refuses_short_or_small_samples_with_a_reason() -> None:
    rule = FitnessRule()
    good = {"sortino": 2.0, "expectancy": 1.0, "trades": 50, "span_days": 90, "daily_returns": 90}
    assert rule.refusal(good) is None
    # the XRP/ETH run: 2.5 days, absurd sortino 1,258 -> refused, whatever its sortino
    short = {**good, "sortino": 1258.0, "span_days": 2.5, "daily_returns": 3}
    assert rule.refusal(short) == "sample too short (< 30 days of data)"
    assert not rule.passes(short)
    sparse = {**good, "span_days": 40, "daily_returns": 12}
    assert rule.refusal(sparse) == "sample too small (< 20 daily returns)"
    # an older results.csv without span_days: the period is used
    old = {
        **good,
        "span_days": None,
        "period_start": "2024-01-01T00:00:00Z",
        "period_end": "2024-01-03T12:00:00Z",
    }
    assert rule.refusal(old) == "sample too short (< 30 days of data)"
    assert FitnessRule(min_days=2, min_daily_returns=3).refusal(short) is None
    assert rule.refusal({**good, "trades": 3}) == "too few trades (< 20)"


def test_binary_weights(results: pd.DataFrame) -> None:
    assert compute_weights(results, "binary", FitnessRule()).tolist() == [1, 1, 0, 0, 0]
    # lowering the trade count lets D (10 trades) in
    assert compute_weights(results, "binary", FitnessRule(min_trades=10)).tolist() == [
        1,
        1,
        0,
        1,
        0,
    ]


def test_sortino_and_inverse_vol_weights(results: pd.DataFrame) -> None:
    # A sortino 2, B sortino 1 -> 2/3, 1/3
    sortino = compute_weights(results, "sortino", FitnessRule())
    assert sortino.tolist() == pytest.approx([2 / 3, 1 / 3, 0, 0, 0])
    # A vol 0.2, B vol 0.1 -> 1/0.2 : 1/0.1 = 5 : 10
    inverse = compute_weights(results, "inverse_vol", FitnessRule())
    assert inverse.tolist() == pytest.approx([1 / 3, 2 / 3, 0, 0, 0])
    nobody = compute_weights(results, "sortino", FitnessRule(min_trades=1000))
    assert nobody.tolist() == [0, 0, 0, 0, 0]


def test_inverse_vol_needs_volatility(results: pd.DataFrame) -> None:
    with pytest.raises(WeightsError, match="no volatility column"):
        compute_weights(results.drop(columns="volatility"), "inverse_vol", FitnessRule())
    with pytest.raises(WeightsError, match="unknown method"):
        compute_weights(results, "kelly", FitnessRule())


def test_prod_json_lists_only_non_zero(results: pd.DataFrame, tmp_path: Path) -> None:
    weights = compute_weights(results, "sortino", FitnessRule())
    path = write_prod(
        prod_config(results, weights, "sortino", FitnessRule(), "x"), tmp_path / "p.json"
    )
    config = json.loads(path.read_text())
    assert config["method"] == "sortino" and config["rule"]["min_trades"] == 20
    assert config["instances"] == [
        {
            "family": "sr_breakout",
            "params": {"lookback": 20},
            "symbol": "ETH/BTC",
            "interval": "5m",
            "weight": pytest.approx(2 / 3),
        },
        {
            "family": "orb",
            "params": {"minutes": 30},
            "symbol": "ETH/BTC",
            "interval": "5m",
            "weight": pytest.approx(1 / 3),
        },
    ]


def test_split_in_sample_vs_out_of_sample_by_hand(results_dir: Path, results) -> None:
    results_path, trades_path = results_paths(results_dir)
    trades = load_split_trades(trades_path, results_path)
    report = split_report(results, trades, pd.Timestamp("2024-03-01", tz="UTC"), "binary", SHORT_OK)
    # in-sample A: +10 -5 +10 (passes), B: -10 +5 -10 (expectancy < 0): only A chosen
    assert report["weights"].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert report["in_sample_results"]["expectancy"].iloc[0] == pytest.approx(5.0)
    assert report["in_sample"]["trades"] == 3  # the trade spanning the split is in neither
    assert report["in_sample"]["total_return"] == pytest.approx(15 / 10_000)
    assert report["out_of_sample"]["trades"] == 2
    assert report["out_of_sample"]["total_return"] == pytest.approx(-20 / 10_000)
    # every instance with its own 10,000: 5 x 10,000, pnl -10 -10 +20 = 0
    assert report["out_of_sample_all"]["trades"] == 3
    assert report["out_of_sample_all"]["total_return"] == pytest.approx(0.0)
    assert report["out_of_sample_all"]["initial_cash"] == 50_000.0


def test_split_needs_trades(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="--split needs the combined trades.csv"):
        load_split_trades(None, tmp_path / "results.csv")


def test_results_path_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        results_paths(tmp_path / "missing")
    with pytest.raises(WeightsError, match="has no results.csv"):
        results_paths(tmp_path)
    bad = tmp_path / "r.csv"
    bad.write_text("strategy,symbol\nx,y\n")
    with pytest.raises(WeightsError, match="missing column"):
        load_results(bad)


def test_a_results_file_that_is_not_csv_or_has_bad_params_is_one_weights_error(
    tmp_path: Path,
) -> None:
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage\x00\xff")
    with pytest.raises(WeightsError, match="is not a readable CSV file"):
        load_results(binary)
    bad = tmp_path / "bad_params.csv"
    bad.write_text(
        "strategy,symbol,interval,params,sortino,expectancy,trades\n"
        "sr_breakout,ETH/BTC,5m,{lookback:20},1.0,2.0,30\n"
    )
    with pytest.raises(WeightsError, match="params '{lookback:20}' is not a JSON object"):
        load_results(bad)


def test_weights_written_to_database(db_url: str, results: pd.DataFrame) -> None:
    from store.instances import add_instance, list_instances

    existing_b = add_instance(db_url, "orb", "binance", "ETH/BTC", "5m", {"minutes": 30})
    existing_c = add_instance(db_url, "trend_day", "binance", "ETH/BTC", "5m", {})
    weights = compute_weights(results, "sortino", FitnessRule())
    assert write_to_db(db_url, results, weights, "binance") == (2, 1)  # B, C updated; A added
    rows = {i.family: i for i in list_instances(db_url)}
    assert rows["orb"].id == existing_b.id and rows["orb"].weight == pytest.approx(1 / 3)
    assert rows["orb"].enabled
    assert rows["trend_day"].id == existing_c.id and not rows["trend_day"].enabled
    assert rows["trend_day"].weight == 0.0
    assert rows["sr_breakout"].params == {"lookback": 20} and rows["sr_breakout"].enabled
    assert rows["sr_breakout"].weight == pytest.approx(2 / 3)
    assert len(rows) == 3  # zero-weight instances not in the database are not added
    assert {i.family for i in list_instances(db_url, enabled_only=True)} == {"orb", "sr_breakout"}
