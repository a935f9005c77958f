"""``verify``: re-hash every cache object, and every tracked workspace file, ignoring the state database."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from conveyor._progress import Progress
from conveyor.versioning._hashing import hash_file, is_hash
from conveyor.versioning._repo import Repo, Tracked
from conveyor.versioning._state import Stat
from conveyor.workspace import Workspace


@dataclass(slots=True)
class VerifyReport:
    """What ``verify`` re-hashed and found; ``ok`` when no object is corrupt or missing."""

    objects_checked: int = 0
    corrupt_objects: list[str] = field(default_factory=list)  # cache paths whose content != name
    files_checked: int = 0
    modified: list[str] = field(default_factory=list)  # tracked workspace paths != their pointer
    stale_state: list[str] = field(default_factory=list)  # state entries that were wrong (now fixed)
    missing_objects: list[str] = field(default_factory=list)  # "path: hash" a pointer needs, not cached

    @property
    def ok(self) -> bool:
        return not self.corrupt_objects and not self.missing_objects


def verify(*, cache: bool = True, files: bool = True, workspace: Workspace | None = None) -> VerifyReport:
    """Re-hash the cache and the tracked workspace files; report anything that does not match."""
    ws = workspace or Workspace.find()
    report = VerifyReport()
    with ws.lock(), Repo(ws) as repo:  # it may repair the state database: one writer at a time
        if cache:
            digests = list(repo.odb.iter_digests())
            with Progress("verifying cache", total=len(digests), unit="object") as bar:
                for digest in digests:
                    path = repo.odb.path(digest)
                    try:
                        actual, _ = hash_file(path)
                    except FileNotFoundError:
                        continue  # removed by a concurrent gc
                    report.objects_checked += 1
                    if actual != digest or not is_hash(digest):
                        report.corrupt_objects.append(path)
                    bar.update()
        items = repo.tracked()
        if cache:
            _find_missing(repo, items, report)
        if files:
            for item in items:
                report.files_checked += _verify_tracked(repo, item.target, item.pointer.digest, report)
        if report.corrupt_objects or report.missing_objects:
            repo.state.bump_cache_epoch()  # the state database may no longer vouch for the cache
    return report


def _find_missing(repo: Repo, items: list[Tracked], report: VerifyReport) -> None:
    """Every object the workspace's pointers need must be in the cache."""
    for item in items:
        needed = {item.pointer.digest: item.rel}
        manifest = repo.try_manifest(item.pointer.digest) if item.pointer.kind == "dir" else None
        if manifest is not None:
            needed.update({e.digest: f"{item.rel}/{p}" for p, e in manifest.entries.items()})
        for digest in sorted(repo.odb.missing(set(needed))):
            report.missing_objects.append(f"{needed[digest]}: {digest}")


def _verify_tracked(repo: Repo, target: Path, expected: str, report: VerifyReport) -> int:
    if not target.exists():
        return 0
    paths = [str(target)] if target.is_file() else [f"{target}/{rel}" for rel, *_stat in repo.scan(target)]
    stale = False
    for path in paths:
        claimed = repo.state.get(path, Stat.of(os.stat(path)))
        actual, _ = hash_file(path)
        if claimed is not None and claimed != actual:
            report.stale_state.append(repo.ws.relpath(Path(path)))
            stale = True
    if stale:  # the state database lied: drop what it knows about this path and start over
        repo.state.forget(paths)
        repo.state.forget_tree(str(target))
    if repo.snapshot(target).digest != expected:
        report.modified.append(repo.ws.relpath(target))
    return len(paths)
