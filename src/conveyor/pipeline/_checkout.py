"""``checkout`` for pipeline outputs: put back what ``conveyor.lock`` records, from the cache."""

from __future__ import annotations

import os
from pathlib import Path

from conveyor.pipeline._lock import LOCK_FILE, Fact, Lock
from conveyor.pipeline._restore import available, restore_outputs
from conveyor.versioning._repo import Repo


def split_targets(repo: Repo, targets: list[Path] | None) -> tuple[list[Fact], list[Path] | None]:
    """The cached outputs of ``conveyor.lock`` that ``targets`` select (all when None), and the
    targets left for pointer files (None: all of them)."""
    lock = Lock.read(repo.ws.root / LOCK_FILE)
    outs = [o for entry in lock.entries.values() for o in entry.outs if o.cache]
    if targets is None:
        return outs, None
    chosen: list[Fact] = []
    rest: list[Path] = []
    for target in targets:
        matched = False
        for out in outs:
            path = repo.ws.root / out.path
            if target == path or target in path.parents or path in target.parents:
                if out not in chosen:
                    chosen.append(out)
                matched = True
        if not matched:
            rest.append(target)
    return chosen, rest


def at_risk(repo: Repo, outs: list[Fact]) -> list[str]:
    """Workspace content at ``outs`` that differs from the lock and is not in the cache."""
    risky: list[str] = []
    for out in outs:
        target = repo.ws.root / out.path
        if not os.path.lexists(target):
            continue
        snap = repo.snapshot(target, need_manifest=True)
        if snap.digest == out.hash:
            continue
        if snap.manifest is not None:
            missing = repo.odb.missing({e.digest for e in snap.manifest.entries.values()})
            risky.extend(f"{target}/{rel}" for rel, e in snap.manifest.entries.items() if e.digest in missing)
        elif snap.digest is not None and not repo.odb.exists(snap.digest):
            risky.append(str(target))
    return risky


def checkout_outputs(repo: Repo, outs: list[Fact]) -> tuple[list[str], list[str]]:
    """Restore ``outs``: (paths placed, paths whose objects are not in the cache)."""
    placed: list[str] = []
    missing: list[str] = []
    for out in outs:
        current = repo.snapshot(repo.ws.root / out.path)
        if current.kind == out.kind and current.digest == out.hash:
            continue
        if available(repo, [out]) is None:
            missing.append(out.path)
        elif restore_outputs(repo, [out]):
            placed.append(out.path)
    return placed, missing
