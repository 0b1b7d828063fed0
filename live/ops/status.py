"""`cli.py live status`: the live system's state read from the database, and nothing else.

Reads only (no table is written, no actor is asked): live trading writes every order and trade
change at once (actors/order_store.py), so the database is the running system's state. Live
rows are those without a backtest run id. Shown: open positions (marked at the latest stored
close of their series, with that bar's time: the live stream stores every bar), open orders (NEW, UNKNOWN or SUBMITTED), and
per instance the trades closed on one UTC day with their pnl (default: today).
"""

from __future__ import annotations

import datetime as dt
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


def read_status(url: str, exchange: str | None = None, day: dt.date | None = None) -> LiveStatus:
    from sqlalchemy import func, select

    from store.db import get_engine
    from store.models import OrderRecord, TradeRecord

    _check_exists(url)
    day = day or dt.datetime.now(dt.UTC).date()
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    t_, o_ = TradeRecord.__table__.c, OrderRecord.__table__.c
    live_t = [t_.run_id.is_(None)] + ([t_.exchange == exchange] if exchange else [])
    live_o = [o_.run_id.is_(None)] + ([o_.exchange == exchange] if exchange else [])
    out = LiveStatus(day)
    with get_engine(url).connect() as conn:
        held = select(
            t_.strategy,
            t_.exchange,
            t_.symbol,
            t_.interval,
            t_.side,
            t_.quantity,
            t_.entry_time,
            t_.entry_price,
        ).where(*live_t, t_.status == TradeStatus.ACTIVE)
        for t in conn.execute(held.order_by(t_.entry_time)).mappings():
            mark, mark_ms = _latest_close(conn, t["exchange"], t["symbol"], t["interval"])
            sign = 1.0 if t["side"] == Side.LONG else -1.0
            pnl = None if mark is None else sign * t["quantity"] * (mark - t["entry_price"])
            out.positions.append({**t, "mark": mark, "mark_ms": mark_ms, "unrealised": pnl})
        orders = select(
            o_.id,
            o_.strategy,
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
            select(t_.strategy, func.count().label("trades"), func.sum(t_.pnl).label("pnl"))
            .where(*closed, t_.exit_time >= start, t_.exit_time < start + dt.timedelta(days=1))
            .group_by(t_.strategy)
            .order_by(t_.strategy)
        )
        out.pnl = [dict(r) for r in conn.execute(per).mappings()]
        out.latest_exit = conn.execute(select(func.max(t_.exit_time)).where(*closed)).scalar()
    out.latest_exit = _as_datetime(out.latest_exit)
    return out


def _check_exists(url: str) -> None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        from pathlib import Path

        if not Path(parsed.database).exists():
            raise StatusError(
                f"no database at {parsed.database}: `cli.py live` writes its state there; pass "
                "the --db the trader runs with (or set RAYTRADER_DB)"
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
    """Plain lines (stable for scripts and tests): positions, orders, pnl per instance."""
    lines = [f"open positions: {len(status.positions)}"]
    for p in status.positions:
        mark = "no stored bar"
        if p["mark"] is not None:
            bar = _iso(dt.datetime.fromtimestamp(p["mark_ms"] / 1000, dt.UTC))
            mark = f"mark {p['mark']:.8g} (bar {bar}) unrealised {p['unrealised']:+.8g}"
        lines.append(
            f"  {p['strategy']} {p['symbol']} {p['side']} {p['quantity']:.8g} @ "
            f"{p['entry_price']:.8g} since {_iso(p['entry_time'])} {mark}"
        )
    lines.append(f"open orders: {len(status.orders)}")
    for o in status.orders:
        level = o["stop_price"] if o["type"] == OrderKind.STOP else o["price"]
        at = "" if level is None else f" @ {level:.8g}"
        lines.append(
            f"  {o['id']} {o['strategy']} {o['symbol']} {o['side']} {o['type']}{at} "
            f"{o['quantity']:.8g} {o['role']} {o['status']}"
        )
    total = sum(r["pnl"] or 0.0 for r in status.pnl)
    lines.append(f"pnl on {status.day.isoformat()} (UTC, closed trades): {total:+.8g}")
    for r in status.pnl:
        lines.append(f"  {r['strategy']}: {r['trades']} trade(s) pnl {r['pnl']:+.8g}")
    if not status.pnl and status.latest_exit is not None:
        lines.append(
            f"  none; the latest live trade closed on {status.latest_exit.date()} "
            "(replayed data? pass --day)"
        )
    return lines


def _iso(value: object) -> str:
    value = _as_datetime(value)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "?"
