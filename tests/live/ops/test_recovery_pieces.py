"""Recovery in one process (no Ray): a dry run stopped dead and restarted trades exactly like one
that never stopped; open trades' marks are written; the test-only crash hook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from actors.messages import BarClosed
from live.node import LiveSettings
from live.session import LiveSession
from live.setup import Warmup
from testing.crash import CRASH_ENV
from tests.live.helpers import sample
from tests.live.ops.test_recovery import stored
from tests.live.recovery_driver import INTERVAL, SYMBOL, members

ROOT = Path(__file__).resolve().parents[3]
KEY = (SYMBOL, INTERVAL)
N = 100
STEP_NS = 300 * 10**9


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return sample("NXT_BTC-5m.csv.gz", n=N)


def bars(frame: pd.DataFrame, lo: int, hi: int) -> list[BarClosed]:
    opens = pd.DatetimeIndex(frame.index).as_unit("ns").asi8
    return [
        BarClosed(int(opens[i]) + STEP_NS, SYMBOL, INTERVAL, int(opens[i]), *map(float, row))
        for i, row in zip(range(lo, hi), frame.iloc[lo:hi].itertuples(index=False), strict=True)
    ]


def dry_session(db: str, frame: pd.DataFrame, k: int) -> LiveSession:
    """An in-process dry-run session, bars handed in (it is never stopped: killed dead)."""
    warm = Warmup(frames={KEY: frame.iloc[:k]})
    settings = LiveSettings("binance", None, db, risk=0.001)
    return LiveSession(settings, members(), warm=warm).start()


def outcome(db: str) -> list[tuple]:
    _orders, trades = stored(db)
    return sorted(
        (
            t["strategy"],
            t["entry_time"],
            t["entry_price"],
            t["quantity"],
            t["status"],
            t["exit_time"],
            t["exit_price"],
            t["exit_reason"],
        )
        for t in trades
    )


def test_dry_run_killed_with_a_trade_open_resumes_from_its_records(frame, tmp_path) -> None:
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    session = dry_session(whole, frame, 0)
    session.deliver(bars(frame, 0, N))
    expected = outcome(whole)
    assert len(expected) >= 6
    # stop dead (no stop(), nothing flushed on the way out) while a trade and its legs are open
    trade = next(t for t in expected if t[4] == "CLOSED" and t[5] - t[1] >= pd.Timedelta("10min"))
    k = int(frame.index.get_loc(trade[1])) + 1
    split = f"sqlite:///{tmp_path / 'split.db'}"
    first = dry_session(split, frame, 0)
    first.deliver(bars(frame, 0, k))
    assert any(t["status"] == "ACTIVE" for t in first.trades())
    second = dry_session(split, frame, k)
    assert second.node.restored.trades and second.node.restored.orders  # open trade, resting legs
    resting = second.node.runtime.query("exchange", "exchange", "open_orders")
    assert len(resting) == len(second.node.restored.orders)
    second.deliver(bars(frame, k, N))
    assert outcome(split) == expected
    second.node.write_marks()  # the trades still open get their mark at the last close
    _orders, trades = stored(split)
    last = float(frame["close"].iloc[-1])
    for t in (t for t in trades if t["status"] == "ACTIVE"):
        assert t["mark_price"] == last and t["marked_at"] is not None
        assert t["unrealised_pnl"] == pytest.approx(t["quantity"] * (last - t["entry_price"]))


def test_the_crash_hook_is_inert_unless_asked_and_kills_at_the_nth_pass() -> None:
    code = "from testing.crash import crash_point\nfor _ in range(3): crash_point('flush')\n"

    def run(spec: str | None) -> int:
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        if spec is not None:
            env[CRASH_ENV] = spec
        return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env).returncode

    assert run(None) == 0 and run("submit:1,flush:4") == 0  # unset, or never reached: no-op
    assert run("submit:1,flush:3") == -9  # the third pass of "flush": SIGKILL


def check_dry_entry_refused(db: str, session: LiveSession, cid: str) -> None:
    """The NEW entry ends REJECTED and the simulated exchange holds no order for it."""
    rows = {r["id"]: r for r in stored(db)[0]}
    assert rows[cid]["status"] == "REJECTED", rows[cid]
    assert session.node.runtime.query("exchange", "exchange", "open_orders") == []
    assert session.node.fills == 0


def test_a_new_dry_run_entry_at_a_restart_is_rejected_not_placed(
    frame, sqlite_url, monkeypatch
) -> None:
    """A dry-run entry stored NEW, its bar gone by the restart: refused, never placed (the
    mutation that places it again fails the same check)."""
    from store.db import session_scope
    from store.models import OrderRecord

    cid = "dry-rt-0a0b0c0d-1700000000000-en-0"
    with session_scope(sqlite_url) as db:
        db.add(
            OrderRecord(
                id=cid,
                run_id="dry-run",
                strategy=members()[0].label,
                exchange="binance",
                symbol=SYMBOL,
                side="buy",
                quantity=1.0,
                status="NEW",
                role="entry",
                created_at=pd.Timestamp("2023-11-14T22:13:20Z").to_pydatetime(),
            )
        )
    check_dry_entry_refused(sqlite_url, dry_session(sqlite_url, frame, 10), cid)

    def place_entries_again(exchange, restored):  # the mutation: entries placed again
        return [e for m in (s for _c, _e, s in restored.submits()) for e in exchange.on_submit(m)]

    monkeypatch.setattr("live.node.restore_dry_run", place_entries_again)
    with session_scope(sqlite_url) as db:
        db.get(OrderRecord, cid).status = "NEW"
    again = dry_session(sqlite_url, frame, 10)
    with pytest.raises(AssertionError):
        check_dry_entry_refused(sqlite_url, again, cid)
