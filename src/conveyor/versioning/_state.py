"""The state database: which content hash a file had when it last had this (inode, mtime, size).

It spares re-hashing unchanged files. An entry is trusted only when the file's mtime is
well before the moment the entry was recorded: a file changed again within the same
timestamp tick would otherwise keep its old (inode, mtime, size) and hide the change
(git's "racy clean" problem). Such entries are re-hashed and recorded again.

A second table remembers, for each tracked folder, a fingerprint of every file's
(path, inode, mtime, size, mode) with the manifest hash it produced, so an unchanged
folder of 100,000 files costs one walk and one hash of its stat data; and, for a folder
that did change, every file's stat and hash in one ``marshal`` value kept in a file of
its own beside the database (``state.trees/<blake3 of the value>``): rewriting ten
megabytes through SQLite's write-ahead log and checkpoints costs several times more.

SQLite in WAL mode: crash-safe, so a killed process leaves the database as it was. A
table file is written before the row that names it and checked against that name when
read, so a kill between the two only costs a re-hash.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from blake3 import blake3

RACY_NS = 2_000_000_000  # coarser than any common filesystem's timestamp granularity
_PRELOAD_AFTER = 256  # single-file lookups before the files table is read whole
_VERSION = 7  # bump when the tables change: the state is only a cache, so it is rebuilt

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, ino INTEGER, mtime_ns INTEGER, size INTEGER,
    digest TEXT, recorded_ns INTEGER, ctime_ns INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trees (
    path TEXT PRIMARY KEY, fingerprint TEXT, digest TEXT,
    max_mtime_ns INTEGER, recorded_ns INTEGER, files TEXT, stored_epoch INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER) WITHOUT ROWID;
"""


class Stat(NamedTuple):
    """What identifies a file's content without reading it. The ctime matters: ``cp -p``,
    ``rsync -t`` or ``tar -x`` can rewrite a file and restore its mtime, but no one can set
    the ctime back."""

    ino: int
    mtime_ns: int
    size: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Stat:
        return cls(st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)


class StateDB:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        # rows this process found trusted, by path: asked again with the same stat data (a
        # pipeline's shared deps are looked up once per stage), the answer is the same
        self._trusted_rows: dict[str, tuple[Stat, str]] = {}
        self._lookups = 0
        self._table: dict[str, tuple[Any, ...]] | None = None  # the files table, once read whole

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                if conn.execute("PRAGMA user_version").fetchone()[0] != _VERSION:
                    conn.executescript(
                        f"DROP TABLE IF EXISTS files; DROP TABLE IF EXISTS trees; DROP TABLE IF EXISTS meta; {_SCHEMA}"
                    )
                    conn.execute(f"PRAGMA user_version = {_VERSION}")
                conn.executescript(_SCHEMA)
            except sqlite3.DatabaseError:
                # A damaged state database only costs re-hashing: start a fresh one.
                conn.close()
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version = {_VERSION}")
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- files ---------------------------------------------------------------------------

    @staticmethod
    def _trusted(row_stat: Stat, st: Stat, recorded_ns: int) -> bool:
        return row_stat == st and recorded_ns - st.mtime_ns > RACY_NS

    def get(self, path: str, st: Stat) -> str | None:
        known = self._trusted_rows.get(path)
        if known is not None and known[0] == st:
            return known[1]
        if self._table is None:
            self._lookups += 1
            if self._lookups == _PRELOAD_AFTER:
                # a command asking for this many files asks for many more (a pipeline of
                # thousands of stages): one read of the table beats a query per file
                self._table = {
                    row[0]: row[1:]
                    for row in self.conn.execute(
                        "SELECT path, ino, mtime_ns, size, digest, recorded_ns, ctime_ns FROM files"
                    )
                }
        if self._table is not None:
            found = self._table.get(path)
            row = found
        else:
            row = self.conn.execute(
                "SELECT ino, mtime_ns, size, digest, recorded_ns, ctime_ns FROM files WHERE path = ?", (path,)
            ).fetchone()
        if row is None or not self._trusted(Stat(row[0], row[1], row[2], row[5]), st, row[4]):
            return None
        if len(self._trusted_rows) >= 100_000:
            self._trusted_rows.clear()
        self._trusted_rows[path] = (st, str(row[3]))
        return str(row[3])

    def put_many(self, rows: Iterable[tuple[str, Stat, str]]) -> None:
        now = time.time_ns()
        # a row recorded within RACY_NS of the file's mtime is never trusted (see _trusted): writing
        # it would only cost a transaction, once per stage in a pipeline of small stages
        settled = [(path, s.ino, s.mtime_ns, s.size, digest, now, s.ctime_ns) for path, s, digest in rows]
        settled = [row for row in settled if now - row[2] > RACY_NS]
        for row in settled:
            self._trusted_rows.pop(row[0], None)
            if self._table is not None:
                self._table[row[0]] = row[1:]
        if not settled:
            return
        conn = self.conn
        conn.execute("BEGIN")
        try:
            conn.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", settled)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def forget(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        for path in paths:
            self._trusted_rows.pop(path, None)
            if self._table is not None:
                self._table.pop(path, None)
        self.conn.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in paths))

    # -- trees ---------------------------------------------------------------------------

    def get_tree(self, path: str) -> TreeState | None:
        row = self.conn.execute(
            "SELECT fingerprint, digest, max_mtime_ns, recorded_ns, stored_epoch FROM trees WHERE path = ?", (path,)
        ).fetchone()
        if row is None:
            return None
        tree = TreeState(self, path, row[0], row[1], row[2], row[3])
        tree.all_stored = row[4] is not None and row[4] == self.cache_epoch()
        return tree

    # -- what the cache is known to hold ---------------------------------------------------

    def cache_epoch(self) -> int:
        """A counter bumped whenever objects may have left the cache (gc, a failed verify)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'cache_epoch'").fetchone()
        return 0 if row is None else int(row[0])

    def bump_cache_epoch(self) -> None:
        self.conn.execute("INSERT INTO meta VALUES ('cache_epoch', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1")

    def mark_stored(self, path: str, digest: str) -> None:
        """Note that every object of the folder version ``digest`` is now in the cache.

        Until the cache epoch moves, an add of that folder can skip checking the cache for
        the objects of its unchanged files. Call only after the objects were committed.
        """
        self.conn.execute(
            "UPDATE trees SET stored_epoch = ? WHERE path = ? AND digest = ?", (self.cache_epoch(), path, digest)
        )

    @property
    def tables_dir(self) -> Path:
        return self.path.with_name(self.path.name + ".trees")

    def _tree_files(self, path: str) -> bytes:
        row = self.conn.execute("SELECT files FROM trees WHERE path = ?", (path,)).fetchone()
        if row is None or not row[0]:
            return b""
        try:
            data = (self.tables_dir / row[0]).read_bytes()
        except OSError:
            return b""
        return data if blake3(data).hexdigest() == row[0] else b""  # torn by a crash: not used

    def forget_tree(self, path: str) -> None:
        self.conn.execute("DELETE FROM trees WHERE path = ?", (path,))

    def put_tree(
        self, path: str, fingerprint: str, digest: str, max_mtime_ns: int, files: dict[str, tuple[Any, ...]]
    ) -> None:
        """Remember a folder's fingerprint, manifest hash and per-file ``(ino, mtime, size, digest, exec, ctime)``.

        The per-file table is one ``marshal`` value (format 2: data types only, nothing is
        executed on load, unlike pickle; ten times faster than JSON for 100,000 entries).
        It is a cache: one another Python version cannot read is simply not used.
        """
        data = marshal.dumps(files, 2)
        name = blake3(data).hexdigest()
        self.tables_dir.mkdir(exist_ok=True)
        table = self.tables_dir / name
        if not table.exists():
            tmp = self.tables_dir / f".tmp-{os.getpid()}-{name}"
            tmp.write_bytes(data)
            os.replace(tmp, table)
        old = self.conn.execute("SELECT files FROM trees WHERE path = ?", (path,)).fetchone()
        self.conn.execute(
            "INSERT OR REPLACE INTO trees VALUES (?, ?, ?, ?, ?, ?, NULL)",
            (path, fingerprint, digest, max_mtime_ns, time.time_ns(), name),
        )
        if old is not None and old[0] and old[0] != name:
            self._drop_table(old[0])

    def _drop_table(self, name: str) -> None:
        """Delete a per-file table file no row names any more, and leftovers of killed writers."""
        in_use = {row[0] for row in self.conn.execute("SELECT files FROM trees")}
        for entry in os.scandir(self.tables_dir):
            if (entry.name == name and name not in in_use) or entry.name.startswith(".tmp-"):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


class TreeState:
    """What the state database knows about a folder from the last time it was hashed."""

    __slots__ = ("_db", "_files", "all_stored", "digest", "fingerprint", "max_mtime_ns", "path", "recorded_ns")

    def __init__(
        self, db: StateDB, path: str, fingerprint: str, digest: str, max_mtime_ns: int, recorded_ns: int
    ) -> None:
        self._db = db
        self.path = path
        self.fingerprint = fingerprint
        self.digest = digest
        self.max_mtime_ns = max_mtime_ns
        self.recorded_ns = recorded_ns
        self.all_stored = False  # every per-file hash is known to be in the cache
        self._files: dict[str, tuple[Any, ...]] | None = None

    def matches(self, fingerprint: str) -> bool:
        """True when the folder is unchanged: same stat data, and none of it racy."""
        return fingerprint == self.fingerprint and self.recorded_ns - self.max_mtime_ns > RACY_NS

    @property
    def files(self) -> dict[str, tuple[Any, ...]]:
        """Per-file ``(ino, mtime_ns, size, digest, exec, ctime_ns)``, read only when a folder did change."""
        if self._files is None:
            try:
                loaded = marshal.loads(self._db._tree_files(self.path))
            except (ValueError, EOFError, TypeError):
                loaded = None
            self._files = loaded if isinstance(loaded, dict) else {}
        return self._files

    def entries(self) -> dict[str, tuple[str, int]]:
        """``{path: (digest, executable)}``: the folder version this state was recorded for."""
        return {rel: (row[3], row[4]) for rel, row in self.files.items()}
