"""Filesystem primitives: atomic writes, temp files, links, durable batches.

Everything conveyor writes reaches its final name by ``rename`` from a temp file on the
same filesystem, so a process killed at any moment leaves either the old file or the
new one, never half of one. Durability is batched: many small files are written, then
one ``syncfs`` makes their contents durable before any of them is renamed into place,
which costs one flush instead of one ``fsync`` per file (about 300 µs each here).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import itertools
import os
import stat
from collections.abc import Callable, Iterator

from conveyor.errors import storage_error

TMP_PREFIX = ".cvytmp-"

_BLOATED_DIR = 256 * 1024  # bytes of directory entries
_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


@functools.cache
def _syncfs_call() -> Callable[[int], int] | None:
    """libc's ``syncfs``, loaded on first use (ctypes costs start-up time every command would pay)."""
    import ctypes

    try:
        syncfs_fn: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
        return syncfs_fn
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return None


def syncfs(path: str | os.PathLike[str]) -> None:
    """Flush every dirty page of the filesystem holding ``path`` (one call, not one per file)."""
    call = _syncfs_call()
    fd = os.open(path, os.O_RDONLY)
    try:
        if call is None or call(fd) != 0:  # pragma: no cover - kernel refused
            os.sync()
    finally:
        os.close(fd)


@functools.cache
def _sync_file_range_call() -> Callable[[int, int, int, int], int] | None:
    """libc's ``sync_file_range`` (Linux), loaded on first use."""
    import ctypes

    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    return call


_SYNC_FILE_RANGE_WRITE = 2
_COPY_STEP = 32 * 1024 * 1024


def copy_file(src: str, dst: str, *, mode: int = 0o644, durable: bool = True) -> int:
    """Copy ``src`` to a new file ``dst`` in the kernel; returns the size. ``durable`` makes the
    content survive a power loss before this returns.

    The disk writes start behind each 32 MiB step (``sync_file_range``) instead of all at the
    final ``fdatasync``, so the flush overlaps the copy: a GiB here takes 0.5 s, against 0.8 s
    for ``shutil.copyfile`` and an ``fsync``.
    """
    kick = _sync_file_range_call() if durable else None
    src_fd = os.open(src, os.O_RDONLY)
    try:
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            done = 0
            kernel_copy = True
            while True:
                if kernel_copy:
                    try:
                        n = os.copy_file_range(src_fd, out, _COPY_STEP)
                    except OSError as exc:  # across filesystems on old kernels, or not supported
                        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                            raise
                        kernel_copy = False
                        continue
                else:
                    chunk = os.read(src_fd, _COPY_STEP)
                    write_all(out, chunk)
                    n = len(chunk)
                if not n:
                    break
                if kick is not None:
                    kick(out, done, n, _SYNC_FILE_RANGE_WRITE)
                done += n
            if durable:
                os.fdatasync(out)
        finally:
            os.close(out)
    finally:
        os.close(src_fd)
    return done


def fsync_file(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_tmp_tag: tuple[int, str, itertools.count[int]] | None = None


def tmp_name(directory: str | os.PathLike[str], hint: str = "") -> str:
    """A fresh temp path inside ``directory``; leftovers carry :data:`TMP_PREFIX` so they can be swept.

    Unique by a random tag drawn once per process (again after a fork) and a counter, not a
    ``getrandom`` call per name: a pull names tens of thousands of temp files.
    """
    global _tmp_tag
    pid = os.getpid()
    if _tmp_tag is None or _tmp_tag[0] != pid:
        _tmp_tag = (pid, os.urandom(6).hex(), itertools.count())
    return os.path.join(directory, f"{TMP_PREFIX}{hint}{_tmp_tag[1]}-{next(_tmp_tag[2]):x}")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644, sync: str = "all") -> None:
    """Write ``data`` to ``path`` so that readers see the old content or all of the new.

    ``sync`` says what survives a power loss: "all" (the content and the new name), "data"
    (the content; the old file may come back), or "none" (for files conveyor can rebuild).
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    tmp = tmp_name(directory)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            write_all(fd, data)
            if sync != "none":
                os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)  # the umask may have narrowed the mode given to open
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise storage_error(exc, path, "write") from exc
    if sync == "all":
        with contextlib.suppress(OSError):
            fsync_dir(directory)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, sync: str = "all") -> None:
    atomic_write_bytes(path, text.encode("utf-8"), sync=sync)


def publish(tmp: str, dest: str) -> None:
    """Give the complete file ``tmp`` the name ``dest`` atomically, replacing what is there.

    Where ``dest`` does not exist yet, a hard link plus an unlink does it: on ext4 a
    ``rename`` of a freshly written file forces its delayed block allocation, which made
    publishing 100,000 small files about eight times slower (140 µs against 16 µs each).
    Readers see no name, or the full content, either way.
    """
    try:
        os.link(tmp, dest, follow_symlinks=False)  # a symlink is published as itself
    except FileExistsError:
        os.replace(tmp, dest)
        return
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        os.replace(tmp, dest)  # a filesystem without hard links
        return
    os.unlink(tmp)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def remove(path: str | os.PathLike[str]) -> None:
    """Remove a file, link or directory tree, whatever is there; read-only entries too."""
    path = os.fspath(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        import shutil

        try:
            shutil.rmtree(path)
        except PermissionError:
            # read-only folders (a user's chmod) block unlinking their entries: open them up
            for folder, dirs, _files in os.walk(path):
                for name in dirs:
                    os.chmod(os.path.join(folder, name), 0o755)
            os.chmod(path, 0o755)
            shutil.rmtree(path)
    else:
        os.unlink(path)


def reflink(src: str, dst: str) -> None:
    """Clone ``src`` to ``dst`` sharing extents (btrfs, XFS, APFS...); raises OSError where unsupported."""
    src_fd = os.open(src, os.O_RDONLY)
    try:
        dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.ioctl(dst_fd, _FICLONE, src_fd)
        except OSError:
            os.close(dst_fd)
            os.unlink(dst)
            raise
        os.close(dst_fd)
    finally:
        os.close(src_fd)


def sweep_tmp(directory: str | os.PathLike[str]) -> int:
    """Empty conveyor's private temp folder of what killed processes left.

    Call only while holding the workspace lock: then no live process owns anything there.
    """
    removed = 0
    try:
        entries = list(os.scandir(directory))
        bloated = os.stat(directory).st_size > _BLOATED_DIR
    except FileNotFoundError:
        return 0
    if bloated:
        # ext4 folders never shrink, and creating files in one that once held many
        # thousands costs twice as much: start a fresh one instead.
        remove(directory)
        os.mkdir(directory)
        return len(entries)
    for entry in entries:
        with contextlib.suppress(OSError):
            remove(entry.path)
            removed += 1
    return removed


@contextlib.contextmanager
def removing_on_error(path: str) -> Iterator[None]:
    """Remove ``path`` if the block fails, so no partial file survives."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
