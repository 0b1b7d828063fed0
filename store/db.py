"""Database URL resolution, cached engines and sessions.

The URL comes from `--db`, else the environment variable RAYTRADER_DB, else a SQLite file
`raytrader.db` in the current directory. Any SQLAlchemy URL works; PostgreSQL is used through
psycopg 3 (`postgresql+psycopg://user@host:5432/name`). Tables are created on first use.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlmodel import Session, SQLModel, create_engine

from core.errors import UserError
from store.catalog import DEFAULT_URL, ENV_VAR, resolve_url  # noqa: F401 (public here too)

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


class StoreError(UserError):
    """The database cannot be used as asked (bad URL, unreachable server); says how to fix it."""


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL: show only its scheme
        return url.split("://", 1)[0] + "://..."


def get_engine(url: str) -> Engine:
    """The engine for `url` (one per URL and process), with every table created."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create(url)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every cached engine (tests call this before dropping a database)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextlib.contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _create(url: str) -> Engine:
    import store.models  # noqa: F401  (registers the tables on SQLModel.metadata)

    shown = safe_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"database URL {shown!r} is not a valid SQLAlchemy URL; use e.g. "
            "sqlite:///raytrader.db or postgresql+psycopg://user@host:5432/name"
        ) from None
    kwargs: dict = {}
    if parsed.get_backend_name() == "sqlite":
        # Several processes (Ray workers) may write to one file: wait for locks, don't fail.
        kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
    elif parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 5}
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            f"database URL {shown!r}: no driver ({exc}); use sqlite:/// or postgresql+psycopg://"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        SQLModel.metadata.create_all(engine)
        _add_missing_columns(engine)
    except OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
        raise StoreError(
            f"cannot open database {shown}: {reason}; check --db / {ENV_VAR} "
            "(server running? database exists? file path writable?)"
        ) from None
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot use database {shown}: {type(exc).__name__}") from None
    return engine


def _add_missing_columns(engine: Engine) -> None:
    """A database made by an older version: add the nullable columns added since (create_all
    makes missing tables, never missing columns). Only nullable, default-less columns are ever
    added this way, so old rows stay valid."""
    from sqlalchemy import inspect

    inspector = inspect(engine)
    with engine.begin() as conn:
        for table in SQLModel.metadata.sorted_tables:
            have = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in have or not column.nullable:
                    continue
                kind = column.type.compile(dialect=engine.dialect)
                conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers work while one process writes; NORMAL sync is safe with WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def backend(url: str) -> str:
    """'sqlite', 'postgresql', ... for `url`."""
    return make_url(url).get_backend_name()


def missing_sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL when that file does not exist yet (opening the URL would create
    an empty database there); None for an existing file or any other database."""
    from pathlib import Path

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # get_engine reports the bad URL
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return None if Path(parsed.database).exists() else parsed.database


def require_existing(url: str, hint: str) -> None:
    """A command that only reads or changes rows refuses a SQLite file that does not exist,
    rather than creating an empty database; `hint` says which database it needs."""
    missing = missing_sqlite_file(url)
    if missing is not None:
        raise StoreError(f"no database at {missing}: {hint}")
