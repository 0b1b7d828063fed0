"""backtest/fanout.py: expanding instances x grid into run specs (no Ray needed)."""

from types import SimpleNamespace

from backtest.fanout import _build_specs
from backtest.run import BacktestConfig
from backtest.runkeys import data_range
from factors.synthetic import random_walk_bars


def instance(id_: int, lookback: int) -> SimpleNamespace:
    return SimpleNamespace(
        id=id_,
        family="sr_breakout",
        exchange="binance",
        symbol="X/Y",
        interval="5m",
        params={"lookback": lookback},
    )


def test_a_grid_run_equal_to_another_instance_belongs_to_that_instance() -> None:
    ranges = {("binance", "X/Y", "5m"): data_range(random_walk_bars(300, "5m"))}
    grid = {"lookback": ["20", "30"]}
    # instance 1 (lookback 20) expands to 20 and 30 first; 30 is instance 2's own parameters
    specs = _build_specs([instance(1, 20), instance(2, 30)], grid, ranges, BacktestConfig())
    owners = {spec.params["lookback"]: spec.instance_id for spec in specs}
    assert owners == {20: 1, 30: 2}
    assert len({spec.run_key for spec in specs}) == len(specs) == 2
