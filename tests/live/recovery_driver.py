"""The live node in real mode, in one process (no Ray), stepping a local exchange bar by bar:
the program the kill -9 recovery tests (tests/live/ops/test_recovery.py) kill and restart.

    python -m tests.live.recovery_driver URL DB_URL            # run to the end of the data
    python -m tests.live.recovery_driver --serve               # fork server (see below)

It starts a live session (checks, warm-up, reconciling with the exchange first), then repeats: close the
next bar at the exchange (POST /_local/step), fetch the closed bar over REST, deliver it. With
RAYTRADER_CRASH_AT set it dies by SIGKILL at that point (live/recovery.crash_point).
Keys come from RAYTRADER_BINANCE_API_KEY / _SECRET, as for `cli.py live --real`.

`--serve` imports everything once, then reads one JSON job a line from stdin
({"url", "db", "env": {...}}), forks a child per job (cheap: nothing to import again) and
answers one line with the child's exit status ("-9" for SIGKILL).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request

from actors.messages import BarClosed
from actors.weighted_portfolio import PortfolioMember
from live.node import LiveSettings
from live.session import LiveSession
from live.venues.ccxt_clients import api_keys, rest_client
from live.venues.outcomes import CallSettings
from strategies.registry import make_strategy

SYMBOL, INTERVAL, STEP_MS = "NXT/BTC", "5m", 300_000
INSTANCES = [
    ("sr_breakout", {}),
    ("reversal_breakout", {}),
    ("sr_breakout", {"lookback": 10}),
    ("reversal_breakout", {"max_bars": 3}),
]  # the last one has time exits
RISK = 0.001
# the local exchange enforces recvWindow: a short one makes "not found" final soon after a
# restart (an order stored NEW by the killed process), so each restart waits 0.5 s, not 6 s.
# ccxt's limiter off: bars are stepped far faster than real time, where Binance's weights would
# only add waits (38 s instead of 13 s for one run; tests/live/venues/test_resolution.py has it on)
CALLS = CallSettings(recv_window_ms=300, margin_ms=200, rate_limit=False)


def members() -> list[PortfolioMember]:
    return [
        PortfolioMember(f"#{k} {family}", make_strategy(family, params), SYMBOL, INTERVAL)
        for k, (family, params) in enumerate(INSTANCES, 1)
    ]


def run(url: str, db: str) -> int:
    client = rest_client("binance", url, api_keys("binance"))
    settings = LiveSettings("binance", url, db, risk=RISK, quiet_s=1.0, real=True, calls=CALLS)
    session = LiveSession(settings, members()).start()
    for warning in session.take_warnings():
        print("warning:", warning, file=sys.stderr)
    last = session.warm.last_ms.get((SYMBOL, INTERVAL), -1)
    while True:
        with urllib.request.urlopen(
            urllib.request.Request(f"{url}/_local/step?n=1", method="POST")
        ) as reply:
            state = json.load(reply)
        rows = client.fetch_ohlcv(SYMBOL, INTERVAL, last + 1, 1000)
        closed = [r for r in rows if r[0] + STEP_MS <= state["now"]]
        session.deliver([_bar(r) for r in closed])
        if closed:
            last = int(closed[-1][0])
        if state["closed"] == 0:
            break
    session.stop()
    return 0


def _bar(row: list) -> BarClosed:
    t, o, h, low, c, v = (float(x) for x in row[:6])
    ns = int(t) * 1_000_000
    return BarClosed(ns + STEP_MS * 1_000_000, SYMBOL, INTERVAL, ns, o, h, low, c, v)


def _preload() -> None:
    """Import what a session needs once, before forking (no threads, no connections yet)."""
    import ccxt.async_support  # noqa: F401
    import ccxt.pro  # noqa: F401
    import pandas  # noqa: F401
    import sqlmodel  # noqa: F401

    import live.ops.reconcile  # noqa: F401
    import live.venues.bar_stream  # noqa: F401
    import live.venues.broker  # noqa: F401
    import store.bars  # noqa: F401
    import store.models  # noqa: F401


def serve() -> None:
    _preload()
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: one live session, then exit without running atexit hooks
            code = 1
            try:
                os.environ.update(job.get("env", {}))
                code = run(job["url"], job["db"])
            except BaseException as exc:  # noqa: BLE001 - reported through the exit status
                print(f"driver failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            finally:
                sys.stderr.flush()
                os._exit(code)
        _pid, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(code, flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        sys.exit(run(sys.argv[1], sys.argv[2]))
