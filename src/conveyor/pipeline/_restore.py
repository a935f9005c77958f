"""Put recorded stage outputs back into the workspace from the object store."""

from __future__ import annotations

import os

from conveyor import _fs
from conveyor.pipeline._lock import Fact
from conveyor.versioning._checkout import Placer
from conveyor.versioning._manifest import Entry, Manifest
from conveyor.versioning._repo import Repo


def available(repo: Repo, outs: list[Fact]) -> dict[str, Manifest] | None:
    """The manifests of folder outputs when every object of ``outs`` is in the cache, else None."""
    manifests: dict[str, Manifest] = {}
    needed: set[str] = set()
    for out in outs:
        needed.add(out.hash)
        if out.kind == "dir":
            manifest = repo.try_manifest(out.hash)
            if manifest is None:
                return None
            manifests[out.path] = manifest
            needed.update(e.digest for e in manifest.entries.values())
    if repo.odb.missing(needed):
        return None
    return manifests


def restore_outputs(repo: Repo, outs: list[Fact]) -> bool:
    """Make the workspace hold exactly ``outs``; False (and nothing touched) if objects are missing."""
    manifests = available(repo, outs)
    if manifests is None:
        return False
    placer = Placer(repo)
    root = repo.ws.root
    for out in outs:
        target = root / out.path
        current = repo.snapshot(target)
        if current.kind == out.kind and current.digest == out.hash:
            continue
        if os.path.lexists(target):
            _fs.remove(target)
        if out.kind == "dir":
            manifest = manifests[out.path]
            os.makedirs(target, exist_ok=True)
            for rel, entry in manifest.entries.items():
                placer.place(entry, f"{target}/{rel}", record=False)
            repo.remember_tree(target, manifest, out.hash)
        else:
            placer.place(Entry(out.path, out.hash, out.size, int(out.executable)), str(target))
    placer.flush_state()
    return True


def drop_corrupt(repo: Repo, outs: list[Fact]) -> list[str]:
    """Remove the objects of ``outs`` whose content no longer matches their hash; return their hashes."""
    from conveyor.versioning._hashing import hash_file

    digests = {out.hash for out in outs}
    for out in outs:
        if out.kind == "dir":
            manifest = repo.try_manifest(out.hash)
            if manifest is not None:
                digests.update(e.digest for e in manifest.entries.values())
    dropped = []
    for digest in sorted(digests):
        path = repo.odb.path(digest)
        try:
            actual, _size = hash_file(path)
        except OSError:
            continue
        if actual != digest:
            repo.state.bump_cache_epoch()  # no folder record may vouch for its objects any more
            repo.odb.remove(digest)
            dropped.append(digest)
    return dropped
