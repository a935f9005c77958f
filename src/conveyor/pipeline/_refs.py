"""What the pipeline keeps alive in the cache: outputs in ``conveyor.lock`` and the run cache.

``gc`` asks here, so pipeline outputs are protected like ``add``-ed data is.
"""

from __future__ import annotations

from pathlib import Path

from conveyor import _git
from conveyor.errors import ConveyorError
from conveyor.pipeline._lock import LOCK_FILE, Lock
from conveyor.pipeline._runcache import RunCache
from conveyor.workspace import Workspace


def roots(ws: Workspace, *, all_commits: bool = False, run_cache: bool = True) -> set[tuple[str, str]]:
    """``(kind, hash)`` of every output the lock (now, or in any commit) or the run cache names."""
    found: set[tuple[str, str]] = set()
    locks = [Lock.read(ws.root / LOCK_FILE)]
    if all_commits and ws.has_scm:
        for path, data in _git.files_in_history(ws.root, LOCK_FILE):
            if path.rsplit("/", 1)[-1] != LOCK_FILE:
                continue
            try:
                locks.append(
                    Lock.parse(data.decode("utf-8", errors="replace"), Path(path), where=f"git history: {path}")
                )
            except ConveyorError:
                continue  # a damaged lock in an old commit protects nothing, and must not stop gc
    for lock in locks:
        for entry in lock.entries.values():
            found.update((out.kind, out.hash) for out in entry.outs)
    if run_cache:
        cache = RunCache(ws.cache_dir / "runs")
        for entry_file in cache.entries():
            outs = cache.get(entry_file.parent.name + entry_file.name[: -len(".json")])
            if outs is not None:
                found.update((out.kind, out.hash) for out in outs)
    return found
