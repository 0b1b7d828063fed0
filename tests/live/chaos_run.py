"""The chaos run: `cli.py live --real` (the real CLI, in a session of its own) against a local
exchange in stepped mode (speed 0) with seeded faults, killed by SIGKILL once in the middle and
restarted, until the exchange holds enough orders; then the chaos check (tests/live/chaos.py).
tests/live/test_chaos.py runs a short one, benchmarks/chaos.py a long one.

The exchange is driven over HTTP only (POST /_local/step, GET /_local/faults), so the same loop
drives an in-process `ExchangeThread` and a `cli.py exchange serve` process.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from live.session import LiveSession
from localexchange.replay import ReplayMarket
from store.bar_files import read_bar_file
from store.instances import add_instance

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
SECRET = "local-secret"  # the local exchange's default secret
STARTED = "live REAL orders"  # the CLI's start line: recovered, reconciled, trading
SYMBOLS = ("ETH/BTC", "LTC/BTC", "ADA/BTC", "NXT/BTC")
# every BTC pair of data/sample (5m, 2018-01-10 .. 2018-01-30 04:45): the benchmark's
ALL_BTC = (*SYMBOLS, "DASH/BTC", "ETC/BTC", "TRX/BTC", "XLM/BTC", "XMR/BTC", "ZEC/BTC")
DATA_END_MS = 1517287500000  # 2018-01-30 04:45 UTC: the last bar every one of them has
# instances that signal often on 5m sample bars (short lookbacks), several per symbol
FAMILIES = (
    ("sr_breakout", {"lookback": 3}),
    ("sr_breakout", {"lookback": 4}),
    ("sr_breakout", {"lookback": 5}),
    ("reversal_breakout", {"lookback": 6, "swing": 2, "move_atr": 0.5}),
    ("reversal_breakout", {"lookback": 8, "swing": 2, "move_atr": 0.3}),
)


def market(symbols: Sequence[str], bars: int, warm: int = 60) -> ReplayMarket:
    """The sample series of `symbols` (5m) from their first common time: `warm` bars of history
    (the instances warm up on them), then `bars` to step through."""
    frames = {
        s: read_bar_file(SAMPLE / f"{s.replace('/', '_')}-5m.csv.gz", "5m")[0] for s in symbols
    }
    first = max(f.index[0] for f in frames.values())
    out = ReplayMarket()
    for symbol, frame in frames.items():
        out.add(symbol, "5m", frame[frame.index >= first].iloc[: warm + bars])
    out.start_at(int(frame[frame.index >= first].index[warm].value // 1_000_000))
    return out


# orders whose fate is not settled yet: looked up (UNKNOWN), or written and not sent (NEW); a time
# exit waits as NEW for its time, it is not in doubt
IN_DOUBT = "status = 'UNKNOWN' OR (status = 'NEW' AND type != 'timed')"


def count_orders(path: Path, where: str) -> int:
    """Rows of the orders table matching `where`, read-only (the live node writes it); 0 while
    the database is not there yet."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(f"SELECT count(*) FROM orders WHERE {where}").fetchone()[0]
    except sqlite3.Error:
        return 0


def newest_bar_ms(path: Path) -> int:
    """The open time (epoch ms) of the newest bar in the database, read-only: the stream stores
    each closed bar as it takes it (0 while there is none)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT coalesce(max(ts), 0) FROM bars").fetchone()[0]
    except sqlite3.Error:
        return 0


def add_instances(db: str, symbols: Sequence[str]) -> int:
    """Every family of FAMILIES on every symbol, enabled; how many."""
    for symbol in symbols:
        for family, params in FAMILIES:
            add_instance(db, family, "binance", symbol, "5m", params)
    return len(symbols) * len(FAMILIES)


class LiveCli:
    """`cli.py live --real` in a session of its own (killing the group kills its Ray too)."""

    def __init__(self, url: str, db: str, key: str, cwd: Path, flags: Sequence[str]) -> None:
        env = {
            **os.environ,
            "RAYTRADER_DASHBOARD": "0",
            "RAYTRADER_DB": db,
            "RAYTRADER_BINANCE_API_KEY": key,
            "RAYTRADER_BINANCE_API_SECRET": SECRET,
        }
        env.pop("RAY_ADDRESS", None)
        command = [sys.executable, str(ROOT / "cli.py"), "live", "--real", "--url", url, *flags]
        self.proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.errors: list[str] = []
        self.out: list[str] = []
        self._readers = [
            threading.Thread(target=lambda: self.errors.extend(self.proc.stderr), daemon=True),
            threading.Thread(target=lambda: self.out.extend(self.proc.stdout), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def started(self) -> bool:
        return any(STARTED in line for line in self.errors)

    def wait_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.started():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("`cli.py live --real` did not start:\n" + self.log()[-3000:])
            time.sleep(0.05)

    def kill(self) -> None:
        """kill -9 of the process group (the CLI and its local Ray)."""
        _signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM (as Ctrl-C), then SIGKILL for whatever of its group is left; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.proc.pid, signal.SIGKILL)
        for reader in self._readers:
            reader.join(timeout=10)
        return self.proc.wait()

    def log(self) -> str:
        return "".join(self.errors)


class SessionRunner:
    """The session `cli.py live --real` runs (live/session.py), pumped in a thread of this
    process on a Ray already running. The same face as LiveCli for `drive`: `kill` is the
    crash of a kill -9 without a process to kill (every actor of the session killed where it
    stands, nothing stopped, flushed or written first), so a crash and restart cost no CLI start
    (each costs a Ray start of its own)."""

    def __init__(self, session: LiveSession) -> None:
        self.session = session.start()
        self.killed = False
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            self.session.run()
        except Exception:
            if not self.killed:  # an actor killed under the pump is the crash; else a bug
                raise

    def wait_started(self, timeout: float) -> None:
        """Started in the constructor: the session's start returns once it trades."""

    def kill(self) -> None:
        self.killed = True
        for handle in self.session.node._handles:  # the node's actors: stream, hosts, broker...
            self.session.ray.kill(handle)
        self.session.request_stop()
        self._thread.join(timeout=60)

    def stop(self) -> int:
        self.session.request_stop()
        self._thread.join(timeout=60)
        if not self.killed:
            self.session.stop()
        return 0

    def log(self) -> str:
        return ""


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def local_call(url: str, path: str, method: str = "GET") -> dict:
    """One /_local/* call of the local exchange (no ccxt: test control, not trading)."""
    request = urllib.request.Request(
        url + path, method=method, data=b"" if method == "POST" else None
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


class OrderWatch:
    """When each order row first appears in the database (SQLite), read every `every` s: with the
    wall time of each bar step, the bar -> order latency (the decision written, about to be sent:
    the order manager writes ahead of sending)."""

    def __init__(self, path: Path, every: float = 0.01) -> None:
        self.path, self.every = path, every
        self.first_seen: dict[str, tuple[float, str, int]] = {}  # id -> (wall, role, created ms)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OrderWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def count(self) -> int:
        return len(self.first_seen)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=1) as conn:
                    rows = conn.execute("SELECT id, role, created_at FROM orders").fetchall()
            except sqlite3.Error:
                continue  # not created yet, or busy: the next read
            now = time.time()
            for order_id, role, created in rows:
                if order_id not in self.first_seen:
                    ms = int(pd.Timestamp(created, tz="UTC").value // 1_000_000) if created else 0
                    self.first_seen[order_id] = (now, role, ms)


@dataclass
class ChaosRun:
    """What the loop did: steps, kills, the wall time of each step by the market time it closed."""

    steps: int = 0
    kills: int = 0
    stepped_at: dict[int, float] = field(default_factory=dict)  # market now (ms) -> wall
    starts_s: list[float] = field(default_factory=list)  # each CLI start, s

    def latencies_ms(self, watch: OrderWatch, roles: Sequence[str] = ("entry",)) -> list[float]:
        """Per bar that led to entries: the step that closed it -> its last entry written."""
        last: dict[int, float] = {}
        for wall, role, created in watch.first_seen.values():
            if role in roles and created in self.stepped_at:
                last[created] = max(last.get(created, 0.0), wall)
        return [(wall - self.stepped_at[ms]) * 1000 for ms, wall in last.items()]


def drive(
    url: str,
    start: Callable[[], LiveCli | SessionRunner],
    orders: Callable[[], int],
    *,
    target: int,
    kill_at: int,
    max_steps: int,
    pace_s: float,
    start_timeout: float = 240.0,
    until_ms: int | None = None,
    taken: Callable[[int], bool] | None = None,
    catch_up_s: float = 10.0,
) -> tuple[ChaosRun, LiveCli | SessionRunner]:
    """Step the exchange a bar every `pace_s` while `start()`'s CLI trades; SIGKILL it once
    `orders()` reaches `kill_at` and start it again; stop stepping at `target` orders,
    `max_steps` steps or the market time `until_ms` (the traded series' data ends). With
    `taken(now_ms)`, each step also waits (up to `catch_up_s`) until the node has taken the bars
    that closed at now_ms: on a loaded machine a node left behind trades on stale bars, and a
    run then makes fewer orders than the same seed does at leisure. Returns the run and the CLI
    still running (the caller stops it)."""
    run = ChaosRun()
    t0 = time.monotonic()
    cli = start()
    cli.wait_started(start_timeout)
    run.starts_s.append(time.monotonic() - t0)
    while run.steps < max_steps and orders() < target:
        answer = local_call(url, "/_local/step?n=1", "POST")
        run.stepped_at[int(answer["now"])] = time.time()
        run.steps += 1
        if answer.get("ended") or (until_ms is not None and answer["now"] >= until_ms):
            break
        time.sleep(pace_s)
        deadline = time.monotonic() + catch_up_s
        while taken is not None and not taken(answer["now"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        if run.kills == 0 and orders() >= kill_at:
            cli.kill()
            cli.stop()
            run.kills += 1
            t0 = time.monotonic()
            cli = start()
            cli.wait_started(start_timeout)
            run.starts_s.append(time.monotonic() - t0)
    return run, cli


def settle(
    url: str, run: ChaosRun, doubts: Callable[[], int], timeout: float, pace_s: float
) -> None:
    """Go on stepping (at most `timeout` s) until `doubts()` (rows IN_DOUBT) is 0: the
    last orders' answers, lookups and retries are done. The broker reports a looked-up order's
    outcome with its series' next bar (live/venues/outcomes.py), so bars must go on closing."""
    deadline = time.monotonic() + timeout
    while doubts() and time.monotonic() < deadline:
        time.sleep(max(pace_s, 0.1))
        if doubts():
            answer = local_call(url, "/_local/step?n=1", "POST")
            run.stepped_at[int(answer["now"])] = time.time()
            run.steps += 1


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]
