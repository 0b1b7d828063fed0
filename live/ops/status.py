"""`cli.py live status`: the live system's state read from the database, and nothing else.

Reads only (no table is written, no actor is asked): live trading writes every order and trade
change at once (actors/order_store.py), so the database is the running system's state. Live
rows are those without a backtest run id. Shown: open positions (marked at the latest stored
close of their series, with that bar's time: the live stream stores every bar), open orders (NEW, UNKNOWN or SUBMITTED), and
per instance the trades closed on one UTC day with their pnl (default: today).

Also the running trader's own status line's warning (`BarWatch`): a streamed series whose bars
stopped coming, "no bar for ETH/BTC 5m since 12:05 (3 intervals)".
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import UserError
from core.vocabulary import OrderKind, OrderStatus, Side, TradeStatus

if TYPE_CHECKING:
    from sqlalchemy import Connection

OPEN_ORDER = (OrderStatus.NEW, OrderStatus.UNKNOWN, OrderStatus.SUBMITTED)


class StatusError(UserError):
    """No live database where the user pointed."""


Row = dict[str, Any]  # a database row by column name (values of the column's type)


@dataclass
class LiveStatus:
    day: dt.date
    positions: list[Row] = field(default_factory=list)
    orders: list[Row] = field(default_factory=list)
    pnl: list[Row] = field(default_factory=list)  # per instance, on `day`
    latest_exit: dt.datetime | None = None  # of any live trade (a hint when `day` had none)
    risk: list[Row] = field(default_factory=list)  # risk-limit states (store/risk.py)


def read_status(url: str, exchange: str | None = None, day: dt.date | None = None) -> LiveStatus:
    from sqlalchemy import func, or_, select

    from actors.order_store import DRY_RUN
    from store.db import get_engine
    from store.models import OrderRecord, TradeRecord

    _check_exists(url)
    day = day or dt.datetime.now(dt.UTC).date()
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    t_, o_ = TradeRecord.__table__.c, OrderRecord.__table__.c
    # live rows: real ones have no run_id, dry-run ones DRY_RUN (a backtest's rows its run's id)
    live_t = [or_(t_.run_id.is_(None), t_.run_id == DRY_RUN)]
    live_o = [or_(o_.run_id.is_(None), o_.run_id == DRY_RUN)]
    live_t += [t_.exchange == exchange] if exchange else []
    live_o += [o_.exchange == exchange] if exchange else []
    out = LiveStatus(day)
    with get_engine(url).connect() as conn:
        if exchange:
            _check_exchange_known(conn, exchange)
        held = select(
            t_.run_id,
            t_.strategy,
            t_.exchange,
            t_.symbol,
            t_.interval,
            t_.side,
            # what is still held: a take-profit filled in part closed some of it already
            (t_.quantity - func.coalesce(t_.exited_quantity, 0.0)).label("quantity"),
            t_.entry_time,
            t_.entry_price,
        ).where(*live_t, t_.status == TradeStatus.ACTIVE)
        for t in conn.execute(held.order_by(t_.entry_time)).mappings():
            mark, mark_ms = _latest_close(conn, t["exchange"], t["symbol"], t["interval"])
            sign = 1.0 if t["side"] == Side.LONG else -1.0
            pnl = None if mark is None else sign * t["quantity"] * (mark - t["entry_price"])
            out.positions.append({**t, "mark": mark, "mark_ms": mark_ms, "unrealised": pnl})
        orders = select(
            o_.run_id,
            o_.id,
            o_.strategy,
            o_.exchange,
            o_.symbol,
            o_.side,
            o_.type,
            o_.role,
            o_.quantity,
            o_.price,
            o_.stop_price,
            o_.status,
        ).where(*live_o, o_.status.in_(OPEN_ORDER))
        out.orders = [
            dict(r) for r in conn.execute(orders.order_by(o_.created_at, o_.id)).mappings()
        ]
        closed = [*live_t, t_.status == TradeStatus.CLOSED]
        per = (
            select(
                t_.run_id,
                t_.strategy,
                t_.exchange,
                t_.symbol,
                func.count().label("trades"),
                func.sum(t_.pnl).label("pnl"),
            )
            .where(*closed, t_.exit_time >= start, t_.exit_time < start + dt.timedelta(days=1))
            # an instance trades one pair on one exchange: its (exchange, quote)'s pnl
            .group_by(t_.run_id, t_.strategy, t_.exchange, t_.symbol)
            .order_by(t_.strategy)
        )
        out.pnl = [dict(r) for r in conn.execute(per).mappings()]
        out.latest_exit = conn.execute(select(func.max(t_.exit_time)).where(*closed)).scalar()
    out.latest_exit = _as_datetime(out.latest_exit)
    from store.risk import risk_rows

    out.risk = risk_rows(url, exchange)
    return out


def _check_exists(url: str) -> None:
    from store.db import missing_sqlite_file

    missing = missing_sqlite_file(url)
    if missing is not None:
        raise StatusError(
            f"no database at {missing}: `cli.py live` writes its state there; pass "
            "the --db the trader runs with (or set RAYTRADER_DB)"
        )


def _check_exchange_known(conn: Connection, exchange: str) -> None:
    """An exchange the database never heard of (no instance, order, trade or bar on it) is a
    typo, not an empty status: say which exchanges it knows."""
    from sqlalchemy import select, union

    from store.models import BarSeries, OrderRecord, StrategyInstance, TradeRecord

    tables = (StrategyInstance, OrderRecord, TradeRecord, BarSeries)
    known = {row[0] for row in conn.execute(union(*(select(t.exchange) for t in tables)))}
    if exchange not in known:
        listed = ", ".join(sorted(k for k in known if k)) or "none yet"
        raise StatusError(
            f"--exchange {exchange!r}: the database has no instance, order, trade or bar on "
            f"that exchange (it knows: {listed}); check the spelling or leave --exchange out"
        )


def _latest_close(
    conn: Connection, exchange: str, symbol: str, interval: str
) -> tuple[float | None, int | None]:
    """(close, open time in ms) of the newest stored bar of the series."""
    from sqlalchemy import select

    from store.models import Bar

    b = Bar.__table__.c
    query = select(b.close, b.ts).where(
        b.exchange == exchange, b.symbol == symbol, b.interval == interval
    )
    row = conn.execute(query.order_by(b.ts.desc()).limit(1)).first()
    return (None, None) if row is None else (float(row[0]), int(row[1]))


def _as_datetime(value: object) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def status_lines(status: LiveStatus) -> list[str]:
    """Plain lines (stable for scripts and tests): positions, orders, pnl per instance. With
    rows of several exchanges (live/multi.py) each row names its exchange and the pnl is
    totalled per (exchange, quote currency); with one, the lines are those of before."""
    rows = (*status.positions, *status.orders, *status.pnl)
    several = len({r.get("exchange") for r in rows}) > 1

    def on(row: Mapping[str, object]) -> str:
        mode = "[dry run] " if row.get("run_id") else ""  # live rows: a run_id is the dry run's
        return mode + (f"{row['exchange']} " if several else "")

    lines = [f"open positions: {len(status.positions)}"]
    for p in status.positions:
        mark = "no stored bar"
        if p["mark"] is not None:
            bar = _iso(dt.datetime.fromtimestamp(p["mark_ms"] / 1000, dt.UTC))
            mark = f"mark {p['mark']:.8g} (bar {bar}) unrealised {p['unrealised']:+.8g}"
        lines.append(
            f"  {on(p)}{p['strategy']} {p['symbol']} {p['side']} {p['quantity']:.8g} @ "
            f"{p['entry_price']:.8g} since {_iso(p['entry_time'])} {mark}"
        )
    lines.append(f"open orders: {len(status.orders)}")
    for o in status.orders:
        level = o["stop_price"] if o["type"] == OrderKind.STOP else o["price"]
        at = "" if level is None else f" @ {level:.8g}"
        lines.append(
            f"  {on(o)}{o['id']} {o['strategy']} {o['symbol']} {o['side']} {o['type']}{at} "
            f"{o['quantity']:.8g} {o['role']} {o['status']}"
        )
    totals: dict[str, float] = {}  # per quote currency: BTC and ETH do not add up
    for r in status.pnl:
        quote = r["symbol"].split("/")[-1] + (f" on {r['exchange']}" if several else "")
        quote += " (dry run)" if r.get("run_id") else ""  # simulated money is never added in
        totals[quote] = totals.get(quote, 0.0) + (r["pnl"] or 0.0)
    total = (
        ", ".join(f"{v:+.8g} {q}" for q, v in sorted(totals.items()))
        if len(totals) > 1
        else f"{sum(totals.values()):+.8g}"
    )
    lines.append(f"pnl on {status.day.isoformat()} (UTC, closed trades): {total}")
    for r in status.pnl:
        lines.append(f"  {on(r)}{r['strategy']}: {r['trades']} trade(s) pnl {r['pnl']:+.8g}")
    if not status.pnl and status.latest_exit is not None:
        lines.append(
            f"  none; the latest live trade closed on {status.latest_exit.date()} "
            "(replayed data? pass --day)"
        )
    return lines + risk_lines(status.risk)


def risk_lines(rows: list[Row]) -> list[str]:
    """The risk limits' stored state: each breach (new entries stopped) and each account's
    baselines; nothing when no run with limits wrote any."""
    if not rows:
        return []
    breaches = [r for r in rows if r["breach_kind"]]
    lines = [f"risk limits: {len(breaches)} breached" if breaches else "risk limits: not breached"]
    for r in breaches:
        until = (
            "until the UTC day rolls" if r["breach_kind"] == "daily_loss" else "until reset-limits"
        )
        lines.append(
            f"  BREACHED {r['exchange']} {r['mode']} {r['scope']} [{r['breach_kind']}]: "
            f"{r['breach_reason']} at {_iso(r['breached_at'])}; new entries stopped {until}"
        )
    for r in rows:
        if r["high_water"] is not None and r["day_start"] is not None:
            lines.append(
                f"  {r['exchange']} {r['mode']} {r['scope']}: day {r['day']} started at "
                f"{r['day_start']:.8g}, high-water mark {r['high_water']:.8g}"
            )
    return lines


def _iso(value: object) -> str:
    value = _as_datetime(value)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "?"


# -- the running trader's status line: series whose bars stopped ------------------------------
LATE_AFTER = 3  # intervals without a bar before a series is reported late
SHOWN_LATE = 3  # late series named in the line; the others are counted


@dataclass(frozen=True)
class LateSeries:
    symbol: str
    interval: str
    last_close_ms: int  # close time of the series' newest bar
    intervals: int  # whole intervals since then without a bar


class BarWatch:
    """The newest bar of each streamed series and the market's clock, to tell a series that
    stopped. The clock is market time, not the machine's: a replay (`cli.py exchange serve`)
    runs in another year and at another speed. It is the newest close of any series, advanced
    by the wall time since it arrived (at real speed; a faster replay only makes the warning
    later), so one series stopping shows while the others go on, and all of them stopping (the
    connection gone) shows too, once three intervals of wall time have passed."""

    def __init__(
        self,
        series: Iterable[tuple[str, str]],
        last_open_ms: Mapping[tuple[str, str], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from core.intervals import interval_ns

        self.step_ms = {key: interval_ns(key[1]) // 1_000_000 for key in series}
        # the warm-up's newest bar of each series (open time) is where each starts from
        self.closes = {
            key: int(last_open_ms[key]) + step
            for key, step in self.step_ms.items()
            if key in last_open_ms
        }
        self._clock = clock
        self._market_ms = max(self.closes.values(), default=None)
        self._seen_at = clock()
        self._reported: set[tuple[str, str]] = set()  # late, and said so in a warning line

    def seen(self, symbol: str, interval: str, close_ms: int) -> None:
        key = (symbol, interval)
        if close_ms > self.closes.get(key, -1):
            self.closes[key] = close_ms
            self._reported.discard(key)  # a bar again: should it stop again, say so again
        if self._market_ms is None or close_ms > self._market_ms:
            self._market_ms, self._seen_at = close_ms, self._clock()

    def now_ms(self) -> int | None:
        if self._market_ms is None:
            return None
        return self._market_ms + int((self._clock() - self._seen_at) * 1000)

    def late(self, after: int = LATE_AFTER) -> list[LateSeries]:
        """Series without a bar for `after` or more of their intervals, the longest first."""
        now = self.now_ms()
        if now is None:
            return []
        out = []
        for key, last in self.closes.items():
            missed = (now - last) // self.step_ms[key]
            if missed >= after:
                out.append(LateSeries(key[0], key[1], last, int(missed)))
        return sorted(out, key=lambda x: (x.last_close_ms, x.symbol, x.interval))

    def newly_late(self, after: int = LATE_AFTER) -> list[LateSeries]:
        """The late series not reported before (once per stop: a log keeps one line, where the
        status line is redrawn and cut at the terminal's width)."""
        new = [x for x in self.late(after) if (x.symbol, x.interval) not in self._reported]
        self._reported.update((x.symbol, x.interval) for x in new)
        return new


def late_text(late: list[LateSeries], now_ms: int | None = None) -> str:
    """'no bar for ETH/BTC 5m since 12:05 (3 intervals)'; the time with its date when it is
    not the day of `now_ms` (UTC); '' when nothing is late."""
    if not late:
        return ""
    today = None if now_ms is None else _utc(now_ms).date()
    parts = []
    for x in late[:SHOWN_LATE]:
        when = _utc(x.last_close_ms)
        shown = when.strftime("%H:%M" if when.date() == today else "%Y-%m-%d %H:%M")
        parts.append(f"{x.symbol} {x.interval} since {shown} ({x.intervals} intervals)")
    more = f" and {len(late) - SHOWN_LATE} more" if len(late) > SHOWN_LATE else ""
    return "no bar for " + ", ".join(parts) + more


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
