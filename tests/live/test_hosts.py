"""live/hosts.py: a HostGroup of LiveStrategyHosts shares one series book, hands trade events
to the host they name only, ignores repeated bars, and survives Ray's read-only unpickling."""

from __future__ import annotations

import pickle

from actors.messages import SignalRejected, TradeClosed, TradeOpened
from live.hosts import HostGroup, LiveStrategyHost
from live.series_book import SeriesBook
from strategies.registry import make_strategy
from tests.live.test_hosts_fast import msg, series


def hosts_on(frame, names: list[str]) -> list[LiveStrategyHost]:
    strategy = make_strategy("sr_breakout", {"lookback": 3, "allow_short": True})
    return [LiveStrategyHost(strategy, frame.iloc[:100], "X/Y", "5m", n) for n in names]


def opened(name: str, side: str = "long") -> TradeOpened:
    return TradeOpened(0, 1, 1, name, "X/Y", "5m", side, 1.0, 1.0, 0.0)


def test_trade_events_reach_the_named_host_only_and_change_only_it() -> None:
    frame = series("5m", 2, seed=1)
    a, b, c = hosts_on(frame, ["a", "b", "c"])
    group = HostGroup([("a", a), ("b", b), ("c", c)])
    assert TradeOpened in group.subscriptions() and SignalRejected in group.subscriptions()
    assert group.handle_batch([opened("b")]) == []
    assert (a._open, b._open, c._open) == (
        {"long": 0, "short": 0},
        {"long": 1, "short": 0},
        {"long": 0, "short": 0},
    )
    b._pending["short"] = c._pending["short"] = True
    group.handle_batch([SignalRejected(0, 1, "c", "X/Y", "short", "no cash")])
    assert b._pending["short"] and not c._pending["short"]
    closed = TradeClosed(0, 1, "b", "X/Y", "long", 1.0, 0, 1.0, 1.1, 0.0, 0.0, 0.1, "signal")
    group.handle_batch([closed])
    assert b._open == {"long": 0, "short": 0}


def test_the_group_shares_one_book_and_a_repeated_bar_never_trades_twice() -> None:
    frame = series("5m", 2, seed=2)
    a, b = hosts_on(frame, ["a", "b"])
    group = HostGroup([("a", a), ("b", b)])
    assert a.book is b.book
    before = a.book.total()
    first = group.handle_batch([msg(frame, 100, "X/Y", "5m")])
    assert a.book.total() == before + 1 and a.bars_seen == b.bars_seen == 1
    assert group.handle_batch([msg(frame, 100, "X/Y", "5m")]) == []  # the same bar again
    assert group.handle_batch([msg(frame, 99, "X/Y", "5m")]) == []  # an older one
    assert a.book.total() == before + 1 and a.bars_seen == 1
    assert len(first) % 2 == 0  # both hosts answer alike (same strategy and bar)
    assert group.handle_batch([msg(frame, 100, "Z/Y", "5m")]) == []  # another series


def test_the_book_is_writable_after_unpickling_read_only_arrays() -> None:
    book = SeriesBook(series("5m", 1, seed=3), "5m", 50)
    state = pickle.loads(pickle.dumps(book)).__dict__
    state["ns"].flags.writeable = False  # what Ray's zero-copy deserialisation hands over
    state["cols"].flags.writeable = False
    revived = SeriesBook.__new__(SeriesBook)
    revived.__setstate__(state)
    assert revived.append(book.last_ts() + book.step, (1.0, 2.0, 0.5, 1.5, 3.0))
    assert revived.close[-1] == 1.5 and revived.total() == book.total() + 1
