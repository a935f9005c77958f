"""``diff``: data files added, modified and deleted between two git revisions or the workspace."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from conveyor import _git
from conveyor.errors import UsageError
from conveyor.versioning import _pointer
from conveyor.versioning._manifest import Manifest
from conveyor.versioning._pointer import Kind, Pointer
from conveyor.versioning._repo import Repo
from conveyor.workspace import POINTER_SUFFIX, Workspace


@dataclass(frozen=True, slots=True)
class Change:
    """One data file added, modified or deleted between two versions."""

    change: str  # "added", "modified" or "deleted"
    path: str  # relative to the workspace root; a folder ends in "/" when its files are unknown
    old: str | None  # content hash before
    new: str | None  # content hash after


@dataclass(slots=True)
class DiffResult:
    """Every changed data file between ``old`` and ``new`` (revision names or "workspace")."""

    old: str
    new: str
    changes: list[Change] = field(default_factory=list)
    unexpanded: list[str] = field(default_factory=list)  # folders whose manifest is not cached


def diff(a_rev: str | None = None, b_rev: str | None = None, *, workspace: Workspace | None = None) -> DiffResult:
    """Compare tracked data at ``a_rev`` (default HEAD) with ``b_rev`` (default: the workspace)."""
    ws = workspace or Workspace.find()
    if not ws.has_scm:
        raise UsageError("diff compares git revisions, and this workspace has no git", hint="use 'conveyor status'")
    old_name = a_rev or "HEAD"
    with Repo(ws) as repo:
        result = DiffResult(old=old_name, new=b_rev or "workspace")
        old_files = _files(repo, _pointers_at(repo, old_name), result)
        built: dict[str, Manifest] = {}
        new_pointers = _pointers_at(repo, b_rev) if b_rev else _workspace(repo, built)
        new_files = _files(repo, new_pointers, result, built)
    for path in sorted(old_files.keys() | new_files.keys()):
        before, after = old_files.get(path), new_files.get(path)
        if before == after:
            continue
        kind = "added" if before is None else "deleted" if after is None else "modified"
        result.changes.append(Change(kind, path, before, after))
    return result


def _pointers_at(repo: Repo, rev: str) -> dict[str, Pointer]:
    pointers = {}
    for path, data in _git.files_at(repo.ws.root, rev, POINTER_SUFFIX).items():
        pointer = _pointer.parse(data.decode("utf-8", errors="replace"), f"{rev}:{path}", name=path)
        pointers[path[: -len(POINTER_SUFFIX)]] = pointer
    return pointers


def _workspace(repo: Repo, built: dict[str, Manifest]) -> dict[str, Pointer]:
    """Pointers describing the workspace as it is; manifests of changed folders go in ``built``."""
    current = {}
    for item in repo.tracked():
        snap = repo.snapshot(item.target)
        if snap.kind == "missing" or snap.digest is None:
            continue
        if snap.kind == "dir" and not repo.odb.exists(snap.digest):
            built[snap.digest] = repo.fill_manifest(item.target, snap)
        digest = snap.digest
        assert digest is not None
        kind: Kind = "dir" if snap.kind == "dir" else "file"
        executable = kind == "file" and snap.executable
        current[item.rel] = Pointer(item.target.name, kind, digest, snap.size, snap.files, executable)
    return current


def _files(
    repo: Repo, pointers: dict[str, Pointer], result: DiffResult, built: dict[str, Manifest] | None = None
) -> dict[str, str]:
    files: dict[str, str] = {}
    for path, pointer in pointers.items():
        if pointer.kind == "file":
            files[path] = pointer.digest
            continue
        manifest = (built or {}).get(pointer.digest) or repo.try_manifest(pointer.digest)
        if manifest is None:
            files[path + "/"] = pointer.digest
            result.unexpanded.append(path)
            continue
        for rel, entry in manifest.entries.items():
            files[posixpath.join(path, rel)] = entry.digest
    return files
