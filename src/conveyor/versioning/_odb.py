"""The content-addressed object store: ``<cache>/<2 hex>/<62 hex>``, read-only, written atomically.

Writes go through an :class:`ObjectBatch`: each object is written to a temp file in the
store's temp folder (same filesystem), then one ``syncfs`` makes the whole batch durable
and only then is each temp renamed to its final name, so a name in the store always has
its full, durable content. This is git's loose-object layout; the batch is also the unit
a later pack format (many small objects as one file, for transfers) will be written in.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from conveyor import _fs
from conveyor.errors import CorruptObjectError, ObjectMissingError, storage_error
from conveyor.versioning._hashing import SMALL_FILE, hash_bytes, hash_fd, is_hash

OBJECT_MODE = 0o444
_LIST_THRESHOLD = 2048  # digests, past which listing shards beats one stat per object
_FSYNC_EACH_MAX = 32  # pending objects, up to which an fsync each beats one syncfs


# Objects this process wrote or checked against their hash, by path: (inode, size, mtime_ns).
# A checkout in the same process (``pull``) may copy them in the kernel without hashing again.
VERIFIED: dict[str, tuple[int, int, int]] = {}


def note_verified(path: str) -> None:
    st = os.stat(path)
    VERIFIED[path] = (st.st_ino, st.st_size, st.st_mtime_ns)


def is_verified(path: str, st: os.stat_result) -> bool:
    return VERIFIED.get(path) == (st.st_ino, st.st_size, st.st_mtime_ns)


# Small objects this process just received and checked against their hash, up to a budget: a
# pull's checkout writes them from memory instead of opening and hashing each cache object again.
_FRESH: dict[str, bytes] = {}
_FRESH_BUDGET = 64 * 1024 * 1024
_fresh_bytes = 0


def note_fresh(digest: str, data: bytes) -> None:
    global _fresh_bytes
    if _fresh_bytes + len(data) <= _FRESH_BUDGET and digest not in _FRESH:
        _FRESH[digest] = data
        _fresh_bytes += len(data)


def fresh_bytes(digest: str) -> bytes | None:
    """The verified content of ``digest`` if this process just received it, else None."""
    return _FRESH.get(digest)


def forget_fresh() -> None:
    global _fresh_bytes
    _FRESH.clear()
    _fresh_bytes = 0


class ObjectStore:
    """A folder of immutable objects named by the BLAKE3 hash of their content."""

    def __init__(self, root: Path, tmp_dir: Path) -> None:
        self.root = root
        self.tmp_dir = tmp_dir
        self._shards: set[str] = set()
        self._unsynced: set[str] = set()  # published by batches that left durability to sync()

    def path(self, digest: str) -> str:
        return f"{self.root}/{digest[:2]}/{digest[2:]}"

    def exists(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def missing(self, digests: set[str]) -> set[str]:
        """The subset of ``digests`` not in the store, in one pass for any number of them.

        Past a few thousand, listing the shards (one ``getdents`` each) is cheaper than one
        ``stat`` per object; this is also the batched existence check remotes will share.
        """
        if len(digests) < _LIST_THRESHOLD:
            return {digest for digest in digests if not os.path.exists(self.path(digest))}
        present: set[str] = set()
        for shard in {digest[:2] for digest in digests}:
            try:
                present.update(shard + name for name in os.listdir(f"{self.root}/{shard}"))
            except FileNotFoundError:
                continue
        return digests - present

    def read_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        try:
            with open(self.path(digest), "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise ObjectMissingError(
                f"object {digest} is not in the cache {self.root}",
                hint="re-add the data it came from, or fetch it from a remote",
            ) from None
        if verify and hash_bytes(data) != digest:
            raise CorruptObjectError(
                f"{self.path(digest)}: cache object is corrupt (its content does not match its hash)",
                hint="delete it and restore the data with 'conveyor add' or a fetch",
            )
        return data

    def add_bytes(self, data: bytes) -> str:
        """Store ``data`` durably now; for the few small objects (manifests) outside a batch."""
        with self.batch() as batch:
            digest = batch.add_bytes(data)
        return digest

    def batch(self, *, durable: bool = True) -> ObjectBatch:
        """A batch of objects to store. ``durable=False`` publishes them without waiting for the
        disk; the caller then calls :meth:`sync` before it records anything that names them."""
        return ObjectBatch(self, durable=durable)

    def sync(self) -> None:
        """Make the objects published by non-durable batches durable, names and content."""
        if not self._unsynced:
            return
        try:
            if len(self._unsynced) <= _FSYNC_EACH_MAX:
                for digest in self._unsynced:
                    with contextlib.suppress(FileNotFoundError):  # gone already: nothing to keep
                        _fs.fsync_file(self.path(digest))
                for shard in {digest[:2] for digest in self._unsynced}:
                    _fs.fsync_dir(f"{self.root}/{shard}")
            else:
                _fs.syncfs(self.root)
        except OSError as exc:
            raise storage_error(exc, self.root, "sync cache objects") from exc
        self._unsynced.clear()

    def iter_digests(self) -> Iterator[str]:
        try:
            shards = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for shard in shards:
            if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
                continue
            with os.scandir(shard.path) as entries:
                for entry in entries:
                    digest = shard.name + entry.name
                    if is_hash(digest):
                        yield digest

    def remove(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(digest))

    def ensure_shard(self, digest: str) -> None:
        shard = digest[:2]
        if shard not in self._shards:
            os.makedirs(f"{self.root}/{shard}", exist_ok=True)
            self._shards.add(shard)


class ObjectBatch:
    """Objects staged in temp files and published together by :meth:`commit`.

    Used as a context manager: leaving the block normally commits, an exception discards
    every staged temp file. Flushes itself when it grows large, so memory stays bounded.
    """

    MAX_PENDING_FILES = 4096
    MAX_PENDING_BYTES = 512 * 1024 * 1024

    def __init__(self, store: ObjectStore, *, durable: bool = True) -> None:
        self.store = store
        self.durable = durable
        self._pending: dict[str, str] = {}  # digest -> temp path
        self._present: set[str] = set()  # digests known to be stored already
        self._pending_bytes = 0
        self.written = 0
        self.bytes_written = 0
        store.tmp_dir.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> ObjectBatch:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def has(self, digest: str) -> bool:
        return digest in self._present or digest in self._pending or self.store.exists(digest)

    def learn_present(self, digests: set[str]) -> set[str]:
        """Check many digests at once, so :meth:`has` answers them without a stat each.

        Returns those of ``digests`` that are stored.
        """
        present = digests - self.store.missing(digests)
        self._present |= present
        return present

    def add_bytes(self, data: bytes | memoryview, source: str | None = None) -> str:
        """Stage ``data`` (read from ``source``, for error messages) unless it is stored."""
        digest = hash_bytes(data)
        if not self.has(digest):
            tmp = _fs.tmp_name(self.store.tmp_dir)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OBJECT_MODE)
                try:
                    _fs.write_all(fd, data)
                finally:
                    os.close(fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise _cache_write_error(exc, source, self.store.root) from exc
            self._stage(digest, tmp, len(data))
        return digest

    def add_file(self, path: str, known_digest: str | None = None, size: int | None = None) -> tuple[str, int]:
        """Hash ``path`` and stage its content unless the store has it; one read either way.

        ``known_digest`` (from the state database) lets an unchanged file of ``size`` bytes
        skip the read entirely when its object is already stored.
        """
        if known_digest is not None and self.has(known_digest):
            return known_digest, os.stat(path).st_size if size is None else size
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            from conveyor.errors import MissingFileError

            raise MissingFileError(
                f"{path}: cannot read ({os.strerror(exc.errno or 0)})", hint="check that it exists and is readable"
            ) from exc
        try:
            size = os.fstat(fd).st_size
            if size <= SMALL_FILE:
                data = os.read(fd, size + 1)
                if len(data) <= size:
                    return self.add_bytes(data, source=path), len(data)
                os.lseek(fd, 0, os.SEEK_SET)
            return self._add_stream(fd, path)
        finally:
            os.close(fd)

    def _add_stream(self, src_fd: int, source: str) -> tuple[str, int]:
        tmp = _fs.tmp_name(self.store.tmp_dir)
        try:
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OBJECT_MODE)
            try:
                digest, size = hash_fd(src_fd, sink=lambda chunk: _fs.write_all(out, chunk))
            finally:
                os.close(out)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise _cache_write_error(exc, source, self.store.root) from exc
        if self.has(digest):
            os.unlink(tmp)
        else:
            self._stage(digest, tmp, size)
        return digest, size

    def add_verified_temp(self, digest: str, tmp: str, size: int) -> None:
        """Stage a temp file (in the store's temp folder) whose content was checked to hash to ``digest``."""
        if self.has(digest):
            os.unlink(tmp)
        else:
            self._stage(digest, tmp, size)

    def _stage(self, digest: str, tmp: str, size: int) -> None:
        self._pending[digest] = tmp
        self._pending_bytes += size
        self.written += 1
        self.bytes_written += size
        if len(self._pending) >= self.MAX_PENDING_FILES or self._pending_bytes >= self.MAX_PENDING_BYTES:
            self.commit()

    def commit(self) -> None:
        """Make staged content durable, then give every object its final name."""
        if not self._pending:
            return
        if not self.durable:
            try:
                for digest, tmp in self._pending.items():
                    self.store.ensure_shard(digest)
                    _fs.publish(tmp, self.store.path(digest))
                    self.store._unsynced.add(digest)
            except OSError as exc:
                self.discard()
                raise storage_error(exc, self.store.root, "publish cache objects") from exc
            self._pending.clear()
            self._pending_bytes = 0
            return
        few = len(self._pending) <= _FSYNC_EACH_MAX
        try:
            if few:  # syncfs would also wait for every other process's dirty pages
                for tmp in self._pending.values():
                    _fs.fsync_file(tmp)
            else:
                _fs.syncfs(self.store.tmp_dir)
            for digest, tmp in self._pending.items():
                self.store.ensure_shard(digest)
                _fs.publish(tmp, self.store.path(digest))
            if few:
                for shard in {digest[:2] for digest in self._pending}:
                    _fs.fsync_dir(f"{self.store.root}/{shard}")
            else:
                _fs.syncfs(self.store.root)
        except OSError as exc:
            self.discard()
            raise storage_error(exc, self.store.root, "publish cache objects") from exc
        self._pending.clear()
        self._pending_bytes = 0

    def discard(self) -> None:
        for tmp in self._pending.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._pending.clear()
        self._pending_bytes = 0


def _cache_write_error(exc: OSError, source: str | None, root: Path) -> Exception:
    if source is None:
        return storage_error(exc, root, "write a cache object")
    return storage_error(exc, source, f"copy it into the cache at {root}")
