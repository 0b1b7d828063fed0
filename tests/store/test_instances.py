"""Strategy instances: idempotent add, enable/disable, weights, filters."""

import pytest

from store.instances import (
    InstanceError,
    add_instance,
    list_instances,
    list_pairs,
    set_enabled,
    set_weight,
)


def test_add_is_idempotent_on_canonical_params(db_url):
    a = add_instance(
        db_url, "sr_breakout", "binance", "ETH/BTC", "5m", {"lookback": 20, "tp_pct": 0.02}
    )
    b = add_instance(
        db_url, "sr_breakout", "binance", "ETH/BTC", "5m", {"tp_pct": 0.02, "lookback": 20}
    )
    c = add_instance(db_url, "sr_breakout", "binance", "ETH/BTC", "1h", {"lookback": 20})
    assert a.id == b.id != c.id
    assert a.params_json == '{"lookback":20,"tp_pct":0.02}'
    assert [(p.symbol, p.base, p.quote) for p in list_pairs(db_url)] == [("ETH/BTC", "ETH", "BTC")]


def test_enable_disable_weight_and_filters(db_url):
    a = add_instance(db_url, "sr_breakout", "binance", "ETH/BTC", "5m", {})
    add_instance(db_url, "trend_day", "binance", "LTC/BTC", "15m", {})
    set_enabled(db_url, a.id, False)
    set_weight(db_url, a.id, 0.5)
    assert [i.family for i in list_instances(db_url, enabled_only=True)] == ["trend_day"]
    [got] = list_instances(db_url, family="sr_breakout", symbol="ETH/BTC", interval="5m")
    assert (got.enabled, got.weight) == (False, 0.5)
    with pytest.raises(InstanceError, match="no strategy instance with id 999"):
        set_enabled(db_url, 999, True)
    with pytest.raises(InstanceError, match="weight must be >= 0"):
        set_weight(db_url, a.id, -1)
