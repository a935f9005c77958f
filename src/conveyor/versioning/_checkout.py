"""``checkout``: make the workspace match its pointer files, never placing wrong content.

Every change is planned before any is made: a checkout that would discard workspace
content that exists nowhere else (not in the cache) stops before touching anything,
unless ``force``. Each file is placed by writing a temp file and renaming it, and its
object is verified first: copies are hashed while they are copied; objects that are
linked are re-hashed unless the state database has seen them intact since.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat as stat_mod
from dataclasses import dataclass, field
from pathlib import Path

from conveyor import _fs
from conveyor._progress import Progress
from conveyor.errors import (
    CorruptObjectError,
    ObjectMissingError,
    PathError,
    UncommittedChangesError,
    storage_error,
)
from conveyor.versioning._hashing import SMALL_FILE, hash_bytes, hash_fd, hash_file
from conveyor.versioning._manifest import Entry, Manifest
from conveyor.versioning._odb import fresh_bytes, is_verified
from conveyor.versioning._repo import Repo, Tracked
from conveyor.versioning._state import Stat
from conveyor.workspace import Workspace


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
_UNSUPPORTED = (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EBADF, errno.ENOSYS)


@dataclass(slots=True)
class CheckoutResult:
    """What ``checkout`` changed, as paths relative to the workspace root."""

    placed: list[str] = field(default_factory=list)  # workspace paths written
    removed: list[str] = field(default_factory=list)  # files deleted (not in the pointer's version)
    unchanged: int = 0
    missing_objects: list[str] = field(default_factory=list)  # paths not placed: object not cached


@dataclass(slots=True)
class _Plan:
    item: Tracked
    manifest: Manifest | None = None  # for a folder
    place: list[tuple[str, Entry]] = field(default_factory=list)  # absolute destination, entry
    remove: list[str] = field(default_factory=list)
    unchanged: int = 0
    at_risk: list[str] = field(default_factory=list)  # workspace content not in the cache


def checkout(
    targets: list[str | os.PathLike[str]] | None = None,
    *,
    force: bool = False,
    relink: bool = False,
    workspace: Workspace | None = None,
) -> CheckoutResult:
    """Restore tracked paths and pipeline outputs (all, or those at or below ``targets``) from the cache.

    Pipeline outputs are restored to what ``conveyor.lock`` records, as after a ``git checkout``.
    """
    ws = workspace or Workspace.find()
    with ws.lock(), Repo(ws) as repo:
        from conveyor.pipeline import _checkout as pipeline_outputs

        resolved = None if targets is None else [ws.resolve_target(t, must_exist=False) for t in targets]
        outs, resolved = pipeline_outputs.split_targets(repo, resolved)
        items = repo.tracked() if resolved is None else repo.tracked_for(resolved) if resolved else []
        plans = [_plan(repo, item, relink=relink) for item in items]
        at_risk = [path for plan in plans for path in plan.at_risk] + pipeline_outputs.at_risk(repo, outs)
        if at_risk and not force:
            shown = ", ".join(ws.relpath(Path(p)) for p in at_risk[:3])
            more = f" and {len(at_risk) - 3} more" if len(at_risk) > 3 else ""
            raise UncommittedChangesError(
                f"checkout would discard changes not saved in the cache: {shown}{more}",
                hint="save them with 'conveyor add', or pass --force to discard them",
            )
        placer = Placer(repo)
        result = CheckoutResult()
        skip = len(str(ws.root)) + 1  # absolute workspace path -> relative, without pathlib per file
        total = sum(len(plan.place) for plan in plans)
        with Progress("checkout", total=total) as bar:
            for plan in plans:
                result.unchanged += plan.unchanged
                for path in plan.remove:
                    _fs.remove(path)
                    result.removed.append(path[skip:])
                missing = 0
                for dest, entry in plan.place:
                    if placer.place(entry, dest, record=plan.manifest is None):
                        result.placed.append(dest[skip:])
                    else:
                        result.missing_objects.append(dest[skip:])
                        missing += 1
                    bar.update()
                if plan.manifest is not None and not missing and plan.item.only is None:
                    if not plan.place and not plan.remove:
                        os.makedirs(plan.item.target, exist_ok=True)  # an empty folder is data too
                    repo.remember_tree(plan.item.target, plan.manifest, plan.item.pointer.digest)
        placer.flush_state()
        placed, missing_outs = pipeline_outputs.checkout_outputs(repo, outs)
        result.placed.extend(placed)
        result.missing_objects.extend(missing_outs)
        if result.missing_objects:
            shown = ", ".join(result.missing_objects[:3])
            more = f" and {len(result.missing_objects) - 3} more" if len(result.missing_objects) > 3 else ""
            raise ObjectMissingError(
                f"{len(result.missing_objects)} file(s) not checked out, "
                f"their objects are not in the cache: {shown}{more}",
                hint="fetch them from a remote, or re-add the data where it still exists",
            )
    return result


def _plan(repo: Repo, item: Tracked, *, relink: bool) -> _Plan:
    plan = _Plan(item)
    target = str(item.target)
    pointer = item.pointer
    if pointer.kind == "file":
        current = repo.snapshot(item.target)
        if current.kind == "dir":
            plan.remove.append(target)
            plan.at_risk.extend(_uncached_files(repo, item.target))
        elif (
            current.kind == "file"
            and current.digest == pointer.digest
            and current.executable == pointer.executable
            and not relink
        ):
            plan.unchanged += 1
            return plan
        elif current.kind == "file" and current.digest is not None and not repo.odb.exists(current.digest):
            plan.at_risk.append(target)
        plan.place.append((target, Entry(item.target.name, pointer.digest, pointer.size, int(pointer.executable))))
        return plan

    manifest = plan.manifest = repo.try_manifest(pointer.digest)
    if manifest is None:
        raise ObjectMissingError(
            f"{item.rel}: its directory manifest {pointer.digest[:12]} is not in the cache",
            hint="fetch it from a remote, or re-add the folder where it still exists",
        )
    if os.path.isfile(target) or os.path.islink(target):
        current_digest = repo.snapshot(item.target).digest
        if current_digest is not None and not repo.odb.exists(current_digest):
            plan.at_risk.append(target)
        plan.remove.append(target)
        existing: dict[str, tuple[str, int]] = {}
    else:
        existing = {}
        if os.path.isdir(target):
            snap = repo.snapshot(item.target, need_manifest=True)
            assert snap.manifest is not None
            existing = {rel: (e.digest, e.executable) for rel, e in snap.manifest.entries.items()}
    if item.only is not None:  # a path inside the folder: leave the rest of it alone
        existing = {rel: have for rel, have in existing.items() if item.selects(rel)}
        manifest = Manifest({rel: e for rel, e in manifest.entries.items() if item.selects(rel)})
        if not manifest.entries and not existing:
            raise PathError(
                f"{item.rel}/{item.only}: not in the tracked version of {item.rel}",
                hint=f"'conveyor status {item.rel}' lists what it holds",
            )
    for rel, (digest, _executable) in existing.items():
        if rel not in manifest.entries:
            plan.remove.append(f"{target}/{rel}")
            if not repo.odb.exists(digest):
                plan.at_risk.append(f"{target}/{rel}")
    for rel, entry in manifest.entries.items():
        have = existing.get(rel)
        if have is not None and have == (entry.digest, entry.executable) and not relink:
            plan.unchanged += 1
            continue
        if have is not None and have[0] != entry.digest and not repo.odb.exists(have[0]):
            plan.at_risk.append(f"{target}/{rel}")
        plan.place.append((f"{target}/{rel}", entry))
    return plan


def _uncached_files(repo: Repo, folder: Path) -> list[str]:
    snap = repo.snapshot(folder, need_manifest=True)
    assert snap.manifest is not None
    return [f"{folder}/{rel}" for rel, e in snap.manifest.entries.items() if not repo.odb.exists(e.digest)]


class Placer:
    """Puts verified objects at workspace paths with the configured link strategy."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.strategies = list(repo.ws.config.get("cache.link"))
        self._state_rows: list[tuple[str, Stat, str]] = []
        self._verified: set[str] = set()
        self._made_dirs: set[str] = set()

    def place(self, entry: Entry, dest: str, *, record: bool = True) -> bool:
        """Place ``entry``'s object at ``dest``; False when the object is not in the cache.

        ``record`` notes the placed file in the state database (folders are noted whole,
        by :meth:`Repo.remember_tree`, once all their files are placed).
        """
        src = self.repo.odb.path(entry.digest)
        if not os.path.exists(src):
            return False
        self._make_parent(dest)
        while True:
            strategy = self.strategies[0]
            if entry.executable and strategy in ("hardlink", "symlink"):
                strategy = "copy"  # the cache's shared read-only inode cannot carry an execute bit
            try:
                if strategy == "copy":
                    self._copy(src, entry, dest)
                else:
                    self._verify_object(src, entry.digest)
                    self._link(strategy, src, entry, dest)
                if record:
                    self._record(dest, entry.digest)
                return True
            except OSError as exc:
                fallback = exc.errno in _UNSUPPORTED and len(self.strategies) > 1
                if strategy != "copy" and fallback:
                    self.strategies.pop(0)  # not supported here: fall back for the rest of the run
                    continue
                raise storage_error(exc, dest, "write") from exc

    def _make_parent(self, dest: str) -> None:
        parent = os.path.dirname(dest)
        if parent in self._made_dirs:
            return
        if os.path.lexists(parent) and not os.path.isdir(parent):
            _fs.remove(parent)  # a file stands where the pointer's version has a folder
        os.makedirs(parent, exist_ok=True)
        self._made_dirs.add(parent)

    def _verify_object(self, src: str, digest: str) -> None:
        if digest in self._verified:
            return
        raw = os.stat(src)
        st = Stat.of(raw)
        if not is_verified(src, raw) and self.repo.state.get(src, st) != digest:
            actual, _size = hash_file(src)
            if actual != digest:
                raise CorruptObjectError(
                    f"{src}: cache object is corrupt (its content does not match its hash)",
                    hint="run 'conveyor verify', delete the object and restore it with 'conveyor add' or a fetch",
                )
            self._state_rows.append((src, st, digest))
        self._verified.add(digest)

    def _publish(self, tmp: str, dest: str) -> None:
        try:
            _fs.publish(tmp, dest)
        except IsADirectoryError:  # a folder stands where the pointer's version has a file
            _fs.remove(dest)
            _fs.publish(tmp, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # dest is on another filesystem than .conveyor/tmp: stage beside it instead
            local = _fs.tmp_name(os.path.dirname(dest))
            with _fs.removing_on_error(local):
                with open(tmp, "rb") as src_handle, open(local, "wb") as out:
                    while chunk := src_handle.read(1 << 20):
                        out.write(chunk)
                os.chmod(local, os.stat(tmp).st_mode & 0o7777)
                os.unlink(tmp)
                os.replace(local, dest)

    def _copy(self, src: str, entry: Entry, dest: str) -> None:
        tmp = _fs.tmp_name(self.repo.ws.tmp_dir)
        mode = 0o755 if entry.executable else 0o644
        if entry.size > SMALL_FILE and is_verified(src, os.stat(src)):
            # this process just wrote or checked the object (a pull): copy in the kernel, no re-hash
            with _fs.removing_on_error(tmp):
                shutil.copyfile(src, tmp)
                os.chmod(tmp, mode)
                self._publish(tmp, dest)
            return
        fresh = fresh_bytes(entry.digest) if entry.size <= SMALL_FILE else None
        if fresh is not None:  # just received and verified by this process (a pull)
            with _fs.removing_on_error(tmp):
                out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
                try:
                    _fs.write_all(out, fresh)
                finally:
                    os.close(out)
                if mode & _UMASK:
                    os.chmod(tmp, mode)
                self._publish(tmp, dest)
            return
        with _fs.removing_on_error(tmp):
            src_fd = os.open(src, os.O_RDONLY)
            try:
                out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
                try:
                    if entry.size <= SMALL_FILE:  # one read, then verify before writing
                        data = os.read(src_fd, SMALL_FILE + 1)
                        digest = hash_bytes(data)
                        if digest == entry.digest:
                            _fs.write_all(out, data)
                    else:
                        digest, _ = hash_fd(src_fd, sink=lambda chunk: _fs.write_all(out, chunk))
                finally:
                    os.close(out)
            finally:
                os.close(src_fd)
            if digest != entry.digest:
                raise CorruptObjectError(
                    f"{src}: cache object is corrupt (its content does not match its hash); {dest} was left as it was",
                    hint="run 'conveyor verify', delete the object and restore it with 'conveyor add' or a fetch",
                )
            if mode & _UMASK:  # open() applied the umask; the recorded mode wins
                os.chmod(tmp, mode)
            self._publish(tmp, dest)

    def _link(self, strategy: str, src: str, entry: Entry, dest: str) -> None:
        tmp = _fs.tmp_name(self.repo.ws.tmp_dir)
        with _fs.removing_on_error(tmp):
            if strategy == "reflink":
                _fs.reflink(src, tmp)
                os.chmod(tmp, 0o755 if entry.executable else 0o644)
            elif strategy == "hardlink":
                os.link(src, tmp)  # shares the read-only inode: edits in place are refused
            else:
                os.symlink(src, tmp)
            self._publish(tmp, dest)

    def _record(self, dest: str, digest: str) -> None:
        with contextlib.suppress(OSError):
            self._state_rows.append((dest, Stat.of(os.stat(dest)), digest))
        if len(self._state_rows) >= 50_000:
            self.flush_state()

    def flush_state(self) -> None:
        if self._state_rows:
            self.repo.state.put_many(self._state_rows)
            self._state_rows.clear()


def unprotect(targets: list[str | os.PathLike[str]], *, workspace: Workspace | None = None) -> list[str]:
    """Replace links into the cache at ``targets`` by private, writable copies, so they can be edited."""
    ws = workspace or Workspace.find()
    changed: list[str] = []
    with ws.lock(), Repo(ws) as repo:
        resolved = [ws.resolve_target(t) for t in targets]
        for item in repo.tracked_for(resolved):
            paths = (
                [item.target]
                if item.target.is_file() or item.target.is_symlink()
                else [item.target / rel for rel, *_stat in sorted(repo.scan(item.target)) if item.selects(rel)]
            )
            for path in paths:
                if make_private(ws, path):
                    changed.append(ws.relpath(path))
    return changed


def make_private(ws: Workspace, path: Path) -> bool:
    """Replace ``path`` by a private, writable copy if it is a link into the cache (or read-only).

    Writing through a hard link or symlink into the cache would corrupt the shared object.
    """
    st = os.lstat(path)
    if not (stat_mod.S_ISLNK(st.st_mode) or st.st_nlink > 1 or not st.st_mode & stat_mod.S_IWUSR):
        return False
    tmp = _fs.tmp_name(ws.tmp_dir)
    with _fs.removing_on_error(tmp):
        with open(path, "rb") as src, open(tmp, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        os.chmod(tmp, 0o644 | (os.stat(path).st_mode & 0o111))
        os.replace(tmp, path)
    return True
