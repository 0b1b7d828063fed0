"""Strategy instances: one family + parameter set on one market and interval, with a weight."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from core.errors import UserError
from factors.bars import interval_delta
from store.db import session_scope
from store.models import Pair, StrategyInstance, canonical_json


class InstanceError(UserError):
    """An instance id or value that does not exist or is not allowed."""


def add_instance(
    url: str,
    family: str,
    exchange: str,
    symbol: str,
    interval: str,
    params: dict[str, Any],
    enabled: bool = True,
    weight: float = 1.0,
) -> StrategyInstance:
    """Register an instance (and its pair); an identical one already stored is returned as is."""
    interval_delta(interval)
    _check_weight(weight)
    with session_scope(url) as session:
        found = _find(session, family, exchange, symbol, interval, params)
        if found is not None:
            return found
        return _create(session, family, exchange, symbol, interval, params, enabled, weight)


def declare_instance(
    url: str,
    family: str,
    exchange: str,
    symbol: str,
    interval: str,
    params: dict[str, Any],
    enabled: bool = True,
    weight: float | None = None,
) -> tuple[StrategyInstance, str]:
    """Make the stored instance match a declaration (a line of a strategies YAML file).

    Unlike add_instance, an instance already stored gets `enabled` (and `weight` unless None)
    set: `cli.py weights` disables instances, and loading the file again re-enables them.
    Returns (instance, change) with change one of "new", "re-enabled", "changed", "unchanged".
    """
    interval_delta(interval)
    if weight is not None:
        _check_weight(weight)
    with session_scope(url) as session:
        found = _find(session, family, exchange, symbol, interval, params)
        if found is None:
            created = _create(
                session,
                family,
                exchange,
                symbol,
                interval,
                params,
                enabled,
                1.0 if weight is None else weight,
            )
            return created, "new"
        was = (found.enabled, found.weight)
        found.enabled = bool(enabled)
        if weight is not None:
            found.weight = float(weight)
        if (found.enabled, found.weight) == was:
            return found, "unchanged"
        session.add(found)
        return found, "re-enabled" if found.enabled and not was[0] else "changed"


def _find(session: Any, family, exchange, symbol, interval, params) -> StrategyInstance | None:
    return session.exec(
        select(StrategyInstance).where(
            StrategyInstance.family == family,
            StrategyInstance.exchange == exchange,
            StrategyInstance.symbol == symbol,
            StrategyInstance.interval == interval,
            StrategyInstance.params_json == canonical_json(params or {}),
        )
    ).first()


def _create(
    session: Any, family, exchange, symbol, interval, params, enabled, weight
) -> StrategyInstance:
    _ensure_pair(session, exchange, symbol)
    instance = StrategyInstance(
        family=family,
        exchange=exchange,
        symbol=symbol,
        interval=interval,
        params_json=canonical_json(params or {}),
        enabled=bool(enabled),
        weight=float(weight),
    )
    session.add(instance)
    session.flush()
    session.refresh(instance)
    return instance


def set_enabled(url: str, instance_id: int, enabled: bool) -> StrategyInstance:
    with session_scope(url) as session:
        instance = _get(session, instance_id)
        instance.enabled = bool(enabled)
        session.add(instance)
        return instance


def set_weight(url: str, instance_id: int, weight: float) -> StrategyInstance:
    _check_weight(weight)
    with session_scope(url) as session:
        instance = _get(session, instance_id)
        instance.weight = float(weight)
        session.add(instance)
        return instance


def list_instances(
    url: str,
    enabled_only: bool = False,
    family: str | None = None,
    symbol: str | None = None,
    interval: str | None = None,
    exchange: str | None = None,
) -> list[StrategyInstance]:
    query = select(StrategyInstance)
    if exchange:
        query = query.where(StrategyInstance.exchange == exchange)
    if enabled_only:
        query = query.where(StrategyInstance.enabled == True)  # noqa: E712 (SQL expression)
    if family:
        query = query.where(StrategyInstance.family == family)
    if symbol:
        query = query.where(StrategyInstance.symbol == symbol)
    if interval:
        query = query.where(StrategyInstance.interval == interval)
    with session_scope(url) as session:
        return list(session.exec(query.order_by(StrategyInstance.id)).all())


def live_states(url: str, exchange: str) -> dict[int, tuple[bool, float]]:
    """id -> (tradable, weight) of the exchange's instances: enabled and its pair active.

    One small query (the live driver polls it every ~2 s while trading)."""
    query = (
        select(StrategyInstance.id, StrategyInstance.enabled, StrategyInstance.weight, Pair.active)
        .join(
            Pair,
            (Pair.exchange == StrategyInstance.exchange) & (Pair.symbol == StrategyInstance.symbol),
            isouter=True,
        )
        .where(StrategyInstance.exchange == exchange)
    )
    with session_scope(url) as session:
        rows = session.exec(query).all()
    return {int(i): (bool(on) and active is not False, float(w)) for i, on, w, active in rows}


def get_instance(url: str, instance_id: int) -> StrategyInstance:
    with session_scope(url) as session:
        return _get(session, instance_id)


def set_pair_active(url: str, exchange: str, symbol: str, active: bool) -> Pair:
    """Enable or disable trading a pair: its instances stay as they are but `live` skips them."""
    with session_scope(url) as session:
        found = session.exec(
            select(Pair).where(Pair.exchange == exchange, Pair.symbol == symbol)
        ).first()
        if found is None:
            known = ", ".join(p.symbol for p in session.exec(select(Pair)).all()) or "none"
            raise InstanceError(
                f"no pair {symbol} on {exchange} in the database (known: {known}); pairs are "
                "registered with their first instance (`cli.py strategies add`)"
            )
        found.active = bool(active)
        session.add(found)
        return found


def list_pairs(url: str) -> list[Pair]:
    with session_scope(url) as session:
        return list(session.exec(select(Pair).order_by(Pair.exchange, Pair.symbol)).all())


def ensure_pair(url: str, exchange: str, symbol: str) -> None:
    with session_scope(url) as session:
        _ensure_pair(session, exchange, symbol)


def _ensure_pair(session: Any, exchange: str, symbol: str) -> None:
    found = session.exec(
        select(Pair).where(Pair.exchange == exchange, Pair.symbol == symbol)
    ).first()
    if found is None:
        base, _, quote = symbol.partition("/")
        session.add(Pair(exchange=exchange, symbol=symbol, base=base, quote=quote))
        session.flush()


def _get(session: Any, instance_id: int) -> StrategyInstance:
    instance = session.get(StrategyInstance, int(instance_id))
    if instance is None:
        raise InstanceError(
            f"no strategy instance with id {instance_id}; see `cli.py strategies list-instances`"
        )
    return instance


def _check_weight(weight: float) -> None:
    if not weight >= 0:
        raise InstanceError(f"weight must be >= 0, got {weight}")
