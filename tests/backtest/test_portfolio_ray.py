"""Portfolio on Ray: strategy actors compute signals in parallel; same trades as the local run."""

from __future__ import annotations

import pandas as pd
import pytest

from backtest.portfolio import build_members, run_portfolio
from backtest.portfolio_ray import compute_signals_on_ray
from backtest.run import BacktestConfig
from tests.backtest.test_portfolio import entries, two_walks

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_local(ray_shared):
    return ray_shared  # the session's Ray (tests/ray_local.py)


def test_ray_signals_give_the_same_trades_as_the_local_run(ray_local) -> None:
    series = two_walks()
    members = build_members(entries())
    local = run_portfolio(members, series, BacktestConfig(), entries())
    signals = compute_signals_on_ray(members, series, actors=2)
    assert set(signals) == {m.label for m in members}
    for m in members:  # each actor sent back exactly what the host would have computed
        pd.testing.assert_frame_equal(signals[m.label], m.strategy.compute(series[m.series]))
    on_ray = run_portfolio(members, series, BacktestConfig(), entries(), signals)
    assert len(local.trades) > 20
    pd.testing.assert_frame_equal(on_ray.trades, local.trades)
    pd.testing.assert_frame_equal(on_ray.equity, local.equity)
    assert on_ray.rejections == local.rejections
    assert on_ray.orders == local.orders
