"""Strategy instances: idempotent add, enable/disable, weights, filters."""

import pytest

from store.instances import (
    InstanceError,
    add_instance,
    declare_instance,
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


def test_declare_instance_sets_enabled_and_explicit_weight(db_url):
    args = (db_url, "sr_breakout", "binance", "ETH/BTC", "5m", {"lookback": 20})
    inst, change = declare_instance(*args)
    assert change == "new" and (inst.enabled, inst.weight) == (True, 1.0)
    assert declare_instance(*args)[1] == "unchanged"
    set_enabled(db_url, inst.id, False)
    set_weight(db_url, inst.id, 0.0)
    again, change = declare_instance(*args)
    assert (again.id, change, again.enabled, again.weight) == (inst.id, "re-enabled", True, 0.0)
    assert declare_instance(*args, weight=0.25)[1] == "changed"
    assert declare_instance(*args, enabled=False)[1] == "changed"
    [got] = list_instances(db_url)
    assert (got.enabled, got.weight) == (False, 0.25)
    # add_instance never changes a stored instance
    assert add_instance(*args, enabled=True, weight=3.0).id == inst.id
    [got] = list_instances(db_url)
    assert (got.enabled, got.weight) == (False, 0.25)
