"""The workspace: a project folder with a ``.conveyor/`` directory, usually a git repository.

``Workspace`` knows where things live, resolves user paths safely (nothing outside the
root, nothing through ``.git`` or ``.conveyor``), and holds the workspace lock that keeps
two writers apart. The lock is an ``flock`` on ``.conveyor/lock``: the kernel releases it
when its holder dies, so a killed process never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from conveyor import _fs
from conveyor.config import Config
from conveyor.errors import (
    NotAGitRepositoryError,
    PathError,
    WorkspaceError,
    WorkspaceLockedError,
)

CONVEYOR_DIR = ".conveyor"
POINTER_SUFFIX = ".cvy"
_RESERVED = (".git", CONVEYOR_DIR)

_CONVEYOR_GITIGNORE = """\
# Written by conveyor init: local state that never belongs in git.
/cache/
/tmp/
/state.db
/state.db-*
/state.db.trees/
/lock
/config.local
"""


def private_dir(conveyor_dir: Path, name: str) -> Path:
    """``.conveyor/NAME/``, made on first use with a ``.gitignore`` of ``*`` in it.

    Local state that must never reach git ignores itself, so a workspace made by an older
    conveyor (whose ``.conveyor/.gitignore`` does not list it) needs no edit of a tracked file.
    """
    folder = conveyor_dir / name
    if not (folder / ".gitignore").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _fs.atomic_write_text(folder / ".gitignore", "# conveyor's local state: never committed\n*\n", sync="none")
    return folder


def git_root(path: Path) -> Path | None:
    """The top of the git work tree holding ``path``, or None outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=path,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:  # git itself is missing
        return None
    if out.returncode != 0:
        return None
    return Path(out.stdout.strip())


class Workspace:
    """A conveyor workspace rooted at ``root``."""

    def __init__(self, root: Path, *, env: dict[str, str] | None = None) -> None:
        self.root = root.resolve()
        self.conveyor_dir = self.root / CONVEYOR_DIR
        self._env = env
        self.config = Config(self.conveyor_dir, env)
        cache_dir = self.config.get("cache.dir")
        self.cache_dir = (self.conveyor_dir / "cache") if cache_dir is None else (self.root / cache_dir)
        self.tmp_dir = self.conveyor_dir / "tmp"
        # Objects are staged on the cache's own filesystem so they can be renamed into it. A
        # cache elsewhere (cache.dir) may be shared by several workspaces: each stages in a
        # folder of its own there, which only it sweeps.
        if cache_dir is None:
            self.cache_tmp_dir = self.tmp_dir
        else:
            import hashlib

            tag = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
            self.cache_tmp_dir = self.cache_dir / "tmp" / tag
        self.state_path = self.conveyor_dir / "state.db"
        self._lock_depth = 0
        self._lock_fd: int | None = None
        # Relative paths given to the API are relative to ``base``: the workspace root for a
        # workspace built in code, the current directory for one found from it (the CLI).
        self.base = self.root

    def reload_config(self) -> None:
        """Read the config files again (after this process changed them)."""
        self.config = Config(self.conveyor_dir, self._env)

    # -- discovery ---------------------------------------------------------------------

    @classmethod
    def find(cls, start: str | os.PathLike[str] | None = None) -> Workspace:
        """The workspace holding ``start`` (default: the current directory)."""
        here = (Path.cwd() if start is None else Path(start)).resolve()
        for candidate in (here, *here.parents):
            if (candidate / CONVEYOR_DIR).is_dir():
                workspace = cls(candidate)
                workspace.base = Path.cwd() if start is None else here
                return workspace
        raise WorkspaceError(
            f"{here}: not inside a conveyor workspace (no {CONVEYOR_DIR}/ here or above)",
            hint="run 'conveyor init' at the top of your git repository",
        )

    @classmethod
    def init(cls, path: Path | None = None, *, no_scm: bool = False, force: bool = False) -> Workspace:
        """Create ``.conveyor/`` at ``path`` (the top of its git repository)."""
        target = (path or Path.cwd()).resolve()
        if not target.is_dir():
            raise PathError(f"{target}: not a directory", hint="create it first or pass another path")
        top = git_root(target)
        if top is None and not no_scm:
            raise NotAGitRepositoryError(
                f"{target}: not a git repository",
                hint="run 'git init' first, or 'conveyor init --no-scm' to version data without git",
            )
        if top is not None and top.resolve() != target:
            raise WorkspaceError(
                f"{target}: inside the git repository at {top}",
                hint=f"run 'conveyor init' at the repository's top, {top}",
            )
        conveyor_dir = target / CONVEYOR_DIR
        if conveyor_dir.exists() and not force:
            raise WorkspaceError(
                f"{conveyor_dir}: already initialised",
                hint="nothing to do; 'conveyor init --force' recreates its config",
            )
        for sub in ("", "cache", "tmp"):
            (conveyor_dir / sub).mkdir(parents=True, exist_ok=True)
        _fs.atomic_write_text(conveyor_dir / ".gitignore", _CONVEYOR_GITIGNORE)
        config_text = "schema: 1\n"
        if no_scm:
            config_text += "core:\n  no_scm: true\n"
        _fs.atomic_write_text(conveyor_dir / "config", config_text)
        return cls(target)

    @property
    def has_scm(self) -> bool:
        return not self.config.get("core.no_scm") and (self.root / ".git").exists()

    # -- paths -------------------------------------------------------------------------

    def relpath(self, path: Path) -> str:
        """``path`` (absolute, inside the root) as a POSIX path relative to the root."""
        return path.relative_to(self.root).as_posix()

    def resolve_target(self, raw: str | os.PathLike[str], *, must_exist: bool = True) -> Path:
        """Resolve a path the user named to an absolute path inside the workspace.

        Symlinks are followed: a path that only looks inside the workspace but leads out of
        it is refused, and so is anything in ``.git`` or ``.conveyor``.
        """
        given = Path(raw)
        absolute = given if given.is_absolute() else self.base / given
        if absolute.name.endswith(POINTER_SUFFIX) and not absolute.is_dir():
            absolute = absolute.with_name(absolute.name[: -len(POINTER_SUFFIX)])
        lexical = Path(os.path.normpath(absolute))
        real = lexical.resolve()
        if real != lexical and self.cache_dir in real.parents and self.root in lexical.parents:
            real = lexical  # a file checked out as a symlink into the cache is named by its link
        for candidate in (lexical, real):
            if candidate != self.root and self.root not in candidate.parents:
                via = "" if candidate == lexical else f" (it leads to {real})"
                raise PathError(
                    f"{raw}: outside the workspace {self.root}{via}",
                    hint="move or copy the data into the workspace first",
                )
        if real == self.root:
            raise PathError(f"{raw}: is the workspace root", hint="name a file or folder inside it")
        first = real.relative_to(self.root).parts[0]
        if first in _RESERVED:
            raise PathError(f"{raw}: inside {first}/, which conveyor and git manage", hint="name your data instead")
        if must_exist and not os.path.lexists(real):
            from conveyor.errors import MissingFileError

            raise MissingFileError(f"{raw}: no such file or directory", hint="check the path")
        return real

    def pointer_path(self, target: Path) -> Path:
        return target.with_name(target.name + POINTER_SUFFIX)

    # -- locking -----------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, *, timeout: float | None = None) -> Iterator[None]:
        """Hold the workspace lock; re-entrant within one process.

        Waits up to ``core.lock_timeout`` seconds, saying so on stderr, then fails clearly.
        On first acquisition it sweeps temp files that killed processes left behind.
        """
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        import fcntl

        wait = self.config.get("core.lock_timeout") if timeout is None else timeout
        path = self.conveyor_dir / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        told = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                    if time.monotonic() >= deadline:
                        raise WorkspaceLockedError(
                            f"{self.root}: another conveyor process (pid {holder}) is writing to this workspace",
                            hint="wait for it to finish and run the command again",
                        ) from None
                    if not told:
                        print(
                            f"waiting for another conveyor process (pid {holder}) to release the workspace lock...",
                            file=sys.stderr,
                        )
                        told = True
                    time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd
        self._lock_depth = 1
        try:
            for tmp in {self.tmp_dir, self.cache_tmp_dir}:
                tmp.mkdir(parents=True, exist_ok=True)
                _fs.sweep_tmp(tmp)
            yield
        finally:
            self._lock_depth = 0
            self._lock_fd = None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing releases the flock
