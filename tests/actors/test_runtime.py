"""LocalRuntime: (ts, phase, sequence) order, depth-first delivery, determinism."""

from __future__ import annotations

from dataclasses import dataclass

from actors.messages import Phase, Scheduled
from actors.runtime import Actor, EventClock, LocalRuntime


@dataclass(frozen=True, slots=True)
class Ping:
    ts: int
    label: str


@dataclass(frozen=True, slots=True)
class Pong:
    ts: int
    label: str


class Log(Actor):
    handlers = {Ping: "on_ping", Pong: "on_pong"}

    def __init__(self, name: str, log: list, echo: bool = False) -> None:
        super().__init__()
        self.name, self.log, self.echo = name, log, echo

    def on_ping(self, msg: Ping) -> list:
        self.log.append((self.name, "ping", msg.label, self.clock.now))
        return [Pong(msg.ts, msg.label)] if self.echo else []

    def on_pong(self, msg: Pong) -> list:
        self.log.append((self.name, "pong", msg.label, self.clock.now))
        if msg.label == "later":
            return []
        return [Scheduled(msg.ts + 5, Phase.CLOSE, Ping(msg.ts + 5, "later"))]


def test_queue_orders_by_time_then_phase_then_sequence() -> None:
    log: list = []
    rt = LocalRuntime()
    rt.add("a", Log("a", log))
    rt.schedule(20, Phase.OPEN, Ping(20, "t20-open"))
    rt.schedule(20, Phase.CLOSE, Ping(20, "t20-close"))
    rt.schedule(10, Phase.TARGET, Ping(10, "t10-target"))
    rt.schedule(20, Phase.CLOSE, Ping(20, "t20-close-2"))
    rt.run()
    assert [e[2] for e in log] == ["t10-target", "t20-close", "t20-close-2", "t20-open"]
    assert [e[3] for e in log] == [10, 20, 20, 20]  # the actor's clock follows the messages


def test_outputs_are_delivered_depth_first_before_the_next_subscriber() -> None:
    log: list = []
    rt = LocalRuntime()
    rt.add("first", Log("first", log, echo=True))
    rt.add("second", Log("second", log))
    rt.schedule(1, Phase.CLOSE, Ping(1, "x"))
    rt.run()
    assert [(e[0], e[1], e[2]) for e in log] == [
        ("first", "ping", "x"),
        ("first", "pong", "x"),  # the echo's cascade settles first...
        ("second", "pong", "x"),
        ("second", "ping", "x"),  # ...then the second subscriber sees the ping
        ("first", "ping", "later"),  # scheduled messages wait for their time
        ("first", "pong", "later"),
        ("second", "pong", "later"),
        ("second", "ping", "later"),
        ("first", "ping", "later"),
        ("first", "pong", "later"),
        ("second", "pong", "later"),
        ("second", "ping", "later"),
    ]


def test_event_clock_is_monotonic() -> None:
    clock = EventClock()
    clock.advance(10)
    clock.advance(5)
    assert clock.now == 10


def test_same_run_twice_gives_byte_identical_trades_csv(tmp_path) -> None:
    from backtest.run import BacktestConfig, run_backtest, write_outputs
    from factors.synthetic import random_walk_bars
    from strategies.sr_breakout import SRBreakout

    bars = random_walk_bars(5_000, "1m", seed=3)
    config = BacktestConfig(fee_bps=10.0, slippage_bps=3.0)
    files = []
    for run in ("a", "b"):
        result = run_backtest(SRBreakout(allow_short=True), bars, "X", "1m", config)
        write_outputs(result, tmp_path / run)
        files.append((tmp_path / run / "trades.csv").read_bytes())
    assert len(result.trades) >= 10 and set(result.trades["side"]) == {"long", "short"}
    assert files[0] == files[1]


def test_counting_runtime_counts_every_delivery_the_plain_one_none() -> None:
    """The run above, counted by hand: ping x, its echo pong x, the two later pings the two
    subscribers of that pong schedule, and their two echoes: 6 messages (12 handler calls)."""
    from actors.runtime import CountingRuntime

    runs = {}
    for runtime in (LocalRuntime(), CountingRuntime()):
        log: list = []
        runtime.add("first", Log("first", log, echo=True))
        runtime.add("second", Log("second", log))
        runtime.schedule(1, Phase.CLOSE, Ping(1, "x"))
        runtime.run()
        runs[type(runtime).__name__] = (log, runtime.delivered, runtime.counts)
    plain, counting = runs["LocalRuntime"], runs["CountingRuntime"]
    assert plain[0] == counting[0]  # counting changes nothing else
    assert plain[1:] == (None, False)  # not counted
    # ping x, pong x, the two "later" pings scheduled by the pongs, and their two pongs
    assert counting[1:] == (6, True)
