"""Fixtures for the remote storage tests: real remotes behind one interface.

* ``s3_server`` (session): moto's S3 served over real HTTP from a thread of the test process,
  on ``127.0.0.1`` and a free port; its endpoint URL.
* ``aws_env``: credentials and region the standard way (``AWS_*`` environment variables), with
  empty config and credentials files so nothing on the machine interferes.
* ``remote``: parametrized over ``local`` (a folder outside the project) and ``s3`` (a fresh
  bucket on ``s3_server``); a :class:`Remote` that configures itself in a project through the
  CLI and inspects and tampers with what is stored, directly, through fsspec.
* ``flaky_s3_server``: an S3 server of the test's own that can die in the middle of a transfer
  (after N requests or after a delay: the listening socket and every open connection are shut)
  and be started again on the same port.

Use them in a test module by importing them (the functions are named ``fixture_NAME``, so the
test arguments do not shadow the import)::

    from remote_fixtures import fixture_aws_env, fixture_remote, fixture_s3_server  # noqa: F401

(``pytest_plugins = ["remote_fixtures"]`` in a test module clashes with importing the helpers
below from it: the module is then imported before pytest can rewrite its asserts.)

The remote layout inspected here: ``objects/<2 hex>/<62 hex>`` (loose objects),
``packs/<name>.pack`` with ``packs/<name>.idx`` (``conveyor-pack 1``, then ``<hash> <offset>
<size>`` a line), ``runs/<key>.json`` (run-cache bundles) and ``tmp/`` (uploads in flight).
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from blake3 import blake3

from conftest import Project, Result

KiB = 1024
MiB = 1024 * KiB

REGION = "us-east-1"
ACCESS_KEY_ID = "testing-key-id"
SECRET_ACCESS_KEY = "testing-secret"

BACKENDS = ["local", "s3"]


# -- an S3 server that can die mid-transfer ----------------------------------------------------


class S3Server:
    """moto's S3 served from a thread of this process, on 127.0.0.1.

    Like ``moto.server.ThreadedMotoServer``, but quiet, counting requests, and able to *die*:
    :meth:`die` closes the listening socket (new connections are refused) and shuts every open
    connection (a request in flight, even half-way through its body, sees its connection
    reset). :meth:`start` again listens on the same port. moto keeps its buckets and objects
    in this process, so a restarted server still holds what was stored before.
    """

    def __init__(self, port: int = 0) -> None:
        # not 0: a port the kernel picks comes from the ephemeral range, where an outgoing
        # connection of another test (PostgreSQL's, say) may take it while the server is dead
        self.port = port or port_outside_ephemeral_range()
        self.requests = 0
        self.died = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._dead = False
        self._die_after: int | None = None
        self._timers: list[threading.Timer] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        outer = self
        moto_app = DomainDispatcherApplication(create_backend_app)

        class Handler(MotoRequestHandler):
            def setup(self) -> None:
                super().setup()
                with outer._lock:
                    outer._connections.add(self.connection)

            def finish(self) -> None:
                with outer._lock:
                    outer._connections.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            def log(self, type: str, message: str, *args: Any) -> None:
                pass  # no request log in the test output

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            with outer._lock:
                outer.requests += 1
                dying = outer._dead or (outer._die_after is not None and outer.requests > outer._die_after)
            if dying:
                outer.die()
                with contextlib.suppress(OSError):
                    environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
                # a status line is owed before any write; writing it to the reset socket fails as
                # a dropped connection, which werkzeug expects (returning none trips its assertion)
                start_response("503 Service Unavailable", [("Content-Length", "0")])
                return []
            return moto_app(environ, start_response)

        for attempt in range(50):
            try:
                server = make_server("127.0.0.1", self.port, app, threaded=True, request_handler=Handler)
                break
            except (OSError, SystemExit):  # werkzeug reports a port in use by sys.exit(1)
                if attempt == 49 or self.port == 0:
                    raise
                time.sleep(0.1)  # the port of the previous incarnation is still being released
        server.handle_error = lambda request, client_address: None  # connections reset on purpose
        self._server = server
        self.port = server.server_address[1]
        self._dead = False
        self._die_after = None
        self.died.clear()
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def die(self) -> None:
        """Stop answering at once: refuse new connections, reset the open ones. Idempotent."""
        with self._lock:
            if self._dead:
                return
            self._dead = True
            server = self._server
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        # shutdown() waits for serve_forever to return: never from the server's own thread.
        threading.Thread(target=self._close, args=(server,), daemon=True).start()

    def _close(self, server: Any) -> None:
        if server is not None:
            server.shutdown()
            server.server_close()
        self.died.set()

    def die_after_requests(self, count: int) -> None:
        """Serve ``count`` more requests, then die when the next one arrives."""
        with self._lock:
            self._die_after = self.requests + count

    def die_after(self, seconds: float) -> None:
        timer = threading.Timer(seconds, self.die)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self.die()
        assert self.died.wait(10), "the S3 server did not stop"
        if self._thread is not None:
            self._thread.join(10)

    def restart(self) -> None:
        """Start again on the same port, after it died."""
        if not self._dead:
            self.stop()
        assert self.died.wait(10), "the S3 server did not stop"
        self.start()


def s3_client(endpoint: str) -> Any:
    """A plain botocore client for the test server (creating buckets; s3fs's ``mkdir`` sends
    ``LocationConstraint=us-east-1``, which S3 and moto reject)."""
    import botocore.session

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )


def s3_filesystem(endpoint: str) -> Any:
    """An s3fs filesystem on the test server, never cached, never caching listings."""
    import s3fs

    return s3fs.S3FileSystem(
        key=ACCESS_KEY_ID,
        secret=SECRET_ACCESS_KEY,
        client_kwargs={"endpoint_url": endpoint, "region_name": REGION},
        skip_instance_cache=True,
        use_listings_cache=False,
    )


def unique_bucket() -> str:
    return f"cvy-test-{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session", name="s3_server")
def fixture_s3_server() -> Iterator[str]:
    """One S3 server for the whole session (per xdist worker); yields its endpoint URL."""
    server = S3Server()
    server.start()
    yield server.endpoint
    server.stop()


@pytest.fixture(name="flaky_s3_server")
def fixture_flaky_s3_server(aws_env: None) -> Iterator[S3Server]:
    """An S3 server of this test's own, which the test can make die mid-transfer and restart."""
    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture(name="aws_env")
def fixture_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Credentials and region as every AWS client reads them: environment variables only."""
    empty = tmp_path_factory.mktemp("aws")
    (empty / "config").write_text("")
    (empty / "credentials").write_text("")
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# -- one remote, seen from both sides -----------------------------------------------------------


class PackEntry(NamedTuple):
    digest: str
    offset: int
    size: int


@dataclass
class Remote:
    """A remote as the tests see it: the URL conveyor gets, and direct access to what is stored."""

    kind: str  # "local" or "s3"
    url: str
    fs: Any  # an fsspec filesystem
    root: str  # the remote root as an fsspec path
    endpoint: str | None = None
    bucket: str | None = None

    # -- setting it up in a project --

    def configure(self, project: Project, name: str = "origin", *, default: bool = True, commit: bool = True) -> None:
        """``conveyor remote add NAME URL [--default]`` (+ the S3 endpoint and region), then commit the config."""
        project.ok("remote", "add", name, self.url, *(["--default"] if default else []))
        self.configure_endpoint(project, name)
        if commit:
            project.git("add", ".conveyor/config")
            project.git("commit", "-q", "-m", f"remote {name}")

    def configure_endpoint(self, project: Project, name: str = "origin") -> None:
        if self.kind == "s3":
            assert self.endpoint is not None
            project.ok("remote", "modify", name, "endpoint_url", self.endpoint)
            project.ok("remote", "modify", name, "region", REGION)

    def sibling(self, suffix: str) -> Remote:
        """Another, empty remote of the same kind (a second folder or prefix)."""
        root = f"{self.root}-{suffix}"
        url = root if self.kind == "local" else f"s3://{root}"
        return Remote(self.kind, url, self.fs, root, self.endpoint, self.bucket)

    # -- reading and writing what is stored --

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def keys(self, prefix: str = "") -> list[str]:
        """Every stored key under the root (or under ``prefix`` in it), relative to the root, sorted."""
        base = self._path(prefix).rstrip("/") if prefix else self.root
        if hasattr(self.fs, "invalidate_cache"):
            self.fs.invalidate_cache()
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        cut = len(self.root.rstrip("/")) + 1
        return sorted(path[cut:] for path in found)

    def count(self, prefix: str = "") -> int:
        return len(self.keys(prefix))

    def read(self, key: str) -> bytes:
        data: bytes = self.fs.cat_file(self._path(key))
        return data

    def write(self, key: str, data: bytes) -> None:
        if self.kind == "local":
            Path(self._path(key)).parent.mkdir(parents=True, exist_ok=True)
        self.fs.pipe_file(self._path(key), data)

    def delete(self, key: str) -> None:
        self.fs.rm_file(self._path(key))

    # -- the layout --

    def loose(self) -> dict[str, str]:
        """Loose objects: hash -> key."""
        found = {}
        for key in self.keys("objects"):
            parts = key.split("/")
            if len(parts) == 3 and len(parts[1]) == 2 and len(parts[2]) == 62:
                found[parts[1] + parts[2]] = key
        return found

    def packs(self) -> dict[str, list[PackEntry]]:
        """Each pack's index, by pack key (``packs/NAME.pack``): what the ``.idx`` beside it lists."""
        result: dict[str, list[PackEntry]] = {}
        for key in self.keys("packs"):
            if not key.endswith(".idx"):
                continue
            header, *lines = self.read(key).decode().splitlines()
            assert header == "conveyor-pack 1", f"{key}: unexpected header {header!r}"
            entries = []
            for line in lines:
                digest, offset, size = line.split()
                entries.append(PackEntry(digest, int(offset), int(size)))
            result[key.removesuffix(".idx") + ".pack"] = entries
        return result

    def hashes(self) -> set[str]:
        """Every object hash the remote holds, loose or packed."""
        found = set(self.loose())
        for entries in self.packs().values():
            found.update(entry.digest for entry in entries)
        return found

    def leftovers(self) -> list[str]:
        """Uploads in flight that never finished (``tmp/`` on filesystems)."""
        return [key for key in self.keys() if key.startswith("tmp/")]

    def run_entries(self) -> list[str]:
        return [key for key in self.keys("runs") if key.endswith(".json")]

    def assert_sound(self) -> None:
        """Nothing partial or corrupt is stored under a final name.

        Every loose object hashes to its name; every pack index has its pack, and every object it
        lists lies inside the pack and hashes to its name; every run-cache bundle is JSON. Files
        under ``tmp/`` (uploads in flight) and packs without an index (not yet published) are
        allowed: nothing refers to them.
        """
        keys = set(self.keys())
        for digest, key in self.loose().items():
            actual = blake3(self.read(key)).hexdigest()
            assert actual == digest, f"{self.url}/{key}: content hashes to {actual}, not its name (partial?)"
        for pack_key, entries in self.packs().items():
            assert pack_key in keys, f"{self.url}: the index of {pack_key} is there, the pack is not"
            data = self.read(pack_key)
            for entry in entries:
                assert entry.offset + entry.size <= len(data), f"{pack_key}: {entry} lies past its end ({len(data)})"
                chunk = data[entry.offset : entry.offset + entry.size]
                actual = blake3(chunk).hexdigest()
                assert actual == entry.digest, f"{pack_key}: {entry.digest} at {entry.offset} hashes to {actual}"
        for key in self.run_entries():
            json.loads(self.read(key))
        unknown = [key for key in keys if "/" in key and not key.startswith(("objects/", "packs/", "runs/", "tmp/"))]
        assert not unknown, f"unexpected keys on the remote: {unknown}"

    def where(self, digest: str) -> tuple[str, int, int]:
        """(key, offset, size) of an object as stored: loose, or inside a pack."""
        loose = self.loose()
        if digest in loose:
            key = loose[digest]
            return key, 0, len(self.read(key))
        for pack_key, entries in self.packs().items():
            for entry in entries:
                if entry.digest == digest:
                    return pack_key, entry.offset, entry.size
        raise AssertionError(f"{digest} is not on {self.url}")

    def tamper(self, digest: str) -> str:
        """Flip one byte in the middle of the stored object (loose or packed); the key changed."""
        key, offset, size = self.where(digest)
        data = bytearray(self.read(key))
        data[offset + size // 2] ^= 0xFF
        self.write(key, bytes(data))
        return key


@pytest.fixture(name="remote", params=BACKENDS)
def fixture_remote(request: pytest.FixtureRequest, aws_env: None, tmp_path: Path) -> Iterator[Remote]:
    """An empty remote of each kind: a folder outside the project (not created yet), or a fresh
    bucket on the session's S3 server with the remote root under a prefix."""
    import fsspec

    if request.param == "local":
        root = str(tmp_path / "remote-store")
        yield Remote("local", root, fsspec.filesystem("file"), root)
        return
    endpoint: str = request.getfixturevalue("s3_server")
    made = s3_remote_on(endpoint)
    yield made
    with contextlib.suppress(Exception):  # free moto's memory; a failure here is no test failure
        made.fs.rm(made.bucket, recursive=True)


# -- data and workspaces -----------------------------------------------------------------------


def make_dataset(project: Project, *, small: int = 200, big: int = 3 * MiB, seed: int = 1) -> dict[str, bytes]:
    """``data/`` with ``small`` small files in a few subfolders, and ``big.bin``; what was written."""
    rng = random.Random(seed)
    written: dict[str, bytes] = {}
    for i in range(small):
        rel = f"data/part{i % 7}/rec{i:04d}.bin"
        written[rel] = rng.randbytes(rng.randint(16, 3 * KiB))
    if big:
        written["big.bin"] = rng.randbytes(big)
    for rel, data in written.items():
        project.write(rel, data)
    return written


def files_under(root: Path, *rels: str) -> dict[str, bytes]:
    """Every file at or under ``rels`` (relative to ``root``): relative path -> content."""
    found: dict[str, bytes] = {}
    for rel in rels:
        path = root / rel
        if path.is_file():
            found[rel] = path.read_bytes()
        elif path.is_dir():
            for sub in sorted(path.rglob("*")):
                if sub.is_file():
                    found[sub.relative_to(root).as_posix()] = sub.read_bytes()
    return found


def remove_data(project: Project, *rels: str, cache: bool = True) -> None:
    """Delete tracked data from the workspace, and the whole local cache with it."""
    for rel in rels:
        path = project.root / rel
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    if cache:
        shutil.rmtree(project.root / ".conveyor" / "cache", ignore_errors=True)
        for state in (project.root / ".conveyor").glob("state.db*"):
            shutil.rmtree(state) if state.is_dir() else state.unlink()


def clone(project: Project, name: str = "clone") -> Project:
    """``git clone`` of the project into a sibling folder: committed files only, no cache."""
    dest = project.root.parent / name
    subprocess.run(["git", "clone", "-q", str(project.root), str(dest)], check=True, capture_output=True)
    return Project(dest, project._capsys)


def cache_digests(project: Project) -> set[str]:
    cache = project.root / ".conveyor" / "cache"
    return {p.parent.name + p.name for p in cache.glob("*/*") if p.is_file() and len(p.parent.name) == 2}


def assert_cache_sound(project: Project) -> None:
    """Every object in the local cache has the content its name promises."""
    cache = project.root / ".conveyor" / "cache"
    for path in cache.glob("*/*"):
        if not path.is_file() or len(path.parent.name) != 2 or path.parent.name == "runs":
            continue
        actual = blake3(path.read_bytes()).hexdigest()
        assert actual == path.parent.name + path.name, f"{path}: hashes to {actual} (corrupt object in the cache)"


def pointer_hash(project: Project, rel: str) -> str:
    """The content hash a pointer file names (``blake3:`` dropped)."""
    for line in (project.root / f"{rel}.cvy").read_text().splitlines():
        if line.startswith("hash:"):
            return line.split(":", 1)[1].strip().removeprefix("blake3:")
    raise AssertionError(f"{rel}.cvy names no hash")


def manifest_hashes(project: Project, digest: str) -> set[str]:
    """The objects a folder manifest (in the local cache) lists."""
    path = project.root / ".conveyor" / "cache" / digest[:2] / digest[2:]
    _header, *lines = path.read_text().splitlines()
    return {line.split(" ", 1)[0] for line in lines}


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.err, result.err
    assert "Traceback" not in result.out, result.out


def the_error_line(result: Result) -> str:
    """The one ``error:`` line on stderr, without a traceback."""
    no_traceback(result)
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"expected one 'error:' line on stderr, got: {result.err!r}"
    return errors[0]


def s3_remote_on(endpoint: str, *, prefix: str = "some/prefix") -> Remote:
    """A fresh bucket on the S3 server at ``endpoint``, as a :class:`Remote` (no cleanup)."""
    bucket = unique_bucket()
    s3_client(endpoint).create_bucket(Bucket=bucket)
    root = f"{bucket}/{prefix}"
    return Remote("s3", f"s3://{root}", s3_filesystem(endpoint), root, endpoint, bucket)


def port_outside_ephemeral_range() -> int:
    """A free TCP port below Linux's ephemeral range (32768-60999), which no outgoing
    connection is given, so a server can stop and listen on it again later."""
    import random

    for _ in range(200):
        port = random.randint(20000, 32767)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32767")


def free_port() -> int:
    """A TCP port nothing listens on (bound then closed at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
