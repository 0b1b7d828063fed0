"""The live risk limits' state (table `risk_states`, store/models.RiskState): read at a start,
written by the live portfolio on a breach, a day roll or a new high-water mark, cleared by
`cli.py live reset-limits`, shown by `cli.py live status`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from store.db import get_engine, session_scope
from store.models import RiskState, utcnow

FIELDS = (
    "day",
    "day_start",
    "high_water",
    "breach_kind",
    "breach_reason",
    "breach_day",
    "breached_at",
)


def load_risk(url: str, exchange: str, mode: str) -> dict[str, dict[str, Any]]:
    """scope -> its stored state (the FIELDS), of one exchange and mode."""
    r = RiskState.__table__.c
    query = select(RiskState.__table__).where(r.exchange == exchange, r.mode == mode)
    with get_engine(url).connect() as conn:
        return {row["scope"]: {k: row[k] for k in FIELDS} for row in conn.execute(query).mappings()}


def save_risk(url: str, exchange: str, mode: str, scope: str, state: dict[str, Any]) -> None:
    """Insert or replace one scope's state (keys: FIELDS; missing ones are None)."""
    with session_scope(url) as session:
        row = session.get(RiskState, (exchange, mode, scope))
        if row is None:
            row = RiskState(exchange=exchange, mode=mode, scope=scope)
        for key in FIELDS:
            setattr(row, key, state.get(key))
        row.updated_at = utcnow()
        session.add(row)


def clear_risk(url: str, exchange: str | None = None) -> list[str]:
    """`cli.py live reset-limits`: forget every breach and baseline (of one exchange or all);
    returns the breaches cleared, as "exchange mode scope: reason" lines."""
    r = RiskState.__table__.c
    where = [r.exchange == exchange] if exchange else []
    with session_scope(url) as session:
        rows = session.execute(select(RiskState.__table__).where(*where)).mappings().all()
        cleared = [
            f"{row['exchange']} {row['mode']} {row['scope']}: {row['breach_reason']}"
            for row in rows
            if row["breach_kind"] is not None
        ]
        session.execute(delete(RiskState).where(*where))
    return cleared


def risk_rows(url: str, exchange: str | None = None) -> list[dict[str, Any]]:
    """Every stored state (for `live status`), breaches first, then by exchange and scope."""
    r = RiskState.__table__.c
    where = [r.exchange == exchange] if exchange else []
    query = select(RiskState.__table__).where(*where).order_by(r.exchange, r.mode, r.scope)
    with get_engine(url).connect() as conn:
        rows = [dict(row) for row in conn.execute(query).mappings()]
    return sorted(rows, key=lambda row: row["breach_kind"] is None)
