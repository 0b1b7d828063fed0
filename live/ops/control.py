"""Strategy instances and pairs enabled or disabled while `live` runs, without a restart.

The driver polls the database every ~2 s (`LiveControl.maybe_poll`: one small query,
`store.instances.live_states`) and turns what changed into commands for the portfolio:
- an instance disabled (or its pair disabled: `cli.py data pairs disable SYMBOL`) ->
  `DisableInstance`: the portfolio refuses its new entries with a reason; what it holds is kept
  (its stop, target, time and signal exits work as before) or, with `--on-disable close`,
  closed at market at the next bar;
- an instance enabled again, or its weight changed -> `EnableInstance` (with the new weight);
- an instance enabled that this run did not load: its strategy host is spawned, warmed from the
  stored bars of its series, when that series is streamed already; a new series is reported
  (trading it needs a restart: the stream subscribes to its series at start).
With `--config prod.json` the file is a second source feeding the same path: a new version is
written into the database and applied by the same poll, said in one line
(live/ops/config_watch.py).
Commands, not mode flags: the portfolio (`LivePortfolio`, live/portfolios.py) holds the set of
disabled instances.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from actors.messages import BarClosed, DisableInstance, EnableInstance
from actors.weighted_portfolio import PortfolioMember
from live.hosts import HostGroup, LiveStrategyHost
from live.ops.config_watch import ConfigRefused, ConfigWatch, store_entries
from live.runtime import LiveRuntime
from live.setup import Warmup

if TYPE_CHECKING:
    from store.models import StrategyInstance

POLL_S = 2.0


class OnDisable(StrEnum):
    """What happens to an instance's positions when it is disabled while running."""

    KEEP = "keep"  # managed by their exits as before
    CLOSE = "close"  # closed at market at the next bar


ON_DISABLE = tuple(OnDisable)


class Change(StrEnum):
    """What one poll did to one instance (counted in the config's one line)."""

    ADDED = "added"  # enabled again, or adopted with a new host
    REMOVED = "removed"
    WEIGHT = "weight"
    NOT_STREAMED = "not streamed"  # enabled, but its series needs a restart


_ID = re.compile(r"^#(\d+) ")


class NodeSettings(Protocol):
    """The node's settings the control reads."""

    @property
    def db_url(self) -> str: ...
    @property
    def exchange(self) -> str: ...
    @property
    def window(self) -> int: ...


class ControlledNode(Protocol):
    """What the control needs of the live node (live/node.py): its settings, instances,
    runtime and warm-up, a new host group, and the exchange told of a new instance's series."""

    settings: NodeSettings
    members: list[PortfolioMember]
    runtime: LiveRuntime
    warm: Warmup

    def spawn(
        self, group: str, title: str, members: list[tuple[str, LiveStrategyHost]], cls: type
    ) -> None: ...
    def add_route(self, strategy: str, series: tuple[str, str]) -> None: ...


def member_ids(members: list[PortfolioMember]) -> dict[int, str]:
    """Instance id -> label of members loaded from the database (labels start with `#id `)."""
    out = {}
    for m in members:
        found = _ID.match(m.label)
        if found:
            out[int(found.group(1))] = m.label
    return out


def declare_config(
    db_url: str, exchange: str, config: Path, members: list[PortfolioMember]
) -> dict[int, str]:
    """Store the instances of a prod.json in the database (enabled, with the config's weights),
    so `cli.py strategies disable ID` reaches them while running; returns id -> label."""
    from backtest.portfolio_config import build_members, load_portfolio_config
    from store.instances import declare_instance

    entries = load_portfolio_config(config)
    by_label = {m.label: e for m, e in zip(build_members(entries), entries, strict=True)}
    out = {}
    for m in members:
        e = by_label[m.label]
        row, _change = declare_instance(
            db_url,
            e.family,
            e.exchange or exchange,
            m.symbol,
            m.interval,
            m.strategy.param_dict(),
            True,
            e.weight,
        )
        out[int(row.id)] = m.label
    return out


class LiveControl:
    """Polls the database and sends the node's portfolio what changed (driver side)."""

    def __init__(
        self,
        node: ControlledNode,
        ids: dict[int, str],
        on_disable: str = "keep",
        adopt: Callable[[StrategyInstance], bool] | None = None,
        log: Callable[[str], None] = print,
        poll_s: float = POLL_S,
        config: Path | None = None,
    ) -> None:
        if on_disable not in ON_DISABLE:
            raise ValueError(
                f"--on-disable must be one of {', '.join(ON_DISABLE)}, got {on_disable!r}"
            )
        self.node = node
        self.labels = dict(ids)  # instance id -> label, of the instances this run trades
        self.on_disable = on_disable
        self.adopt = adopt  # None: instances enabled later are not adopted (--config runs)
        self.log = log
        self.poll_s = poll_s
        self.active = {i: True for i in self.labels}
        self.weights = {m.label: m.weight for m in node.members}
        self.ignored: set[int] = set()  # new instances reported once, not adopted
        self.last_ts = 0  # close time of the latest bar delivered: the commands' time
        self.last_bar: dict[tuple[str, str], int] = {}  # series -> open ns of its latest bar
        self._next = 0.0
        node.runtime.observers.append(self._observe)
        # --config: the file is followed; its instances (ids) are those adopted when enabled
        self.watch = ConfigWatch(config, node.settings.exchange) if config else None
        self.config_ids = set(self.labels)
        if self.watch is not None:
            self.adopt = adopt or (lambda _row: True)

    def _observe(self, msg: object) -> None:
        if type(msg) is BarClosed:
            self.last_ts = max(self.last_ts, msg.ts)
            key = (msg.symbol, msg.interval)
            self.last_bar[key] = max(self.last_bar.get(key, 0), msg.bar_ts)

    def maybe_poll(self) -> list[str]:
        now = time.monotonic()
        if now < self._next:
            return []
        self._next = now + self.poll_s
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return self.follow() + self.poll()
        except SQLAlchemyError as exc:  # a database hiccup must not stop trading: retry later
            line = f"cannot read the instances from the database ({type(exc).__name__}); retrying"
            self.log(line)
            return [line]

    def poll(self) -> list[str]:
        """Apply the database's current state; returns what changed, one line each (logged)."""
        said = [line for _change, line in self._changes()]
        for line in said:
            self.log(line)
        return said

    def follow(self) -> list[str]:
        """--config: a new version of the file is stored and applied now, said in one line; a
        bad one is refused with one warning line and the version in force stays."""
        if self.watch is None:
            return []
        name, previous = self.watch.path.name, self.watch.digest
        try:
            entries = self.watch.poll()
        except ConfigRefused as exc:
            line = f"warning: config {name} refused, the previous one stays in force: {exc}"
            self.log(line)
            return [line]
        if entries is None:
            return []
        s = self.node.settings
        try:
            self.config_ids = store_entries(s.db_url, s.exchange, entries, self.config_ids)
        except Exception:
            self.watch.digest = previous  # not stored (a database hiccup): again at the next poll
            raise
        counts = dict.fromkeys(Change, 0)
        for change, _line in self._changes():
            counts[change] += 1
        line = (
            f"config {name}: +{counts[Change.ADDED]} instances, -{counts[Change.REMOVED]}, "
            f"{counts[Change.WEIGHT]} weights changed"
        )
        if counts[Change.NOT_STREAMED]:
            line += (
                f"; {counts[Change.NOT_STREAMED]} on a series this run does not stream "
                "(restart `cli.py live` to trade them)"
            )
        self.log(line)
        return [line]

    def _changes(self) -> list[tuple[Change, str]]:
        """The database's current state sent to the node as commands; what changed."""
        from store.instances import live_states

        states = live_states(self.node.settings.db_url, self.node.settings.exchange)
        said: list[tuple[Change, str]] = []
        for iid, label in list(self.labels.items()):
            on, weight = states.get(iid, (False, 0.0))
            if not on and self.active[iid]:
                said.append(self._disable(iid, label))
            elif on and (not self.active[iid] or weight != self.weights.get(label)):
                said.append(self._enable(iid, label, weight))
        if self.adopt is not None:
            for iid, (on, _weight) in sorted(states.items()):
                if on and iid not in self.labels and iid not in self.ignored:
                    if self.watch is not None and iid not in self.config_ids:
                        continue  # --config: only the file's instances are taken on
                    said.extend(self._adopt(iid))
        return said

    def _disable(self, iid: int, label: str) -> tuple[Change, str]:
        close = self.on_disable == OnDisable.CLOSE
        self.active[iid] = False
        self.node.runtime.deliver([DisableInstance(self.last_ts, label, close)])
        held = "its positions are closed at market" if close else "its positions are kept"
        return Change.REMOVED, f"instance {label} disabled: no new entries; {held}"

    def _enable(self, iid: int, label: str, weight: float) -> tuple[Change, str]:
        was = self.active[iid]
        self.active[iid] = True
        self.weights[label] = weight
        self.node.runtime.deliver([EnableInstance(self.last_ts, label, weight)])
        if was:
            return Change.WEIGHT, f"instance {label} weight {weight:g}"
        return Change.ADDED, f"instance {label} enabled"

    def _adopt(self, iid: int) -> list[tuple[Change, str]]:
        from store.instances import get_instance

        row = get_instance(self.node.settings.db_url, iid)
        if not self.adopt(row):
            self.ignored.add(iid)
            return []
        key = (row.symbol, row.interval)
        if key not in {m.series for m in self.node.members}:
            self.ignored.add(iid)
            return [
                (
                    Change.NOT_STREAMED,
                    f"instance #{iid} enabled, but this run does not stream {row.symbol} "
                    f"{row.interval}: restart `cli.py live` to trade it",
                )
            ]
        member = self._spawn(row, key)
        self.labels[iid] = member.label
        self.active[iid] = True
        self.weights[member.label] = member.weight
        line = f"instance {member.label} enabled: host started, warmed from stored bars"
        return [(Change.ADDED, line)]

    def _spawn(self, row: StrategyInstance, key: tuple[str, str]) -> PortfolioMember:
        from backtest.portfolio_config import instance_label
        from strategies.registry import make_strategy

        node, s = self.node, self.node.settings
        strategy = make_strategy(row.family, row.params)
        label = f"#{row.id} {instance_label(strategy, row.symbol, row.interval)}"
        member = PortfolioMember(label, strategy, row.symbol, row.interval, row.weight)
        host = LiveStrategyHost(
            strategy, self._history(key), row.symbol, row.interval, label, s.window
        )
        node.add_route(label, key)
        title = f"strategies {key[0]} {key[1]} #{row.id}"
        node.spawn(f"hosts {key} +{row.id}", title, [(label, host)], HostGroup)
        node.members.append(member)
        limit = strategy.entry_limit() if strategy.pyramiding else None
        node.runtime.deliver(
            [EnableInstance(self.last_ts, label, member.weight, bool(strategy.hedge), limit)]
        )
        return member

    def _history(self, key: tuple[str, str]) -> pd.DataFrame:
        """Stored bars of the series up to the latest one delivered (the stream saves each)."""
        from live.setup import _stored

        frame = _stored(self.node.settings.db_url, self.node.settings.exchange, key, None)
        last = self.last_bar.get(key)
        if last is None:
            return self.node.warm.frames[key]
        return frame[pd.DatetimeIndex(frame.index).as_unit("ns").asi8 <= last]
