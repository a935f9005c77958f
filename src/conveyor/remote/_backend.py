"""One remote's storage, reached through fsspec: keys under a root, written so none is ever partial.

Object stores (S3, GCS, Azure) make an upload visible only once it is complete, so a key is
written in place. Filesystems (a folder, SSH) are written under ``tmp/`` and renamed. Every
backend error becomes one :class:`RemoteError` line naming the remote.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from conveyor import _fs
from conveyor.errors import ConveyorError, RemoteError
from conveyor.remote._config import Remote
from conveyor.versioning._hashing import copy_and_hash, hash_file

_ATOMIC_PUT = ("s3", "gs", "gcs", "az", "abfs", "memory")
_READ_ONLY = ("http", "https")


class _MemoryBudget:
    """Bytes that uploads may hold in memory at once across threads, whatever ``-j`` says (s3fs
    reads a whole object below two parts into memory, and each part in flight above that)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        with self._cond:
            # one upload may always run, even one larger than the whole budget
            self._cond.wait_for(lambda: self.used == 0 or self.used + amount <= self.limit)
            self.used += amount
        try:
            yield
        finally:
            with self._cond:
                self.used -= amount
                self._cond.notify_all()


_UPLOAD_MEMORY = _MemoryBudget(256 * 1024 * 1024)
_EXTRA = {"s3": "s3", "gs": "gs", "gcs": "gs", "az": "azure", "abfs": "azure", "ssh": "ssh", "sftp": "ssh"}


def _storage_options(remote: Remote) -> dict[str, Any]:
    """The remote's options as its fsspec backend names them; credentials otherwise come from the
    backend's own environment variables and config files."""
    options = dict(remote.options)
    options.pop("jobs", None)
    scheme = remote.scheme
    result: dict[str, Any] = {}
    if scheme == "s3":
        client: dict[str, Any] = {}
        if "endpoint_url" in options:
            client["endpoint_url"] = options.pop("endpoint_url")
        if "region" in options:
            client["region_name"] = options.pop("region")
        if client:
            result["client_kwargs"] = client
        renames = {"access_key_id": "key", "secret_access_key": "secret", "session_token": "token"}
        for ours, theirs in renames.items():
            if ours in options:
                result[theirs] = options.pop(ours)
        if "profile" in options:
            result["profile"] = options.pop("profile")
    elif scheme in ("ssh", "sftp"):
        for ours in ("username", "password"):
            if ours in options:
                result[ours] = options.pop(ours)
        if "key_filename" in options:  # asyncssh's name for it
            result["client_keys"] = [os.path.expanduser(options.pop("key_filename"))]
    result.update(options)  # anything else goes through as the backend's own option
    return result


class Backend:
    """Keys (``objects/ab/cd...``) under a remote's root, on any fsspec filesystem."""

    def __init__(self, remote: Remote, base: Path) -> None:
        self.remote = remote
        self.read_only = remote.scheme in _READ_ONLY
        self.atomic_put = remote.scheme in _ATOMIC_PUT
        with self.errors("connect"):
            import fsspec

            if remote.scheme == "file":
                url = remote.url[len("file://") :] if remote.url.startswith("file://") else remote.url
                self.root = str((base / os.path.expanduser(url)).resolve())
                self.fs = fsspec.filesystem("file")
                self.local = True
            else:
                self.fs, root = fsspec.core.url_to_fs(remote.url, **_storage_options(remote))
                self.root = root.rstrip("/")
                self.local = False
                loop = getattr(self.fs, "loop", None)
                if loop is not None:
                    loop.set_exception_handler(_quiet_connection_errors)

    # -- errors ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn whatever the backend raises into one line that names the remote and the fix."""
        try:
            yield
        except ConveyorError:
            raise
        except ImportError as exc:
            extra = _EXTRA.get(self.remote.scheme)
            hint = f"pip install 'conveyor[{extra}]'" if extra else f"install the fsspec backend: {exc}"
            raise RemoteError(
                f"remote '{self.remote.name}': {self.remote.scheme}:// needs a package", hint=hint
            ) from exc
        except FileNotFoundError as exc:
            raise RemoteError(
                f"remote '{self.remote.name}' ({self.remote.url}): not found during {action}: {_reason(exc)}",
                hint="check the URL (does the bucket or folder exist?) with 'conveyor remote list'",
            ) from exc
        except PermissionError as exc:
            raise RemoteError(
                f"remote '{self.remote.name}' ({self.remote.url}): access denied during {action}: {_reason(exc)}",
                hint="check the credentials (the backend's environment variables, or 'conveyor remote modify --local')",
            ) from exc
        except Exception as exc:  # network, protocol, server errors: the backends raise many kinds
            if "credential" in str(exc).lower():
                raise RemoteError(
                    f"remote '{self.remote.name}' ({self.remote.url}): no usable credentials: {_reason(exc)}",
                    hint="set the backend's environment variables or config files, "
                    "or 'conveyor remote modify NAME OPTION VALUE --local'",
                ) from exc
            raise RemoteError(
                f"remote '{self.remote.name}' ({self.remote.url}): {action} failed: {_reason(exc)}",
                hint="check that the remote is reachable, then run the command again; finished transfers are kept",
            ) from exc

    def check_writable(self) -> None:
        if self.read_only:
            raise RemoteError(
                f"remote '{self.remote.name}' ({self.remote.url}) is read-only",
                hint="push to a remote on a filesystem or object store",
            )

    def check_root(self, *, create_ok: bool) -> None:
        """Fail in one line if the remote's folder or bucket does not exist (a push may create a folder)."""
        if self.local:
            if not os.path.isdir(self.root) and not create_ok:
                raise RemoteError(
                    f"remote '{self.remote.name}': folder {self.root} does not exist",
                    hint="fix the URL with 'conveyor remote modify NAME url PATH', or push to it first",
                )
            return
        if self.remote.scheme in _READ_ONLY:
            with self.errors("reaching the server"):
                self.fs.info(self.root)  # HTTP listings swallow connection errors: ask once directly
            return
        if self.remote.scheme not in _ATOMIC_PUT:
            return
        bucket = self.root.split("/", 1)[0]
        with self.errors("checking the bucket"):
            exists = self.fs.exists(bucket)
        if not exists:
            raise RemoteError(
                f"remote '{self.remote.name}' ({self.remote.url}): bucket '{bucket}' does not exist",
                hint="create the bucket, or fix the URL with 'conveyor remote modify NAME url ...'",
            )

    # -- keys -----------------------------------------------------------------------------

    def path(self, key: str) -> str:
        return posixpath.join(self.root, key) if not self.local else os.path.join(self.root, key)

    def list_keys(self, prefix: str) -> dict[str, int]:
        """``{key: size}`` of every key under ``prefix`` (one listing, paginated by the backend)."""
        base = self.path(prefix)
        with self.errors(f"listing {prefix}"):
            if self.local:
                found: dict[str, int] = {}
                for folder, _dirs, files in os.walk(base):
                    for name in files:
                        full = os.path.join(folder, name)
                        with contextlib.suppress(FileNotFoundError):
                            found[os.path.relpath(full, self.root).replace(os.sep, "/")] = os.stat(full).st_size
                return found
            try:
                entries = self.fs.find(base, detail=True)
            except FileNotFoundError:
                return {}
            cut = len(self.root) + 1
            return {name[cut:]: int(info.get("size") or 0) for name, info in entries.items()}

    def read(self, key: str) -> bytes:
        with self.errors(f"reading {key}"):
            if self.local:
                with open(self.path(key), "rb") as handle:
                    return handle.read()
            return bytes(self.fs.cat_file(self.path(key)))

    def read_range(self, key: str, start: int, end: int) -> bytes:
        with self.errors(f"reading {key}"):
            if self.local:
                with open(self.path(key), "rb") as handle:
                    handle.seek(start)
                    return handle.read(end - start)
            data = bytes(self.fs.cat_file(self.path(key), start=start, end=end))
            if len(data) != end - start and len(data) >= end:
                data = data[start:end]  # a backend that ignores ranges (sshfs) sent the whole file
            return data

    def _part_options(self, size: int) -> dict[str, Any]:
        """Bounded memory for multipart uploads: s3fs holds ``max_concurrency * chunksize`` per file
        (500 MiB by default). Two parts of 64 MiB or more in flight (S3 allows at most 10,000 parts)
        hold 128 MiB per file; fewer, larger parts cost fewer requests, and on a server that
        checksums every part, less work for the same bytes."""
        if self.remote.scheme != "s3":
            return {}
        chunk = max(64 * 1024 * 1024, -(-size // 9000))
        return {"chunksize": chunk, "max_concurrency": 2}

    def download(self, key: str, dest: str) -> None:
        """Stream ``key`` into the new local file ``dest``, for reading now (not made durable)."""
        with self.errors(f"downloading {key}"):
            if self.local:
                _fs.copy_file(self.path(key), dest, durable=False)
            else:
                self._get(key, dest)

    def download_hashed(self, key: str, dest: str) -> tuple[str, int]:
        """Stream ``key`` into the new local file ``dest``, durably (it will enter the cache);
        returns the hash and size of what arrived."""
        with self.errors(f"downloading {key}"):
            if self.local:  # a kernel copy, hashed at the same time
                return copy_and_hash(self.path(key), dest)
            self._get(key, dest)
        return hash_file(dest)

    def _get(self, key: str, dest: str) -> None:
        # One streamed request per object: constant memory, and the object's bytes are read once
        # on the server (ranged parts each cost a request, and on some servers a whole read);
        # many objects still arrive in parallel, one per transfer job.
        self.fs.get_file(self.path(key), dest, max_concurrency=1)

    def upload(self, src: str, key: str, *, check: Callable[[str], None] | None = None) -> None:
        """Make ``key`` hold the local file ``src``; it is never visible incomplete.

        ``check`` gets the hash of the bytes being sent and may raise to stop them from
        becoming visible (a local copy is hashed while the kernel copies it).
        """
        self.check_writable()
        final = self.path(key)
        with self.errors(f"uploading {key}"):
            if check is not None and not self.local:
                check(hash_file(src)[0])
            if self.atomic_put:
                size = os.stat(src).st_size
                options = self._part_options(size)
                held = size
                if options and size >= 2 * options["chunksize"]:
                    held = options["chunksize"] * options["max_concurrency"]
                with _UPLOAD_MEMORY.hold(held):
                    self.fs.put_file(src, final, **options)
                return
            tmp = self.path(f"tmp/{uuid.uuid4().hex}")
            if self.local:
                os.makedirs(os.path.dirname(tmp), exist_ok=True)
                os.makedirs(os.path.dirname(final), exist_ok=True)
                try:
                    if check is not None:
                        check(copy_and_hash(src, tmp)[0])
                    else:
                        _fs.copy_file(src, tmp)
                    os.replace(tmp, final)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
                return
            self.fs.makedirs(posixpath.dirname(tmp), exist_ok=True)
            self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
            self.fs.put_file(src, tmp)
            self.fs.mv(tmp, final)

    def write(self, data: bytes, key: str) -> None:
        """Like :meth:`upload`, from memory (small index and run-cache files)."""
        self.check_writable()
        final = self.path(key)
        with self.errors(f"uploading {key}"):
            if self.atomic_put:
                self.fs.pipe_file(final, data)
                return
            tmp = self.path(f"tmp/{uuid.uuid4().hex}")
            if self.local:
                os.makedirs(os.path.dirname(tmp), exist_ok=True)
                os.makedirs(os.path.dirname(final), exist_ok=True)
                with open(tmp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, final)
                return
            self.fs.makedirs(posixpath.dirname(tmp), exist_ok=True)
            self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, final)

    def remove(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        self.check_writable()
        with self.errors("deleting"):
            if self.local:
                for key in keys:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.path(key))
                return
            self.fs.rm([self.path(k) for k in keys])


def _quiet_connection_errors(loop: Any, context: dict[str, Any]) -> None:
    """A connection lost mid-transfer fails the request that used it, which reports it in one
    line; the background task that was writing to it must not print a traceback as well."""
    exc = context.get("exception")
    if isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__module__.startswith("aiohttp"):
        return
    loop.default_exception_handler(context)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."
