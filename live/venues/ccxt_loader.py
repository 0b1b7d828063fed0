"""ccxt without the 100 exchanges it does not use: the same classes, imported on first use.

`import ccxt` runs ccxt/__init__.py, which imports every exchange module it ships (~110 REST
classes; `ccxt.async_support` and `ccxt.pro` as many again). On these machines that is 2.2 s of
CPU for `ccxt` and 4.5 s for `ccxt.pro`, paid by every process that talks to an exchange: the CLI,
and each Ray actor of a live node (the bar stream, the broker), at every start. Upstream knows it
(ccxt issues #27919 and #29573).

`install()` puts a finder first on `sys.meta_path` for the three packages `ccxt`,
`ccxt.async_support` and `ccxt.pro`. It runs each package's own `__init__.py` with one kind of
line left out, `from ccxt.<pkg>.<name> import <name>` for a `<name>` in the package's own
`exchanges` list, and gives the package a module `__getattr__` (PEP 562) that imports such an
exchange module when its class is first asked for (`ccxt.pro.binance`, `getattr(ccxt, name)`).
Everything else of ccxt is its own code, unchanged: the exchange classes, their base classes,
the errors, `ccxt.exchanges`. tests/live/venues/test_ccxt_loader.py checks in fresh
interpreters that every name of a full import resolves to the same kind of object, and that a
filter which also dropped another line would be caught.

A process that imported ccxt before `install()` keeps the full import: nothing changes for it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

PACKAGES = ("ccxt", "ccxt.async_support", "ccxt.pro")
# one exchange class per line: `from ccxt.pro.binance import binance`, then a noqa comment
EXCHANGE_LINE = re.compile(
    r"^from (?P<package>ccxt(?:\.async_support|\.pro)?)\.(?P<module>\w+) import (?P<name>\w+)"
    r"\s+# noqa: F401\s*$",
    re.MULTILINE,
)


def exchange_lines(source: str, package: str) -> dict[str, str]:
    """name -> the line importing that exchange class in `package`'s __init__.py source."""
    return {
        m["name"]: m[0]
        for m in EXCHANGE_LINE.finditer(source)
        if m["package"] == package and m["module"] == m["name"]
    }


def slim_source(source: str, package: str) -> tuple[str, frozenset[str]]:
    """The package's __init__ source without its exchange imports, and their names."""
    lines = exchange_lines(source, package)
    skipped = {line for line in lines.values()}
    kept = [line for line in source.splitlines() if line not in skipped]
    return "\n".join(kept) + "\n", frozenset(lines)


class _SlimLoader(importlib.abc.Loader):
    def __init__(self, package: str, origin: str) -> None:
        self.package, self.origin = package, origin

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        source, lazy = slim_source(Path(self.origin).read_text(encoding="utf-8"), self.package)
        package = self.package

        def __getattr__(name: str) -> object:  # noqa: N807 - the PEP 562 hook's name
            if name not in lazy:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            value = getattr(importlib.import_module(f"{package}.{name}"), name)
            setattr(module, name, value)  # next time a plain attribute
            return value

        def __dir__() -> list[str]:  # noqa: N807
            return sorted(set(vars(module)) | lazy)

        module.__getattr__ = __getattr__  # type: ignore[attr-defined]
        module.__dir__ = __dir__  # type: ignore[method-assign]
        exec(compile(source, self.origin, "exec"), vars(module))  # noqa: S102 - ccxt's own file


class _SlimFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 - the protocol's
        if fullname not in PACKAGES:
            return None
        for finder in sys.meta_path:  # the normal finders say where the package is
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.origin and spec.origin.endswith("__init__.py"):
                slim = importlib.util.spec_from_file_location(
                    fullname,
                    spec.origin,
                    loader=_SlimLoader(fullname, spec.origin),
                    submodule_search_locations=spec.submodule_search_locations,
                )
                return slim
        return None


def install() -> None:
    """From now on `import ccxt` (and ccxt.async_support, ccxt.pro) loads exchanges on first
    use. Does nothing when ccxt is imported already or the finder is in place."""
    if "ccxt" in sys.modules or any(isinstance(f, _SlimFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _SlimFinder())
