"""The run store: a record of every ``conveyor run`` in ``.conveyor/runs/runs.db``.

A run is recorded as it happens: :meth:`RunStore.start_run` when it starts,
:meth:`RunStore.record_stage` as each stage finishes, :meth:`RunStore.finish_run` at the
end. Each call is one SQLite transaction (WAL mode), so a process killed at any moment
leaves the records of every stage that finished and never half a stage.

A run whose process died before ``finish_run`` would stay ``running`` forever. The store
records the pid, the host and (on Linux) the process's start time and boot id; whenever
the store is opened or runs are listed, a ``running`` run of this host whose process is
gone, or whose pid now belongs to another process, is marked ``interrupted``.

The tables are plain (``runs``, ``run_stages``, ``run_outs``, ``run_params``,
``run_metrics``; values of params and metrics as JSON text, numeric metrics also as a
number) so they move to SQLAlchemy and PostgreSQL without reshaping. The schema version is
``PRAGMA user_version``: an older database is migrated on open, a newer one refused.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from conveyor.errors import (
    ConveyorError,
    CorruptFileError,
    StorageError,
    UsageError,
    WorkspaceError,
    WorkspaceLockedError,
)

if TYPE_CHECKING:
    from conveyor.workspace import Workspace

RUN_STATUSES = ("running", "succeeded", "failed", "interrupted")
STAGE_STATUSES = ("ran", "restored", "up-to-date", "frozen", "failed", "skipped", "interrupted")
DB_NAME = "runs.db"

# Each entry brings the database from the version before it to its own; never edit one
# that shipped, append a new one (and a test that opens a database of the old version).
_MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    ended_at REAL,
    status TEXT NOT NULL,
    git_commit TEXT,
    dirty INTEGER NOT NULL DEFAULT 0,
    targets TEXT NOT NULL DEFAULT '[]',
    command TEXT NOT NULL DEFAULT '',
    environment TEXT NOT NULL DEFAULT '{}',
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    process_start TEXT
);
CREATE INDEX runs_started_at ON runs (started_at);
CREATE INDEX runs_status_started_at ON runs (status, started_at);
CREATE TABLE run_stages (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    duration REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    error TEXT,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX run_stages_started_at ON run_stages (started_at);
CREATE TABLE run_outs (
    run_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    path TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (run_id, stage, path),
    FOREIGN KEY (run_id, stage) REFERENCES run_stages (run_id, name) ON DELETE CASCADE
);
CREATE INDEX run_outs_hash ON run_outs (hash);
CREATE TABLE run_params (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE run_metrics (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    number REAL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX run_metrics_key_number ON run_metrics (key, number);
""",
}
SCHEMA_VERSION = max(_MIGRATIONS)

_RUN_COLUMNS = "id, started_at, ended_at, status, git_commit, dirty, targets, command, environment"


@dataclass
class StageRecord:
    """One stage of a run, recorded when it finished."""

    name: str
    status: str  # one of STAGE_STATUSES
    started_at: float  # unix seconds
    duration: float  # seconds
    attempts: int = 1
    outs: dict[str, str] = field(default_factory=dict)  # output path -> content hash
    error: str | None = None


@dataclass
class RunRecord:
    """One ``conveyor run``: where it ran, what it was given, what it produced."""

    id: str
    started_at: float
    ended_at: float | None = None
    status: str = "running"  # one of RUN_STATUSES
    commit: str | None = None
    dirty: bool = False
    targets: list[str] = field(default_factory=list)
    command: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    stages: list[StageRecord] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or None while it has not ended."""
        return None if self.ended_at is None else self.ended_at - self.started_at


# -- values ----------------------------------------------------------------------------------


def _to_json(value: Any) -> str:
    # Values are meant to be JSON-able; anything else (a date from YAML, a set) is kept as
    # text rather than failing a run over its record.
    return json.dumps(value, sort_keys=True, default=_fallback)


def _fallback(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a double
        return None
    return None if math.isnan(number) else number


# -- the store -------------------------------------------------------------------------------


class RunStore:
    """The run records of one workspace, in one SQLite database.

    Calls may come from any thread, one at a time (a lock serialises them). Use it as a
    context manager, or call :meth:`close`.
    """

    def __init__(self, path: Path, *, create: bool = True) -> None:
        """Open (and create or migrate) the database at ``path``.

        With ``create=False`` a missing database is not created: the store reads as empty
        (for commands that only look).
        """
        self.path = path
        self._lock = threading.Lock()
        self._dead: set[str] = set()  # running runs found dead, in case recording that failed
        target = str(path) if create or path.exists() else ":memory:"
        try:
            self._conn = sqlite3.connect(target, timeout=30, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _translate(exc, path, "open the run store") from exc
        try:
            self._setup()
            self._reap()
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open(cls, workspace: Workspace, *, create: bool = True) -> RunStore:
        """The run store of ``workspace`` (``.conveyor/runs/runs.db``)."""
        if create:
            from conveyor.workspace import private_dir

            return cls(private_dir(workspace.conveyor_dir, "runs") / DB_NAME, create=True)
        return cls(workspace.conveyor_dir / "runs" / DB_NAME, create=False)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- schema ------------------------------------------------------------------------------

    def _setup(self) -> None:
        conn = self._conn
        try:
            version = self._version()
            if version > SCHEMA_VERSION:
                raise self._too_new(version)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a killed process loses nothing committed; a power cut may
            # lose the last transactions but never leaves the database inconsistent.
            conn.execute("PRAGMA synchronous = NORMAL")
            if version < SCHEMA_VERSION:
                with self._transaction("migrate the run store"):
                    version = self._version()  # another process may have migrated meanwhile
                    if version > SCHEMA_VERSION:
                        raise self._too_new(version)
                    for step in range(version + 1, SCHEMA_VERSION + 1):
                        for statement in _statements(_MIGRATIONS[step]):
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise _translate(exc, self.path, "open the run store") from exc

    def _version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _too_new(self, version: int) -> WorkspaceError:
        from conveyor import __version__

        return WorkspaceError(
            f"{self.path}: run store schema version {version} is newer than this conveyor "
            f"({__version__}) knows (version {SCHEMA_VERSION})",
            hint="upgrade conveyor to read it; the file was left unchanged",
        )

    @contextlib.contextmanager
    def _transaction(self, action: str, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction: all of it lands, or none of it (also when the process is killed)."""
        conn = self._conn
        with self._lock:
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as exc:
                raise _translate(exc, self.path, action) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise _translate(exc, self.path, action) from exc
                raise

    # -- writing -----------------------------------------------------------------------------

    def start_run(self, run: RunRecord) -> None:
        """Record a new run (normally ``status="running"``), owned by this process."""
        _check_status(run.status, RUN_STATUSES, "run")
        for stage in run.stages:
            _check_status(stage.status, STAGE_STATUSES, f"stage {stage.name!r}")
        pid = os.getpid()
        with self._transaction("record the run") as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run.id,)).fetchone():
                raise UsageError(f"run {run.id} is already recorded", hint="make a new id with new_run_id()")
            conn.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS}, host, pid, process_start) VALUES ({', '.join('?' * 12)})",
                (
                    run.id,
                    run.started_at,
                    run.ended_at,
                    run.status,
                    run.commit,
                    int(run.dirty),
                    json.dumps(list(run.targets)),
                    run.command,
                    json.dumps(dict(run.environment), sort_keys=True),
                    _host(),
                    pid,
                    _process_start(pid),
                ),
            )
            conn.executemany(
                "INSERT INTO run_params (run_id, key, value) VALUES (?, ?, ?)",
                ((run.id, key, _to_json(value)) for key, value in run.params.items()),
            )
            self._put_metrics(conn, run.id, run.metrics)
            for stage in run.stages:
                self._put_stage(conn, run.id, stage)

    def record_stage(self, run_id: str, stage: StageRecord) -> None:
        """Record a stage that finished (again: a stage of the same name is replaced)."""
        _check_status(stage.status, STAGE_STATUSES, f"stage {stage.name!r}")
        with self._transaction("record the stage") as conn:
            self._require(conn, run_id)
            self._put_stage(conn, run_id, stage)

    def finish_run(self, run_id: str, *, status: str, ended_at: float, metrics: dict[str, Any]) -> None:
        """Record the end of a run, its final status and its metrics (replacing any before)."""
        _check_status(status, RUN_STATUSES[1:], "run")
        with self._transaction("record the end of the run") as conn:
            self._require(conn, run_id)
            conn.execute("UPDATE runs SET status = ?, ended_at = ? WHERE id = ?", (status, ended_at, run_id))
            conn.execute("DELETE FROM run_metrics WHERE run_id = ?", (run_id,))
            self._put_metrics(conn, run_id, metrics)

    @staticmethod
    def _require(conn: sqlite3.Connection, run_id: str) -> None:
        if not conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
            raise UsageError(f"no run {run_id} in the run store", hint="record it with start_run() first")

    @staticmethod
    def _put_metrics(conn: sqlite3.Connection, run_id: str, metrics: dict[str, Any]) -> None:
        conn.executemany(
            "INSERT INTO run_metrics (run_id, key, value, number) VALUES (?, ?, ?, ?)",
            ((run_id, key, _to_json(value), _number(value)) for key, value in metrics.items()),
        )

    @staticmethod
    def _put_stage(conn: sqlite3.Connection, run_id: str, stage: StageRecord) -> None:
        conn.execute(
            "INSERT INTO run_stages (run_id, name, seq, status, started_at, duration, attempts, error)"
            " VALUES (?, ?, (SELECT COALESCE(MAX(seq) + 1, 0) FROM run_stages WHERE run_id = ?), ?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, name) DO UPDATE SET status = excluded.status, started_at = excluded.started_at,"
            " duration = excluded.duration, attempts = excluded.attempts, error = excluded.error",
            (run_id, stage.name, run_id, stage.status, stage.started_at, stage.duration, stage.attempts, stage.error),
        )
        conn.execute("DELETE FROM run_outs WHERE run_id = ? AND stage = ?", (run_id, stage.name))
        conn.executemany(
            "INSERT INTO run_outs (run_id, stage, path, hash) VALUES (?, ?, ?, ?)",
            ((run_id, stage.name, path, digest) for path, digest in stage.outs.items()),
        )

    # -- runs whose process died -------------------------------------------------------------

    def _reap(self) -> None:
        """Mark ``running`` runs of this host whose process is gone as ``interrupted``."""
        conn = self._conn
        with self._lock:
            rows = conn.execute("SELECT id, host, pid, process_start FROM runs WHERE status = 'running'").fetchall()
        dead = [run_id for run_id, host, pid, start in rows if not _alive(host, pid, start)]
        if not dead:
            return
        self._dead.update(dead)
        try:
            with self._transaction("mark interrupted runs"):
                for run_id in dead:
                    # The run ended, at the latest, when its last stage did.
                    conn.execute(
                        "UPDATE runs SET status = 'interrupted', ended_at = MAX(started_at, COALESCE("
                        "(SELECT MAX(started_at + duration) FROM run_stages WHERE run_id = runs.id), started_at))"
                        " WHERE id = ? AND status = 'running'",
                        (run_id,),
                    )
        except (StorageError, WorkspaceLockedError):
            pass  # a read-only or busy store: they show as interrupted; the next writer records it

    # -- reading -----------------------------------------------------------------------------

    def list_runs(self, *, limit: int | None = 20, offset: int = 0, status: str | None = None) -> list[RunRecord]:
        """Runs, newest first, with their stages, params and metrics; ``limit=None``: all."""
        if status is not None:
            _check_status(status, RUN_STATUSES, "run")
        self._reap()
        where, args = ("WHERE status = ?", [status]) if status is not None else ("", [])
        selection = f"{where} ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?"
        return self._load(selection, [*args, -1 if limit is None else limit, offset])

    def count_runs(self, *, status: str | None = None) -> int:
        """How many runs are recorded (with ``status``, if given)."""
        with self._transaction("read the run store", write=False) as conn:
            if status is None:
                row = conn.execute("SELECT COUNT(*) FROM runs").fetchone()
            else:
                row = conn.execute("SELECT COUNT(*) FROM runs WHERE status = ?", (status,)).fetchone()
        return int(row[0])

    def get_run(self, ref: str) -> RunRecord:
        """The run named by ``ref``: ``latest``, or a unique prefix of its id."""
        self._reap()
        run_id = self.resolve(ref)
        runs = self._load("WHERE id = ?", [run_id])
        if not runs:  # deleted between the two reads
            raise _unknown(ref)
        return runs[0]

    def resolve(self, ref: str) -> str:
        """The full id of the run ``ref`` names (``latest`` or a unique id prefix)."""
        ref = ref.strip()
        with self._transaction("read the run store", write=False) as conn:
            if ref == "latest":
                row = conn.execute("SELECT id FROM runs ORDER BY started_at DESC, id DESC LIMIT 1").fetchone()
                if row is None:
                    raise UsageError("no runs recorded yet", hint="'conveyor run' records one")
                return str(row[0])
            if not ref:
                raise UsageError("empty run id", hint="'conveyor runs list' shows the recorded runs")
            # Ids sharing a prefix are neighbours in id order: the first two at or after the
            # prefix tell unique from ambiguous, through the primary key index.
            rows = conn.execute("SELECT id FROM runs WHERE id >= ? ORDER BY id LIMIT 3", (ref,)).fetchall()
        matches = [str(row[0]) for row in rows if str(row[0]).startswith(ref)]
        if not matches:
            raise _unknown(ref)
        if len(matches) > 1:
            more = ", ..." if len(matches) > 2 else ""
            raise UsageError(
                f"run '{ref}' is ambiguous: it starts {matches[0]}, {matches[1]}{more}",
                hint="give more of the id; 'conveyor runs list' shows the recorded runs",
            )
        return matches[0]

    def _load(self, selection: str, args: Sequence[Any]) -> list[RunRecord]:
        """The runs ``SELECT ... FROM runs {selection}`` picks, in its order, complete."""
        chosen = f"SELECT id FROM runs {selection}"
        with self._transaction("read the run store", write=False) as conn:
            rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs {selection}", args).fetchall()
            if not rows:
                return []
            params = conn.execute(
                f"SELECT run_id, key, value FROM run_params WHERE run_id IN ({chosen}) ORDER BY run_id, key", args
            ).fetchall()
            metrics = conn.execute(
                f"SELECT run_id, key, value FROM run_metrics WHERE run_id IN ({chosen}) ORDER BY run_id, key", args
            ).fetchall()
            stages = conn.execute(
                "SELECT run_id, name, status, started_at, duration, attempts, error FROM run_stages"
                f" WHERE run_id IN ({chosen}) ORDER BY run_id, seq",
                args,
            ).fetchall()
            outs = conn.execute(
                f"SELECT run_id, stage, path, hash FROM run_outs WHERE run_id IN ({chosen}) ORDER BY path",
                args,
            ).fetchall()
        runs: dict[str, RunRecord] = {}
        for run_id, started, ended, status, commit, dirty, targets, command, environment in rows:
            runs[run_id] = RunRecord(
                id=run_id,
                started_at=started,
                ended_at=ended,
                status="interrupted" if status == "running" and run_id in self._dead else status,
                commit=commit,
                dirty=bool(dirty),
                targets=json.loads(targets),
                command=command,
                environment=json.loads(environment),
            )
        for run_id, key, value in params:
            runs[run_id].params[key] = json.loads(value)
        for run_id, key, value in metrics:
            runs[run_id].metrics[key] = json.loads(value)
        by_name: dict[tuple[str, str], StageRecord] = {}
        for run_id, name, status, started, duration, attempts, error in stages:
            stage = StageRecord(name, status, started, duration, attempts, {}, error)
            runs[run_id].stages.append(stage)
            by_name[run_id, name] = stage
        for run_id, stage_name, path, digest in outs:
            by_name[run_id, stage_name].outs[path] = digest
        return list(runs.values())


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _check_status(status: str, allowed: Sequence[str], what: str) -> None:
    if status not in allowed:
        raise UsageError(f"{what}: unknown status '{status}'", hint=f"use one of {', '.join(allowed)}")


def _unknown(ref: str) -> UsageError:
    return UsageError(f"no run '{ref}'", hint="'conveyor runs list' shows the recorded runs")


def _translate(exc: sqlite3.Error, path: Path, action: str) -> ConveyorError:
    """An SQLite error as the one-line error a user can act on."""
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return WorkspaceLockedError(
            f"{path}: cannot {action}: another process holds the run store", hint="wait and run the command again"
        )
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return CorruptFileError(
            f"{path}: cannot {action}: {text}",
            hint="move the file aside (conveyor starts a new, empty run store) or restore it from a backup",
        )
    if "full" in lowered:
        return StorageError(f"{path}: cannot {action}: disk full", hint="free some disk space and run it again")
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        return StorageError(f"{path}: cannot {action}: {text}", hint="check the permissions of the file and its folder")
    return StorageError(f"{path}: cannot {action}: {text}", hint="fix the cause and run the command again")


# -- is the process of a run still there? ----------------------------------------------------

_PROC = Path("/proc")


@dataclass(frozen=True)
class _Here:
    host: str
    boot_id: str | None


_here: _Here | None = None


def _host_info() -> _Here:
    global _here
    if _here is None:
        import socket

        try:
            boot_id: str | None = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            boot_id = None
        _here = _Here(socket.gethostname(), boot_id)
    return _here


def _host() -> str:
    return _host_info().host


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks after boot) of ``pid`` from /proc, or None."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ", comm may hold spaces
    return fields[0], fields[19]


def _process_start(pid: int) -> str | None:
    """What tells this process from a later one with the same pid: boot id and start time."""
    stat = _proc_stat(pid)
    boot_id = _host_info().boot_id
    if stat is None or boot_id is None:
        return None
    return f"{boot_id}:{stat[1]}"


def _alive(host: str, pid: int | None, process_start: str | None) -> bool:
    """Whether a run's process may still be running; runs of other hosts are given the benefit."""
    if host != _host() or pid is None:
        return True
    if process_start is not None and _host_info().boot_id is not None:
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):  # gone, or dead and waiting to be reaped
            return False
        return f"{_host_info().boot_id}:{stat[1]}" == process_start  # else the pid was reused
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return True
    return True


# -- ids, environment, git -------------------------------------------------------------------


def new_run_id(at: float | None = None) -> str:
    """A new run id such as ``20261127-093012-3f9a1c``: UTC start time, then 24 random bits.

    Ids sort by time (to the second), so a prefix such as ``20261127`` names a day's runs.
    """
    import secrets

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if at is None else at))
    return f"{stamp}-{secrets.token_hex(3)}"


_environment: dict[str, str] | None = None


def environment_info() -> dict[str, str]:
    """Where a run ran: Python, platform, conveyor's version, and a fingerprint of every
    installed distribution (``packages``: BLAKE3 of the sorted ``name==version`` lines).

    Computed once per process (a few milliseconds: distributions are read from the names
    of their ``.dist-info`` folders, not their metadata files).
    """
    global _environment
    if _environment is None:
        import platform

        from blake3 import blake3

        from conveyor import __version__

        packages = installed_distributions()
        _environment = {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "conveyor": __version__,
            "packages": blake3("\n".join(packages).encode()).hexdigest(),
            "package_count": str(len(packages)),
        }
    return dict(_environment)


def installed_distributions() -> list[str]:
    """Sorted ``name==version`` of the distributions importlib.metadata finds on ``sys.path``.

    The same search as ``importlib.metadata.distributions()`` (``*.dist-info`` and
    ``*.egg-info`` in each ``sys.path`` folder; the first of a name wins, as for imports),
    but names and versions come from the folder names: reading every METADATA file costs
    about a millisecond a package. Names are normalised (PEP 503).
    """
    import re

    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue  # a zip file, or a folder that does not exist
        for name in names:
            if name.endswith(".dist-info"):  # NAME-VERSION.dist-info
                stem, dash, version = name[: -len(".dist-info")].rpartition("-")
                if not dash:
                    stem = version
                    version = ""
            elif name.endswith(".egg-info"):  # NAME-VERSION-pyX.Y.egg-info, or NAME.egg-info
                stem, _, rest = name[: -len(".egg-info")].partition("-")
                version = rest.split("-", 1)[0]
            else:
                continue
            if not version:
                version = _version_from_metadata(os.path.join(entry or ".", name)) or "unknown"
            key = re.sub(r"[-_.]+", "-", stem).lower()
            found.setdefault(key, version)
    return sorted(f"{name}=={version}" for name, version in found.items())


def _version_from_metadata(path: str) -> str | None:
    candidates = [path] if os.path.isfile(path) else [os.path.join(path, n) for n in ("METADATA", "PKG-INFO")]
    for candidate in candidates:
        try:
            with open(candidate, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if line.startswith("Version:"):
                        return line.partition(":")[2].strip()
                    if not line.strip():
                        break  # the end of the headers
        except OSError:
            continue
    return None


def git_state(root: Path) -> tuple[str | None, bool]:
    """(HEAD's commit, or None outside git or before the first commit; whether the work tree differs
    from it: changed tracked files, or new files git would see, which a checkout of the commit lacks).

    One ``git status`` call; it takes no lock on the index, so it never gets in the way of
    a git command the user runs meanwhile.
    """
    import subprocess

    try:
        proc = subprocess.run(
            ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=normal"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except OSError:  # no git, or no such folder
        return None, False
    if proc.returncode != 0:
        return None, False
    commit: str | None = None
    dirty = False
    for line in proc.stdout.splitlines():
        if line.startswith("# branch.oid "):
            oid = line[len("# branch.oid ") :].strip()
            commit = None if oid == "(initial)" else oid
        elif line and not line.startswith("#"):
            dirty = True
    return commit, dirty
