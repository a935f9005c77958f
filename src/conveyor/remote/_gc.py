"""``gc --remote``: delete the remote objects that nothing kept refers to.

The plan is made first (and is all a dry run shows). Loose objects are deleted; a pack all of
whose objects are dead is deleted (index first, so no reader follows it into a missing pack);
a pack with some live objects is rewritten with only those (the new pack is complete before
the old one goes). Packs without an index and uploads left in ``tmp/`` by killed pushes are
removed once they are an hour old, so a push running meanwhile is not disturbed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from conveyor.remote._config import get_remote
from conveyor.remote._index import PackWriter, RemoteIndex, object_key, read_object, render_index
from conveyor.remote._transfer import Root, collect_roots, expand, index_cache_dir, open_backend
from conveyor.versioning._hashing import hash_bytes
from conveyor.versioning._repo import Repo
from conveyor.workspace import Workspace

_STRAY_AGE = 3600.0


@dataclass(slots=True)
class RemoteGcPlan:
    """What ``gc --remote`` removes (or would): dead objects, and the packs it rewrites."""

    remote: str
    dead_objects: int = 0
    dead_bytes: int = 0
    kept_objects: int = 0
    delete_loose: list[str] = field(default_factory=list)
    delete_packs: list[str] = field(default_factory=list)
    rewrite_packs: list[str] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)
    done: bool = False


def remote_gc(
    *,
    remote: str | None = None,
    all_commits: bool = False,
    run_cache: bool = True,
    dry_run: bool = False,
    confirm: Callable[[RemoteGcPlan], bool] | None = None,
    workspace: Workspace | None = None,
) -> RemoteGcPlan:
    """Delete the remote's objects that the workspace (and with ``all_commits`` every commit, and
    unless ``run_cache`` is false the run cache) does not refer to.

    Nothing is deleted on a ``dry_run``, or when ``confirm(plan)`` returns false.
    """
    ws = workspace or Workspace.find()
    source = get_remote(ws, remote)
    backend = open_backend(ws, source)
    backend.check_writable()
    plan = RemoteGcPlan(source.name)
    with ws.lock(), Repo(ws) as repo:
        roots = collect_roots(repo, None, all_commits=all_commits, run_cache=run_cache)
        index = RemoteIndex.load(backend, index_cache_dir(ws, source))
        if run_cache:  # the remote's run cache too: a clone that never fetched it must not break it
            roots.extend(_remote_run_cache_roots(backend, index))
        keep, unknown = expand(repo, roots)
        for root in unknown:  # a folder whose manifest is only on the remote: read it there
            manifest_bytes = read_object(backend, index, root.digest)
            if manifest_bytes is None:
                continue  # on neither side: nothing of it to keep
            from conveyor.versioning._manifest import Manifest

            manifest = Manifest.from_bytes(manifest_bytes, source=f"remote manifest {root.digest}")
            keep.update({entry.digest: root.label for entry in manifest.entries.values()})
        for digest, size in index.loose.items():
            if digest in keep:
                plan.kept_objects += 1
            else:
                plan.delete_loose.append(digest)
                plan.dead_objects += 1
                plan.dead_bytes += size
        contents: dict[str, list[tuple[str, int, int]]] = {}
        for digest, (pack, offset, size) in index.packed.items():
            contents.setdefault(pack, []).append((digest, offset, size))
        for pack, entries in sorted(contents.items()):
            dead = [e for e in entries if e[0] not in keep and e[0] not in index.loose]
            live = len(entries) - len(dead)
            plan.kept_objects += live
            plan.dead_objects += len(dead)
            plan.dead_bytes += sum(e[2] for e in dead)
            if dead and not live:
                plan.delete_packs.append(pack)
            elif dead:
                plan.rewrite_packs.append(pack)
        plan.strays = _strays(backend, index)
        if dry_run or (confirm is not None and not confirm(plan)):
            return plan
        rewritten = {p: _rewrite(backend, p, contents[p], keep, repo.odb.tmp_dir) for p in plan.rewrite_packs}
        for pack in plan.delete_packs + [p for p, new in rewritten.items() if new != p]:
            backend.remove([f"packs/{pack}.idx"])  # the index first: readers stop using the pack
            backend.remove([f"packs/{pack}.pack"])
        backend.remove([object_key(d) for d in plan.delete_loose])
        backend.remove(plan.strays)
        plan.done = True
    return plan


def _remote_run_cache_roots(backend: object, index: RemoteIndex) -> list[Root]:
    from conveyor.remote._backend import Backend
    from conveyor.remote._transfer import _read_bundle

    assert isinstance(backend, Backend)
    roots = []
    for key in index.runs:
        for entry in _read_bundle(backend, key).values():
            for out in entry.get("outs", ()) if isinstance(entry, dict) else ():
                if isinstance(out, dict) and isinstance(out.get("hash"), str):
                    roots.append(Root(out["hash"], str(out.get("kind", "file")), "remote run cache"))
    return roots


def _strays(backend: object, index: RemoteIndex) -> list[str]:
    """Packs without an index and temp uploads, old enough that no push is still writing them."""
    from conveyor.remote._backend import Backend

    assert isinstance(backend, Backend)
    candidates = list(index.orphans) + list(backend.list_keys("tmp"))
    old = []
    now = time.time()
    for key in candidates:
        try:
            info = backend.fs.info(backend.path(key))
        except Exception:  # gone meanwhile
            continue
        modified = info.get("mtime") or info.get("LastModified") or info.get("created")
        stamp = modified.timestamp() if hasattr(modified, "timestamp") else float(modified or now)
        if now - stamp > _STRAY_AGE:
            old.append(key)
    return old


def _rewrite(
    backend: object, pack: str, entries: list[tuple[str, int, int]], keep: dict[str, str], tmp_dir: object
) -> str:
    """Write a new pack of ``pack``'s live objects; returns its name (the old one's, if nothing changed)."""
    from pathlib import Path

    from conveyor.remote._backend import Backend
    from conveyor.remote._transfer import _corrupt

    assert isinstance(backend, Backend) and isinstance(tmp_dir, Path)
    data = backend.read(f"packs/{pack}.pack")
    writer = PackWriter(tmp_dir)
    try:
        for digest, offset, size in sorted(entries, key=lambda e: e[1]):
            if digest not in keep:
                continue
            chunk = data[offset : offset + size]
            if hash_bytes(chunk) != digest:
                raise _corrupt(backend, f"object {digest} in pack {pack}")
            writer.add(digest, chunk)
        name = writer.finish()
        if name != pack:
            backend.upload(writer.path, f"packs/{name}.pack")
            backend.write(render_index(writer.entries), f"packs/{name}.idx")
    finally:
        writer.discard()
    return name
