"""live/venues/ccxt_loader.py: ccxt's packages with exchanges loaded on first use hold the same
names as a full import, each the same kind of object, in fresh interpreters (a process that
imported ccxt before cannot show it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from live.venues.ccxt_loader import exchange_lines, slim_source

ROOT = Path(__file__).resolve().parents[3]
# prints {package: {name: what it is}} and the exchange modules loaded to get there
DESCRIBE = """
import json, sys, types
{setup}
import ccxt, ccxt.async_support, ccxt.pro

def what(value):
    if isinstance(value, types.ModuleType):
        return "module " + value.__name__
    if isinstance(value, type) or callable(value):
        return f"{{getattr(value, '__module__', '?')}}.{{getattr(value, '__qualname__', '?')}}"
    return repr(value)

names = set(ccxt.exchanges) | set(ccxt.pro.exchanges)
loaded = sorted(m for m in sys.modules if m.startswith("ccxt.") and m.split(".")[-1] in names)
# asked for (which also loads what exchanges share, e.g. ccxt.abstract), websocket classes first (ccxt/pro/binanceus.py imports its REST module itself):
# each the class of its own module, and one that works
for package in (ccxt.pro, ccxt.async_support, ccxt):
    for name in ("binance", "binanceus", "kraken"):
        cls = getattr(package, name)
        assert cls.__module__ == f"{{package.__name__}}.{{name}}", cls.__module__
        assert cls.__name__ == name and cls().id == name
out = {{}}
for package in (ccxt, ccxt.async_support, ccxt.pro):
    lazy = set(package.exchanges)
    out[package.__name__] = {{
        name: "exchange" if name in lazy else what(getattr(package, name))
        for name in dir(package)
        if not name.startswith("__")
    }}
print(json.dumps({{"packages": out, "loaded": loaded}}))
"""
SLIM = "from live.venues.ccxt_loader import install; install()"
# the filter also dropping a line that is no exchange: the comparison must see it
BROKEN = """
import live.venues.ccxt_loader as loader
keep = loader.slim_source
def broken(source, package):
    text, names = keep(source, package)
    return text.replace("from ccxt.base.precise import Precise", ""), names
loader.slim_source = broken
loader.install()
"""


def describe(setup: str) -> dict:
    code = DESCRIBE.format(setup=setup)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def differences(full: dict, slim: dict) -> list[str]:
    found = []
    for package, names in full["packages"].items():
        other = slim["packages"][package]
        for name in sorted(set(names) | set(other)):
            if names.get(name) != other.get(name):
                found.append(f"{package}.{name}: {names.get(name)} != {other.get(name)}")
    return found


@pytest.fixture(scope="module")
def full() -> dict:
    return describe("")


def test_the_slim_packages_hold_what_a_full_import_holds(full) -> None:
    slim = describe(SLIM)
    assert differences(full, slim) == []
    assert len(full["packages"]["ccxt"]) > 150  # errors, base classes and ~100 exchanges
    assert slim["loaded"] == [] and len(full["loaded"]) > 250  # the point of it


def test_a_filter_that_drops_more_than_exchanges_is_caught(full) -> None:
    assert differences(full, describe(BROKEN)) == [
        "ccxt.Precise: ccxt.base.precise.Precise != None"
    ]


def test_only_exchange_import_lines_are_left_out() -> None:
    source = "\n".join(
        [
            "__version__ = '1'",
            "from ccxt.base.precise import Precise                       # noqa: F401",
            "from ccxt.base import errors",
            "from ccxt.binance import binance                                      # noqa: F401",
            "from ccxt.pro.binance import binance  # noqa: F401",  # another package's line
            "from ccxt.kraken import krakenfutures  # noqa: F401",  # module and class differ
        ]
    )
    assert exchange_lines(source, "ccxt") == {
        "binance": "from ccxt.binance import binance                                      # noqa: F401"
    }
    text, lazy = slim_source(source, "ccxt")
    assert lazy == {"binance"}
    assert "from ccxt.binance import" not in text
    assert text.splitlines()[3] == ""  # blanked: a traceback's line numbers stay the file's
    assert text.count("\n") == 6 and "from ccxt.base import errors" in text
