"""The database behind runs and the registry: migrations, their safety, and the schema they make,
on a SQLite file and on a real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from conveyor.errors import StorageError, UsageError
from conveyor.store import RunStore
from conveyor.store import _db as _db_module
from conveyor.store._db import Database, parse_url
from conveyor.store._schema import HEAD, REVISIONS, metadata

MIGRATIONS = Path(_db_module.__file__).with_name("_migrations")


def migrate(url: str, revision: str) -> None:
    """Bring a database to ``revision`` with Alembic itself, as an older conveyor would have."""
    engine = sa.create_engine(parse_url(url))
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def test_every_revision_is_known_and_the_head_is_the_last(database_url: str) -> None:
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    ordered = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert tuple(ordered) == REVISIONS and script.get_current_head() == HEAD


def test_the_migrations_make_exactly_the_tables_the_code_queries(database_url: str) -> None:
    with Database(database_url) as db:
        inspector = sa.inspect(db.engine)
        made = {name: {c["name"] for c in inspector.get_columns(name)} for name in inspector.get_table_names()}
    expected = {name: {c.name for c in table.columns} for name, table in metadata.tables.items()}
    assert {k: v for k, v in made.items() if k != "alembic_version"} == expected


def _schema(url: str) -> dict[str, object]:
    """Everything about a database's tables a migration decides, as comparable values."""
    engine = sa.create_engine(parse_url(url))
    try:
        inspector = sa.inspect(engine)
        schema: dict[str, object] = {}
        for name in sorted(inspector.get_table_names()):
            columns = [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")), c.get("autoincrement"))
                for c in inspector.get_columns(name)
            ]
            indexes = sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(name)
            )
            foreign = sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]), str(f["options"]))
                for f in inspector.get_foreign_keys(name)
            )
            unique = sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(name))
            primary = inspector.get_pk_constraint(name)["constrained_columns"]
            checks = sorted(str(c["sqltext"]) for c in inspector.get_check_constraints(name))
            schema[name] = (columns, indexes, foreign, unique, primary, checks)
        return schema
    finally:
        engine.dispose()


def test_a_new_database_gets_the_schema_the_migrations_make(database_url: str, tmp_path: Path) -> None:
    """A new database is made from the schema at once (no Alembic import): it must be what the
    migrations, run one by one, make."""
    with Database(database_url) as db:
        assert db.revision() == HEAD
    made_at_once = _schema(database_url)
    if database_url.startswith("sqlite"):
        migrated_url = f"sqlite:///{tmp_path / 'migrated.db'}"
        migrate(migrated_url, HEAD)
        assert _schema(migrated_url) == made_at_once
    else:
        engine = sa.create_engine(parse_url(database_url))
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
        migrate(database_url, HEAD)
        assert _schema(database_url) == made_at_once


def test_an_older_database_is_upgraded_on_open_and_keeps_its_records(database_url: str) -> None:
    migrate(database_url, "0001_runs")
    engine = sa.create_engine(parse_url(database_url))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO runs (id, started_at, status) VALUES ('r1', 1.5, 'succeeded')"))
    engine.dispose()
    with RunStore(database_url) as store:
        assert store.db.revision() == HEAD
        assert store.get_run("r1").status == "succeeded"


_OPEN = """
import sys
from conveyor.store._db import Database
with Database(sys.argv[1]) as db:
    print(db.revision())
"""


def test_two_processes_opening_a_new_database_at_once_both_succeed(database_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN, database_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    assert {out.strip() for out, _err in outputs} == {HEAD}


def test_a_database_with_foreign_tables_of_the_same_names_is_refused(database_url: str) -> None:
    engine = sa.create_engine(parse_url(database_url))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE runs (something INTEGER)"))
    engine.dispose()
    with pytest.raises(Exception, match="already has a table 'runs' that conveyor did not create"):
        Database(database_url)


def test_a_killed_upgrade_leaves_the_old_revision(tmp_path: Path) -> None:
    """The upgrade and its stamp are one transaction: a process killed inside it changes nothing."""
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    migrate(url, "0001_runs")
    script = f"""
import os, signal
from alembic import op
import conveyor.store._db as db
real = db.Database._upgrade
def upgrade_then_die(self):
    import alembic.command
    original = alembic.command.upgrade
    def killed(config, revision):
        original(config, revision)
        os.kill(os.getpid(), signal.SIGKILL)  # after every statement, before the commit
    alembic.command.upgrade = killed
    real(self)
db.Database._upgrade = upgrade_then_die
db.Database({url!r})
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0001_runs"
        assert not sa.inspect(conn).has_table("models")
    engine.dispose()
    with Database(url) as db:  # and the next open upgrades it
        assert db.revision() == HEAD


def test_urls_are_checked_and_passwords_never_shown() -> None:
    with pytest.raises(UsageError, match="'mysql' is not supported"):
        parse_url("mysql://root:pw@localhost/db")
    assert parse_url("postgresql://u:p@h/d").drivername == "postgresql+psycopg"
    with pytest.raises(StorageError) as unreachable:
        Database("postgresql://someone:topsecret@127.0.0.1:1/nothing")
    assert "topsecret" not in unreachable.value.format_message()
    assert "***" in unreachable.value.message
