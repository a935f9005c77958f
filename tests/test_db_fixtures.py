"""The database fixtures (tests/db_fixtures.py): real SQLite and PostgreSQL databases, thrown away."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, create_engine, inspect, make_url, select, text

from db_fixtures import database_exists, throwaway_database


def _items(metadata: MetaData) -> Table:
    return Table("items", metadata, Column("id", Integer, primary_key=True), Column("name", String(50)))


def test_database_url_holds_data(database_url: str, request: pytest.FixtureRequest) -> None:
    backend = request.node.callspec.id
    engine = create_engine(database_url)
    try:
        assert engine.dialect.name == backend
        metadata = MetaData()
        items = _items(metadata)
        metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(items.insert(), [{"name": "alpha"}, {"name": "beta"}])
        with engine.connect() as connection:
            assert connection.execute(select(items.c.name).order_by(items.c.id)).scalars().all() == ["alpha", "beta"]
            if backend == "postgresql":
                assert connection.execute(text("SELECT current_database()")).scalar() == make_url(database_url).database
    finally:
        engine.dispose()


def test_database_url_starts_empty(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_postgres_databases_are_distinct(postgres_url: str, postgres_admin_engine: Engine) -> None:
    with throwaway_database(postgres_admin_engine) as other_url:
        assert make_url(other_url).database != make_url(postgres_url).database
        first, second = create_engine(postgres_url), create_engine(other_url)
        try:
            _items(MetaData()).create(first)
            assert inspect(first).get_table_names() == ["items"]
            assert inspect(second).get_table_names() == []
        finally:
            first.dispose()
            second.dispose()


def test_throwaway_database_is_dropped_even_while_connected(postgres_admin_engine: Engine) -> None:
    with throwaway_database(postgres_admin_engine) as url:
        name = make_url(url).database
        assert name is not None and name.startswith("cvy_test_")
        assert database_exists(postgres_admin_engine, name)
        engine = create_engine(url)
        connection = engine.connect()  # still open when the database is dropped
        connection.execute(text("SELECT 1"))
    try:
        assert not database_exists(postgres_admin_engine, name)
    finally:
        connection.invalidate()
        engine.dispose()


@pytest.fixture
def dropped_afterwards(postgres_admin_engine: Engine) -> Iterator[list[str]]:
    """Names of databases that must be gone once the test's other fixtures are torn down.

    Requested before ``postgres_url``, so set up before it and torn down after it.
    """
    names: list[str] = []
    yield names
    assert names
    for name in names:
        assert not database_exists(postgres_admin_engine, name), f"{name} was not dropped"


def test_postgres_url_is_dropped_after_the_test(dropped_afterwards: list[str], postgres_url: str) -> None:
    name = make_url(postgres_url).database
    assert name is not None
    dropped_afterwards.append(name)
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT current_database()")).scalar() == name
    finally:
        engine.dispose()


def test_postgres_admin_url_is_the_test_role(postgres_admin_url: str) -> None:
    url = make_url(postgres_admin_url)
    assert (url.drivername, url.username, url.database) == ("postgresql+psycopg", "conveyor_test", "postgres")
