"""ml/stored.py: the instances' stored backtest runs are found by the key `backtest --all` uses."""

from __future__ import annotations

import pytest

from backtest.fanout import _build_specs
from backtest.run import BacktestConfig, run_backtest
from backtest.runkeys import data_range
from ml.jobs import load_series, select_instances
from ml.stored import instance_run_keys, stored_trades
from ml.synthetic import planted_market
from store.bars import save_bars
from store.instances import add_instance, list_instances
from store.runs import save_backtest_run
from strategies.sr_breakout import SRBreakout

PARAMS = {"sl_pct": 0.005, "tp_pct": 0.005}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('stored') / 'ml.db'}"
    save_bars(url, "binance", "PLT/USD", "5m", planted_market(3_000, effect=True, seed=1))
    iid = int(add_instance(url, "sr_breakout", "binance", "PLT/USD", "5m", PARAMS).id)
    refs = select_instances(url, None, [iid])
    return url, iid, refs, load_series(url, refs, None, None)


def test_the_key_is_the_one_backtest_all_stores_its_run_under(db):
    url, iid, refs, series = db
    config = BacktestConfig()
    ranges = {key: data_range(bars) for key, bars in series.items()}
    specs = _build_specs(list_instances(url), {}, ranges, config)
    assert [s.run_key for s in specs] == [instance_run_keys(refs, series, config)[iid]]
    other = BacktestConfig(fee_bps=99.0)  # other account settings: another run
    assert instance_run_keys(refs, series, other)[iid] != specs[0].run_key


def test_stored_trades_come_from_the_stored_run_and_missing_runs_are_left_out(db):
    url, iid, refs, series = db
    config = BacktestConfig()
    assert stored_trades(url, refs, series, config) == {}  # nothing stored: backtest in the task
    bars = series[refs[0].series]
    result = run_backtest(SRBreakout(**PARAMS), bars, "PLT/USD", "5m", config)
    key = instance_run_keys(refs, series, config)[iid]
    run = {
        "run_id": key[:24],
        "run_key": key,
        "instance_id": iid,
        "strategy": "sr_breakout",
        "symbol": "PLT/USD",
        "interval": "5m",
        "start": bars.index[0],
        "end": bars.index[-1],
    }
    # a stored run with only its first 7 trades shows the trades are read, not recomputed
    save_backtest_run(url, run, result.trades.iloc[:7])
    got = stored_trades(url, refs, series, config)[iid]
    assert len(result.trades) > 7 and len(got) == 7
    assert list(got["pnl"]) == pytest.approx(list(result.trades["pnl"].iloc[:7]))
    assert (got["entry_time"] == result.trades["entry_time"].iloc[:7].to_numpy()).all()
