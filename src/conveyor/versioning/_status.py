"""``status``: which tracked paths differ from their pointer files, and how."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from conveyor.versioning._repo import Repo, Snapshot, Tracked
from conveyor.workspace import Workspace


@dataclass(frozen=True, slots=True)
class PathStatus:
    """A tracked path that differs from its pointer, with per-file detail for folders."""

    path: str  # relative to the workspace root
    state: str  # "modified", "missing", "not in cache"
    added: tuple[str, ...] = ()  # for folders: files new since the pointer's version
    deleted: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()


@dataclass(slots=True)
class StatusReport:
    """The tracked paths that changed; ``clean`` when there are none."""

    changed: list[PathStatus] = field(default_factory=list)
    tracked: int = 0

    @property
    def clean(self) -> bool:
        return not self.changed


def status(targets: list[str | os.PathLike[str]] | None = None, *, workspace: Workspace | None = None) -> StatusReport:
    """Compare tracked paths (all, or those at or below ``targets``) with their pointers."""
    ws = workspace or Workspace.find()
    report = StatusReport()
    with Repo(ws) as repo:
        if targets is None:
            items = repo.tracked()
        else:
            items = repo.tracked_for([ws.resolve_target(t, must_exist=False) for t in targets])
        report.tracked = len(items)
        for item in items:
            entry = path_status(repo, item)
            if entry is not None:
                report.changed.append(entry)
    return report


def path_status(repo: Repo, item: Tracked) -> PathStatus | None:
    pointer = item.pointer
    current = repo.snapshot(item.target)
    if current.kind == "missing":
        return PathStatus(item.rel, "missing")
    same_mode = pointer.kind != "file" or current.executable == pointer.executable
    if current.digest == pointer.digest and current.kind == pointer.kind and same_mode:
        if not repo.odb.exists(pointer.digest):
            return PathStatus(item.rel, "not in cache")
        return None
    if pointer.kind == "dir" and current.kind == "dir":
        old = _version_files(repo, current, pointer.digest)
        if old is not None:
            new = {p: (e.digest, e.executable) for p, e in repo.fill_manifest(item.target, current).entries.items()}
            added = tuple(sorted(p for p in new if p not in old and item.selects(p)))
            deleted = tuple(sorted(p for p in old if p not in new and item.selects(p)))
            modified = tuple(sorted(p for p, e in new.items() if p in old and old[p] != e and item.selects(p)))
            if item.only is not None and not (added or deleted or modified):
                return None  # the folder changed, but not where the user looked
            return PathStatus(item.rel, "modified", added, deleted, modified)
    return PathStatus(item.rel, "modified")


def _version_files(repo: Repo, current: Snapshot, digest: str) -> dict[str, tuple[str, int]] | None:
    """``{path: (hash, exec)}`` of the folder version ``digest``, or None if it is unknown here.

    When the state database last saw the folder at exactly that version, its per-file table
    says the same as the manifest and is already loaded; otherwise read the manifest.
    """
    if current.known is not None and current.known.digest == digest:
        return current.known.entries()
    manifest = repo.try_manifest(digest)
    if manifest is None:
        return None
    return {p: (e.digest, e.executable) for p, e in manifest.entries.items()}
