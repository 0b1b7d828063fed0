"""`cli.py live status`: the live state read from the database only (live/ops/status.py), with a
hand-computed scenario on SQLite and PostgreSQL; backtest rows never show, dry-run rows show
marked; the database is not changed by reading."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from cli import app
from store.db import session_scope
from store.models import Bar, OrderRecord, TradeRecord

DAY = datetime(2018, 1, 25, tzinfo=UTC)


def _trade(
    strategy: str,
    status: str,
    exit_hour: int | None,
    pnl: float | None,
    run_id: str | None = None,
    day: datetime = DAY,
) -> TradeRecord:
    return TradeRecord(
        run_id=run_id,
        trade_id=f"{strategy}-{exit_hour}-{run_id}",
        strategy=strategy,
        exchange="binance",
        symbol="ETH/BTC",
        interval="5m",
        side="long",
        status=status,
        entry_time=day.replace(hour=0),
        entry_price=0.1,
        exit_time=None if exit_hour is None else day.replace(hour=exit_hour),
        exit_price=None if pnl is None else 0.1,
        quantity=2.0,
        pnl=pnl,
    )


def _order(oid: str, status: str, run_id: str | None = None) -> OrderRecord:
    return OrderRecord(
        id=oid,
        run_id=run_id,
        role="stop_loss",
        strategy="#2 b",
        exchange="binance",
        symbol="ETH/BTC",
        side="sell",
        type="stop",
        quantity=2.0,
        stop_price=0.099,
        status=status,
    )


def _scenario(url: str) -> None:
    with session_scope(url) as s:
        s.add_all(
            [
                _trade("#1 a", "CLOSED", 3, 0.5),
                _trade("#1 a", "CLOSED", 9, -0.2),
                _trade("#2 b", "CLOSED", 5, 1.0, day=DAY.replace(day=24)),  # another day
                _trade("#2 b", "ACTIVE", None, None),
                _trade("#1 a", "CLOSED", 4, 99.0, run_id="bt-1"),  # a backtest's: never shown
                _order("live-x:7", "SUBMITTED"),
                _order("live-x:6", "FILLED"),
                _order("bt:1", "NEW", run_id="bt-1"),
                Bar(
                    exchange="binance",
                    symbol="ETH/BTC",
                    interval="5m",
                    ts=1,
                    open=0.1,
                    high=0.1,
                    low=0.1,
                    close=0.105,
                    volume=1.0,
                ),
                Bar(
                    exchange="binance",
                    symbol="ETH/BTC",
                    interval="5m",
                    ts=2,
                    open=0.1,
                    high=0.1,
                    low=0.1,
                    close=0.11,
                    volume=1.0,
                ),
            ]
        )


def test_status_prints_positions_orders_and_the_days_pnl_per_instance(
    tmp_path: Path, db_url: str
) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}" if db_url.startswith("sqlite") else db_url
    _scenario(url)
    before = _digest(tmp_path)
    result = CliRunner().invoke(app, ["live", "status", "--db", url, "--day", "2018-01-25"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "open positions: 1"
    # marked at the latest stored close 0.11: 2 x (0.11 - 0.1) = +0.02
    assert lines[1].startswith("  #2 b ETH/BTC long 2 @ 0.1 since 2018-01-25T00:00:00Z")
    assert lines[1].endswith("mark 0.11 (bar 1970-01-01T00:00:00Z) unrealised +0.02")
    assert lines[2] == "open orders: 1"
    assert lines[3] == "  live-x:7 #2 b ETH/BTC sell stop @ 0.099 2 stop_loss SUBMITTED"
    assert lines[4] == "pnl on 2018-01-25 (UTC, closed trades): +0.3"
    assert lines[5:] == ["  #1 a: 2 trade(s) pnl +0.3"]
    assert _digest(tmp_path) == before  # SQLite: nothing written, not even to the write-ahead log


def test_a_dry_run_shows_marked_beside_the_real_rows(tmp_path: Path) -> None:
    """The default `live` is a dry run: its rows (run_id DRY_RUN) show, marked, and its pnl
    is not added into a real instance's."""
    from actors.order_store import DRY_RUN

    url = f"sqlite:///{tmp_path / 'live.db'}"
    _scenario(url)
    with session_scope(url) as s:
        s.add_all(
            [
                _trade("#1 a", "CLOSED", 6, 0.25, run_id=DRY_RUN),
                _trade("#3 c", "ACTIVE", None, None, run_id=DRY_RUN),
                _order("dry-x:1", "SUBMITTED", run_id=DRY_RUN),
            ]
        )
    result = CliRunner().invoke(app, ["live", "status", "--db", url, "--day", "2018-01-25"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "open positions: 2"
    assert [line.split(" ETH/BTC")[0] for line in lines[1:3]] == ["  #2 b", "  [dry run] #3 c"]
    assert lines[3:6] == [
        "open orders: 2",
        "  live-x:7 #2 b ETH/BTC sell stop @ 0.099 2 stop_loss SUBMITTED",
        "  [dry run] dry-x:1 #2 b ETH/BTC sell stop @ 0.099 2 stop_loss SUBMITTED",
    ]
    assert lines[6] == "pnl on 2018-01-25 (UTC, closed trades): +0.3 BTC, +0.25 BTC (dry run)"
    assert sorted(lines[7:]) == [
        "  #1 a: 2 trade(s) pnl +0.3",
        "  [dry run] #1 a: 1 trade(s) pnl +0.25",
    ]


def _digest(folder: Path) -> list[str]:
    # the file and its write-ahead log (-shm is the readers' shared index: readers mark it)
    files = [f for f in (folder / "live.db", folder / "live.db-wal") if f.exists()]
    return [f"{f.name} {hashlib.sha256(f.read_bytes()).hexdigest()}" for f in files]


def test_status_of_a_day_without_trades_says_where_the_last_ones_are(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    _scenario(url)
    result = CliRunner().invoke(app, ["live", "status", "--db", url, "--day", "2018-02-01"])
    assert "pnl on 2018-02-01 (UTC, closed trades): +0" in result.output
    assert "the latest live trade closed on 2018-01-25" in result.output


def test_status_bad_input_is_one_error(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["live", "status", "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert isinstance(missing.exception, ValueError) and "no database at" in str(missing.exception)
    assert not (tmp_path / "x.db").exists()  # nothing created
    bad_day = CliRunner().invoke(app, ["live", "status", "--day", "25/01/2018"])
    assert "--day '25/01/2018' must be a date" in str(bad_day.exception)


# -- the running trader's status line: a series whose bars stopped (BarWatch) -----------------
MIN_MS = 60_000
NOON = int(datetime(2024, 3, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)


class Clock:
    """Wall time the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_series_without_a_bar_for_three_of_its_intervals_is_late() -> None:
    from live.ops.status import BarWatch, LateSeries, late_text

    clock = Clock()
    # warm-up: each series' newest bar closed at 12:00 (opened 11:55 and 11:45)
    last_open = {("ETH/BTC", "5m"): NOON - 5 * MIN_MS, ("ADA/BTC", "15m"): NOON - 15 * MIN_MS}
    watch = BarWatch(last_open, last_open, clock)
    for minutes in range(5, 41, 5):  # ETH/BTC's bars go on to 12:40; ADA/BTC's stop
        watch.seen("ETH/BTC", "5m", NOON + minutes * MIN_MS)
    assert watch.late() == []  # ADA/BTC: 40 minutes = 2 of its 15m intervals, not yet late
    watch.seen("ETH/BTC", "5m", NOON + 45 * MIN_MS)  # 45 minutes = 3 intervals
    assert watch.late() == [LateSeries("ADA/BTC", "15m", NOON, 3)]
    assert (
        late_text(watch.late(), watch.now_ms())
        == "no bar for ADA/BTC 15m since 12:00 (3 intervals)"
    )
    # every stream stops (the connection gone): the clock goes on at wall speed from the last
    # bar, 12:45; after 14 minutes ETH/BTC has missed 2 of its intervals, after 15 minutes 3
    clock.now = 14 * 60
    assert [x.symbol for x in watch.late()] == ["ADA/BTC"]
    clock.now = 15 * 60
    assert watch.late() == [
        LateSeries("ADA/BTC", "15m", NOON, 4),
        LateSeries("ETH/BTC", "5m", NOON + 45 * MIN_MS, 3),
    ]
    assert late_text(watch.late(), watch.now_ms()) == (
        "no bar for ADA/BTC 15m since 12:00 (4 intervals), ETH/BTC 5m since 12:45 (3 intervals)"
    )
    # the warning line: each series once, until it has a bar and stops again
    assert [x.symbol for x in watch.newly_late()] == ["ADA/BTC", "ETH/BTC"]
    assert watch.newly_late() == []
    watch.seen("ADA/BTC", "15m", NOON + 60 * MIN_MS)  # a bar again: no longer late
    assert [x.symbol for x in watch.late()] == ["ETH/BTC"] and watch.newly_late() == []
    clock.now = 60 * 60  # 13:45: ADA/BTC's last bar closed 13:00, 3 intervals ago
    assert [(x.symbol, x.intervals) for x in watch.newly_late()] == [("ADA/BTC", 3)]


def test_the_clock_is_the_markets_not_the_machines() -> None:
    """A replay of 2017 bars is not years late: the machine's clock would say it is."""
    from live.ops.status import BarWatch, late_text

    open_2017 = int(datetime(2017, 8, 17, 4, 0, tzinfo=UTC).timestamp() * 1000)
    watch = BarWatch([("ETH/BTC", "5m")], {("ETH/BTC", "5m"): open_2017})
    assert watch.late() == [] and abs(watch.now_ms() - (open_2017 + 5 * MIN_MS)) < 60_000
    late = BarWatch([("ETH/BTC", "5m")], {("ETH/BTC", "5m"): open_2017}, lambda: 0.0)
    many = [late.late(after=0)[0]] * 5  # the line names three and counts the others
    text = late_text(many, open_2017 + 86_400_000)  # another day: the date is shown
    assert text.startswith("no bar for ETH/BTC 5m since 2017-08-17 04:05 (0 intervals), ")
    assert text.endswith(" and 2 more")


def test_the_live_status_line_says_which_series_is_late(tmp_path: Path) -> None:
    """In one process (no Ray): ETH/BTC's bars are handed in, LTC/BTC's are not."""
    from actors.messages import BarClosed
    from actors.weighted_portfolio import PortfolioMember
    from commands.live import _status
    from live.node import LiveSettings
    from live.session import LiveSession
    from live.setup import Warmup
    from strategies.registry import make_strategy
    from tests.live.helpers import T0, bars

    frame = bars([(1.0, 1.0, 1.0, 1.0)] * 50)  # 5m bars from 2024-01-01 00:00, flat: no trade
    keys = [("ETH/BTC", "5m"), ("LTC/BTC", "5m")]
    last_open = int(frame.index[-1].timestamp() * 1000)  # 04:05; closed at 04:10
    warm = Warmup(frames={k: frame for k in keys}, last_ms={k: last_open for k in keys})
    members = [PortfolioMember(f"sr {s}", make_strategy("sr_breakout", {}), s, i) for s, i in keys]
    settings = LiveSettings("binance", None, f"sqlite:///{tmp_path / 'live.db'}")
    step = 300 * 10**9
    with LiveSession(settings, members, warm=warm) as session:
        for k in range(50, 53):  # ETH/BTC's bars closing 04:15, 04:20, 04:25
            opened = int(T0.value) + k * step
            session.deliver([BarClosed(opened + step, "ETH/BTC", "5m", opened, 1, 1, 1, 1, 1)])
            line = _status(session).plain
            if k < 52:
                assert "no bar" not in line
        assert line.startswith(
            "binance connected | no bar for LTC/BTC 5m since 04:10 (3 intervals) | bars 3 | open 0 | "
        ), line
        late = session.node.bar_watch.newly_late()
        assert [x.symbol for x in late] == ["LTC/BTC"] and session.node.bar_watch.newly_late() == []


def test_the_days_pnl_is_summed_per_quote_currency(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    _scenario(url)  # +0.5 - 0.2 BTC by #1 a on ETH/BTC
    eth = _trade("#3 c", "CLOSED", 6, -1.5)
    eth.symbol = "XRP/ETH"
    with session_scope(url) as s:
        s.add(eth)
    result = CliRunner().invoke(app, ["live", "status", "--db", url, "--day", "2018-01-25"])
    assert "pnl on 2018-01-25 (UTC, closed trades): +0.3 BTC, -1.5 ETH" in result.output
    assert "  #3 c: 1 trade(s) pnl -1.5" in result.output


def test_a_position_closed_in_part_shows_what_is_still_held(tmp_path: Path) -> None:
    """A take-profit filled in part (trades.exited_quantity): 2 bought, 0.5 sold, 1.5 held and
    marked: 1.5 x (0.11 - 0.1) = +0.015."""
    url = f"sqlite:///{tmp_path / 'live.db'}"
    _scenario(url)
    with session_scope(url) as s:
        held = s.query(TradeRecord).filter_by(status="ACTIVE").one()
        held.exited_quantity = 0.5
    result = CliRunner().invoke(app, ["live", "status", "--db", url, "--day", "2018-01-25"])
    assert result.exit_code == 0, result.output
    line = result.output.splitlines()[1]
    assert line.startswith("  #2 b ETH/BTC long 1.5 @ 0.1 since 2018-01-25T00:00:00Z"), line
    assert line.endswith("unrealised +0.015"), line
