"""Several plain actors hosted in one Ray actor (or in process without Ray).

`ActorGroup` delivers a batch of messages to the members subscribed, in order, returning
everything they emit (the live runtime routes it on): one Ray call per group per delivery round,
however many actors the group holds. It is apart from the strategy hosts (live/hosts.py, whose
`HostGroup` adds what hosts share) because it needs no pandas: the exchange, orders and portfolio
groups would otherwise import it in each of their Ray processes, about a second of CPU each.
"""

from __future__ import annotations

from typing import Any

from actors.messages import SignalDue, SignalRejected, TradeClosed, TradeOpened

# Messages some members (strategy hosts) ignore unless msg.strategy is their name: the group
# hands them to that member only (100 hosts x 100 trade events a bar would otherwise be 10,000
# calls). Which members those are is the group's choice (`by_name`).
BY_STRATEGY = (TradeOpened, TradeClosed, SignalRejected, SignalDue)


class ActorGroup:
    """Plain actors hosted together; `handle_batch` delivers each message to the subscribed ones."""

    def __init__(self, members: list[tuple[str, Any]]) -> None:
        self.members = dict(members)
        self._routes: dict[type, list[Any]] = {}
        self._named: dict[tuple[type, str], list[Any]] = {}
        for actor in self.members.values():
            for kind in actor.subscriptions():
                if kind in BY_STRATEGY and self.by_name(actor):
                    self._named.setdefault((kind, actor.name), []).append(actor)
                    self._routes.setdefault(kind, [])
                else:
                    self._routes.setdefault(kind, []).append(actor)

    def by_name(self, actor: Any) -> bool:
        """Whether `actor` gets BY_STRATEGY messages only when they name it (`actor.name`)."""
        return False

    def subscriptions(self) -> tuple[type, ...]:
        return tuple(self._routes)

    def handle_batch(self, messages: list) -> list:
        out: list = []
        for msg in messages:
            kind = type(msg)
            for actor in self._routes.get(kind, ()):
                out.extend(actor.handle(msg))
            if kind in BY_STRATEGY:
                for actor in self._named.get((kind, msg.strategy), ()):
                    out.extend(actor.handle(msg))
        return out

    def query(self, member: str, method: str, *args: Any) -> Any:
        return getattr(self.members[member], method)(*args)

    def query_all(self, method: str, *args: Any) -> dict[str, Any]:
        return {
            name: getattr(a, method)(*args)
            for name, a in self.members.items()
            if hasattr(a, method)
        }
