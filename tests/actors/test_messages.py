"""Messages are immutable, slotted, carry int ns times; phases order one instant."""

from __future__ import annotations

import pickle

import msgspec
import pytest

from actors import messages as m


def all_message_types() -> list[type]:
    return [
        obj
        for obj in vars(m).values()
        if isinstance(obj, type) and issubclass(obj, msgspec.Struct) and obj is not m.ExitSpec
    ]


def test_every_message_is_frozen_slotted_and_timed() -> None:
    kinds = all_message_types()
    assert {k.__name__ for k in kinds} >= {
        "BarClosed",
        "SignalRaised",
        "SubmitOrder",
        "CancelOrder",
        "OrderAccepted",
        "OrderRejected",
        "OrderFilled",
        "OrderCancelled",
        "TradeOpened",
        "TradeClosed",
    }
    for kind in kinds:
        assert kind.__struct_config__.frozen, kind
        assert kind.__struct_fields__[0] == "ts", kind


def test_messages_cannot_change_and_survive_pickling() -> None:
    fill = m.OrderFilled(1_700_000_000_000_000_000, 7, 100.5, 2.0, 0.2)
    with pytest.raises(AttributeError, match="immutable"):
        fill.price = 1.0  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        fill.extra = 1  # type: ignore[attr-defined]
    assert pickle.loads(pickle.dumps(fill)) == fill
    assert hash(fill) == hash(m.OrderFilled(1_700_000_000_000_000_000, 7, 100.5, 2.0, 0.2))


def test_phases_order_close_before_open_before_stop_before_target() -> None:
    assert m.Phase.CLOSE < m.Phase.OPEN < m.Phase.STOP < m.Phase.TARGET < m.Phase.END


def test_messages_are_equal_only_to_the_same_kind_and_copy_with_replace() -> None:
    cancelled, rejected = m.OrderCancelled(5, 7, "oco"), m.OrderRejected(5, 7, "oco")
    assert cancelled != rejected  # the same values in another kind are another message
    assert m.replace(cancelled, reason="end_of_data") == m.OrderCancelled(5, 7, "end_of_data")
    assert cancelled.reason == "oco"  # the original is untouched
    with pytest.raises(TypeError):
        m.OrderCancelled(5, 7)  # a missing field is an error, as with a dataclass
