"""Migrations run from empty on SQLite and PostgreSQL and agree with the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from ipr.db import make_engine, upgrade
from ipr.models import Base


def _diff(url: str) -> list:
    engine = make_engine(url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    return diff


def test_sqlite_from_empty_matches_models(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    upgrade(url)
    assert _diff(url) == []
    upgrade(url)  # idempotent
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) >= set(Base.metadata.tables)
    engine.dispose()


@pytest.mark.postgres
def test_postgres_from_empty_matches_models(postgres_url: str) -> None:
    upgrade(postgres_url)
    assert _diff(postgres_url) == []
    upgrade(postgres_url)


def test_sqlite_runs_wal_with_foreign_keys(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        with pytest.raises(Exception, match="FOREIGN KEY"):
            conn.execute(
                text(
                    "INSERT INTO dyads (study_id, code, notes, created_at) "
                    "VALUES (999, 'x', '', '2026-01-01')"
                )
            )
    engine.dispose()
