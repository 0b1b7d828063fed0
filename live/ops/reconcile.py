"""Reconciliation of the stored open orders with the exchange (the ccxt broker, real mode).

Pure decisions on the venue's typed reports (live/venues/reports.py): the node asks the broker
for the reports, `reconcile` says what to do, and the node applies it through the broker's
public methods (live/node.py). Nothing here talks to an exchange or touches the broker.

On every start, before trading, for each order the database has open (NEW or SUBMITTED):
- known exchange id, or found by its client order id (`origClientOrderId`; so an order that
  reached the exchange just before a crash is adopted, never sent twice):
  filled -> its fill is reported (fills applied once each, in the order they happened; stops
  before targets at one time, as the exchange matched them); still open -> it rests here again;
  cancelled or expired -> reported cancelled;
- not found at the exchange: an entry is marked failed (its bar has passed); an exit order
  (a bracket leg, an exit by signal) never reached the exchange and is sent now, under the same
  client order id: that re-creates a bracket leg missing for an open trade;
- a time exit lives in the broker until due, then goes out as a market order under its own
  client id: found at the exchange -> as above; not found -> kept again;
- a stop or target of an open trade cancelled at the exchange by someone else (no sibling
  filled, no exit on its way) is placed again as a new order (`lost`, live/ops/recovery.py);
- a resting exit filled in part (docs/live.md#partial-fills): the parts the database does not
  have yet (beyond its stored filled quantity) are reported, each once, as they filled, and the
  order manager re-protects the rest; a closing fill carries only what filled after the stored
  parts. One the database holds parts of and that filled no further was replaced already (the
  order manager places the rest's legs in the same commit as the part): it is cancelled. Its
  stop, expired by the exchange at the part, is not "lost" (the new legs protect the rest), and
  of several time exits of one trade only the newest (the one for the rest) is kept.
Then `ExchangeAudit` (also every --reconcile-every minutes): the exchange's open orders and its
fills since the last stored fill that the database does not know are reported loudly and left
untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from actors.messages import (
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    SubmitOrder,
)
from actors.order_manager import REPLACED
from core.vocabulary import OrderKind, OrderRole
from live.venues.reports import (
    MS,
    AccountReport,
    OrderStatus,
    OrderStatusReport,
    parts_after,
    sum_parts,
)

_RANK = {OrderRole.ENTRY: 0, OrderRole.STOP_LOSS: 1, OrderRole.TAKE_PROFIT: 2}
_CANCEL_RANK, _REJECT_RANK = 8, 9  # after the fills at the same time
StoredOrder = tuple[str, str | None, SubmitOrder]  # (client id, exchange id, the order)
ReconcileEvent = OrderAccepted | OrderFilled | OrderPartiallyFilled | OrderCancelled | OrderRejected
_EPS = 1e-9


@dataclass
class ReconcilePlan:
    """What reconciliation decided; the node applies it in this order."""

    client_ids: dict[int, str] = field(default_factory=dict)  # order id -> stored client id
    resting: list[tuple[str, SubmitOrder]] = field(default_factory=list)  # (exchange id, order)
    timed: list[SubmitOrder] = field(default_factory=list)  # time exits not yet due
    cancels: list[tuple[str, str]] = field(default_factory=list)  # (exchange id, symbol)
    adopted: list[tuple[str, str]] = field(default_factory=list)  # (client id, exchange id)
    events: list[ReconcileEvent] = field(default_factory=list)  # for the other actors
    resend: list[SubmitOrder] = field(default_factory=list)  # exits that never left: sent now
    lost: list[SubmitOrder] = field(default_factory=list)  # legs cancelled behind our back


def reconcile(
    stored: list[StoredOrder],
    reports: list[OrderStatusReport | None],
    filled: Mapping[int, float] | None = None,
) -> ReconcilePlan:
    """The stored open orders against what the exchange reports of each (None: not there);
    `filled`: the quantity stored as filled so far per order id (parts of a resting exit)."""
    plan = ReconcilePlan()
    accepted: list[ReconcileEvent] = []
    timeline: list[tuple[int, int, ReconcileEvent]] = []
    filled = filled or {}
    replaced = _older_time_exits(stored)
    for (cid, exchange_id, msg), report in zip(stored, reports, strict=True):
        plan.client_ids[msg.order_id] = cid
        if msg.order_id in replaced and report is None:
            timeline.append((msg.ts, _CANCEL_RANK, OrderCancelled(msg.ts, msg.order_id, REPLACED)))
            continue
        if report is None and msg.trade_id is None and msg.role != "entry":
            reason = "its trade closed before a restart"  # an exit never sent, now moot
            timeline.append((msg.ts, _CANCEL_RANK, OrderCancelled(msg.ts, msg.order_id, reason)))
            continue
        if (
            report is None and msg.kind == OrderKind.TIMED
        ):  # not yet due when we went down: kept again
            plan.timed.append(msg)
            accepted.append(OrderAccepted(msg.ts, msg.order_id))
            continue
        if report is None:
            if msg.role == "entry":
                reason = "never reached the exchange before a restart"
                timeline.append((msg.ts, _REJECT_RANK, OrderRejected(msg.ts, msg.order_id, reason)))
            else:
                plan.resend.append(msg)
            continue
        if exchange_id is None:
            plan.adopted.append((cid, report.exchange_id))
        accepted.append(OrderAccepted(msg.ts, msg.order_id))
        timeline.extend(_outcome(plan, msg, report, filled.get(msg.order_id, 0.0)))
    plan.events = accepted + [e for _ts, _rank, e in sorted(timeline, key=lambda x: (x[0], x[1]))]
    plan.lost = _lost_legs(stored, timeline, filled)
    return plan


def _older_time_exits(stored: list[StoredOrder]) -> set[int]:
    """Time exits of a trade replaced by a newer one (for the rest after a partial fill)."""
    newest: dict[int, SubmitOrder] = {}
    older: set[int] = set()
    for _cid, _eid, msg in sorted(stored, key=lambda s: s[2].ts):
        if msg.kind == OrderKind.TIMED and msg.trade_id is not None:
            if msg.trade_id in newest:
                older.add(newest[msg.trade_id].order_id)
            newest[msg.trade_id] = msg
    return older


def _outcome(
    plan: ReconcilePlan, msg: SubmitOrder, report: OrderStatusReport, prior: float = 0.0
) -> list[tuple[int, int, ReconcileEvent]]:
    if prior or report.filled > _EPS:  # a resting exit filled in part
        partial = _partial_outcome(plan, msg, report, prior)
        if partial is not None:
            return partial
    if report.status is OrderStatus.OPEN and msg.role != "entry" and msg.trade_id is None:
        # an exit leg of a trade that is closed already: it must not rest any longer
        plan.cancels.append((report.exchange_id, msg.symbol))
        return [(msg.ts, _CANCEL_RANK, OrderCancelled(msg.ts, msg.order_id, "oco"))]
    if report.status is OrderStatus.OPEN:
        plan.resting.append((report.exchange_id, msg))
        return []
    if report.status is OrderStatus.CLOSED:
        fill = OrderFilled(report.filled_ts, msg.order_id, report.price, report.filled, report.fee)
        return [(fill.ts, _RANK.get(msg.role, 3), fill)]
    ts = report.updated_ts
    reason = f"{report.status} at the exchange"
    return [(ts, _CANCEL_RANK, OrderCancelled(ts, msg.order_id, reason))]


def _partial_outcome(
    plan: ReconcilePlan, msg: SubmitOrder, report: OrderStatusReport, prior: float
) -> list[tuple[int, int, ReconcileEvent]] | None:
    """An order the database or the exchange holds parts of; None: the usual outcome."""
    rank = _RANK.get(msg.role, 3)
    if report.status is OrderStatus.CLOSED:
        if not prior:
            return None  # all of it at once, as any fill
        qty, price, fee = sum_parts(parts_after(report.parts, prior))
        if not qty > 0:  # its trades were not read: the order's own figures for the rest
            qty, price, fee = report.filled - prior, report.price, report.fee
        return [
            (report.filled_ts, rank, OrderFilled(report.filled_ts, msg.order_id, price, qty, fee))
        ]
    new = parts_after(report.parts, prior) if report.filled > prior + _EPS else []
    out: list[tuple[int, int, ReconcileEvent]] = [
        (
            p.ts_ms * MS,
            rank,
            OrderPartiallyFilled(p.ts_ms * MS, msg.order_id, p.price, p.quantity, p.fee),
        )
        for p in new
    ]
    if report.status is not OrderStatus.OPEN:  # cancelled or expired after its parts
        ts = report.updated_ts
        reason = f"{report.status} at the exchange"
        return [*out, (ts, _CANCEL_RANK, OrderCancelled(ts, msg.order_id, reason))]
    if new and msg.trade_id is not None:  # the order manager re-protects the rest on the part
        plan.resting.append((report.exchange_id, msg))  # (and cancels this one then)
        return out
    # its parts are stored, so the rest's legs were stored with them and this one replaced (or
    # its trade is closed): it must not rest any longer
    plan.cancels.append((report.exchange_id, msg.symbol))
    reason = REPLACED if msg.trade_id is not None else "oco"
    return [*out, (msg.ts, _CANCEL_RANK, OrderCancelled(msg.ts, msg.order_id, reason))]


def _lost_legs(
    stored: list[StoredOrder],
    timeline: list[tuple[int, int, ReconcileEvent]],
    stored_filled: Mapping[int, float],
) -> list[SubmitOrder]:
    """Stops and targets of open trades cancelled at the exchange behind our back (no sibling
    filled, no exit on its way): the node places them again, under new client order ids."""
    msgs = {m.order_id: m for _c, _e, m in stored}
    fills = (OrderFilled, OrderPartiallyFilled)
    filled = {msgs[e.order_id].trade_id for _t, _r, e in timeline if type(e) in fills}
    # a stop expired by the exchange because its target filled in part: the rest's new legs
    # (stored with the part) protect the position, or the order manager places them on the part
    filled |= {
        msgs[e.order_id].trade_id
        for _t, _r, e in timeline
        if type(e) is OrderCancelled and e.reason == REPLACED
    } | {m.trade_id for m in msgs.values() if stored_filled.get(m.order_id)}
    exiting = {m.trade_id for m in msgs.values() if m.kind in (OrderKind.MARKET, OrderKind.CLOSE)}
    return [
        msgs[e.order_id]
        for _t, _r, e in timeline
        if type(e) is OrderCancelled
        and msgs[e.order_id].kind in (OrderKind.STOP, OrderKind.LIMIT)
        and msgs[e.order_id].trade_id not in filled | exiting | {None}
    ]


@dataclass
class ExchangeAudit:
    """The exchange's open orders and fills the database does not know: one warning each.
    Each audit reads the fills after the newest one the previous audit saw (exchange time)."""

    known_client_ids: set[str]
    known_exchange_ids: set[str]
    since_ms: dict[str, int]  # symbol -> exchange ms the next audit reads fills from

    @classmethod
    def of(
        cls,
        known: Mapping[str, str | None],
        adopted: list[tuple[str, str]],
        last_fill_ms: Mapping[str, int],
    ) -> ExchangeAudit:
        """From the stored orders (client id -> exchange id), those adopted at reconciliation,
        and the newest stored fill per symbol."""
        eids = {str(e) for e in known.values() if e} | {str(e) for _c, e in adopted}
        return cls(set(known), eids, dict(last_fill_ms))

    def check(self, report: AccountReport) -> list[str]:
        ours = self.known_exchange_ids | report.placed
        warnings: list[str] = []
        symbols = {o.symbol for o in report.open_orders} | {f.symbol for f in report.fills}
        for symbol in sorted(symbols):
            for order in (o for o in report.open_orders if o.symbol == symbol):
                cid = order.client_id
                if cid not in self.known_client_ids and order.exchange_id not in ours:
                    warnings.append(
                        f"exchange order {order.exchange_id} ({cid}) on {symbol} is not in the "
                        "database: left untouched"
                    )
            fills = [f for f in report.fills if f.symbol == symbol]
            if fills:  # the next audit starts after the newest fill seen (exchange time)
                self.since_ms[symbol] = max(f.ts_ms for f in fills) + 1
            for fill in fills:
                if fill.exchange_order_id not in ours:
                    warnings.append(
                        f"exchange fill {fill.trade_id} of order {fill.exchange_order_id} on "
                        f"{symbol} ({fill.side} {fill.quantity} @ {fill.price}) is not in the "
                        "database: left untouched"
                    )
        return warnings
