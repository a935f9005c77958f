"""Running stages on a Dask cluster (``conveyor run --executor dask://HOST:PORT``): the worker side.

The client (the runner) decides, keeps the lock, the run record and the progress; it pushes a
stage's inputs to the shared remote, submits a :class:`StageJob`, and fetches the outputs the
:class:`StageJobResult` names. On a worker, :func:`run_stage_job`:

1. fetches the inputs' objects from the remote into an object cache of the worker process
   (a conveyor workspace under the worker's local directory, made once per process and reused,
   so an input that several stages read is downloaded once);
2. copies every input into a fresh scratch folder at its workspace-relative path (copies, never
   links into the cache, so a stage cannot damage the cache), verifying each object's hash;
3. runs the command there with :class:`~conveyor.pipeline._executor.StageProcess` (retries,
   timeout, the log), in the stage's ``wdir``;
4. stores the declared outputs in the worker's cache and pushes exactly those objects to the
   remote, then returns their :class:`~conveyor.pipeline._lock.Fact`\\ s and the log's tail;
5. deletes the scratch folder.

Every failure becomes ``StageJobResult(ok=False, error="<one line>")``; nothing raises to Dask
but the death of the worker itself, after which Dask runs the task again elsewhere (up to
``distributed.scheduler.allowed-failures`` times, 3 by default). A stage that dies with its
worker leaves only its scratch folder under the worker's local directory, which Dask purges,
and perhaps objects it pushed, which are content-addressed and harmless. On Linux the command
runs behind a small guard process that asks the kernel for a signal when the worker dies
(``PR_SET_PDEATHSIG``) and then stops the stage's whole process group, so an orphaned stage
does not keep running on the machine. Cancelling the task's future (``client.cancel``) stops
the command the same way as a timeout does: Dask cannot interrupt a running task, so a thread
of the job watches the worker's state of the task.

The command sees the environment of the worker process, the stage's ``env``, and
``CONVEYOR_STAGE``, ``CONVEYOR_RUN_ID`` and ``CONVEYOR_WORKER`` (the worker's address). Its
workspace root is the scratch folder, with an empty ``.conveyor/`` of its own: a stage that
uses conveyor itself (a ``check:`` stage records its result in the run store, and resolves
registry references there) sees that empty workspace, not the client's.

Resources: a stage's ``resources: {cpus, memory, gpus}`` become Dask resource constraints named
``CPU``, ``MEMORY`` (bytes) and ``GPU`` (:func:`dask_resources`). Workers must declare what they
have under those names, for example::

    dask worker tcp://scheduler:8786 --nthreads 4 --resources "CPU=4 MEMORY=16e9 GPU=1"

A stage that declares nothing (or ``cpus: 1``) asks for nothing and runs on any worker, also
on workers that declare no resources. A constraint no worker declares leaves the task waiting
forever in Dask; :func:`unplaceable` says so before submitting.

This module imports without Dask installed: ``distributed`` is imported only where needed.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import json
import os
import posixpath
import shlex
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor import _fs
from conveyor.errors import ConveyorError, CorruptObjectError, MissingFileError, UsageError, WorkspaceError
from conveyor.pipeline._lock import Fact

if TYPE_CHECKING:
    import distributed

    from conveyor.pipeline._spec import Stage
    from conveyor.remote._transfer import Root
    from conveyor.versioning._repo import Repo
    from conveyor.workspace import Workspace

DEFAULT_PORT = 8786  # the Dask scheduler's default port
LOG_CAP = 1024 * 1024  # bytes of a stage's output a result carries (the end of it)
_SMALL_COPY = 4 * 1024 * 1024  # inputs up to this size are read, hashed and written in one go
_CANCEL_POLL = 0.25  # seconds between looks at whether Dask still wants the running task
_KILL_GRACE = 3.0


class ClusterError(ConveyorError):
    """The Dask cluster cannot be used: not installed, not reachable, or it refused."""

    exit_code = 74  # EX_IOERR, like an unreachable remote: fix the cause and run it again


# -- what travels -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageJob:
    """One stage to run on a worker: everything it needs, nothing of the client's workspace."""

    name: str
    cmd: str | None  # a shell command, or
    call: str | None  # "module:function", run like StageProcess runs a call stage
    kwargs: dict[str, Any]
    env: dict[str, str]
    wdir: str  # relative to the workspace root
    # (workspace-relative path, hash, kind): every dep and params file; kind is "file", "dir", or
    # "exec" (a file with its execute bit); all their objects are on the remote already
    inputs: tuple[tuple[str, str, str], ...]
    outs: tuple[tuple[str, bool], ...]  # (workspace-relative path, cache flag)
    remote_url: str  # a folder must be an absolute path the workers see (see job_remote)
    remote_options: dict[str, str]  # as conveyor's Remote.options (credentials, endpoint_url, ...)
    run_id: str | None
    retries: int
    retry_delay: float
    timeout: float | None

    @classmethod
    def for_stage(
        cls,
        stage: Stage,
        inputs: list[Fact] | tuple[Fact, ...],
        remote: tuple[str, dict[str, str]],
        run_id: str | None,
    ) -> StageJob:
        """The job for ``stage``, whose deps and params files are ``inputs`` (their facts as they
        were pushed), against ``remote`` (``(url, options)``, see :func:`job_remote`)."""
        url, options = remote
        return cls(
            name=stage.name,
            cmd=stage.cmd,
            call=stage.call,
            kwargs=dict(stage.kwargs),
            env=dict(stage.env),
            wdir=stage.wdir,
            inputs=tuple(input_of(fact) for fact in inputs),
            outs=tuple((out.path, out.cache) for out in stage.outs),
            remote_url=url,
            remote_options=dict(options),
            run_id=run_id,
            retries=stage.retries,
            retry_delay=stage.retry_delay,
            timeout=stage.timeout,
        )


@dataclass(slots=True)
class StageJobResult:
    """What happened on the worker."""

    ok: bool
    attempts: int
    duration: float  # seconds the command ran, over all its attempts (as Outcome.duration)
    returncode: int | None
    timed_out: bool
    error: str | None  # one line, when not ok
    outs: tuple[Fact, ...]  # the outputs' facts; their objects are on the remote
    log: bytes  # the stage's output (stdout and stderr), its last LOG_CAP bytes
    worker: str  # the Dask worker's address (or hostname:pid outside Dask)


def input_of(fact: Fact) -> tuple[str, str, str]:
    """A dep's or params file's fact as a :attr:`StageJob.inputs` item."""
    kind = "dir" if fact.kind == "dir" else "exec" if fact.executable else "file"
    return (fact.path, fact.hash, kind)


def job_remote(ws: Workspace, name: str | None = None) -> tuple[str, dict[str, str]]:
    """``(url, options)`` of the client's remote ``name`` (or the default) as workers must see it:
    a folder remote's path made absolute (locally it is relative to the workspace root)."""
    from conveyor.remote._config import get_remote

    remote = get_remote(ws, name)
    url = remote.url
    if remote.scheme == "file":
        path = url[len("file://") :] if url.startswith("file://") else url
        url = str((ws.root / os.path.expanduser(path)).resolve())
    return url, dict(remote.options)


# -- resources --------------------------------------------------------------------------------------


def dask_resources(stage: Stage) -> dict[str, float]:
    """The Dask resource constraints of ``stage``: ``CPU`` (when ``cpus`` is more than 1: the
    default of 1 cannot be told from ``cpus: 1``, and one CPU is what any worker thread has),
    ``MEMORY`` in bytes and ``GPU``, each only when the stage asks for it. ``{}`` for a stage that
    declares nothing, so it runs on workers that declare no resources."""
    needs: dict[str, float] = {}
    if stage.cpus > 1:
        needs["CPU"] = float(stage.cpus)
    if stage.memory is not None:
        needs["MEMORY"] = float(stage.memory)
    if stage.gpus > 0:
        needs["GPU"] = float(stage.gpus)
    return needs


def unplaceable(client: distributed.Client, resources: Mapping[str, float]) -> str | None:
    """Why no worker connected now could run a task needing ``resources``, or None if one can."""
    if not resources:
        return None
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # distributed before 2025 lists every worker without being asked
        info = client.scheduler_info()
    workers = info.get("workers", {})
    for worker in workers.values():
        have = worker.get("resources") or {}
        if all(have.get(name, 0) >= amount for name, amount in resources.items()):
            return None
    if not workers:
        return "no Dask worker is connected"

    def shown(declared: Mapping[str, float]) -> str:
        return " ".join(f"{name}={amount:g}" for name, amount in sorted(declared.items()))

    wanted = shown(resources)
    declared = sorted({shown(w.get("resources") or {}) or "nothing" for w in workers.values()})
    return (
        f"no Dask worker has {wanted} (they declare: {', '.join(declared)}); "
        f'start one with: dask worker --resources "{wanted}"'
    )


# -- connecting -------------------------------------------------------------------------------------


def scheduler_address(address: str) -> str:
    """``dask://HOST:PORT`` (or ``tcp://HOST:PORT``; the port defaults to 8786) as Dask's ``tcp://`` address."""
    from urllib.parse import urlsplit

    given = address.strip()
    scheme = given.split("://", 1)[0].lower() if "://" in given else ""
    if scheme not in ("dask", "tcp"):
        raise UsageError(
            f"executor {address!r}: not a Dask scheduler address",
            hint="write dask://HOST:PORT (or tcp://HOST:PORT), e.g. dask://127.0.0.1:8786",
        )
    try:
        parts = urlsplit(given)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise UsageError(f"executor {address!r}: {exc}", hint="write dask://HOST:PORT") from None
    if not host or parts.path not in ("", "/"):
        raise UsageError(f"executor {address!r}: no host", hint="write dask://HOST:PORT, e.g. dask://127.0.0.1:8786")
    shown = f"[{host}]" if ":" in host else host
    return f"tcp://{shown}:{port or DEFAULT_PORT}"


def connect(address: str, *, timeout: float = 10.0) -> distributed.Client:
    """A Dask client connected to the scheduler at ``address`` (``dask://HOST:PORT``), or a
    one-line :class:`ClusterError` saying what failed and how to fix it."""
    target = scheduler_address(address)
    try:
        import distributed
    except ImportError:
        raise ClusterError("the dask executor needs the dask extra", hint="pip install 'conveyor[dask]'") from None
    from urllib.parse import urlsplit

    parts = urlsplit(target)
    assert parts.hostname is not None and parts.port is not None
    fix = "start a scheduler with `dask scheduler` (it listens on port 8786) or check the address"
    try:  # a refused or unroutable address answers at once, where Dask would retry until its timeout
        socket.create_connection((parts.hostname, parts.port), timeout=timeout).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc)).lower()
        raise ClusterError(f"cannot reach the Dask scheduler at {target}: {reason}", hint=fix) from None
    try:
        client: distributed.Client = distributed.Client(  # type: ignore[no-untyped-call]
            target, timeout=timeout, set_as_default=False
        )
        return client
    except (OSError, TimeoutError) as exc:
        reason = _one_line(str(exc)) or type(exc).__name__
        raise ClusterError(f"cannot connect to the Dask scheduler at {target}: {reason}", hint=fix) from None


# -- the worker side --------------------------------------------------------------------------------


def run_stage_job(job: StageJob) -> StageJobResult:
    """Run ``job`` on this (Dask worker) process: fetch its inputs from the remote, run it in a
    scratch folder, push its outputs. Never raises for a failure of the stage or of a transfer."""
    worker, dask_worker = _this_worker()
    started = time.monotonic()
    scratch: Path | None = None
    log_path: Path | None = None
    cache: _WorkerCache | None = None
    try:
        cache = _worker_cache(dask_worker)
        scratch = cache.new_scratch()
        log_path = scratch / "stage.log"
        return _run(job, cache, scratch / "root", log_path, worker, dask_worker)
    except ConveyorError as exc:
        message = exc.format_message()
        if cache is not None:
            message = cache.readable(message)
        return _failed(job, worker, started, _one_line(message), log_path)
    except Exception as exc:  # a bug or an OS error: this stage failed, the worker carries on
        return _failed(job, worker, started, _one_line(f"{type(exc).__name__}: {exc}"), log_path)
    finally:
        if scratch is not None:
            with contextlib.suppress(OSError):
                _fs.remove(scratch)


def _run(
    job: StageJob, cache: _WorkerCache, root: Path, log_path: Path, worker: str, dask_worker: Any
) -> StageJobResult:
    from conveyor.pipeline._executor import StageProcess, Terminal
    from conveyor.workspace import CONVEYOR_DIR

    _check_job(job)
    # a workspace of its own, as the stage has locally: conveyor run inside the stage (a check
    # stage's Workspace.find(), say) finds this empty one, never the worker's cache
    (root / CONVEYOR_DIR).mkdir(parents=True)
    remote = cache.remote(job.remote_url, job.remote_options)
    ws = cache.job_workspace(root.parent)
    from conveyor.versioning._repo import Repo

    with Repo(ws) as repo:
        if job.inputs:
            with cache.locked():
                missing = _fetch(repo, remote, job)
            if missing:
                return _failed(job, worker, None, cache.readable(missing), None)
        _materialise(repo, root, job.inputs)
    inputs = {path for path, _digest, _kind in job.inputs}
    for path, _cache in job.outs:
        target = root / path
        if path not in inputs and os.path.lexists(target):
            _fs.remove(target)  # inside an input folder: the stage makes it anew, as locally
        target.parent.mkdir(parents=True, exist_ok=True)
    (root / job.wdir).mkdir(parents=True, exist_ok=True)

    cancel = threading.Event()
    finished = threading.Event()
    watcher = _watch_cancellation(dask_worker, cancel, finished)
    try:
        stage = _stage_for(job, worker)
        outcome = StageProcess(stage, root, log_path, Terminal(prefix=False, quiet=True), cancel, job.run_id).run()
    finally:
        finished.set()
        if watcher is not None:
            watcher.join()
    log = _tail(log_path)
    result = StageJobResult(
        ok=False,
        attempts=outcome.attempts,
        duration=outcome.duration,
        returncode=outcome.returncode,
        timed_out=outcome.timed_out,
        error=outcome.error,
        outs=(),
        log=log,
        worker=worker,
    )
    if outcome.cancelled:
        result.error = "cancelled"
        return result
    if not outcome.ok:
        return result
    absent = [path for path, _cache in job.outs if not os.path.lexists(root / path)]
    if absent:
        result.error = f"it did not write its output {absent[0]}"
        return result
    with Repo(ws) as repo, cache.locked():
        facts = _store_outputs(repo, root, job.outs)
        _push(repo, remote, facts)
    result.ok, result.error, result.outs = True, None, facts
    return result


def _failed(job: StageJob, worker: str, started: float | None, error: str, log_path: Path | None) -> StageJobResult:
    log = _tail(log_path) if log_path is not None else b""
    duration = 0.0 if started is None else time.monotonic() - started
    return StageJobResult(False, 0, duration, None, False, error, (), log, worker)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _this_worker() -> tuple[str, Any]:
    """This worker's name for results (its Dask address, else hostname:pid) and the Dask worker."""
    try:
        from distributed import get_worker

        dask_worker = get_worker()
        return str(dask_worker.address), dask_worker
    except (ImportError, ValueError):  # not on a Dask worker (a test, a local call)
        return f"{socket.gethostname()}:{os.getpid()}", None


def _check_job(job: StageJob) -> None:
    """Every path a job names stays inside its scratch folder."""
    if (job.cmd is None) == (job.call is None):
        raise UsageError(f"stage {job.name!r}: a job needs exactly one of cmd and call")
    _relative(job.wdir, "wdir", dot_ok=True)
    for path, digest, kind in job.inputs:
        _relative(path, "input")
        if kind not in ("file", "dir", "exec"):
            raise UsageError(f"input {path}: unknown kind {kind!r}", hint="use file, dir or exec")
        from conveyor.versioning._hashing import is_hash

        if not is_hash(digest):
            raise UsageError(f"input {path}: {digest!r} is not an object hash")
    for path, _cache in job.outs:
        _relative(path, "output")


def _relative(path: str, what: str, *, dot_ok: bool = False) -> None:
    norm = posixpath.normpath(path) if path else ""
    if (
        not path
        or posixpath.isabs(path)
        or norm == ".."
        or norm.startswith("../")
        or (norm == "." and not dot_ok)
        or norm.split("/", 1)[0] == ".conveyor"
    ):
        raise UsageError(
            f"{what} {path!r}: not a path inside the workspace",
            hint="the cluster executor runs stages whose deps and outputs are inside the workspace",
        )


# -- the worker's object cache ----------------------------------------------------------------------


class _WorkerCache:
    """A conveyor workspace of this worker process: the object cache that fetched inputs and
    stored outputs go through, the remotes jobs named (in ``config.local``), the index caches of
    those remotes, and the scratch folders of running jobs (``jobs/``).

    Workers run several tasks in threads: every write to the cache (fetch, store, push) holds
    ``lock`` and the workspace lock; copying inputs out and running the command do not."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.lock = threading.Lock()
        self.names: dict[str, str] = {}  # remote name -> its URL, for messages

    @classmethod
    def create(cls, base: str | None) -> _WorkerCache:
        from conveyor.workspace import CONVEYOR_DIR, Workspace

        if base is not None:
            root = Path(base) / "conveyor"
            root.mkdir(parents=True, exist_ok=True)
            if (root / CONVEYOR_DIR).is_dir():
                return cls(Workspace(root))
            try:
                return cls(Workspace.init(root, no_scm=True))
            except WorkspaceError:  # the local directory is inside a git repository: use a temp folder
                pass
        root = Path(tempfile.mkdtemp(prefix="conveyor-worker-"))
        atexit.register(shutil.rmtree, root, True)
        return cls(Workspace.init(root, no_scm=True))

    def new_scratch(self) -> Path:
        folder = self.ws.root / "jobs" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder

    def job_workspace(self, scratch: Path) -> Workspace:
        """The cache workspace as one job sees it: its own state database in its scratch folder
        (the per-file records of its outputs go away with it), the shared object cache."""
        from conveyor.workspace import Workspace

        ws = Workspace(self.ws.root)
        ws.state_path = scratch / "state.db"
        return ws

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self.lock, self.ws.lock():
            yield

    def remote(self, url: str, options: Mapping[str, str]) -> str:
        """The name of the remote at ``url`` with ``options`` in this workspace, added on first use."""
        from conveyor.config import set_value
        from conveyor.remote._config import check_url

        url = check_url(url)
        if "://" not in url or url.startswith("file://"):
            path = os.path.expanduser(url[len("file://") :] if url.startswith("file://") else url)
            if not os.path.isabs(path):
                raise UsageError(
                    f"remote {url}: a folder remote must be an absolute path for cluster workers",
                    hint="send the path the workers see (job_remote makes the client's path absolute)",
                )
        key = json.dumps([url, sorted(options.items())])
        name = "cluster-" + hashlib.sha256(key.encode()).hexdigest()[:16]
        with self.lock:
            if name not in self.ws.config.remotes():
                for option, value in [*sorted(options.items()), ("url", url)]:  # the URL last: usable once complete
                    set_value(self.ws.conveyor_dir, f"remote.{name}.{option}", value, local=True)
                self.ws.reload_config()
            self.names[name] = url
        return name

    def readable(self, message: str) -> str:
        """A message with the remote's URL where conveyor named it by its local name."""
        for name, url in self.names.items():
            message = message.replace(f"'{name}'", url)
        return message


_CACHES: dict[str, _WorkerCache] = {}
_CACHES_LOCK = threading.Lock()


def _worker_cache(dask_worker: Any) -> _WorkerCache:
    """This process's cache (one per Dask worker: under its local directory, which Dask removes
    with the worker; outside Dask, a temp folder removed at exit)."""
    base = getattr(dask_worker, "local_directory", None) if dask_worker is not None else None
    key = str(base or "")
    with _CACHES_LOCK:
        cache = _CACHES.get(key)
        if cache is None:
            cache = _CACHES[key] = _WorkerCache.create(None if base is None else str(base))
        return cache


def _fetch(repo: Repo, remote: str, job: StageJob) -> str | None:
    """Fetch the job's input objects; a one-line error naming the first missing one, or None."""
    from conveyor.remote._transfer import Root, expand, fetch_into
    from conveyor.versioning._odb import forget_fresh

    roots = [Root(digest, "dir" if kind == "dir" else "file", path) for path, digest, kind in job.inputs]
    try:
        result = fetch_into(repo, None, remote=remote, roots=roots)
    finally:
        forget_fresh()  # pulled pack bytes kept for a checkout: this process copies from the cache
    if not result.missing:
        return None
    labels, _unknown = expand(repo, roots)
    first = result.missing[0]
    more = f" (and {len(result.missing) - 1} more objects)" if len(result.missing) > 1 else ""
    return (
        f"input {labels.get(first, '?')} (object {first}) is not on the remote {job.remote_url}{more}; "
        "push it first ('conveyor push'; the client pushes a stage's inputs before submitting it)"
    )


def _materialise(repo: Repo, root: Path, inputs: tuple[tuple[str, str, str], ...]) -> None:
    """Every input at its path under ``root``, as private copies checked against their hashes."""
    for path, digest, kind in inputs:
        dest = root / path
        if kind == "dir":
            manifest = repo.load_manifest(digest)
            if os.path.lexists(dest) and not dest.is_dir():
                _fs.remove(dest)
            dest.mkdir(parents=True, exist_ok=True)  # an empty folder is an input too
            for rel, entry in manifest.entries.items():
                _relative(rel, f"file of input {path}:")
                _copy_object(repo, entry.digest, dest / rel, executable=bool(entry.executable))
        else:
            _copy_object(repo, digest, dest, executable=kind == "exec")


def _copy_object(repo: Repo, digest: str, dest: Path, *, executable: bool) -> None:
    from conveyor.versioning._hashing import copy_and_hash, hash_bytes

    src = repo.odb.path(digest)
    if os.path.lexists(dest):
        _fs.remove(dest)  # inputs that overlap (a params file inside a dep folder): the same content
    dest.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o755 if executable else 0o644
    if os.stat(src).st_size <= _SMALL_COPY:
        with open(src, "rb") as handle:
            data = handle.read()
        actual = hash_bytes(data)
        if actual == digest:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                _fs.write_all(fd, data)
            finally:
                os.close(fd)
    else:
        actual, _size = copy_and_hash(src, str(dest), mode=mode, durable=False)
    if actual != digest:
        repo.odb.remove(digest)  # so the next job fetches it again
        raise CorruptObjectError(
            f"{src}: the worker's cache object is corrupt (its content does not match its hash)",
            hint="it was deleted; run the stage again",
        )


def _store_outputs(repo: Repo, root: Path, outs: tuple[tuple[str, bool], ...]) -> tuple[Fact, ...]:
    """Like the runner's ``_store_outputs``: the outputs into the object store, as facts."""
    facts: list[Fact] = []
    with repo.odb.batch() as batch:
        for path, cache in outs:
            snap = repo.snapshot(root / path, batch=batch)
            if snap.digest is None:
                raise MissingFileError(f"{path}: output vanished while it was stored", hint="run it again")
            facts.append(Fact(path, snap.digest, snap.size, snap.kind, snap.files, cache, snap.executable))
    return tuple(facts)


def _push(repo: Repo, remote: str, facts: tuple[Fact, ...]) -> None:
    from conveyor.remote._transfer import Root, push_roots

    roots: list[Root] = [Root(fact.hash, fact.kind, fact.path) for fact in facts]
    result = push_roots(repo, roots, remote=remote)
    if result.missing:
        raise ConveyorError(f"{len(result.missing)} output objects were not in the worker's cache after storing them")


# -- running the command ----------------------------------------------------------------------------

# Between StageProcess and the command: asks the kernel for SIGTERM when the worker dies (a killed
# worker cannot stop its children itself), and then stops the stage's whole process group. When
# StageProcess itself stops the group (timeout, cancel), the worker is alive and this lets it.
_GUARD = """\
import os, signal, subprocess, sys, time
parent, grace = int(sys.argv[1]), float(sys.argv[2])
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
except Exception:
    pass
child = None
def orphaned(signum, frame):
    if os.getppid() == parent:
        return
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    end = time.monotonic() + grace
    while child is not None and time.monotonic() < end:
        try:  # has the command ended? (looked at, not reaped: the main thread waits for it)
            if os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
        except ChildProcessError:
            break
        time.sleep(0.02)
    os.killpg(0, signal.SIGKILL)
signal.signal(signal.SIGTERM, orphaned)
if os.getppid() != parent:
    orphaned(signal.SIGTERM, None)
child = subprocess.Popen(sys.argv[3:])
code = child.wait()
if code < 0:
    try:
        signal.signal(-code, signal.SIG_DFL)
    except (OSError, ValueError):
        pass
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def _stage_for(job: StageJob, worker: str) -> Stage:
    """The Stage StageProcess runs: the job's command behind the guard (on Linux)."""
    from conveyor.pipeline._executor import StageProcess, Terminal
    from conveyor.pipeline._spec import Stage

    env = {**job.env, "CONVEYOR_WORKER": worker}
    stage = Stage(
        name=job.name,
        cmd=job.cmd,
        call=job.call,
        kwargs=dict(job.kwargs),
        deps=(),
        params=(),
        outs=(),
        env=env,
        wdir=job.wdir,
        retries=job.retries,
        retry_delay=job.retry_delay,
        timeout=job.timeout,
    )
    if not sys.platform.startswith("linux"):
        return stage
    # the argv StageProcess would run (for a call stage: the interpreter and its bootstrap)
    argv = StageProcess(stage, Path("."), Path("."), Terminal(prefix=False, quiet=True), threading.Event()).argv()
    guarded = [sys.executable, "-I", "-c", _GUARD, str(os.getpid()), f"{_KILL_GRACE:g}", *argv]
    return dataclasses.replace(stage, cmd="exec " + shlex.join(guarded), call=None, kwargs={})


def _watch_cancellation(
    dask_worker: Any, cancel: threading.Event, finished: threading.Event
) -> threading.Thread | None:
    """Set ``cancel`` when Dask no longer wants the running task (the client cancelled or released
    its future, or the worker is closing): StageProcess then stops the command's process group.
    Dask cannot interrupt a task's thread itself."""
    if dask_worker is None:
        return None
    try:
        key = dask_worker.get_current_task()
    except Exception:
        return None

    def watch() -> None:
        while not finished.wait(_CANCEL_POLL):
            try:
                task = dask_worker.state.tasks.get(key)
                closing = str(getattr(dask_worker.status, "name", "")) in ("closing", "closed", "failed")
            except Exception:  # the worker's internals changed: never cancel by mistake
                return
            if task is None or task.state == "cancelled" or closing:
                cancel.set()
                return

    thread = threading.Thread(target=watch, name="conveyor-cancel-watch", daemon=True)
    thread.start()
    return thread


def _tail(path: Path | None) -> bytes:
    if path is None:
        return b""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size <= LOG_CAP:
                return handle.read()
            handle.seek(size - LOG_CAP)
            data = handle.read()
    except OSError:
        return b""
    cut = data.find(b"\n") + 1  # start at a line
    return f"[... {size - len(data) + cut} bytes of earlier output cut ...]\n".encode() + data[cut:]
