"""``run --verify``: prove stages are reproducible by running them again where nothing is shared.

Each up-to-date stage runs in its own scratch copy of the project (the files git sees, plus
the stage's deps as they are now); its outputs there are hashed and compared with the
hashes in ``conveyor.lock``. The workspace, the lock and the cache are not touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.pipeline._dag import Dag
from conveyor.pipeline._executor import StageProcess, Terminal
from conveyor.pipeline._freshness import Facts
from conveyor.pipeline._lock import LOCK_FILE, Fact, Lock
from conveyor.pipeline._spec import Stage, load_pipeline
from conveyor.pipeline._status import compute_status
from conveyor.versioning._hashing import hash_bytes, hash_file
from conveyor.versioning._manifest import Entry, Manifest
from conveyor.versioning._repo import Repo
from conveyor.workspace import CONVEYOR_DIR, Workspace, private_dir


@dataclass(slots=True)
class VerifyResult:
    """One stage re-run in a scratch area: whether every output matched the lock."""

    stage: str
    reproducible: bool
    duration: float = 0.0
    differing: list[str] = field(default_factory=list)  # outputs (or files inside folder outputs)
    error: str | None = None


def verify_reproducible(
    targets: list[str] | None = None, *, jobs: int | None = None, workspace: Workspace | None = None
) -> list[VerifyResult]:
    """Re-run the up-to-date stages (all, or ``targets`` and their upstream) in scratch copies
    and compare their outputs with ``conveyor.lock``; a stale stage cannot be verified."""
    ws = workspace or Workspace.find()
    jobs = jobs or os.cpu_count() or 1
    with ws.lock(), Repo(ws) as repo:
        dag = Dag.build(load_pipeline(ws))
        lock = Lock.read(ws.root / LOCK_FILE, conveyor_dir=ws.conveyor_dir)
        selected = dag.select(dag.normalize_targets(ws, targets))
        status = compute_status(dag, lock, Facts(repo), selected)
        results: dict[str, VerifyResult] = {}
        todo: list[Stage] = []
        for entry in status.stages:
            if entry.state == "frozen":
                continue
            if entry.state != "up-to-date":
                why = "; ".join(str(r) for r in entry.reasons[:2]) or entry.state
                results[entry.name] = VerifyResult(entry.name, False, error=f"stale ({why}): run 'conveyor run' first")
                continue
            todo.append(dag.stage(entry.name))
        sources = _project_files(ws)
        expected: dict[str, dict[str, Fact]] = {}
        for stage in todo:
            recorded = lock.get(stage.name)
            expected[stage.name] = {o.path: o for o in recorded.outs} if recorded is not None else {}
        cancel = threading.Event()
        terminal = Terminal(prefix=False, quiet=True)

        def verify_one(stage: Stage) -> VerifyResult:
            return _verify_stage(ws, repo, stage, expected[stage.name], sources, terminal, cancel)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            try:
                for result in pool.map(verify_one, todo):
                    results[result.stage] = result
            except BaseException:
                cancel.set()
                raise
    return [results[name] for name in selected if name in results]


def _project_files(ws: Workspace) -> list[str]:
    """The files a fresh clone would have (plus new files git would see), relative to the root."""
    if ws.has_scm:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ws.root,
            capture_output=True,
            check=True,
        ).stdout
        return [os.fsdecode(p) for p in out.split(b"\0") if p]
    found: list[str] = []
    for folder, dirs, files in os.walk(ws.root):
        dirs[:] = [d for d in dirs if d not in (".git", CONVEYOR_DIR)]
        rel = os.path.relpath(folder, ws.root)
        found.extend(os.path.normpath(os.path.join(rel, f)) for f in files)
    return found


def _copy(src: Path, dest: Path) -> None:
    """Copy a file or folder; symlinks stay symlinks (following ``up -> ..`` would copy the world)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        if not os.path.lexists(dest):
            os.symlink(os.readlink(src), dest)
    elif src.is_dir():
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
    elif src.is_file():
        shutil.copy2(src, dest)


def _verify_stage(
    ws: Workspace,
    repo: Repo,
    stage: Stage,
    expected: dict[str, Fact],
    sources: list[str],
    terminal: Terminal,
    cancel: threading.Event,
) -> VerifyResult:
    outs = {o.path for o in stage.outs}
    # outside the workspace, so that nothing the stage runs (git, say) finds the real project
    scratch = Path(tempfile.mkdtemp(prefix="conveyor-verify-"))
    try:
        for rel in sources:
            if rel in outs or any(rel.startswith(o + "/") for o in outs):
                continue
            _copy(ws.root / rel, scratch / rel)
        for dep in stage.deps:
            if not os.path.isabs(dep):
                _copy(ws.root / dep, scratch / dep)
        for out in stage.outs:
            target = scratch / out.path
            if out.persist and os.path.lexists(ws.root / out.path):
                _copy(ws.root / out.path, target)  # a persistent output is an input of its own stage
            target.parent.mkdir(parents=True, exist_ok=True)
        log = private_dir(ws.conveyor_dir, "logs") / "verify" / f"{stage.name}.log"
        outcome = StageProcess(stage, scratch, log, terminal, cancel).run()
        if not outcome.ok:
            return VerifyResult(stage.name, False, outcome.duration, error=f"{outcome.error}; see {ws.relpath(log)}")
        differing: list[str] = []
        for out in stage.outs:
            recorded = expected.get(out.path)
            target = scratch / out.path
            if recorded is None or not os.path.lexists(target):
                differing.append(out.path)
                continue
            if recorded.kind == "dir" and target.is_dir():
                manifest = _manifest(target)
                if hash_bytes(manifest.to_bytes()) != recorded.hash:
                    differing.extend(_folder_differences(repo, out.path, recorded.hash, manifest))
            elif recorded.kind == "file" and target.is_file():
                if hash_file(str(target))[0] != recorded.hash:
                    differing.append(out.path)
            else:
                differing.append(out.path)
        return VerifyResult(stage.name, not differing, outcome.duration, differing)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _manifest(folder: Path) -> Manifest:
    entries: dict[str, Entry] = {}
    for current, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(current, name)
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            digest, size = hash_file(path)
            executable = 1 if os.stat(path).st_mode & 0o111 else 0
            entries[rel] = Entry(rel, digest, size, executable)
    return Manifest(entries)


def _folder_differences(repo: Repo, path: str, recorded: str, manifest: Manifest) -> list[str]:
    before = repo.try_manifest(recorded)
    if before is None:
        return [path]
    old = {p: (e.digest, e.executable) for p, e in before.entries.items()}
    new = {p: (e.digest, e.executable) for p, e in manifest.entries.items()}
    changed = sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))
    return [f"{path}/{p}" for p in changed] or [path]
