"""The versioning context: a workspace with its object store and state database.

``Repo.snapshot`` answers the one question every command asks, "what content is at this
path now?", as cheaply as it can: a trusted tree fingerprint answers for a whole folder
at the cost of a walk; otherwise trusted per-file state entries answer for unchanged
files, and only the rest is read.
"""

from __future__ import annotations

import os
import stat as stat_mod
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from blake3 import blake3

from conveyor import _fs
from conveyor._progress import Progress
from conveyor.errors import ObjectMissingError, PathError
from conveyor.versioning import _pointer
from conveyor.versioning._hashing import hash_bytes, hash_file
from conveyor.versioning._manifest import Entry, Manifest
from conveyor.versioning._odb import ObjectBatch, ObjectStore
from conveyor.versioning._pointer import Pointer
from conveyor.versioning._state import Stat, StateDB
from conveyor.workspace import CONVEYOR_DIR, POINTER_SUFFIX, Workspace

_EXEC_BITS = stat_mod.S_IXUSR | stat_mod.S_IXGRP | stat_mod.S_IXOTH


@dataclass(slots=True)
class ScannedFile:
    rel: str  # relative to the scanned folder, POSIX
    path: str  # absolute
    stat: Stat
    executable: bool


@dataclass(slots=True)
class Snapshot:
    """What is at a tracked path right now."""

    kind: str  # "file", "dir" or "missing"
    digest: str | None = None
    size: int = 0
    files: int = 0
    manifest: Manifest | None = None  # for folders, when it had to be built
    scanned: list[ScannedFile] = field(default_factory=list)


@dataclass(slots=True)
class Tracked:
    """A pointer file and the workspace path it tracks."""

    pointer_file: Path
    pointer: Pointer
    target: Path
    rel: str  # target relative to the workspace root


class Repo:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.odb = ObjectStore(workspace.cache_dir, workspace.tmp_dir)
        self.state = StateDB(workspace.state_path)

    def close(self) -> None:
        self.state.close()

    def __enter__(self) -> Repo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what is tracked -----------------------------------------------------------------

    def pointer_files(self) -> list[Path]:
        """Every pointer file in the workspace, found through git's index where there is one."""
        root = self.ws.root
        if self.ws.has_scm:
            out = subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", f"*{POINTER_SUFFIX}"],
                cwd=root,
                capture_output=True,
                check=True,
            ).stdout
            found = {root / os.fsdecode(p) for p in out.split(b"\0") if p}
            return sorted(p for p in found if p.is_file())
        return sorted(self._walk_for_pointers())

    def _walk_for_pointers(self) -> Iterator[Path]:
        for folder, dirs, files in os.walk(self.ws.root):
            dirs[:] = [d for d in dirs if d not in (".git", CONVEYOR_DIR) and d + POINTER_SUFFIX not in files]
            for name in files:
                if name.endswith(POINTER_SUFFIX):
                    yield Path(folder) / name

    def tracked(self, targets: list[Path] | None = None) -> list[Tracked]:
        """Tracked paths, all or those at or below ``targets``; a bad pointer file raises."""
        items = []
        for pointer_file in self.pointer_files():
            target = pointer_file.with_name(pointer_file.name[: -len(POINTER_SUFFIX)])
            if targets is not None and not any(t == target or t in target.parents for t in targets):
                continue
            items.append(Tracked(pointer_file, _pointer.read(pointer_file), target, self.ws.relpath(target)))
        return items

    def tracked_for(self, targets: list[Path]) -> list[Tracked]:
        """Like :meth:`tracked`, but every target must be tracked or contain tracked paths."""
        items = self.tracked(targets)
        for target in targets:
            if not any(t.target == target or target in t.target.parents for t in items):
                raise PathError(
                    f"{self.ws.relpath(target)}: not tracked by conveyor",
                    hint=f"track it with 'conveyor add {self.ws.relpath(target)}'",
                )
        return items

    def tracking_ancestor(self, target: Path) -> Path | None:
        for parent in target.parents:
            if parent == self.ws.root:
                return None
            if self.ws.pointer_path(parent).is_file():
                return parent
        return None

    # -- manifests -----------------------------------------------------------------------

    def load_manifest(self, digest: str) -> Manifest:
        return Manifest.from_bytes(self.odb.read_bytes(digest), source=self.odb.path(digest))

    def try_manifest(self, digest: str) -> Manifest | None:
        try:
            return self.load_manifest(digest)
        except ObjectMissingError:
            return None

    # -- what is in the workspace --------------------------------------------------------

    def scan(self, folder: Path) -> list[ScannedFile]:
        """Every file below ``folder``, with its stat; symlinks must stay inside the workspace."""
        root = str(self.ws.root)
        cache = str(self.ws.cache_dir)
        found: list[ScannedFile] = []

        def walk(path: str, prefix: str) -> None:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
            for entry in entries:
                name = entry.name
                if name.startswith(_fs.TMP_PREFIX):
                    continue
                if entry.is_symlink():
                    real = os.path.realpath(entry.path)
                    inside = real.startswith(root + os.sep) or real.startswith(cache + os.sep)
                    if not inside:
                        raise PathError(
                            f"{entry.path}: symlink leads outside the workspace (to {real})",
                            hint="replace it with the file itself or move the target into the workspace",
                        )
                    if os.path.isdir(real):
                        raise PathError(
                            f"{entry.path}: symlink to a folder inside a tracked folder",
                            hint="replace the link with the folder itself",
                        )
                if entry.is_dir():
                    walk(entry.path, f"{prefix}{name}/")
                    continue
                if name.endswith(POINTER_SUFFIX):
                    raise PathError(
                        f"{entry.path}: a tracked path inside the folder being tracked",
                        hint="track the folder or the paths inside it, not both",
                    )
                try:
                    st = entry.stat()
                except FileNotFoundError:  # a dangling symlink, or deleted under us
                    raise PathError(f"{entry.path}: dangling symlink", hint="remove it or restore its target") from None
                if not stat_mod.S_ISREG(st.st_mode):
                    continue  # sockets, fifos, devices: not data
                found.append(ScannedFile(f"{prefix}{name}", entry.path, Stat.of(st), bool(st.st_mode & _EXEC_BITS)))

        walk(str(folder), "")
        return found

    @staticmethod
    def fingerprint(files: list[ScannedFile]) -> tuple[str, int]:
        hasher = blake3()
        max_mtime = 0
        for f in files:
            s = f.stat
            hasher.update(f"{f.rel}\0{s.ino}\0{s.mtime_ns}\0{s.size}\0{int(f.executable)}\n".encode())
            max_mtime = max(max_mtime, s.mtime_ns)
        return hasher.hexdigest(), max_mtime

    def snapshot(self, target: Path, *, batch: ObjectBatch | None = None, need_manifest: bool = False) -> Snapshot:
        """The content at ``target`` now; with ``batch``, its objects are stored too."""
        try:
            st = os.stat(target)
        except FileNotFoundError:
            return Snapshot("missing")
        rel = str(target)
        if stat_mod.S_ISDIR(st.st_mode):
            return self._snapshot_dir(target, batch=batch, need_manifest=need_manifest)
        digest = self.state.get(rel, Stat.of(st))
        if batch is not None:
            digest, size = batch.add_file(rel, known_digest=digest)
        elif digest is None:
            digest, size = hash_file(rel)
        else:
            size = st.st_size
        if size == st.st_size:
            self.state.put_many([(rel, Stat.of(st), digest)])
        return Snapshot("file", digest, size, 1)

    def _snapshot_dir(self, folder: Path, *, batch: ObjectBatch | None, need_manifest: bool) -> Snapshot:
        files = self.scan(folder)
        fingerprint, max_mtime = self.fingerprint(files)
        total = sum(f.stat.size for f in files)
        key = str(folder)
        digest = self.state.get_tree(key, fingerprint)
        if digest is not None and not need_manifest and (batch is None or batch.has(digest)):
            return Snapshot("dir", digest, total, len(files), scanned=files)
        known = self.state.get_under(key)
        entries: list[Entry] = []
        fresh: list[tuple[str, Stat, str]] = []
        with Progress(f"hashing {self.ws.relpath(folder)}", total=len(files)) as bar:
            for f in files:
                cached = self.state.lookup(known, f.path, f.stat)
                if batch is not None:
                    file_digest, size = batch.add_file(f.path, known_digest=cached)
                elif cached is None:
                    file_digest, size = hash_file(f.path)
                else:
                    file_digest, size = cached, f.stat.size
                if cached is None and size == f.stat.size:
                    fresh.append((f.path, f.stat, file_digest))
                entries.append(Entry(f.rel, file_digest, size, f.executable))
                bar.update()
        manifest = Manifest.from_entries(entries)
        data = manifest.to_bytes()
        digest = batch.add_bytes(data) if batch is not None else hash_bytes(data)
        if fresh:
            self.state.put_many(fresh)
        self.state.put_tree(key, fingerprint, digest, max_mtime)
        return Snapshot("dir", digest, total, len(files), manifest=manifest, scanned=files)
