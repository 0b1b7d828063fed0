"""ccxt without the 100 exchanges it does not use: the same classes, imported on first use.

`import ccxt` runs ccxt/__init__.py, which imports every exchange module it ships (~110 REST
classes; `ccxt.async_support` and `ccxt.pro` as many again). On these machines that is 2.2 s of
CPU for `ccxt` and 4.5 s for `ccxt.pro`, paid by every process that talks to an exchange: the CLI,
and each Ray actor of a live node (the bar stream, the broker), at every start. Upstream knows it
(ccxt issues #27919 and #29573).

`install()` puts a finder first on `sys.meta_path` for the three packages `ccxt`,
`ccxt.async_support` and `ccxt.pro`. It runs each package's own `__init__.py` with one kind of
line left out, `from ccxt.<pkg>.<name> import <name>` for a `<name>` in the package's own
`exchanges` list; the package (a `SlimPackage`) imports such an exchange module when its class is
first asked for (`ccxt.pro.binance`, `getattr(ccxt, name)`), and holds the class under its name
afterwards, as a full import does.
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
from typing import ClassVar

PACKAGES = ("ccxt", "ccxt.async_support", "ccxt.pro")
# one exchange class per line: `from ccxt.pro.binance import binance`, then a noqa comment
EXCHANGE_LINE = re.compile(
    r"^from (?P<package>ccxt(?:\.async_support|\.pro)?)\.(?P<module>\w+) import (?P<name>\w+)"
    r"[ \t]+# noqa: F401[ \t]*$",
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
    """The package's __init__ source with its exchange imports blanked (the line numbers of a
    traceback stay those of the file), and the names of those exchanges."""
    lines = exchange_lines(source, package)
    skipped = set(lines.values())
    kept = ["" if line in skipped else line for line in source.splitlines()]
    return "\n".join(kept) + "\n", frozenset(lines)


class SlimPackage(ModuleType):
    """One of ccxt's packages whose exchange classes are imported when first asked for."""

    lazy: ClassVar[dict[str, frozenset[str]]] = {}  # package -> the exchanges left out

    def __getattr__(self, name: str) -> object:
        if name not in SlimPackage.lazy.get(self.__name__, ()):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        importlib.import_module(f"{self.__name__}.{name}")  # sets the class (below)
        return vars(self)[name]

    def __setattr__(self, name: str, value: object) -> None:
        # The import system sets a package's attribute to a submodule it loads. After a full
        # import the attribute is the exchange class (the package's `from .x import x` ran
        # later), and ccxt relies on it: ccxt/pro/binanceus.py does `import
        # ccxt.async_support.binanceus as binanceusRest` and calls it. So keep the class.
        if (
            isinstance(value, ModuleType)
            and value.__name__ == f"{self.__name__}.{name}"
            and name in SlimPackage.lazy.get(self.__name__, ())
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(vars(self)) | SlimPackage.lazy.get(self.__name__, frozenset()))


class _SlimLoader(importlib.abc.Loader):
    def __init__(self, package: str, origin: str) -> None:
        self.package, self.origin = package, origin

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        source, lazy = slim_source(Path(self.origin).read_text(encoding="utf-8"), self.package)
        SlimPackage.lazy[self.package] = lazy
        module.__class__ = SlimPackage
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
