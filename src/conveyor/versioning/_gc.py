"""``gc``: delete cache objects nothing references, in the workspace or (optionally) in git history."""

from __future__ import annotations

import os
from dataclasses import dataclass

from conveyor import _git
from conveyor.versioning import _pointer
from conveyor.versioning._repo import Repo
from conveyor.workspace import POINTER_SUFFIX, Workspace


@dataclass(frozen=True, slots=True)
class GcResult:
    """How many cache objects ``gc`` removed (or would remove, on a dry run) and kept."""

    removed: int
    removed_bytes: int
    kept: int
    dry_run: bool


def referenced(repo: Repo, *, all_commits: bool = False, run_cache: bool = True) -> set[str]:
    """Hashes of every object the workspace pointers and pipeline lock (and with ``all_commits``
    any commit's), the pipeline's run cache and the model registry need."""
    from conveyor.pipeline._refs import roots as pipeline_roots

    roots: set[tuple[str, str]] = pipeline_roots(repo.ws, all_commits=all_commits, run_cache=run_cache)
    for item in repo.tracked():
        roots.add((item.pointer.kind, item.pointer.digest))
    from conveyor.registry import registry_roots

    roots.update(("file", digest) for digest, _label in registry_roots(repo.ws))  # every registered model
    if all_commits and repo.ws.has_scm:
        for path, data in _git.files_in_history(repo.ws.root, POINTER_SUFFIX):
            pointer = _pointer.parse(data.decode("utf-8", errors="replace"), f"git history: {path}", name=path)
            roots.add((pointer.kind, pointer.digest))
    keep: set[str] = set()
    for kind, digest in roots:
        keep.add(digest)
        if kind == "dir":
            manifest = repo.try_manifest(digest)
            if manifest is not None:
                keep.update(entry.digest for entry in manifest.entries.values())
    return keep


def gc(
    *,
    all_commits: bool = False,
    dry_run: bool = False,
    run_cache: bool = True,
    workspace: Workspace | None = None,
) -> GcResult:
    """Remove unreferenced cache objects; ``dry_run`` only counts them.

    Objects named by pointer files and by ``conveyor.lock`` are kept (in every commit with
    ``all_commits``), and so are the run cache's outputs unless ``run_cache`` is false.
    """
    ws = workspace or Workspace.find()
    with ws.lock(), Repo(ws) as repo:
        keep = referenced(repo, all_commits=all_commits, run_cache=run_cache)
        removed = removed_bytes = kept = 0
        for digest in list(repo.odb.iter_digests()):
            if digest in keep:
                kept += 1
                continue
            path = repo.odb.path(digest)
            try:
                removed_bytes += os.stat(path).st_size
            except FileNotFoundError:
                continue
            if not dry_run:
                if not removed:
                    repo.state.bump_cache_epoch()  # before the first removal: no folder may vouch any more
                repo.odb.remove(digest)
            removed += 1
    return GcResult(removed, removed_bytes, kept, dry_run)
