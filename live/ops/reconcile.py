"""Reconciliation of the stored open orders with the exchange (the ccxt broker, real mode).

On every start, before trading, for each order the database has open (NEW or SUBMITTED):
- known exchange id, or found by its client order id (`origClientOrderId`; so an order that
  reached the exchange just before a crash is adopted, never sent twice):
  filled -> its fill is reported (fills applied once each, in the order they happened; stops
  before targets at one time, as the exchange matched them); still open -> it rests here again;
  cancelled or expired -> reported cancelled;
- not found at the exchange: an entry is marked failed (its bar has passed); an exit order
  (a bracket leg, an exit by signal) never reached the exchange and is sent now, under the same
  client order id: that re-creates a bracket leg missing for an open trade;
- a time exit lives here until due, then goes out as a market order under its own client id:
  found at the exchange -> as above; not found -> kept again;
- a stop or target of an open trade cancelled at the exchange by someone else (no sibling
  filled, no exit on its way) is placed again as a new order (`lost`, live/ops/recovery.py).
Then `audit` (also run every --reconcile-every minutes): the exchange's open orders and its
fills since the last stored fill that the database does not know are reported loudly and left
untouched.
"""

from __future__ import annotations

from typing import Any

from actors.messages import (
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
)

_RANK = {"entry": 0, "stop_loss": 1, "take_profit": 2}


async def reconcile(
    broker: Any,
    submits: list[tuple[str, str | None, SubmitOrder]],
    known: dict[str, str | None],
    last_fill_ms: dict[str, int],
) -> dict:
    import ccxt

    accepted: list = []
    timeline: list[tuple[int, int, Any]] = []
    resend: list[SubmitOrder] = []
    adopted: list[tuple[str, Any]] = []
    for cid, exchange_id, msg in submits:
        broker.cids[msg.order_id] = cid
        try:
            order = await _lookup(broker.client, msg.symbol, exchange_id, cid)
        except ccxt.BaseError as exc:
            raise RuntimeError(
                f"reconciliation failed: order {cid} on {msg.symbol}: {type(exc).__name__}: {exc}"
            ) from None
        if order is None and msg.trade_id is None and msg.role != "entry":
            reason = "its trade closed before a restart"  # an exit never sent, now moot
            timeline.append((msg.ts, 8, OrderCancelled(msg.ts, msg.order_id, reason)))
            continue
        if order is None and msg.kind == "timed":  # not yet due when we went down: kept again
            broker._timed[msg.order_id] = msg
            accepted.append(OrderAccepted(msg.ts, msg.order_id))
            continue
        if order is None:
            if msg.role == "entry":
                reason = "never reached the exchange before a restart"
                timeline.append((msg.ts, 9, OrderRejected(msg.ts, msg.order_id, reason)))
            else:
                resend.append(msg)
            continue
        if exchange_id is None:
            adopted.append((cid, order["id"]))
        accepted.append(OrderAccepted(msg.ts, msg.order_id))
        timeline.extend(await _outcome(broker, msg, order))
    broker.record(adopted)
    events = accepted + [e for _ts, _rank, e in sorted(timeline, key=lambda x: (x[0], x[1]))]
    if resend:
        events.extend(await broker.handle_batch(resend))
    known_eids = {str(e) for e in known.values() if e} | {str(e) for _c, e in adopted}
    warnings = await audit(broker, set(known), known_eids, last_fill_ms)
    return {
        "events": events,
        "warnings": warnings,
        "resent": len(resend),
        "adopted": len(adopted),
        "lost": _lost_legs(submits, timeline),
    }


def _lost_legs(submits: list, timeline: list) -> list[SubmitOrder]:
    """Stops and targets of open trades cancelled at the exchange behind our back (no sibling
    filled, no exit on its way): the node places them again, under new client order ids."""
    msgs = {m.order_id: m for _c, _e, m in submits}
    filled = {msgs[e.order_id].trade_id for _t, _r, e in timeline if type(e) is OrderFilled}
    exiting = {m.trade_id for m in msgs.values() if m.kind in ("market", "close")}
    return [
        msgs[e.order_id]
        for _t, _r, e in timeline
        if type(e) is OrderCancelled
        and msgs[e.order_id].kind in ("stop", "limit")
        and msgs[e.order_id].trade_id not in filled | exiting | {None}
    ]


async def _lookup(client: Any, symbol: str, exchange_id: str | None, cid: str) -> dict | None:
    import ccxt

    try:
        if exchange_id:
            return await client.fetch_order(exchange_id, symbol)
        return await client.fetch_order(None, symbol, {"origClientOrderId": cid})
    except ccxt.OrderNotFound:
        return None


async def _outcome(broker: Any, msg: SubmitOrder, order: dict) -> list[tuple[int, int, Any]]:
    status = order.get("status")
    if status == "open" and msg.role != "entry" and msg.trade_id is None:
        # an exit leg of a trade that is closed already: it must not rest any longer
        await broker.client.cancel_order(order["id"], msg.symbol)
        return [(msg.ts, 8, OrderCancelled(msg.ts, msg.order_id, "oco"))]
    if status == "open":
        broker._resting[msg.order_id] = {"id": str(order["id"]), "msg": msg}
        return []
    if status == "closed":
        event = await broker.fill_event(msg.order_id, order, msg.symbol)
        return [(event.ts, _RANK.get(msg.role, 3), event)]
    ts = int((order.get("info") or {}).get("updateTime") or order.get("timestamp") or 0) * 10**6
    return [(ts, 8, OrderCancelled(ts, msg.order_id, f"{status} at the exchange"))]


async def audit(
    broker: Any, known_cids: set[str], known_eids: set[str], since_ms: dict[str, int]
) -> list[str]:
    """Open orders and fills at the exchange the database does not know: one warning each."""
    warnings: list[str] = []
    for symbol in sorted({s for s, _i in broker.routes.values()}):
        for order in await broker.client.fetch_open_orders(symbol):
            cid = order.get("clientOrderId")
            if cid not in known_cids and str(order["id"]) not in known_eids | broker.sent_ids:
                warnings.append(
                    f"exchange order {order['id']} ({cid}) on {symbol} is not in the "
                    "database: left untouched"
                )
        since = since_ms.get(symbol)
        fills = await broker.client.fetch_my_trades(symbol, since)
        if fills:  # the next audit starts after the newest fill seen (exchange time)
            broker.audit_from[symbol] = max(int(f["timestamp"]) for f in fills) + 1
        for fill in fills:
            if str(fill.get("order")) not in known_eids | broker.sent_ids:
                warnings.append(
                    f"exchange fill {fill.get('id')} of order {fill.get('order')} on "
                    f"{symbol} ({fill.get('side')} {fill.get('amount')} @ "
                    f"{fill.get('price')}) is not in the database: left untouched"
                )
    return warnings
