"""live/runtime.py: a bar costs the same number of delivery rounds (one parallel call per actor
group each, so one `ray.get` per round on Ray) for 1 or 40 strategy instances, and what the
instances trade is the same per instance. In-process groups (no Ray): the routing is the same."""

from __future__ import annotations

from pathlib import Path

from actors.messages import BarClosed, SignalRaised, SubmitOrder
from actors.weighted_portfolio import PortfolioMember
from live.node import LiveSettings
from live.session import LiveSession
from live.setup import Warmup
from strategies.registry import make_strategy
from tests.live.helpers import sample

WARM, BARS = 100, 120


def run(count: int, tmp: Path) -> tuple[list[int], dict[type, int]]:
    tmp.mkdir()
    frame = sample(n=WARM + BARS)
    members = [
        PortfolioMember(
            f"sr{i}", make_strategy("sr_breakout", {"lookback": 3}), "ETH/BTC", "5m", 1.0 / count
        )
        for i in range(count)
    ]
    warm = Warmup(frames={("ETH/BTC", "5m"): frame.iloc[:WARM]})
    settings = LiveSettings(
        "binance", None, f"sqlite:///{tmp}/live.db", risk=0.001, hosts_per_actor=8
    )
    node = LiveSession(settings, members, warm=warm).start().node  # bars handed in below
    seen: dict[type, int] = {}
    node.runtime.observers.append(lambda m: seen.__setitem__(type(m), seen.get(type(m), 0) + 1))
    rounds = []
    for i in range(WARM, WARM + BARS):
        ts = int(frame.index[i].value)
        o, h, lo, c, v = (
            float(x) for x in frame.iloc[i][["open", "high", "low", "close", "volume"]]
        )
        before = node.runtime.rounds
        node.deliver([BarClosed(ts + 300 * 10**9, "ETH/BTC", "5m", ts, o, h, lo, c, v)])
        rounds.append(node.runtime.rounds - before)
    return rounds, seen


def test_rounds_per_bar_do_not_grow_with_the_number_of_instances(tmp_path: Path) -> None:
    one, seen_one = run(1, tmp_path / "one")
    many, seen_many = run(40, tmp_path / "many")
    assert seen_one[SignalRaised] > 0 and seen_one[SubmitOrder] > 0  # it traded
    assert many == one  # bar by bar: 40 instances in 5 groups, the same rounds as 1
    assert max(one) <= 10  # a fill, its trade events, a new signal and its order: a few rounds
    assert seen_many[SignalRaised] == 40 * seen_one[SignalRaised]  # each instance signals alike
