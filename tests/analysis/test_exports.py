"""Export formats: combined/separate trades round-trip, results.csv, factors at entry, ML file."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from analysis.columns import iso_utc
from analysis.exports import (
    COMBINED_TRADES_COLUMNS,
    RESULTS_COLUMNS,
    factors_at_entry,
    params_text,
    write_results_csv,
    write_trades,
    write_trades_by_model,
)
from analysis.metrics import CORE_KEYS, compute_metrics
from factors.synthetic import random_walk_bars
from tests.analysis.analysis_data import SIMPLE, trade_rows


def _result(run_id: str, strategy: str, params: dict, rows: list[dict]) -> SimpleNamespace:
    trades = trade_rows(rows)
    trades["entry_time"] = pd.to_datetime(trades["entry_time"], utc=True)
    trades["exit_time"] = pd.to_datetime(trades["exit_time"], utc=True)
    return SimpleNamespace(
        run_id=run_id,
        strategy=strategy,
        symbol="ETH/BTC",
        interval="5m",
        params=params,
        start=pd.Timestamp("2024-01-01", tz="UTC"),
        end=pd.Timestamp("2024-03-01", tz="UTC"),
        bars=17280,
        trades=trades,
        metrics=compute_metrics(trades, None, 1000.0),
    )


@pytest.fixture
def results() -> list[SimpleNamespace]:
    return [
        _result("a1", "sr_breakout", {"lookback": 20, "sl_pct": 0.01}, SIMPLE[:2]),
        _result("b2", "orb", {"minutes": 30}, SIMPLE[2:]),
        _result("c3", "trend_day", {}, []),  # no trades: no rows, but a results row
    ]


def test_params_text_is_canonical() -> None:
    assert params_text({"b": 1, "a": 0.5}) == '{"a":0.5,"b":1}'
    assert params_text('{"b": 1, "a": 0.5}') == params_text({"a": 0.5, "b": 1})
    assert params_text(None) == "{}"


def test_combined_trades_carry_instance_columns_and_split_back(tmp_path: Path, results) -> None:
    [path] = write_trades(results, tmp_path)
    combined = pd.read_csv(path, dtype={"params": str, "run_id": str})
    assert list(combined.columns) == list(COMBINED_TRADES_COLUMNS)
    assert len(combined) == 4
    first = combined[combined["run_id"] == "a1"]
    assert set(first["strategy"]) == {"sr_breakout"}
    assert json.loads(first["params"].iloc[0]) == {"lookback": 20, "sl_pct": 0.01}
    assert first["pnl"].tolist() == [100.0, -50.0]
    assert first["entry_time"].iloc[0] == "2024-01-01T00:00:00Z"  # as trades.csv


def test_separate_files_combine_to_the_same_rows(tmp_path: Path, results) -> None:
    [combined] = write_trades(results, tmp_path / "one")
    paths = write_trades(results, tmp_path / "many", separate=True)
    assert [p.name for p in paths] == [
        "sr_breakout_ETH-BTC_5m_a1.csv",
        "orb_ETH-BTC_5m_b2.csv",
        "trend_day_ETH-BTC_5m_c3.csv",
    ]
    again = pd.concat([_read(p) for p in paths], ignore_index=True)
    pd.testing.assert_frame_equal(again, _read(combined), check_dtype=False)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"params": str, "run_id": str})


def test_results_csv_has_every_metric(tmp_path: Path, results) -> None:
    rows = [
        {
            "run_id": r.run_id,
            "strategy": r.strategy,
            "params": params_text(r.params),
            "start": iso_utc(r.start),
            "node_ip": "127.0.0.2",  # extra keys follow the standard columns
            **r.metrics,
        }
        for r in results
    ]
    frame = pd.read_csv(write_results_csv(rows, tmp_path / "results.csv"))
    assert list(frame.columns)[: len(RESULTS_COLUMNS)] == list(RESULTS_COLUMNS)
    assert list(frame.columns)[len(RESULTS_COLUMNS)] == "node_ip"
    assert set(CORE_KEYS) <= set(frame.columns)
    assert frame["trades"].tolist() == [2, 2, 0]
    assert frame.loc[0, "win_rate"] == 0.5 and frame.loc[0, "profit_factor"] == 2.0
    assert pd.isna(frame.loc[2, "win_rate"])  # undefined -> empty cell
    assert frame.loc[1, "params"] == '{"minutes":30}'
    assert frame.loc[0, "start"] == "2024-01-01T00:00:00Z"


def test_factors_at_entry_use_the_last_closed_bar() -> None:
    from factors.engine import compute_factors

    bars = random_walk_bars(300, "5m", seed=4)
    table = compute_factors(bars, ["range_10", "trend_20"], interval="5m")
    # entries at the open of bars 50 and 120 (= the close of bars 49 and 119), and one
    # mid-bar entry inside bar 200 (only bar 199 has closed by then)
    entry_times = [bars.index[50], bars.index[120], bars.index[200] + pd.Timedelta(minutes=2)]
    trades = pd.DataFrame(
        {"trade_id": ["t1", "t2", "t3"], "entry_time": [t.isoformat() for t in entry_times]}
    )
    out = factors_at_entry(trades.iloc[[2, 0, 1]], bars, "5m", ["range_10", "trend_20"])
    assert out["trade_id"].tolist() == ["t3", "t1", "t2"]  # input order kept
    by_id = out.set_index("trade_id")
    for trade_id, bar in (("t1", 49), ("t2", 119), ("t3", 199)):
        assert by_id.loc[trade_id, "range_10"] == pytest.approx(table["range_10"].iloc[bar])
        assert by_id.loc[trade_id, "trend_20"] == pytest.approx(table["trend_20"].iloc[bar])


def test_trades_by_model(tmp_path: Path, results) -> None:
    [combined] = write_trades(results, tmp_path)
    trades = pd.read_csv(combined, dtype={"params": str, "run_id": str})
    write_trades_by_model(trades.iloc[:1], "m1", tmp_path)
    path = write_trades_by_model(trades.iloc[1:], "m2", tmp_path)
    frame = pd.read_csv(path)
    assert list(frame.columns) == [*COMBINED_TRADES_COLUMNS, "model_id"]
    assert frame["model_id"].tolist() == ["m1", "m2", "m2", "m2"]


def test_iso_utc_is_the_trades_csv_format() -> None:
    from analysis.columns import TIME_FORMAT

    assert iso_utc(pd.Timestamp("2024-01-31 12:05", tz="Europe/Berlin")) == "2024-01-31T11:05:00Z"
    assert iso_utc("2024-01-31 12:05") == "2024-01-31T12:05:00Z"  # naive = UTC
    assert iso_utc(None) == iso_utc(float("nan")) == iso_utc(pd.NaT) == ""
    stamp = pd.Timestamp("2024-03-01 00:00", tz="UTC")
    assert iso_utc(stamp) == stamp.strftime(TIME_FORMAT)
