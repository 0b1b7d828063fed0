"""The chaos check: the database of a real-mode live run against what the exchange holds.

One function, `audit`, takes the exchange's side (`ExchangeView`: every order it saw and the
account's balances) and the database's (`stored`: the orders, trades and risk states) and says
what disagrees, by check. `exchange_view` reads the exchange through the real ccxt client (the
chaos test and benchmarks/chaos.py, benchmarks/lost_answers.py); `account_view` reads an
in-process local exchange's account (the kill -9 tests, tests/live/ops/test_recovery.py). The
checks hold with partial fills: they compare filled quantities and balances, never "one fill per
order":

- doubled: a client order id used twice at the exchange, or one exchange order stored twice;
- lost: an order the exchange saw that the database does not have under its client order id;
- mismatches: a stored order whose exchange id, final status, filled quantity or average price
  is not the exchange's; a row the exchange never saw that is not REJECTED/CANCELLED without an
  exchange id; a row still UNKNOWN; the base held at the exchange not the database's fills, nor
  what its open trades hold (a position the database does not know); the quote cash at the
  exchange not what the stored fills and fees leave of the funding (within `tolerance`);
- risk: more positions open at once than `max_open` allows (per quote currency), an entry that
  reached the exchange after a latched breach (daily loss, drawdown, orders per minute).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from store.db import get_engine
from store.models import OrderRecord, RiskState, TradeRecord

# the exchange's status -> the database's final status (None: still open at the exchange)
FINAL = {
    "FILLED": "FILLED",
    "CANCELED": "CANCELLED",
    "EXPIRED": "CANCELLED",
    "REJECTED": "REJECTED",
    "NEW": None,
    "PARTIALLY_FILLED": None,
}
CCXT_STATUS = {"closed": "FILLED", "canceled": "CANCELED", "expired": "EXPIRED", "open": "NEW"}
OPEN_ROWS = ("SUBMITTED", "PARTIALLY_FILLED", "NEW")  # a row of an order still open there
LATCHING = ("daily_loss", "drawdown", "orders_per_minute")  # live/risk_limits.py LATCHING
CHECKS = ("doubled", "lost", "mismatches", "risk")


@dataclass(frozen=True)
class SeenOrder:
    """An order as the exchange holds it (statuses in Binance's words)."""

    client_id: str
    order_id: str
    symbol: str  # unified, ETH/BTC
    side: str  # BUY | SELL
    status: str
    filled: float
    average: float | None


@dataclass(frozen=True)
class ExchangeView:
    orders: list[SeenOrder]
    balances: dict[str, float]  # asset -> total (free + locked)


@dataclass
class Stored:
    orders: list[dict[str, Any]]
    trades: list[dict[str, Any]]
    risk: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Audit:
    """What disagrees, by check (each a list of one line per problem)."""

    exchange_orders: int = 0
    rows: int = 0
    problems: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CHECKS})

    def add(self, check: str, line: str) -> None:
        self.problems[check].append(line)

    def counts(self) -> dict[str, int]:
        return {check: len(lines) for check, lines in self.problems.items()}

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())

    def raise_if_broken(self) -> None:
        """AssertionError naming each broken check and its first problems."""
        broken = [
            f"{check} {len(lines)}: " + "; ".join(lines[:3])
            for check, lines in self.problems.items()
            if lines
        ]
        assert not broken, "database and exchange disagree: " + " | ".join(broken)


# -- the two sides -------------------------------------------------------------------------------
def exchange_view(client: Any, symbols: Iterable[str]) -> ExchangeView:
    """Every order of `symbols` and the balances, through a ccxt client (allOrders, account)."""
    orders = []
    for symbol in symbols:
        for o in client.fetch_orders(symbol):
            info = o.get("info") or {}
            status = info.get("status") or CCXT_STATUS.get(o["status"], o["status"])
            orders.append(
                SeenOrder(
                    str(o["clientOrderId"]),
                    str(o["id"]),
                    o["symbol"],
                    o["side"].upper(),
                    status,
                    float(o.get("filled") or 0.0),
                    float(o["average"]) if o.get("average") else None,
                )
            )
    balance = client.fetch_balance()
    totals = {k: float(v or 0.0) for k, v in (balance.get("total") or {}).items()}
    return ExchangeView(orders, totals)


def account_view(account: Any) -> ExchangeView:
    """The same from an in-process local exchange's Account (localexchange/accounts.py)."""
    orders = [
        SeenOrder(
            o.client_id,
            str(o.order_id),
            o.symbol,
            o.side,
            o.status,
            o.executed,
            o.quote / o.executed if o.executed else None,
        )
        for o in account.orders.values()
    ]
    return ExchangeView(orders, {k: v[0] + v[1] for k, v in account.balances.items()})


def stored(db: str) -> Stored:
    """The database's orders, trades and risk states (live real mode: run_id None)."""
    with get_engine(db).connect() as conn:
        orders = conn.execute(select(OrderRecord.__table__)).mappings().all()
        trades = conn.execute(select(TradeRecord.__table__)).mappings().all()
        risk = conn.execute(select(RiskState.__table__)).mappings().all()
    return Stored([dict(r) for r in orders], [dict(r) for r in trades], [dict(r) for r in risk])


# -- the checks ----------------------------------------------------------------------------------
def audit(
    view: ExchangeView,
    db: Stored,
    funding: Mapping[str, float],
    *,
    tolerance: float = 1e-6,
    max_open: int | None = None,
) -> Audit:
    """Every check of the module docstring; `funding` is the account's balances before the run
    (the local exchange funds a key on first use), `tolerance` the lot/tick precision of the
    balance comparisons (base units for positions, quote units for cash)."""
    out = Audit(len(view.orders), len(db.orders))
    rows = _orders(db.orders, out)
    _orders_agree(view.orders, rows, out)
    _balances_agree(view, rows, db.trades, funding, tolerance, out)
    _risk_held(db, max_open, out)
    return out


def _orders(orders: list[dict[str, Any]], out: Audit) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for row in orders:
        if row["id"] in rows:
            out.add("doubled", f"client order id {row['id']} stored twice")
        rows[row["id"]] = row
    ids = Counter(r["exchange_order_id"] for r in orders if r["exchange_order_id"] is not None)
    for order_id, n in ids.items():
        if n > 1:
            out.add("doubled", f"exchange order {order_id} stored under {n} client ids")
    return rows


def _orders_agree(seen: list[SeenOrder], rows: dict[str, dict[str, Any]], out: Audit) -> None:
    for cid, n in Counter(o.client_id for o in seen).items():
        if n > 1:
            out.add("doubled", f"client order id {cid} used {n} times at the exchange")
    at_exchange = {o.client_id for o in seen}
    for o in seen:
        row = rows.get(o.client_id)
        if row is None:
            out.add("lost", f"exchange order {o.client_id} ({o.status}) is not in the database")
            continue
        final = FINAL.get(o.status)
        status_ok = row["status"] == final if final else row["status"] in OPEN_ROWS
        if row["exchange_order_id"] != o.order_id or not status_ok:
            out.add(
                "mismatches",
                f"{o.client_id}: exchange {o.order_id} {o.status}, stored "
                f"{row['exchange_order_id']} {row['status']}",
            )
        elif abs((row["filled_quantity"] or 0.0) - o.filled) > 1e-9 * max(1.0, o.filled):
            out.add(
                "mismatches",
                f"{o.client_id}: filled {o.filled:g} at the exchange, {row['filled_quantity']:g} "
                "stored",
            )
        elif o.filled and _prices_differ(row["avg_fill_price"] or 0.0, o.average or 0.0, o.filled):
            out.add(
                "mismatches",
                f"{o.client_id}: average price {o.average} at the exchange, "
                f"{row['avg_fill_price']} stored",
            )
    for cid, row in rows.items():
        if row["status"] == "UNKNOWN":
            out.add("mismatches", f"{cid} is still UNKNOWN")
        elif cid not in at_exchange and (
            row["exchange_order_id"] is not None or row["status"] not in ("REJECTED", "CANCELLED")
        ):
            out.add(
                "mismatches",
                f"{cid} is stored {row['status']} (exchange id {row['exchange_order_id']}) but "
                "the exchange never saw it",
            )


def _balances_agree(
    view: ExchangeView,
    rows: dict[str, dict[str, Any]],
    trades: list[dict[str, Any]],
    funding: Mapping[str, float],
    tolerance: float,
    out: Audit,
) -> None:
    """The stored fills, from the funding, are the exchange's balances; and what the exchange
    holds of each traded base is what the open trades hold (entry filled less exits filled)."""
    fills: dict[str, float] = defaultdict(float)
    for row in rows.values():
        qty = row["filled_quantity"] or 0.0
        if not qty or row["exchange_order_id"] is None:
            continue
        base, quote = row["symbol"].split("/")
        sign = 1.0 if row["side"].upper() == "BUY" else -1.0
        fills[base] += sign * qty
        fills[quote] -= sign * qty * (row["avg_fill_price"] or 0.0) + (row["fee"] or 0.0)
    held: dict[str, float] = defaultdict(float)
    for t in trades:
        if t["status"] != "ACTIVE" or t.get("run_id") is not None:
            continue
        entry = rows.get(t["trade_id"], {})
        exits = [r for r in rows.values() if r["parent_id"] == t["trade_id"]]
        left = (entry.get("filled_quantity") or 0.0) - sum(
            r["filled_quantity"] or 0.0 for r in exits
        )
        held[t["symbol"].split("/")[0]] += left if t["side"] in ("long", "LONG") else -left
    assets = {*fills, *held, *(view.balances.keys() & funding.keys())}
    for asset in sorted(assets):
        at_exchange = view.balances.get(asset, 0.0) - funding.get(asset, 0.0)
        if abs(at_exchange - fills.get(asset, 0.0)) > tolerance:
            out.add(
                "mismatches",
                f"{asset}: the exchange's balance moved {at_exchange:.10g}, the stored fills "
                f"say {fills.get(asset, 0.0):.10g}",
            )
        if asset in funding and asset not in held:
            continue  # a quote currency
        if abs(at_exchange - held.get(asset, 0.0)) > tolerance:
            out.add(
                "mismatches",
                f"{asset}: the exchange holds {at_exchange:.10g} from trading, the open trades "
                f"in the database {held.get(asset, 0.0):.10g} (a position it does not know)",
            )


def _risk_held(db: Stored, max_open: int | None, out: Audit) -> None:
    live = [t for t in db.trades if t.get("run_id") is None]
    if max_open is not None:
        by_quote: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for t in live:
            by_quote[t["symbol"].split("/")[1]].append(t)
        for quote, group in by_quote.items():
            for t in group:
                at = t["entry_time"]
                open_then = sum(
                    1
                    for u in group
                    if u["entry_time"] <= at and (u["exit_time"] is None or u["exit_time"] > at)
                )
                if open_then > max_open:
                    out.add(
                        "risk",
                        f"{quote}: {open_then} positions open at {at}, max_open {max_open}",
                    )
                    break
    for state in db.risk:
        if state["mode"] != "real" or state["breach_kind"] not in LATCHING:
            continue
        since = _utc(state["breached_at"])
        for row in db.orders:
            if (
                row["role"] == "entry"
                and row["exchange_order_id"] is not None
                and _utc(row["created_at"]) > since
                and _in_scope(row, state["scope"])
            ):
                out.add(
                    "risk",
                    f"entry {row['id']} sent at {row['created_at']} after the {state['scope']} "
                    f"breach at {since} ({state['breach_reason']})",
                )


def _in_scope(row: dict[str, Any], scope: str) -> bool:
    """Scope "BTC" is the BTC account; "BTC #3 ..." its instance 3 (store/models.RiskState)."""
    quote, _, rest = scope.partition(" ")
    if row["symbol"].split("/")[1] != quote:
        return False
    return not rest or rest.startswith(f"#{row['instance_id']} ")


def _utc(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _prices_differ(stored: float, seen: float, filled: float) -> bool:
    """The exchange's average is its quote total over the quantity, and Binance gives that total
    to 8 decimals: a limit filled at exactly 5.2e-05 can read 5.1999999944943e-05. Equal when
    within that rounding (half a unit of the 8th decimal of the total) or 1e-9 relative."""
    gap = abs(stored - seen)
    return gap * filled > 0.5e-8 and gap > 1e-9 * (seen or 1.0)
