"""The state database: which content hash a file had when it last had this (inode, mtime, size).

It spares re-hashing unchanged files. An entry is trusted only when the file's mtime is
well before the moment the entry was recorded: a file changed again within the same
timestamp tick would otherwise keep its old (inode, mtime, size) and hide the change
(git's "racy clean" problem). Such entries are re-hashed and recorded again.

A second table remembers, for each tracked folder, a fingerprint of every file's
(path, inode, mtime, size, mode) with the manifest hash it produced, so an unchanged
folder of 100,000 files costs one walk and one hash of its stat data.

SQLite in WAL mode: crash-safe, so a killed process leaves the database as it was.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

RACY_NS = 2_000_000_000  # coarser than any common filesystem's timestamp granularity

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, ino INTEGER, mtime_ns INTEGER, size INTEGER,
    digest TEXT, recorded_ns INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trees (
    path TEXT PRIMARY KEY, fingerprint TEXT, digest TEXT,
    max_mtime_ns INTEGER, recorded_ns INTEGER
) WITHOUT ROWID;
"""


class Stat(NamedTuple):
    ino: int
    mtime_ns: int
    size: int

    @classmethod
    def of(cls, st: os.stat_result) -> Stat:
        return cls(st.st_ino, st.st_mtime_ns, st.st_size)


class StateDB:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            try:
                conn.executescript(_SCHEMA)
            except sqlite3.DatabaseError:
                # A damaged state database only costs re-hashing: start a fresh one.
                conn.close()
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
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
        row = self.conn.execute(
            "SELECT ino, mtime_ns, size, digest, recorded_ns FROM files WHERE path = ?", (path,)
        ).fetchone()
        if row is None or not self._trusted(Stat(row[0], row[1], row[2]), st, row[4]):
            return None
        return str(row[3])

    def get_under(self, folder: str) -> dict[str, tuple[Stat, str, int]]:
        """Every entry below ``folder`` in one query, for walking a large tracked folder."""
        rows = self.conn.execute(
            "SELECT path, ino, mtime_ns, size, digest, recorded_ns FROM files WHERE path > ? AND path < ?",
            (folder + "/", folder + "0"),  # '0' sorts right after '/'
        )
        return {r[0]: (Stat(r[1], r[2], r[3]), r[4], r[5]) for r in rows}

    def lookup(self, cached: dict[str, tuple[Stat, str, int]], path: str, st: Stat) -> str | None:
        hit = cached.get(path)
        if hit is None or not self._trusted(hit[0], st, hit[2]):
            return None
        return hit[1]

    def put_many(self, rows: Iterable[tuple[str, Stat, str]]) -> None:
        now = time.time_ns()
        conn = self.conn
        conn.execute("BEGIN")
        try:
            conn.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                ((path, s.ino, s.mtime_ns, s.size, digest, now) for path, s, digest in rows),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def forget(self, paths: Iterable[str]) -> None:
        self.conn.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in paths))

    # -- trees ---------------------------------------------------------------------------

    def get_tree(self, path: str, fingerprint: str) -> str | None:
        row = self.conn.execute(
            "SELECT fingerprint, digest, max_mtime_ns, recorded_ns FROM trees WHERE path = ?", (path,)
        ).fetchone()
        if row is None or row[0] != fingerprint or row[3] - row[2] <= RACY_NS:
            return None
        return str(row[1])

    def forget_tree(self, path: str) -> None:
        self.conn.execute("DELETE FROM trees WHERE path = ?", (path,))

    def put_tree(self, path: str, fingerprint: str, digest: str, max_mtime_ns: int) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO trees VALUES (?, ?, ?, ?, ?)",
            (path, fingerprint, digest, max_mtime_ns, time.time_ns()),
        )
