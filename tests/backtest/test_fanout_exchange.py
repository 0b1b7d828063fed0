"""`backtest --all --exchange E` selects only the instances on that exchange (the demo keeps its
synthetic market apart from the real samples this way)."""

from __future__ import annotations

import pytest

from backtest.fanout import FanoutError, _select_instances
from store.instances import add_instance


def test_exchange_filter_selects_only_that_exchange(sqlite_url):
    add_instance(sqlite_url, "sr_breakout", "binance", "ETH/BTC", "5m", {})
    add_instance(sqlite_url, "sr_breakout", "synthetic", "ALPHA/USD", "1m", {})
    add_instance(sqlite_url, "orb", "synthetic", "BETA/USD", "5m", {})
    picked = _select_instances(sqlite_url, None, None, None, "synthetic")
    assert sorted(i.symbol for i in picked) == ["ALPHA/USD", "BETA/USD"]
    assert len(_select_instances(sqlite_url, None, None, None, None)) == 3  # no filter: all
    with pytest.raises(FanoutError, match="exchange=kraken"):
        _select_instances(sqlite_url, None, None, None, "kraken")
