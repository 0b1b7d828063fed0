"""Shared fixtures: database URLs (SQLite file and PostgreSQL), sample data paths."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from live.venues.ccxt_loader import install

install()  # before any test module's `import ccxt`: exchanges load on first use (docs/live.md)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = ROOT / "data" / "sample"
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_unreachable_reason() -> str | None:
    try:
        import psycopg

        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=3
        ):
            return None
    except Exception as exc:  # any failure means: skip, and say why
        return f"PostgreSQL at 127.0.0.1:5432 (database test) unreachable: {exc}"


@pytest.fixture(scope="session")
def postgres_skip_reason() -> str | None:
    return _postgres_unreachable_reason()


@pytest.fixture
def postgres_url(postgres_skip_reason: str | None) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    if postgres_skip_reason:
        pytest.skip(postgres_skip_reason)
    import psycopg

    name = f"rt_test_{uuid.uuid4().hex[:12]}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        from store.db import dispose_engines

        dispose_engines()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'raytrader.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on a SQLite file and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE_DIR


@pytest.fixture(autouse=True, scope="session")
def _no_database_in_the_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Commands run without --db use $RAYTRADER_DB: point it at a temporary file so a test that
    forgets --db never writes raytrader.db into the working tree (subprocesses inherit it)."""
    import os

    previous = os.environ.get("RAYTRADER_DB")
    os.environ["RAYTRADER_DB"] = f"sqlite:///{tmp_path_factory.mktemp('default-db') / 'x.db'}"
    yield
    if previous is None:
        os.environ.pop("RAYTRADER_DB", None)
    else:
        os.environ["RAYTRADER_DB"] = previous


@pytest.fixture(scope="session")
def _ray_of_the_session() -> Iterator[None]:
    """Stops the shared Ray (tests/ray_local.py) when the session ends, also after failures."""
    from tests.ray_local import stop_shared_ray

    try:
        yield
    finally:
        stop_shared_ray()


@pytest.fixture(scope="module")
def ray_shared(_ray_of_the_session: None) -> Any:
    """The one Ray of the test session (tests/ray_local.py), started on first use (and again
    after a module that needed a Ray of its own)."""
    from tests.ray_local import shared_ray

    return shared_ray()


@pytest.fixture
def no_ray() -> None:
    """For a test that needs this process without Ray: the shared one stops (the next test that
    asks for it starts it again)."""
    from tests.ray_local import stop_shared_ray

    stop_shared_ray()


def _stops_shared_ray(item: pytest.Item) -> bool:
    return "no_ray" in item.fixturenames or item.get_closest_marker("own_ray") is not None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order tests run in (`make test` gives each worker whole files, in this order):
    1. files with a Ray test first: they are the long ones (Ray, subprocesses, live sessions),
       and the longest first is what lets the workers end together instead of one of them
       finishing a long file alone at the end;
    2. then the other files;
    3. last, tests that stop the shared Ray (no_ray, or a Ray of their own: marker own_ray), in
       their order: the shared Ray then starts once per worker instead of once after each."""
    ray_files = {item.path for item in items if item.get_closest_marker("ray") is not None}
    items.sort(key=lambda item: (_stops_shared_ray(item), item.path not in ray_files))
