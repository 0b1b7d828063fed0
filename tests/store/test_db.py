"""store/db.py: which database a command uses."""

import pytest

from store.db import StoreError, resolve_url, session_scope


def test_explicit_url_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYTRADER_DB", "sqlite:///from-env.db")
    assert resolve_url("sqlite:///explicit.db") == "sqlite:///explicit.db"
    assert resolve_url(None) == "sqlite:///from-env.db"


def test_default_is_raytrader_db_in_the_working_directory(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("RAYTRADER_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    url = resolve_url(None)
    assert url == "sqlite:///raytrader.db"
    with session_scope(url):
        pass
    assert (tmp_path / "raytrader.db").is_file()


def test_unreachable_database_names_it_without_the_password() -> None:
    with pytest.raises(StoreError) as caught:
        with session_scope("postgresql+psycopg://user:hunter2@127.0.0.1:1/nothing"):
            pass
    assert "hunter2" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)
