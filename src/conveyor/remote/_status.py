"""``status --remote``: what is not yet pushed, and what is not yet fetched."""

from __future__ import annotations

from dataclasses import dataclass, field

from conveyor.remote._config import get_remote
from conveyor.remote._index import RemoteIndex
from conveyor.remote._transfer import collect_roots, expand, index_cache_dir, open_backend
from conveyor.versioning._repo import Repo
from conveyor.workspace import Workspace


@dataclass(slots=True)
class RemotePathStatus:
    """One tracked path or output whose objects are not on both sides."""

    path: str
    state: str  # "not pushed", "not fetched", "missing" (on neither side), "partly pushed"
    objects: int  # objects concerned


@dataclass(slots=True)
class RemoteStatus:
    remote: str
    entries: list[RemotePathStatus] = field(default_factory=list)
    objects: int = 0  # objects referenced in all
    remote_objects: int = 0  # objects the remote holds in all

    @property
    def clean(self) -> bool:
        return not self.entries


def remote_status(
    targets: list[str] | None = None,
    *,
    remote: str | None = None,
    all_commits: bool = False,
    run_cache: bool = False,
    workspace: Workspace | None = None,
) -> RemoteStatus:
    """Compare what the workspace refers to with the local cache and the remote, path by path."""
    ws = workspace or Workspace.find()
    source = get_remote(ws, remote)
    backend = open_backend(ws, source)
    report = RemoteStatus(source.name)
    with Repo(ws) as repo:
        roots = collect_roots(repo, targets, all_commits=all_commits, run_cache=run_cache)
        index = RemoteIndex.load(backend, index_cache_dir(ws, source), create_ok=True)  # a folder not pushed to yet
        report.remote_objects = len(index)
        by_label: dict[str, set[str]] = {}
        for root in roots:
            needed, _unknown = expand(repo, [root])
            by_label.setdefault(root.label, set()).update(needed)
        for label, digests in by_label.items():
            report.objects += len(digests)
            local_missing = repo.odb.missing(digests)
            remote_missing = {d for d in digests if not index.has(d)}
            nowhere = local_missing & remote_missing
            if nowhere:
                report.entries.append(RemotePathStatus(label, "missing", len(nowhere)))
            elif remote_missing:
                state = "not pushed" if remote_missing == digests else "partly pushed"
                report.entries.append(RemotePathStatus(label, state, len(remote_missing)))
            elif local_missing:
                report.entries.append(RemotePathStatus(label, "not fetched", len(local_missing)))
    report.entries.sort(key=lambda e: (e.state, e.path))
    return report
