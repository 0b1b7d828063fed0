"""Messages are immutable, slotted, carry int ns times; phases order one instant."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from actors import messages as m


def all_message_types() -> list[type]:
    return [
        obj
        for obj in vars(m).values()
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj is not m.ExitSpec
    ]


def test_every_message_is_frozen_slotted_and_timed() -> None:
    kinds = all_message_types()
    assert {k.__name__ for k in kinds} >= {
        "BarClosed", "SignalRaised", "SubmitOrder", "CancelOrder", "OrderAccepted",
        "OrderRejected", "OrderFilled", "OrderCancelled", "TradeOpened", "TradeClosed",
    }  # fmt: skip
    for kind in kinds:
        assert kind.__dataclass_params__.frozen, kind
        assert hasattr(kind, "__slots__"), kind
        assert dataclasses.fields(kind)[0].name == "ts", kind


def test_messages_cannot_change_and_survive_pickling() -> None:
    fill = m.OrderFilled(1_700_000_000_000_000_000, 7, 100.5, 2.0, 0.2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fill.price = 1.0  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        fill.extra = 1  # type: ignore[attr-defined]
    assert pickle.loads(pickle.dumps(fill)) == fill
    assert hash(fill) == hash(m.OrderFilled(1_700_000_000_000_000_000, 7, 100.5, 2.0, 0.2))


def test_phases_order_close_before_open_before_stop_before_target() -> None:
    assert m.Phase.CLOSE < m.Phase.OPEN < m.Phase.STOP < m.Phase.TARGET < m.Phase.END
