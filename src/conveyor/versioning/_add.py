"""``add``: put files and folders into the cache and write their pointer files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from conveyor import _fs, _git
from conveyor.errors import PathError
from conveyor.versioning._pointer import Pointer
from conveyor.versioning._repo import Repo
from conveyor.workspace import Workspace


@dataclass(frozen=True, slots=True)
class AddResult:
    """One tracked path after ``add``: its content hash and how many objects were new."""

    path: str  # relative to the workspace root
    kind: str
    digest: str
    size: int
    files: int
    objects_written: int
    pointer_file: str  # absolute path of the pointer written
    gitignore: str | None  # absolute path of the .gitignore that lists the data, in a git workspace


def add(targets: list[str | os.PathLike[str]], *, workspace: Workspace | None = None) -> list[AddResult]:
    """Track ``targets``: cache their content and write ``PATH.cvy`` beside each.

    Re-adding a tracked path records its new content. Objects become visible in the cache
    only once durable, and pointer files are written after their objects, so a process
    killed at any point leaves the previous state or the new one.
    """
    if not targets:
        raise PathError("nothing to add", hint="name one or more files or folders")
    ws = workspace or Workspace.find()
    results: list[AddResult] = []
    with ws.lock(), Repo(ws) as repo:
        resolved = _check_targets(repo, targets)
        for target in resolved:
            with repo.odb.batch() as batch:
                snap = repo.snapshot(target, batch=batch)
            assert snap.digest is not None
            if snap.kind == "dir":
                repo.state.mark_stored(str(target), snap.digest)
            pointer = Pointer(
                path=target.name,
                kind="dir" if snap.kind == "dir" else "file",
                digest=snap.digest,
                size=snap.size,
                files=snap.files,
                executable=snap.kind == "file" and snap.executable,
            )
            pointer_file = ws.pointer_path(target)
            pointer.write(pointer_file)
            gitignore = ignore_in_git(target) if ws.has_scm else None
            results.append(
                AddResult(
                    ws.relpath(target),
                    pointer.kind,
                    snap.digest,
                    snap.size,
                    snap.files,
                    batch.written,
                    str(pointer_file),
                    None if gitignore is None else str(gitignore),
                )
            )
        if any(kind in ("hardlink", "symlink") for kind in ws.config.get("cache.link")[:1]):
            from conveyor.versioning._checkout import checkout

            checkout([str(t) for t in resolved], workspace=ws, relink=True)
    return results


def _check_targets(repo: Repo, targets: list[str | os.PathLike[str]]) -> list[Path]:
    resolved: list[Path] = []
    for raw in targets:
        target = repo.ws.resolve_target(raw)
        if not (target.is_file() or target.is_dir()):
            raise PathError(f"{raw}: not a regular file or folder", hint="name a file or folder with data")
        if not os.access(target, os.R_OK):
            from conveyor.errors import MissingFileError

            raise MissingFileError(f"{raw}: permission denied", hint="make it readable, then add it again")
        ancestor = repo.tracking_ancestor(target)
        if ancestor is not None:
            rel = repo.ws.relpath(ancestor)
            raise PathError(
                f"{raw}: inside the tracked folder {rel}",
                hint=f"re-add the whole folder with 'conveyor add {rel}'",
            )
        if repo.ws.has_scm and any(c in target.name for c in "\n\r"):
            raise PathError(
                f"{raw!r}: a name with a line break cannot be listed in .gitignore",
                hint="rename it before tracking it",
            )
        if target not in resolved:
            resolved.append(target)
    if repo.ws.has_scm:
        # a pointer git ignores is invisible to status, checkout and gc: refuse to write one
        pointers = [repo.ws.relpath(repo.ws.pointer_path(t)) for t in resolved]
        hidden = _git.ignored(repo.ws.root, pointers)
        if hidden:
            first = sorted(hidden)[0]
            raise PathError(
                f"{first}: git ignores this path, so the pointer file would be lost",
                hint="let git see pointer files (for example add '!*.cvy' to the .gitignore that hides it)",
            )
    return resolved


def _ignore_entry(target: Path) -> str:
    entry = "/" + target.name.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?").replace("[", "\\[")
    if entry.startswith("/#") or entry.startswith("/!"):
        entry = "/\\" + entry[1:]
    return entry


def unignore_in_git(target: Path) -> None:
    """Take ``/name`` out of the ``.gitignore`` beside ``target`` (conveyor put it there)."""
    gitignore = target.parent / ".gitignore"
    entry = _ignore_entry(target)
    try:
        lines = gitignore.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return
    if entry in lines:
        kept = [line for line in lines if line != entry]
        _fs.atomic_write_text(gitignore, "".join(line + "\n" for line in kept))


def set_ignored(changes: list[tuple[Path, bool]]) -> None:
    """Many :func:`ignore_in_git` (True) and :func:`unignore_in_git` (False) at once: each
    ``.gitignore`` is read and written once, however many of its entries change (a pipeline
    of thousands of stages writing into one folder)."""
    by_file: dict[Path, list[tuple[str, bool]]] = {}
    for target, ignored in changes:
        by_file.setdefault(target.parent / ".gitignore", []).append((_ignore_entry(target), ignored))
    for gitignore, entries in by_file.items():
        try:
            text = gitignore.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        lines = text.splitlines()
        present = set(lines)
        for entry, ignored in entries:
            if ignored and entry not in present:
                lines.append(entry)
                present.add(entry)
            elif not ignored and entry in present:
                lines = [line for line in lines if line != entry]
                present.discard(entry)
        new = "".join(line + "\n" for line in lines)
        if new != text and (new or text):
            _fs.atomic_write_text(gitignore, new, sync="data")


def ignore_in_git(target: Path) -> Path:
    """List ``/name`` in the ``.gitignore`` beside ``target`` so git keeps only the pointer."""
    gitignore = target.parent / ".gitignore"
    entry = _ignore_entry(target)
    try:
        text = gitignore.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    if entry in text.splitlines():
        return gitignore
    if text and not text.endswith("\n"):
        text += "\n"
    _fs.atomic_write_text(gitignore, text + entry + "\n", sync="data")
    return gitignore
