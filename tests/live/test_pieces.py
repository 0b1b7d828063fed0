"""Small pieces of live trading: client order ids, API keys from the environment, --balance."""

from __future__ import annotations

import re

import pytest

from live.venues.broker import client_order_id
from live.venues.ccxt_clients import api_keys
from localexchange.server import parse_balance


def test_client_order_ids_are_short_allowed_and_derived_from_instance_signal_role() -> None:
    label = "#12 volatility_breakout[ETH/BTC 5m basis=atr,k=0.75,stop_k=1.5]"
    cid = client_order_id(label, 1_515_574_800_000_000_000, "take_profit", 2)
    assert cid == client_order_id(label, 1_515_574_800_000_000_000, "take_profit", 2)
    assert len(cid) <= 36 and re.fullmatch(r"[.A-Za-z:/0-9_-]+", cid)
    assert cid.endswith("-1515574800000-tp-2")
    others = {
        client_order_id(label, 1_515_574_800_000_000_000, "stop_loss", 2),
        client_order_id(label, 1_515_575_100_000_000_000, "take_profit", 2),
        client_order_id("#13 " + label[4:], 1_515_574_800_000_000_000, "take_profit", 2),
        client_order_id(label, 1_515_574_800_000_000_000, "take_profit", 3),
    }
    assert cid not in others and len(others) == 4


def test_api_keys_come_from_the_environment_per_exchange_first() -> None:
    env = {"RAYTRADER_API_KEY": "k", "RAYTRADER_API_SECRET": "s"}
    assert api_keys("binance", env) == ("k", "s")
    env |= {"RAYTRADER_BINANCE_API_KEY": "bk", "RAYTRADER_BINANCE_API_SECRET": "bs"}
    assert api_keys("binance", env) == ("bk", "bs")
    assert api_keys("kraken", env) == ("k", "s")
    assert api_keys("binance", {"RAYTRADER_API_KEY": "only-a-key"}) is None


def test_balance_option() -> None:
    assert parse_balance("BTC=10, eth=100,USDT=1e5") == {"BTC": 10.0, "ETH": 100.0, "USDT": 1e5}
    for bad in ("BTC", "BTC=x", "=5", "BTC=-1"):
        with pytest.raises(ValueError, match="ASSET=AMOUNT"):
            parse_balance(bad)
