"""conveyor's database: one SQLAlchemy engine on a URL, its schema kept at the head revision.

A workspace's database is ``CONVEYOR_DB``, else the config's ``store.url``, else the
embedded SQLite file ``.conveyor/store/conveyor.db``. PostgreSQL (``postgresql://...``,
through psycopg 3) serves a team. Opening a database older than this conveyor upgrades it
with its Alembic migrations, in one transaction that also holds a lock (SQLite's write lock,
a PostgreSQL advisory lock), so two processes never migrate at once and a killed upgrade
leaves the old revision intact. A database from a newer conveyor is refused, untouched.

Checking the revision is one query; Alembic is imported only to upgrade.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.errors import (
    ConveyorError,
    CorruptFileError,
    StorageError,
    UsageError,
    WorkspaceError,
    WorkspaceLockedError,
)
from conveyor.store._schema import HEAD, REVISIONS, metadata

if TYPE_CHECKING:
    from conveyor.workspace import Workspace

from conveyor.store._db_location import DEFAULT_DIR, DEFAULT_FILE, ENV_URL

_LEGACY_RUNS = ("runs", "runs.db")  # the SQLite-only run store before the SQL store (schema version 1)
_MIGRATION_LOCK = 0x636F6E76  # "conv": the PostgreSQL advisory lock held while migrating
_WRITE = "conveyor_write"  # execution option: begin the transaction as a writer (SQLite: BEGIN IMMEDIATE)


def workspace_url(ws: Workspace) -> str | Path:
    """The database of a workspace: ``CONVEYOR_DB``, ``store.url`` (URLs), or the SQLite file
    of the default (a path, never pasted into a URL: ``%41`` or ``?`` in it must stay as is)."""
    from conveyor.config import Config

    url = os.environ.get(ENV_URL) or Config(ws.conveyor_dir).get("store.url")
    if not url:
        return ws.conveyor_dir / DEFAULT_DIR / DEFAULT_FILE
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        if not path.is_absolute():  # relative to the workspace, not to wherever the command runs
            return parsed.set(database=str(ws.root / path)).render_as_string(hide_password=False)
    return url


def parse_url(text: str | Path) -> sa.URL:
    """A database URL (a path means a SQLite file), checked: only SQLite and PostgreSQL."""
    if isinstance(text, Path):
        return sa.URL.create("sqlite", database=str(text))
    try:
        url = sa.make_url(text)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise UsageError(
            f"'{_redact(text)}' is not a database URL",
            hint="use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE (store.url or CONVEYOR_DB)",
        ) from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise UsageError(
            f"database URL '{url.render_as_string(hide_password=True)}': '{backend}' is not supported",
            hint="use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
        )
    if backend == "postgresql" and url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")  # psycopg 3, not SQLAlchemy's default psycopg2
    return url


def _redact(text: str) -> str:
    """A URL-ish string without what looks like a password (``user:secret@``)."""
    import re

    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", text)


class ConflictError(StorageError):
    """A write lost a race with another process's (a unique value taken meanwhile): run it again."""


class Database:
    """One database and its engine. Open with :meth:`open` (a workspace's) or a URL or path.

    ``create=False``: a SQLite file that does not exist is not created; the database reads
    as empty (for commands that only look).
    """

    def __init__(self, url: str | Path, *, create: bool = True) -> None:
        self.url = parse_url(url)
        self.backend = self.url.get_backend_name()
        self.label = self._label()
        self.engine = self._engine(create)
        try:
            self._ensure_schema(create)
        except BaseException:
            self.engine.dispose()
            raise

    @classmethod
    def open(cls, ws: Workspace, *, create: bool = True) -> Database:
        """The database of workspace ``ws``; the SQLite default adopts an older run store."""
        url = workspace_url(ws)
        default = ws.conveyor_dir / DEFAULT_DIR / DEFAULT_FILE
        if url == default:
            legacy = ws.conveyor_dir.joinpath(*_LEGACY_RUNS)
            if create or (legacy.exists() and not default.exists()):
                from conveyor.workspace import private_dir

                private_dir(ws.conveyor_dir, DEFAULT_DIR)
                _adopt_legacy_runs(legacy, default)  # a copy: the old file is never changed
        return cls(url, create=create)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def upsert(self, table: sa.Table) -> Any:
        """An INSERT of ``table`` that takes ``on_conflict_do_nothing``/``_do_update`` (the
        dialect's own: both backends have them, SQLAlchemy Core's generic insert does not)."""
        if self.backend == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections -----------------------------------------------------------------------

    def _label(self) -> str:
        if self.backend == "sqlite":
            return self.url.database or ":memory:"
        query = {k: ("***" if k.lower() == "password" else v) for k, v in self.url.query.items()}
        return self.url.set(query=query).render_as_string(hide_password=True)

    def _engine(self, create: bool) -> sa.Engine:
        if self.backend == "sqlite":
            path = self.url.database
            if path and path != ":memory:" and not create and not Path(path).exists():
                self.url = sa.make_url("sqlite://")  # nothing recorded yet: an empty, in-memory database
                path = None
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(
                self.url,
                connect_args={"timeout": 30, "check_same_thread": False},
                poolclass=sa.pool.StaticPool if not path or path == ":memory:" else sa.pool.QueuePool,
            )
            sa.event.listen(engine, "connect", _sqlite_connect)
            sa.event.listen(engine, "begin", _sqlite_begin)
            return engine
        try:
            return sa.create_engine(self.url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        except ModuleNotFoundError:
            raise UsageError(
                f"{self.label}: PostgreSQL needs the psycopg driver", hint="pip install 'conveyor[postgres]'"
            ) from None

    @contextlib.contextmanager
    def transaction(self, action: str, *, write: bool = True) -> Iterator[sa.Connection]:
        """One transaction: all of it lands, or none of it (also when the process is killed).
        Errors of the database become one-line :class:`ConveyorError` naming ``action``."""
        try:
            with self.engine.connect() as conn:
                if write:
                    conn = conn.execution_options(**{_WRITE: True})
                with conn.begin():
                    yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise self.error(exc, action) from exc
        except sqlite3.Error as exc:  # raised past SQLAlchemy by the connect/begin hooks
            raise self.error(exc, action) from exc

    # -- the schema ------------------------------------------------------------------------

    def revision(self) -> str | None:
        """The database's Alembic revision (None: no conveyor tables yet)."""
        with self.transaction("read the database", write=False) as conn:
            return _revision(conn)

    def _ensure_schema(self, create: bool) -> None:
        if self.backend == "sqlite" and self.url.database in (None, "", ":memory:") and not create:
            with self.transaction("create an empty database"):
                pass
            metadata.create_all(self.engine)  # read-only view of nothing: the head schema, no migration
            return
        current = self.revision()
        if current == HEAD:
            return
        if current is not None and current not in REVISIONS:
            raise self._too_new(current)
        self._upgrade()

    def _upgrade(self, *, migrate_from_scratch: bool = False) -> None:
        with self.transaction("upgrade the database") as conn:
            if self.backend == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            current = _revision(conn)  # another process may have upgraded it meanwhile
            if current == HEAD:
                return
            if current is not None and current not in REVISIONS:
                raise self._too_new(current)
            if current is None:
                _refuse_foreign_tables(conn, self.label)
                if not migrate_from_scratch:
                    # a new database gets the head schema at once, as the migrations would make it
                    # (a test holds them equal), without importing Alembic: a first run starts sooner
                    metadata.create_all(conn)
                    conn.execute(
                        sa.text(
                            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
                        )
                    )
                    conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:head)"), {"head": HEAD})
                    return
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", str(Path(__file__).with_name("_migrations")))
            config.attributes["connection"] = conn
            command.upgrade(config, HEAD)

    def _too_new(self, revision: str) -> WorkspaceError:
        from conveyor import __version__

        return WorkspaceError(
            f"{self.label}: the database is at revision '{revision}', newer than this conveyor "
            f"({__version__}) knows (up to '{HEAD}')",
            hint="upgrade conveyor to use it; the database was left unchanged",
        )

    # -- errors ----------------------------------------------------------------------------

    def error(self, exc: BaseException, action: str) -> ConveyorError:
        """A database error as the one-line error a user can act on."""
        if isinstance(exc, ConveyorError):
            return exc
        original = getattr(exc, "orig", None) or exc
        text = " ".join(str(original).split()) or type(original).__name__
        lowered = text.lower()
        where = f"{self.label}: cannot {action}"
        if isinstance(exc, sa.exc.IntegrityError):
            return ConflictError(f"{where}: {text}", hint="another process changed it at the same moment: run it again")
        if self.backend == "postgresql" and isinstance(exc, sa.exc.OperationalError):
            first = str(original).strip().splitlines()[0] if str(original).strip() else text
            return StorageError(
                f"{where}: {first}",
                hint="check the database URL (store.url or CONVEYOR_DB), that the server runs and that the "
                "user may log in",
            )
        if "locked" in lowered or "busy" in lowered:
            return WorkspaceLockedError(
                f"{where}: another process holds the database", hint="wait and run the command again"
            )
        if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
            return CorruptFileError(
                f"{where}: {text}",
                hint="move the file aside (conveyor starts a new, empty database) or restore it from a backup",
            )
        if "full" in lowered:
            return StorageError(f"{where}: disk full", hint="free some disk space and run it again")
        if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
            return StorageError(f"{where}: {text}", hint="check the permissions of the file and its folder")
        return StorageError(f"{where}: {text}", hint="fix the cause and run the command again")


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # transactions are begun by _sqlite_begin, as asked
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = ON")
        if cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "memory":
            # NORMAL in WAL mode: a killed process loses nothing committed; a power cut may
            # lose the last transactions but never leaves the database inconsistent.
            cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    # A writer takes the write lock at once: two writers never both read, then both fail
    # to upgrade their read lock (SQLite's deadlock); readers never block anyone in WAL mode.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def _revision(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    row = conn.execute(sa.text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def _refuse_foreign_tables(conn: sa.Connection, label: str) -> None:
    """A database without conveyor's revision must not already hold tables of ours."""
    existing = set(sa.inspect(conn).get_table_names())
    clash = sorted(existing & set(metadata.tables))
    if clash:
        raise WorkspaceError(
            f"{label}: the database already has a table '{clash[0]}' that conveyor did not create",
            hint="give conveyor a database of its own (store.url or CONVEYOR_DB)",
        )


def _adopt_legacy_runs(legacy: Path, target: Path) -> None:
    """Bring the SQLite-only run store of an older conveyor into the SQL store, once.

    The old file is copied with SQLite's backup API (consistent even while another process
    writes it), stamped as revision 0001 (the same tables) and renamed into place; the
    upgrade to the head revision then runs as for any older database. The old file stays
    where it was, unread from then on.
    """
    if target.exists() or not legacy.exists():
        return
    import fcntl

    from conveyor import _fs

    with open(target.with_name(".adopt.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return
        temp = Path(_fs.tmp_name(target.parent, target.name))
        try:
            source = sqlite3.connect(f"file:{legacy}?mode=ro", uri=True, timeout=30)
            try:
                version = int(source.execute("PRAGMA user_version").fetchone()[0])
                if version == 0:
                    return  # never written: nothing to adopt
                if version != 1:
                    raise WorkspaceError(
                        f"{legacy}: run store schema version {version} is not one this conveyor can adopt",
                        hint="upgrade conveyor; the file was left unchanged",
                    )
                copy = sqlite3.connect(temp)
                try:
                    source.backup(copy)
                    copy.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
                    copy.execute("INSERT INTO alembic_version VALUES ('0001_runs')")
                    copy.execute("PRAGMA user_version = 0")
                    copy.commit()
                finally:
                    copy.close()
            finally:
                source.close()
            _fs.fsync_file(temp)
            os.replace(temp, target)
            _fs.fsync_dir(target.parent)
        except sqlite3.Error as exc:
            raise StorageError(
                f"{legacy}: cannot adopt the run store of an older conveyor: {exc}",
                hint="move the file aside (conveyor starts a new, empty run store) or restore it from a backup",
            ) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
