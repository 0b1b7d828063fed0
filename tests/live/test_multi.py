"""Several exchanges in one node (live/multi.py): two local exchanges, one impersonating
binance and one binanceus (ccxt's binanceus speaks the same /api/v3), each with its own API key
and BTC balance, stepped bar by bar (speed 0), the instances of each in the database. One
real-mode node trades both through the real ccxt clients, in process:
- each exchange receives exactly the orders of its own instances (client order ids, checked in
  each exchange's own order list) and the database rows say which exchange;
- each exchange's BTC portfolio is sized on that exchange's balance (10 and 2 BTC): the first
  entry of each by hand, RISK x balance / stop distance;
- the trades equal those of a single-exchange run of each exchange alone.
Two instances on the two exchanges have the same family, parameters and pair: their client
order ids still differ (the instance id is part of the label). A router that sends every
instance to the first exchange fails."""

from __future__ import annotations

import json
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from actors.messages import BarClosed, OpenTrade, SignalRaised
from actors.portfolio import stop_distance
from core.errors import UserError
from core.vocabulary import SignalAction
from live.multi import MultiSession
from live.node import LiveSettings
from live.session import FromExchange, LiveSession, Selection
from live.venues.ccxt_clients import rest_client
from live.venues.outcomes import CallSettings
from localexchange.replay import ReplayMarket
from localexchange.server_thread import DEFAULT_FUNDING, ExchangeThread
from store.db import get_engine
from store.instances import declare_instance
from tests.live.helpers import SECRET, sample

N = 70  # bars: each instance set opens and closes trades
STEP_MS = 300_000
RISK = 0.001
SYMBOL = "NXT/BTC"
FAST = CallSettings(rate_limit=False)  # the local exchange has no weight limit here
KEYS = {"binance": "key-binance", "binanceus": "key-binanceus"}
FUNDING = {"binance": 10.0, "binanceus": 2.0}
INSTANCES = {  # (family, params) per exchange; reversal_breakout on both: same label but the id
    "binance": [("sr_breakout", {}), ("reversal_breakout", {})],
    "binanceus": [("sr_breakout", {"lookback": 10}), ("reversal_breakout", {})],
}


def exchanges() -> dict[str, ExchangeThread]:
    """Two local exchanges on free loopback ports, each knowing only its own key."""
    out = {}
    for name in ("binance", "binanceus"):
        market = ReplayMarket()
        market.add(SYMBOL, "5m", sample("NXT_BTC-5m.csv.gz", N))
        market.start_at(None)
        funding = {"BTC": FUNDING[name], "NXT": 0.0}
        out[name] = ExchangeThread(market, funding, keys={KEYS[name]: SECRET})
    return out


def database(path: Path) -> str:
    url = f"sqlite:///{path}"
    for exchange, specs in INSTANCES.items():
        for family, params in specs:
            declare_instance(url, family, exchange, SYMBOL, "5m", params)
    return url


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, key in KEYS.items():  # each exchange's own keys, RAYTRADER_<EXCHANGE>_API_KEY
        monkeypatch.setenv(f"RAYTRADER_{name.upper()}_API_KEY", key)
        monkeypatch.setenv(f"RAYTRADER_{name.upper()}_API_SECRET", SECRET)


Entries = list[tuple[SignalRaised, OpenTrade]]


class Run:
    """One node (MultiSession) over the given exchanges, or a single-exchange LiveSession."""

    def __init__(self, threads: dict[str, ExchangeThread], db: str, names: list[str]) -> None:
        self.threads, self.names = threads, names
        settings = [
            LiveSettings(n, threads[n].url, db, risk=RISK, quiet_s=1.0, real=True, calls=FAST)
            for n in names
        ]
        given = {n: FromExchange(keys=(KEYS[n], SECRET)) for n in names}
        if len(names) == 1:
            one = LiveSession(settings[0], Selection(), from_exchange=given[names[0]])
            self.sessions = {names[0]: one}
            self.top: LiveSession | MultiSession = one
        else:
            self.top = MultiSession(settings, Selection(), from_exchange=given)
            self.sessions = self.top.sessions
        self.entries: dict[str, Entries] = {n: [] for n in names}

    def go(self) -> None:
        db = self.sessions[self.names[0]].settings.db_url
        self.top.start()
        clients = {n: rest_client(n, self.threads[n].url, None) for n in self.names}
        last = {n: s.warm.last_ms.get((SYMBOL, "5m"), -1) for n, s in self.sessions.items()}
        for name, session in self.sessions.items():
            session.node.runtime.observers.append(self._observer(name))
        done: set[str] = set()
        while len(done) < len(self.names):
            for name in self.names:
                url = self.threads[name].url
                request = urllib.request.Request(f"{url}/_local/step?n=1", method="POST")
                with urllib.request.urlopen(request) as reply:
                    state = json.load(reply)
                rows = clients[name].fetch_ohlcv(SYMBOL, "5m", last[name] + 1, 1000)
                closed = [r for r in rows if r[0] + STEP_MS <= state["now"]]
                if closed:
                    last[name] = int(closed[-1][0])
                self.sessions[name].deliver([_bar(r) for r in closed])
                if state["closed"] == 0:
                    done.add(name)
        self.status = {n: s.node.status() for n, s in self.sessions.items()}
        self.trades = {n: s.trades() for n, s in self.sessions.items()}
        with get_engine(db).connect() as conn:  # the rows name their exchange
            rows = conn.execute(text("SELECT id, exchange FROM orders")).all()
        self.orders = {n: {i for i, e in rows if e == n} for n in self.names}

    def _observer(self, name: str):  # noqa: ANN202 - a runtime observer
        signals: dict[tuple[str, int], SignalRaised] = {}

        def observe(msg: object) -> None:
            if type(msg) is SignalRaised and msg.action == SignalAction.ENTER:
                signals[(msg.strategy, msg.signal_id)] = msg
            elif type(msg) is OpenTrade:
                self.entries[name].append((signals[(msg.strategy, msg.signal_id)], msg))

        return observe


def _bar(row: list) -> BarClosed:
    t, o, h, low, c, v = (float(x) for x in row[:6])
    ns = int(t) * 1_000_000
    return BarClosed(ns + STEP_MS * 1_000_000, SYMBOL, "5m", ns, o, h, low, c, v)


def run(tmp: Path, names: list[str], tag: str) -> Run:
    """A fresh pair of exchanges and a fresh database; the run stepped to the data's end."""
    with ExitStack() as stack:
        threads = {n: stack.enter_context(t) for n, t in exchanges().items()}
        result = Run(threads, database(tmp / f"{tag}.db"), names)
        result.db = result.sessions[names[0]].settings.db_url
        try:
            result.go()
            result.at_exchange = {  # client order ids each exchange holds, through its own key
                n: {
                    o["clientOrderId"]
                    for o in rest_client(n, threads[n].url, (KEYS[n], SECRET)).fetch_orders(SYMBOL)
                }
                for n in threads
            }
        finally:
            result.top.stop()
    return result


def shape(trades: list[dict]) -> list[tuple]:
    keys = ("strategy", "side", "entry_ts", "entry_price", "exit_ts", "exit_price", "quantity")
    return sorted(tuple(t[k] for k in keys) for t in trades)


def check(multi: Run, alone: dict[str, Run]) -> None:
    for name in ("binance", "binanceus"):
        ids = multi.orders[name]
        assert ids and multi.at_exchange[name] == ids, name  # its own orders, all of them
        labels = {t["strategy"] for t in multi.trades[name]}
        assert labels and all(
            label.startswith(("#1 ", "#2 ")) == (name == "binance") for label in labels
        ), labels
        # sized on this exchange's balance: RISK x 10 BTC or x 2 BTC over the stop distance
        signal, order = multi.entries[name][0]
        by_hand = RISK * FUNDING[name] / stop_distance(signal)
        assert by_hand - 1e-8 <= order.quantity <= by_hand, (name, order.quantity, by_hand)
        assert list(multi.status[name]["quotes"]) == ["BTC"]
        assert shape(multi.trades[name]) == shape(alone[name].trades[name]), name
    assert not multi.at_exchange["binance"] & multi.at_exchange["binanceus"]


def check_status(multi: Run) -> None:
    """`live status` of the node's database: rows name their exchange, the day's pnl is
    totalled per (quote, exchange), by hand from each exchange's trades."""
    import datetime as dt
    import math
    import re

    from live.ops.status import read_status, status_lines

    day = read_status(multi.db).latest_exit.date()
    lines = status_lines(read_status(multi.db, None, day))
    total = next(line for line in lines if line.startswith(f"pnl on {day}"))
    found = dict((e, float(v)) for v, e in re.findall(r"([-+][0-9.e-]+) BTC on (\w+)", total))
    for name in ("binance", "binanceus"):
        pnl = [
            t["pnl"]
            for t in multi.trades[name]
            if dt.datetime.fromtimestamp(t["exit_ts"] / 1e9, dt.UTC).date() == day
        ]
        assert found[name] == pytest.approx(math.fsum(pnl), rel=1e-7), (name, total)
    assert any(line.startswith("  binanceus #3 ") for line in lines), lines


def test_two_exchanges_in_one_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alone = {n: run(tmp_path, [n], f"alone-{n}") for n in ("binance", "binanceus")}
    multi = run(tmp_path, ["binance", "binanceus"], "multi")
    check(multi, alone)
    check_status(multi)
    for name in alone:  # each single run sent nothing to the other exchange
        other = "binanceus" if name == "binance" else "binance"
        assert alone[name].at_exchange[other] == set()
    # a router sending every instance to the first exchange: the check fails
    import live.setup

    monkeypatch.setattr(live.setup, "exchange_of", lambda declared, first: first)
    with pytest.raises((AssertionError, UserError)):
        check(run(tmp_path, ["binance", "binanceus"], "broken"), alone)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--exchange", "binance", "--url", "http://127.0.0.1:1", "--exchange", "binanceus"],
            "1 --url for 2 --exchange",
        ),
        (["--exchange", "binance", "--exchange", "binance"], "--exchange binance is given twice"),
        (
            ["--exchange", "binance", "--exchange", "nosuchexchange"],
            "unknown exchange 'nosuchexchange'",
        ),
    ],
)
def test_bad_exchange_flags_are_one_error(tmp_path: Path, args: list[str], message: str) -> None:
    from cli import app

    db = tmp_path / "none.db"
    result = CliRunner().invoke(app, ["live", "--db", f"sqlite:///{db}", *args])
    # a UserError: cli.py's main prints it as one `error:` line and exits 2
    assert isinstance(result.exception, UserError), result.exception
    assert message in str(result.exception) and "\n" not in str(result.exception)
    assert not db.exists()  # nothing written, nothing started


@pytest.mark.ray
def test_one_ray_node_streams_each_exchange_apart(tmp_path: Path, ray_shared) -> None:
    """On Ray: one `bars <exchange>` stream per exchange, pumped together (dry run); each
    exchange's bars reach its own node only, the status line has a part per exchange, the
    start-up lines say their exchange."""
    from commands.live import _line

    said: list[str] = []
    with ExitStack() as stack:
        threads = {n: stack.enter_context(t) for n, t in exchanges().items()}
        db = database(tmp_path / "ray.db")
        settings = [LiveSettings(n, threads[n].url, db, risk=RISK, quiet_s=0.5) for n in threads]
        funding = {n: FromExchange(funding=DEFAULT_FUNDING) for n in threads}
        multi = MultiSession(
            settings, Selection(), ray_module=ray_shared, say=said.append, from_exchange=funding
        )
        with multi:
            nodes = multi.nodes
            start = {n: node.bars for n, node in nodes.items()}
            threads["binance"].step(6)
            threads["binanceus"].step(3)
            # each stepped bar closed (the stream confirms the last one through REST when quiet)
            multi.wait_for_bars(
                {"binance": start["binance"] + 6, "binanceus": start["binanceus"] + 3}
            )
            got = {n: node.bars - start[n] for n, node in nodes.items()}
            names = {
                n: ray_shared.get(node.stream.state.remote())["received"]
                for n, node in nodes.items()
            }
            line = _line(list(multi.sessions.values())).plain
            titles = [
                f"{title}{'' if title.startswith('bars') else f' on {n}'} [{node.run_id}]"
                for n, node in nodes.items()
                for title in ("portfolio", "orders", "exchange dry-run", f"bars {n}")
            ]
            for title in titles:  # the dashboard tells the exchanges' actors apart
                ray_shared.get_actor(title)  # ValueError when no actor has that name
    assert got == {"binance": 6, "binanceus": 3}, got
    assert all(names.values()), names
    assert line.startswith("binance connected | ") and " || binanceus connected | " in line, line
    cash = sorted(s for s in said if "starting cash" in s)
    assert cash == [
        "binance: dry run starting cash: 10 BTC (the local exchange's default funding)",
        "binanceus: dry run starting cash: 10 BTC (the local exchange's default funding)",
    ], said


def test_a_prod_json_routes_its_entries_to_their_exchanges(tmp_path: Path) -> None:
    """A prod.json whose instances name two exchanges: both are traded without --exchange; an
    entry naming none goes to the first; the same instance on both gets two labels (two
    client order ids)."""
    from live.multi import exchanges_given
    from live.setup import select_members

    config = tmp_path / "prod.json"
    entry = {"family": "sr_breakout", "symbol": SYMBOL, "interval": "5m"}
    config.write_text(
        json.dumps(
            {
                "instances": [
                    {**entry, "exchange": "binance"},
                    {**entry, "exchange": "binanceus"},
                    {**entry, "family": "reversal_breakout"},  # no exchange: the first's
                ]
            }
        )
    )
    assert exchanges_given([], [], config) == (["binance", "binanceus"], [])
    assert exchanges_given(["binance"], ["u1", "u2"], config) == (["binance"], ["u2"])  # as before
    with pytest.raises(UserError, match="1 --url for 2 --exchange"):
        exchanges_given([], ["http://127.0.0.1:1"], config)
    labels = {
        name: [
            m.label
            for m in select_members("sqlite://", name, config, None, None, None, None, "binance")
        ]
        for name in ("binance", "binanceus")
    }
    assert labels == {
        "binance": ["sr_breakout[NXT/BTC 5m]", "reversal_breakout[NXT/BTC 5m]"],
        "binanceus": ["sr_breakout[NXT/BTC 5m]#2"],
    }
    # one exchange (no `first`): every entry of the file, as before
    assert len(select_members("sqlite://", "binance", config, None, None, None, None)) == 3
    # followed while running: each exchange's watch keeps its own entries, refuses none
    from live.ops.config_watch import ConfigRefused, read_entries

    assert [e.family for e in read_entries(config, "binanceus", "binance")] == ["sr_breakout"]
    assert len(read_entries(config, "binance", "binance")) == 2
    with pytest.raises(ConfigRefused, match="trades on binanceus"):
        read_entries(config, "binance")  # one exchange: another exchange's entry is refused
