"""`cli.py live --config prod.json` follows the file while it runs (issue 21 section 4).

The file is a second source of the same path as `cli.py strategies enable/disable`: a new version
is written into the database (its instances enabled with their weights, the instances of the
previous version it no longer lists disabled), and the control's poll (live/ops/control.py) turns
the database's state into commands as for any other change: an instance added gets a host warmed
from the stored bars, one removed opens nothing new (its positions kept or closed per
`--on-disable`), a weight changed applies to the next entries.

The file is read on every poll (~2 s) and its content hashed (a prod.json of a thousand instances
is a few hundred kB: well under a millisecond), so no rewrite is missed, however quick and whatever
its size and mtime; a rewrite with the same text is no change. A version that cannot be used (not
JSON, no instances, an unknown family, parameter or interval, a bad weight, several quote
currencies, another exchange) is refused as a whole with one warning and the previous version
stays in force; the same bad version is not reported again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError


@dataclass(frozen=True)
class Declared:
    """An entry of the config as the database stores it."""

    family: str
    symbol: str
    interval: str
    params: dict
    weight: float


class ConfigRefused(Exception):
    """A version of the config that cannot be used; str() says why."""


class ConfigWatch:
    """Notices new versions of one prod.json and reads them (validated)."""

    def __init__(self, path: Path, exchange: str) -> None:
        self.path = Path(path)
        self.exchange = exchange
        self.first: str | None = None  # several exchanges (live/multi.py): the first of them
        self.digest = self._digest()  # the version in force (loaded at start)
        self.refused: str | None = None  # digest of the last version refused (said once)

    def _digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    def poll(self) -> list[Declared] | None:
        """The entries of a new version; None when the file did not change (or a refused
        version is still there). ConfigRefused once per bad version."""
        digest = self._digest()
        if digest is None:
            return self._refuse("missing", "the file is gone or unreadable")
        if digest in (self.digest, self.refused):
            return None  # unchanged, rewritten with the same text, or refused already
        try:
            entries = read_entries(self.path, self.exchange, self.first)
        except ConfigRefused as exc:
            return self._refuse(digest, str(exc))
        self.digest, self.refused = digest, None
        return entries

    def _refuse(self, digest: str, why: str) -> None:
        if digest == self.refused:
            return None
        self.refused = digest
        raise ConfigRefused(why)


def read_entries(path: Path, exchange: str, first: str | None = None) -> list[Declared]:
    """The config's instances with their full parameters, every check of `live --config`'s
    start applied (backtest/portfolio_config.py), plus: every instance on this run's exchange.
    `first`: a node of several exchanges (live/multi.py): only this exchange's instances are
    kept (those naming none belong to the first), the others are the other exchanges'."""
    from backtest.portfolio_config import load_portfolio_config
    from factors.bars import interval_delta
    from strategies.registry import make_strategy

    try:
        entries = load_portfolio_config(path)
        out = []
        for i, e in enumerate(entries):
            if first is not None and (e.exchange or first) != exchange:
                continue  # another exchange's instance, followed by that exchange's session
            if e.exchange is not None and e.exchange != exchange:
                raise ConfigRefused(
                    f"instance #{i + 1} trades on {e.exchange}, this run on {exchange}"
                )
            interval_delta(e.interval)  # an unknown interval: refused, as the database would
            strategy = make_strategy(e.family, e.params)  # unknown family or parameter: refused
            out.append(Declared(e.family, e.symbol, e.interval, strategy.param_dict(), e.weight))
    except (UserError, OSError, ValueError, TypeError) as exc:
        raise ConfigRefused(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return out


def store_entries(
    db_url: str, exchange: str, entries: list[Declared], before: set[int]
) -> set[int]:
    """Write a version into the database: its instances enabled with their weights, those of
    the previous version (`before`) it does not list disabled; returns its instance ids."""
    from store.instances import declare_instance, set_enabled

    ids = set()
    for e in entries:
        row, _change = declare_instance(
            db_url, e.family, exchange, e.symbol, e.interval, e.params, True, e.weight
        )
        ids.add(int(row.id))
    for gone in sorted(before - ids):
        set_enabled(db_url, gone, False)
    return ids
