"""``push``, ``fetch`` and ``pull``: move only the objects the other side lacks, in few requests.

What is needed comes from the pointer files and ``conveyor.lock`` (of the workspace, of named
targets, or of every commit), and optionally the run cache. Which objects the remote has is
one listing of its keys plus its pack indexes, not a request per object. Small objects
travel bundled in packs (one request for thousands of files, which is what makes object
stores slow for small files); large ones travel as they are, streamed. Transfers run in
parallel threads; every write into the local cache happens on the calling thread, after the
downloaded bytes were checked against their hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor import _fs, _git
from conveyor._progress import Progress
from conveyor.errors import ConveyorError, CorruptRemoteObjectError, UsageError
from conveyor.remote._backend import Backend
from conveyor.remote._config import Remote, get_remote
from conveyor.remote._index import PackWriter, RemoteIndex, object_key, render_index
from conveyor.versioning._hashing import hash_bytes
from conveyor.versioning._odb import forget_fresh, note_fresh, note_verified
from conveyor.versioning._repo import Repo
from conveyor.workspace import POINTER_SUFFIX, Workspace

SMALL_OBJECT = 256 * 1024  # objects up to this size travel in packs
PACK_MAX = 64 * 1024 * 1024
PACK_MIN = 1024 * 1024
WHOLE_PACK_SHARE = 0.5  # fetch a whole pack when at least this share of it is needed


@dataclass(slots=True)
class TransferResult:
    """What a push, fetch or pull moved, and what it found already in place."""

    remote: str
    direction: str  # "push" or "fetch"
    objects: int = 0  # objects sent or received
    bytes: int = 0
    requests: int = 0  # payload transfers: packs, loose objects, run-cache bundles
    present: int = 0  # objects the other side had already
    missing: list[str] = field(default_factory=list)  # objects found on neither side
    run_cache_entries: int = 0
    checkout: Any = None  # for pull: the CheckoutResult
    seconds: float = 0.0


@dataclass(slots=True)
class Root:
    """A tracked thing to transfer: a file object or a folder manifest, and where it came from."""

    digest: str
    kind: str  # "file" or "dir"
    label: str  # the path (or "run cache", "history") it belongs to
    optional: bool = False  # a registered model: sent when here, fetched when there, never "missing"


# -- what is needed -----------------------------------------------------------------------------


def collect_roots(repo: Repo, targets: list[str] | None, *, all_commits: bool, run_cache: bool) -> list[Root]:
    """The objects the workspace (or ``targets``, or every commit) and the run cache refer to."""
    from conveyor.pipeline._lock import LOCK_FILE, Lock

    ws = repo.ws
    roots: dict[str, Root] = {}

    def add(digest: str, kind: str, label: str) -> None:
        roots.setdefault(digest, Root(digest, kind, label))

    resolved = None if targets is None else _resolve_targets(ws, targets)
    lock = Lock.read(ws.root / LOCK_FILE)
    all_outs = [o for entry in lock.entries.values() for o in entry.outs]  # cache: false ones too
    pointer_targets: list[Path] | None = None
    if resolved is None:
        outs = all_outs
    else:
        outs = []
        pointer_targets = []
        for target in resolved:
            matched = [
                o
                for o in all_outs
                if target == ws.root / o.path
                or target in (ws.root / o.path).parents
                or (ws.root / o.path) in target.parents
            ]
            outs.extend(o for o in matched if o not in outs)
            if not matched:
                pointer_targets.append(target)
    for out in outs:
        add(out.hash, out.kind, out.path)
    items = repo.tracked() if pointer_targets is None else repo.tracked_for(pointer_targets) if pointer_targets else []
    for item in items:
        add(item.pointer.digest, item.pointer.kind, item.rel)
    if all_commits and ws.has_scm:
        from conveyor.versioning import _pointer

        for name, data in _git.files_in_history(ws.root, POINTER_SUFFIX):
            try:
                pointer = _pointer.parse(data.decode("utf-8", errors="replace"), f"git history: {name}", name=name)
            except ConveyorError:
                continue
            add(pointer.digest, pointer.kind, f"{name[: -len(POINTER_SUFFIX)]} (history)")
        for name, data in _git.files_in_history(ws.root, LOCK_FILE):
            try:
                old = Lock.parse(data.decode("utf-8", errors="replace"), Path(name), where=f"git history: {name}")
            except ConveyorError:
                continue
            for entry in old.entries.values():
                for out in entry.outs:
                    add(out.hash, out.kind, f"{out.path} (history)")
    if run_cache:
        for root in run_cache_roots(ws):
            add(root.digest, root.kind, root.label)
    if targets is None:
        from conveyor.registry import registry_roots

        for digest, label in registry_roots(ws):  # registered models travel with the data
            # optional: with a database shared by a team, other workspaces' models need not be here
            roots.setdefault(digest, Root(digest, "file", label, optional=True))
    return list(roots.values())


def run_cache_roots(ws: Workspace) -> list[Root]:
    """The outputs every local run-cache entry names."""
    from conveyor.pipeline._runcache import RunCache

    cache = RunCache(ws.cache_dir / "runs")
    roots = []
    for entry_file in cache.entries():
        for fact in cache.get(entry_file.parent.name + entry_file.name[: -len(".json")]) or ():
            roots.append(Root(fact.hash, fact.kind, "run cache"))
    return roots


def _resolve_targets(ws: Workspace, targets: list[str]) -> list[Path]:
    """Paths for ``targets``: tracked paths, stage output paths, or stage names (their outputs)."""
    from conveyor.pipeline._spec import PIPELINE_FILE

    paths: list[Path] = []
    stages = None
    for target in targets:
        if (ws.root / PIPELINE_FILE).is_file() and not os.path.lexists(os.path.join(ws.base, target)):
            if stages is None:
                from conveyor.pipeline._spec import load_pipeline

                stages = load_pipeline(ws).stages
            chosen = [s for n, s in stages.items() if n == target or n.split("@", 1)[0] == target]
            if chosen:
                paths.extend(ws.root / out.path for stage in chosen for out in stage.outs)
                continue
        paths.append(ws.resolve_target(target, must_exist=False))
    return paths


def expand(repo: Repo, roots: list[Root]) -> tuple[dict[str, str], list[Root]]:
    """``{digest: label}`` of every object the roots need, and the folder roots whose manifest is
    not in the local cache (so their files are not known yet)."""
    needed: dict[str, str] = {}
    unknown: list[Root] = []
    for root in roots:
        needed.setdefault(root.digest, root.label)
        if root.kind == "dir":
            manifest = repo.try_manifest(root.digest)
            if manifest is None:
                unknown.append(root)
                continue
            for entry in manifest.entries.values():
                needed.setdefault(entry.digest, root.label)
    return needed, unknown


# -- the remote side ----------------------------------------------------------------------------


def open_backend(ws: Workspace, remote: Remote) -> Backend:
    return Backend(remote, ws.root)


def index_cache_dir(ws: Workspace, remote: Remote) -> Path:
    """Where what was learnt of a remote (its pack indexes, run-cache keys) is kept locally."""
    from conveyor.workspace import private_dir

    folder = private_dir(ws.conveyor_dir, "remotes")
    tag = hashlib.sha256(remote.url.encode()).hexdigest()[:16]
    return folder / f"{remote.name}-{tag}"


def _jobs(remote: Remote, jobs: int | None) -> int:
    if jobs is not None:
        if jobs < 1:
            raise UsageError(f"-j {jobs}: needs at least one job", hint="pass -j 1 or more")
        return jobs
    configured = remote.options.get("jobs")
    if configured is not None and configured.isdigit() and int(configured) > 0:
        return int(configured)
    return min(32, 4 * (os.cpu_count() or 1))


class _Pool:
    """A thread pool whose first failure stops the rest; results come back on the caller's thread."""

    def __init__(self, jobs: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="transfer")
        self.pending: set[Future[Any]] = set()
        self.jobs = jobs
        self._callbacks: dict[Future[Any], Callable[[Any], None]] = {}

    def submit(self, fn: Callable[..., Any], *args: Any, on_done: Callable[[Any], None]) -> None:
        while len(self.pending) >= self.jobs * 2:  # bounded queue: memory stays flat for any number
            self._drain(FIRST_COMPLETED)
        future = self.executor.submit(fn, *args)
        self.pending.add(future)
        self._callbacks[future] = on_done

    def _drain(self, how: str) -> None:
        done, self.pending = wait(self.pending, return_when=how)
        for future in done:
            self._callbacks.pop(future)(future.result())

    def finish(self) -> None:
        try:
            while self.pending:
                self._drain(FIRST_COMPLETED)
        finally:
            for future in self.pending:
                future.cancel()
            self.executor.shutdown(wait=True, cancel_futures=True)


# -- push ------------------------------------------------------------------------------------------


def push(
    targets: list[str] | None = None,
    *,
    remote: str | None = None,
    all_commits: bool = False,
    run_cache: bool = False,
    jobs: int | None = None,
    workspace: Workspace | None = None,
) -> TransferResult:
    """Send the objects the workspace (or ``targets``, or every commit with ``all_commits``) refers
    to, and with ``run_cache`` the run cache, to ``remote``; only what it lacks moves."""
    ws = workspace or Workspace.find()
    get_remote(ws, remote)  # an unknown remote: its error, before the workspace lock is taken
    with ws.lock(), Repo(ws) as repo:
        roots = collect_roots(repo, targets, all_commits=all_commits, run_cache=run_cache)
        return push_roots(repo, roots, remote=remote, jobs=jobs, run_cache=run_cache)


def push_roots(
    repo: Repo, roots: list[Root], *, remote: str | None = None, jobs: int | None = None, run_cache: bool = False
) -> TransferResult:
    """:func:`push` of exactly ``roots`` (and, for folders, their files), for a caller that holds
    the workspace lock (a cluster worker sending the outputs of the stage it ran; the runner
    sending a stage's inputs). Objects not in the local cache are listed in ``missing``; roots
    marked optional that are not here are skipped (registered elsewhere: not ours to send)."""
    ws = repo.ws
    target_remote = get_remote(ws, remote)
    started = time.monotonic()
    result = TransferResult(target_remote.name, "push")
    workers = _jobs(target_remote, jobs)
    backend = open_backend(ws, target_remote)
    backend.check_writable()
    optional = {r.digest for r in roots if r.optional}
    absent = repo.odb.missing(optional)
    roots = [r for r in roots if r.digest not in absent]
    needed, unknown = expand(repo, roots)
    for root in unknown:
        result.missing.append(root.digest)  # a folder whose manifest is not here: its files are unknown
    local_missing = repo.odb.missing(set(needed))
    result.missing.extend(sorted(d for d in local_missing if d not in result.missing))
    index = RemoteIndex.load(backend, index_cache_dir(ws, target_remote), create_ok=True)
    to_send = sorted(d for d in needed if d not in local_missing and not index.has(d))
    result.present = len(needed) - len(local_missing) - len(to_send)
    sizes = {d: os.stat(repo.odb.path(d)).st_size for d in to_send}
    _send(repo, backend, to_send, sizes, workers, result)
    if run_cache:
        result.run_cache_entries = _push_run_cache(ws, backend, index, index_cache_dir(ws, target_remote), result)
    result.seconds = time.monotonic() - started
    return result


def _send(
    repo: Repo, backend: Backend, digests: list[str], sizes: dict[str, int], jobs: int, result: TransferResult
) -> None:
    small = [d for d in digests if sizes[d] <= SMALL_OBJECT]
    large = [d for d in digests if sizes[d] > SMALL_OBJECT]
    small_total = sum(sizes[d] for d in small)
    # enough packs to keep every job busy, none so large that a failure costs much
    target = min(PACK_MAX, max(PACK_MIN, small_total // max(jobs, 1) + 1))
    total = sum(sizes.values())
    pool = _Pool(jobs)
    tmp_dir = repo.odb.tmp_dir
    writers: list[PackWriter] = []
    with Progress(f"push to {backend.remote.name}", total=total, unit="B") as bar:

        def done(report: tuple[int, int]) -> None:
            count, size = report
            result.objects += count
            result.bytes += size
            result.requests += 1
            bar.update(size, files=count)

        try:
            for digest in large:
                pool.submit(_upload_loose, backend, repo.odb.path(digest), digest, on_done=done)
            pack: PackWriter | None = None
            for digest in small:
                if pack is None:
                    pack = PackWriter(tmp_dir)
                    writers.append(pack)
                with open(repo.odb.path(digest), "rb") as handle:
                    data = handle.read()
                if hash_bytes(data) != digest:  # never publish a damaged object under its name
                    raise _corrupt_local(repo, digest)
                pack.add(digest, data)
                if pack.size >= target:
                    pool.submit(_upload_pack, backend, pack, on_done=done)
                    pack = None
            if pack is not None:
                pool.submit(_upload_pack, backend, pack, on_done=done)
        finally:
            try:
                pool.finish()
            finally:
                for writer in writers:  # packs whose upload failed or never started
                    writer.discard()


def _upload_loose(backend: Backend, path: str, digest: str) -> tuple[int, int]:
    def check(actual: str) -> None:
        if actual != digest:  # never publish a damaged object under its name
            from conveyor.errors import CorruptObjectError

            raise CorruptObjectError(
                f"{path}: cache object is corrupt (its content does not match its hash); it was not pushed",
                hint="run 'conveyor verify', delete the object and restore it with 'conveyor add' or a fetch",
            )

    backend.upload(path, object_key(digest), check=check)
    return 1, os.stat(path).st_size


def _corrupt_local(repo: Repo, digest: str) -> ConveyorError:
    from conveyor.errors import CorruptObjectError

    return CorruptObjectError(
        f"{repo.odb.path(digest)}: cache object is corrupt (its content does not match its hash); nothing was pushed",
        hint="run 'conveyor verify', delete the object and restore it with 'conveyor add' or a fetch",
    )


def _upload_pack(backend: Backend, pack: PackWriter) -> tuple[int, int]:
    name = pack.finish()
    try:
        backend.upload(pack.path, f"packs/{name}.pack")
        backend.write(render_index(pack.entries), f"packs/{name}.idx")  # last: the pack counts from now on
    finally:
        pack.discard()
    return len(pack.entries), pack.size


def _push_run_cache(
    ws: Workspace, backend: Backend, index: RemoteIndex, cache_dir: Path, result: TransferResult
) -> int:
    """Send the run-cache entries the remote lacks, in one bundle."""
    from conveyor.pipeline._runcache import RunCache

    known = _remote_run_keys(backend, index, cache_dir)
    cache = RunCache(ws.cache_dir / "runs")
    bundle: dict[str, Any] = {}
    for entry_file in cache.entries():
        key = entry_file.parent.name + entry_file.name[: -len(".json")]
        if key in known:
            continue
        try:
            bundle[key] = json.loads(entry_file.read_bytes())
        except (OSError, ValueError):
            continue
    if not bundle:
        return 0
    data = json.dumps({"schema": 1, "entries": bundle}, sort_keys=True).encode()
    name = hash_bytes(data)
    backend.write(data, f"runs/{name}.json")
    _remember_bundle(cache_dir, name, set(bundle))
    result.requests += 1
    return len(bundle)


def _remote_run_keys(backend: Backend, index: RemoteIndex, cache_dir: Path) -> set[str]:
    """Run-cache keys the remote holds: each bundle is read once, then remembered locally."""
    keys: set[str] = set()
    for key in index.runs:
        name = key.rsplit("/", 1)[-1][: -len(".json")]
        seen = cache_dir / "runs" / f"{name}.keys"
        try:
            keys.update(seen.read_text(encoding="utf-8").split())
            continue
        except FileNotFoundError:
            pass
        entries = _read_bundle(backend, key)
        _remember_bundle(cache_dir, name, set(entries))
        keys.update(entries)
    return keys


def _read_bundle(backend: Backend, key: str) -> dict[str, Any]:
    data = backend.read(key)
    name = key.rsplit("/", 1)[-1][: -len(".json")]
    if hash_bytes(data) != name:
        raise CorruptRemoteObjectError(
            f"remote '{backend.remote.name}': run-cache bundle {key} does not match its name",
            hint=f"delete {key} on the remote; 'conveyor push --run-cache' sends the entries again",
        )
    try:
        entries = json.loads(data)["entries"]
    except (ValueError, KeyError, TypeError):
        raise CorruptRemoteObjectError(f"remote '{backend.remote.name}': {key} is not a run-cache bundle") from None
    return dict(entries)


def _remember_bundle(cache_dir: Path, name: str, keys: Iterable[str]) -> None:
    folder = cache_dir / "runs"
    os.makedirs(folder, exist_ok=True)
    _fs.atomic_write_text(folder / f"{name}.keys", "\n".join(sorted(keys)) + "\n", sync="none")


# -- fetch -----------------------------------------------------------------------------------------


def fetch(
    targets: list[str] | None = None,
    *,
    remote: str | None = None,
    all_commits: bool = False,
    run_cache: bool = False,
    jobs: int | None = None,
    workspace: Workspace | None = None,
) -> TransferResult:
    """Bring into the local cache the objects the workspace (or ``targets``, or every commit) refers
    to, and with ``run_cache`` the run cache's entries and their outputs; each is verified first."""
    ws = workspace or Workspace.find()
    try:
        with ws.lock(), Repo(ws) as repo:
            return fetch_into(repo, targets, remote=remote, all_commits=all_commits, run_cache=run_cache, jobs=jobs)
    finally:
        forget_fresh()


def fetch_into(
    repo: Repo,
    targets: list[str] | None,
    *,
    remote: str | None,
    all_commits: bool = False,
    run_cache: bool = False,
    jobs: int | None = None,
    roots: list[Root] | None = None,
) -> TransferResult:
    """:func:`fetch` for a caller that holds the workspace lock (``run --pull``, ``pull``)."""
    ws = repo.ws
    source = get_remote(ws, remote)
    started = time.monotonic()
    result = TransferResult(source.name, "fetch")
    workers = _jobs(source, jobs)
    if roots is None:  # first, so that a bad target is reported before the remote is contacted
        roots = collect_roots(repo, targets, all_commits=all_commits, run_cache=False)
    backend = open_backend(ws, source)
    cache_dir = index_cache_dir(ws, source)
    index = RemoteIndex.load(backend, cache_dir)
    if run_cache:
        result.run_cache_entries = _fetch_run_cache(ws, backend, index, cache_dir, result)
        known = {r.digest for r in roots}
        roots = roots + [r for r in run_cache_roots(ws) if r.digest not in known]
    # two rounds: the objects named directly (manifests among them), then the files of folders
    for _round in range(2):
        needed, unknown = expand(repo, roots)
        wanted = repo.odb.missing(set(needed))
        available = sorted(d for d in wanted if index.has(d))
        if available:
            _receive(repo, backend, index, available, workers, result)
        if not unknown:
            result.missing = sorted(d for d in wanted if not index.has(d))
            break
    else:
        needed, unknown = expand(repo, roots)
        result.missing = sorted(repo.odb.missing(set(needed)) | {r.digest for r in unknown})
    optional = {r.digest for r in roots if r.optional}
    result.missing = [d for d in result.missing if d not in optional]  # a model only another workspace pushed
    needed, _unknown = expand(repo, roots)
    result.present = max(0, len(needed) - result.objects - len(result.missing))
    result.seconds = time.monotonic() - started
    return result


def _receive(
    repo: Repo, backend: Backend, index: RemoteIndex, digests: list[str], jobs: int, result: TransferResult
) -> None:
    by_pack: dict[str, list[tuple[str, int, int]]] = {}
    loose: list[str] = []
    for digest in digests:
        if digest in index.loose:
            loose.append(digest)
        else:
            pack, offset, size = index.packed[digest]
            by_pack.setdefault(pack, []).append((digest, offset, size))
    total = sum(index.loose[d] for d in loose) + sum(s for entries in by_pack.values() for _d, _o, s in entries)
    pool = _Pool(jobs)
    tmp_dir = repo.odb.tmp_dir
    batch = repo.odb.batch()
    with Progress(f"fetch from {backend.remote.name}", total=total, unit="B") as bar:
        large_fetched: list[str] = []

        def stored_loose(report: tuple[str, str, int]) -> None:
            digest, tmp, size = report
            batch.add_verified_temp(digest, tmp, size)
            large_fetched.append(digest)
            result.objects += 1
            result.bytes += size
            result.requests += 1
            bar.update(size, files=1)

        def stored_pack(report: list[tuple[str, bytes]]) -> None:
            for digest, data in report:
                batch.add_bytes(data)  # verified by the worker: the content hashes to the name
                note_fresh(digest, data)
                result.objects += 1
                result.bytes += len(data)
                bar.update(len(data), files=1)
            result.requests += 1

        try:
            for digest in loose:
                pool.submit(_download_loose, backend, digest, str(tmp_dir), on_done=stored_loose)
            for pack, entries in by_pack.items():
                pool.submit(
                    _download_from_pack, backend, pack, index.packs[pack], entries, str(tmp_dir), on_done=stored_pack
                )
        finally:
            try:
                pool.finish()
            finally:
                batch.commit()  # what arrived was verified: keep it, so a re-run only fetches the rest

                for digest in large_fetched:
                    note_verified(repo.odb.path(digest))


def _corrupt(backend: Backend, what: str) -> CorruptRemoteObjectError:
    return CorruptRemoteObjectError(
        f"remote '{backend.remote.name}': {what} does not match its hash (damaged or tampered with); "
        "nothing of it entered the local cache",
        hint="push it again from a clone that has it, or delete it on the remote",
    )


def _download_loose(backend: Backend, digest: str, tmp_dir: str) -> tuple[str, str, int]:
    tmp = _fs.tmp_name(tmp_dir, "fetch-")
    try:
        actual, size = backend.download_hashed(object_key(digest), tmp)
        if actual != digest:
            raise _corrupt(backend, f"object {digest}")
        os.chmod(tmp, 0o444)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return digest, tmp, size


def _download_from_pack(
    backend: Backend, pack: str, pack_size: int, entries: list[tuple[str, int, int]], tmp_dir: str
) -> list[tuple[str, bytes]]:
    wanted = sum(size for _d, _o, size in entries)
    out: list[tuple[str, bytes]] = []
    if wanted >= WHOLE_PACK_SHARE * pack_size:
        tmp = _fs.tmp_name(tmp_dir, "pack-")
        try:
            backend.download(f"packs/{pack}.pack", tmp)
            with open(tmp, "rb") as handle:
                for digest, offset, size in entries:
                    handle.seek(offset)
                    out.append((digest, handle.read(size)))
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    else:
        for digest, offset, size in entries:
            out.append((digest, backend.read_range(f"packs/{pack}.pack", offset, offset + size)))
    for digest, data in out:
        if hash_bytes(data) != digest:
            raise _corrupt(backend, f"object {digest} in pack {pack}")
    return out


def _fetch_run_cache(
    ws: Workspace, backend: Backend, index: RemoteIndex, cache_dir: Path, result: TransferResult
) -> int:
    """Copy the remote's run-cache entries the local run cache lacks."""
    from conveyor.pipeline._runcache import RunCache
    from conveyor.versioning._hashing import is_hash

    cache = RunCache(ws.cache_dir / "runs")
    added = 0
    for key in index.runs:
        name = key.rsplit("/", 1)[-1][: -len(".json")]
        try:
            known = (cache_dir / "runs" / f"{name}.keys").read_text(encoding="utf-8").split()
            if all(is_hash(k) and cache.path(k).exists() for k in known):
                continue  # every entry of this bundle is here already
        except FileNotFoundError:
            pass
        entries = _read_bundle(backend, key)
        result.requests += 1
        for run_key, entry in entries.items():
            # the key becomes a file name: only a hash may (a hostile bundle must not write elsewhere)
            if not is_hash(run_key) or not _valid_entry(entry) or cache.path(run_key).exists():
                continue
            target = cache.path(run_key)
            os.makedirs(target.parent, exist_ok=True)
            _fs.atomic_write_text(target, json.dumps(entry, sort_keys=True, indent=1) + "\n", sync="none")
            added += 1
        _remember_bundle(cache_dir, name, [k for k in entries if is_hash(k)])
    return added


def _valid_entry(entry: Any) -> bool:
    from conveyor.versioning._hashing import is_hash

    try:
        outs = entry["outs"]
        return isinstance(outs, list) and all(
            isinstance(o["path"], str) and is_hash(o["hash"]) and o["kind"] in ("file", "dir") for o in outs
        )
    except (TypeError, KeyError):
        return False


# -- pull --------------------------------------------------------------------------------------------


def pull(
    targets: list[str] | None = None,
    *,
    remote: str | None = None,
    all_commits: bool = False,
    run_cache: bool = False,
    jobs: int | None = None,
    force: bool = False,
    workspace: Workspace | None = None,
) -> TransferResult:
    """:func:`fetch`, then ``checkout`` of the same targets."""
    from conveyor.versioning._checkout import checkout

    ws = workspace or Workspace.find()
    try:
        with ws.lock(), Repo(ws) as repo:
            result = fetch_into(repo, targets, remote=remote, all_commits=all_commits, run_cache=run_cache, jobs=jobs)
    except BaseException:
        forget_fresh()
        raise
    paths: list[str | os.PathLike[str]] | None = None
    if targets:
        paths = [str(p) for p in _resolve_targets(ws, targets)]
    try:
        result.checkout = checkout(paths, force=force, workspace=ws)
    finally:
        forget_fresh()  # the bytes served this checkout; a long-lived process should not keep them
    return result
