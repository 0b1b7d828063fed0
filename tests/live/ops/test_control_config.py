"""`live --config prod.json` follows the file (live/ops/config_watch.py via live/ops/control.py), in
process (no Ray, no exchange: the warm-up bars are given). A new version is one log line and the
portfolio's commands; a bad version is one `warning:` line and the old config stays in force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.messages import DisableInstance, EnableInstance
from live.node import LiveSettings
from live.ops.config_watch import ConfigRefused, ConfigWatch
from live.session import LiveSession, Selection
from live.setup import Warmup
from store.instances import list_instances
from tests.live.helpers import sample

A = {"family": "sr_breakout", "symbol": "ETH/BTC", "interval": "5m", "weight": 1.0}
B = {**A, "params": {"lookback": 30}, "weight": 0.5}
C = {**A, "family": "reversal_breakout", "weight": 0.25}


def write(path: Path, *instances: dict, exchange: str = "binance") -> None:
    path.write_text(json.dumps({"exchange": exchange, "instances": list(instances)}))


@pytest.fixture
def session(tmp_path, sqlite_url):
    config = tmp_path / "prod.json"
    write(config, A, C)
    said: list[str] = []
    warm = Warmup(frames={("ETH/BTC", "5m"): sample(n=60)})
    s = LiveSession(
        LiveSettings("binance", None, sqlite_url),
        Selection(config=config),
        warm=warm,
        on_disable="keep",
        say=said.append,
    )
    s.start()
    s.said = said
    s.config = config
    s.commands = []
    s.node.runtime.observers.append(
        lambda m: s.commands.append(m) if type(m) in (EnableInstance, DisableInstance) else 0
    )
    yield s
    s.stop()


def test_a_new_version_is_applied_and_said_in_one_line(session, sqlite_url) -> None:
    control = session.control
    assert control.follow() == []  # unchanged: nothing said, nothing sent
    write(session.config, {**A, "weight": 2.0}, B)  # A reweighted, B added, C removed
    (line,) = control.follow()
    assert line == "config prod.json: +1 instances, -1, 1 weights changed"
    assert session.said[-1] == line
    sent = {(type(m).__name__, m.strategy, getattr(m, "weight", None)) for m in session.commands}
    ids = stored_ids(sqlite_url)
    a, b, c = (control.labels[ids[k]] for k in "ABC")
    assert ("EnableInstance", a, 2.0) in sent and ("EnableInstance", b, 0.5) in sent
    assert ("DisableInstance", c, None) in sent
    assert b.startswith(f"#{ids['B']} sr_breakout[ETH/BTC 5m lookback=30")  # a new host
    enabled = {r.id: r.enabled for r in list_instances(sqlite_url)}
    assert enabled == {ids["A"]: True, ids["B"]: True, ids["C"]: False}
    assert control.poll() == []  # the database already says what the file says
    write(session.config, {**A, "weight": 2.0}, B, C)  # C back: enabled again, no new host
    assert control.follow() == ["config prod.json: +1 instances, -0, 0 weights changed"]
    assert control.active[ids["C"]]


def stored_ids(url: str) -> dict[str, int]:
    """A, B, C -> their instance ids in the database."""
    out = {}
    for r in list_instances(url):
        if r.family == "reversal_breakout":
            out["C"] = r.id
        else:
            out["B" if r.params.get("lookback") == 30 else "A"] = r.id
    return out


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"instances": [', "is not valid JSON"),
        (json.dumps({"instances": [{**A, "family": "no_such"}]}), "no_such"),
        (json.dumps({"instances": [{**A, "weight": -1}]}), "weight must be a positive number"),
        (json.dumps({"instances": [{**A, "params": {"lookback": "x"}}]}), "lookback"),
        (json.dumps({"exchange": "kraken", "instances": [A]}), "trades on kraken"),
        (json.dumps({"instances": []}), "lists no instances"),
        (json.dumps({"instances": [{**A, "interval": "7m"}]}), "7m"),
    ],
)
def test_a_bad_version_is_refused_with_one_warning_and_the_old_stays(
    session, text, why, sqlite_url
) -> None:
    control = session.control
    before = {r.id: (r.enabled, r.weight) for r in list_instances(sqlite_url)}
    session.config.write_text(text)
    (line,) = control.follow()
    assert line.startswith("warning: config prod.json refused, the previous one stays in force:")
    assert why in line and "\n" not in line
    assert control.follow() == [] and control.poll() == []  # said once; nothing changed
    assert session.commands == []
    assert {r.id: (r.enabled, r.weight) for r in list_instances(sqlite_url)} == before
    write(session.config, A)  # a good version after the bad one is applied
    assert control.follow() == ["config prod.json: +0 instances, -1, 0 weights changed"]


def test_a_file_gone_is_refused_once(tmp_path) -> None:
    config = tmp_path / "prod.json"
    write(config, A)
    watch = ConfigWatch(config, "binance")
    assert watch.poll() is None
    config.unlink()
    with pytest.raises(ConfigRefused, match="gone or unreadable"):
        watch.poll()
    assert watch.poll() is None
    write(config, A)  # the same text as the version in force: no change
    assert watch.poll() is None
    write(config, B)
    (entry,) = watch.poll()
    assert entry.params["lookback"] == 30 and entry.weight == 0.5


def test_a_version_the_database_could_not_store_is_applied_at_the_next_poll(
    session, monkeypatch
) -> None:
    from sqlalchemy.exc import OperationalError

    import live.ops.control as control_module

    control = session.control
    control.poll_s = 0.0
    real = control_module.store_entries

    def locked(*_args):
        raise OperationalError("UPDATE", {}, Exception("database is locked"))

    monkeypatch.setattr(control_module, "store_entries", locked)
    write(session.config, A)
    (line,) = control.maybe_poll()
    assert line.startswith("cannot read the instances from the database (OperationalError)")
    monkeypatch.setattr(control_module, "store_entries", real)
    assert control.maybe_poll() == ["config prod.json: +0 instances, -1, 0 weights changed"]


def test_the_filters_of_the_start_apply_to_a_new_version(tmp_path, sqlite_url) -> None:
    config = tmp_path / "prod.json"
    write(config, A, C)
    warm = Warmup(frames={("ETH/BTC", "5m"): sample(n=60)})
    only_sr = Selection(config=config, family="sr_breakout")
    with LiveSession(
        LiveSettings("binance", None, sqlite_url), only_sr, warm=warm, on_disable="keep"
    ) as s:
        assert [m.strategy.name for m in s.members] == ["sr_breakout"]
        write(config, A, B, {**C, "params": {"lookback": 40}})  # B is sr_breakout, C is not
        assert s.control.follow() == ["config prod.json: +1 instances, -0, 0 weights changed"]
        assert sorted(label.split("[")[0] for label in s.control.labels.values()) == [
            f"#{stored_ids(sqlite_url)['B']} sr_breakout",
            "sr_breakout",
        ]
