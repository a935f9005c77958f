"""Fixtures for tests against a real database: SQLite and PostgreSQL behind one URL.

Loaded for every test by ``pytest_plugins = ["db_fixtures"]`` in conftest.py; request them by name.

* ``database_url``: parametrized ``sqlite`` (a file in the test's ``tmp_path``) and ``postgresql``
  (a throw-away database, dropped after the test); a SQLAlchemy URL string.
* ``postgres_url``: one throw-away PostgreSQL database, for tests that need PostgreSQL itself.
* ``postgres_admin_url`` (session): the URL of the ``postgres`` database as ``conveyor_test``
  (LOGIN CREATEDB): ``$CONVEYOR_TEST_PG_URL`` if set (``make test`` sets it), else
  :func:`_postgres.ensure_server` installs, starts and sets up the local server as needed.
* ``postgres_admin_engine`` (session): an AUTOCOMMIT engine on that URL, shared by the above.

PostgreSQL is only touched by tests that use it: ``database_url[sqlite]`` alone needs no server.
A throw-away database is called ``cvy_test_<xdist worker>_<12 hex>``; one left behind by a killed
run can be dropped by hand (``DROP DATABASE ... WITH (FORCE)``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from _postgres import ensure_server

PG_URL_ENV = "CONVEYOR_TEST_PG_URL"

# Read once, at import: conftest's autouse _git_identity removes every CONVEYOR_* variable
# from the environment of each test.
_PG_URL_FROM_ENV = os.environ.get(PG_URL_ENV, "").strip()


def database_name() -> str:
    """A new name for a throw-away database (lower case: no quoting surprises)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"cvy_test_{worker}_{secrets.token_hex(6)}".lower()


def database_exists(admin: Engine, name: str) -> bool:
    with admin.connect() as connection:
        found = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
        return found.first() is not None


@contextmanager
def throwaway_database(admin: Engine) -> Iterator[str]:
    """Create an empty PostgreSQL database through ``admin``; yield its URL; drop it on the way out.

    ``admin`` must be an AUTOCOMMIT engine (CREATE/DROP DATABASE cannot run in a transaction).
    Connections still open to the database when it is dropped are ended by the server.
    """
    name = database_name()
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            if (connection.dialect.server_version_info or (0,)) >= (13,):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": name},
                )
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """Admin URL of the test PostgreSQL server (``postgresql+psycopg://...@127.0.0.1:PORT/postgres``)."""
    return _PG_URL_FROM_ENV or ensure_server()


@pytest.fixture(scope="session")
def postgres_admin_engine(postgres_admin_url: str) -> Iterator[Engine]:
    """One AUTOCOMMIT engine on the admin URL per session (per xdist worker)."""
    engine = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT", pool_size=1, pool_pre_ping=True)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL of an empty database: a SQLite file, then a throw-away PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'conveyor.db'}"
        return
    admin: Engine = request.getfixturevalue("postgres_admin_engine")
    with throwaway_database(admin) as url:
        yield url


@pytest.fixture
def postgres_url(postgres_admin_engine: Engine) -> Iterator[str]:
    """The SQLAlchemy URL of an empty, throw-away PostgreSQL database."""
    with throwaway_database(postgres_admin_engine) as url:
        yield url
