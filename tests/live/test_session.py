"""live/session.py: the start-up sequence in one place. A user mistake fails in `prepare`, before
Ray starts and before anything is written; a started session answers SIGTERM by asking its loop
to stop, and its stop gives the previous handler back (once, however often it is called)."""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager

import pytest

from actors.weighted_portfolio import PortfolioMember
from live.node import LiveSettings
from live.session import LiveSession, Selection
from live.setup import LiveSetupError, Warmup
from strategies.registry import make_strategy
from tests.live.helpers import sample


def test_a_mistake_fails_before_ray_starts_and_writes_nothing(sqlite_url) -> None:
    started: list[str] = []

    @contextmanager
    def start_ray():
        started.append("ray")
        yield None

    session = LiveSession(
        LiveSettings("binance", None, sqlite_url), Selection(symbol="ETH/BTC"), start_ray=start_ray
    )
    with pytest.raises(LiveSetupError, match="no strategy instances enabled for binance"):
        session.start()
    assert started == [] and session.node is None


def test_sigterm_asks_the_loop_to_stop_and_the_stop_restores_the_handler(tmp_path) -> None:
    member = PortfolioMember("sr", make_strategy("sr_breakout", {}), "ETH/BTC", "5m")
    warm = Warmup(frames={("ETH/BTC", "5m"): sample(n=50)})
    settings = LiveSettings("binance", None, f"sqlite:///{tmp_path / 'live.db'}")
    before = signal.getsignal(signal.SIGTERM)
    with LiveSession(settings, [member], warm=warm, stop_on_sigterm=True) as session:
        assert session.node is not None and not session.stopping
        os.kill(os.getpid(), signal.SIGTERM)
        assert session.stopping  # the loop ends at its next turn; nothing was killed
    assert signal.getsignal(signal.SIGTERM) == before
    session.stop()  # a second stop does nothing
    assert signal.getsignal(signal.SIGTERM) == before
