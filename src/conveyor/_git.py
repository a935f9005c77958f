"""The few git plumbing calls conveyor needs, each one subprocess for any number of files."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conveyor.errors import UsageError


def _git(root: Path, *args: str, input: bytes | None = None) -> bytes:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, input=input, check=False)
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise UsageError(f"git {' '.join(args[:2])}: {message[-1] if message else 'failed'}")
    return proc.stdout


def resolve_rev(root: Path, rev: str) -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=root, capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise UsageError(f"unknown git revision '{rev}'", hint="name a commit, branch or tag ('git log' lists them)")
    return proc.stdout.decode().strip()


def read_blobs(root: Path, blob_ids: list[str]) -> list[bytes]:
    """Contents of many blobs through one ``git cat-file --batch``."""
    if not blob_ids:
        return []
    out = _git(root, "cat-file", "--batch", input="".join(f"{b}\n" for b in blob_ids).encode())
    blobs: list[bytes] = []
    pos = 0
    for _ in blob_ids:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        start = header_end + 1
        blobs.append(out[start : start + size])
        pos = start + size + 1
    return blobs


def files_at(root: Path, rev: str, suffix: str) -> dict[str, bytes]:
    """``{path: content}`` of every file ending in ``suffix`` in commit ``rev``."""
    commit = resolve_rev(root, rev)
    listing = _git(root, "ls-tree", "-r", "-z", "--full-tree", commit)
    paths: list[str] = []
    ids: list[str] = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        _mode, kind, blob = meta.split()
        name = path.decode()
        if kind == b"blob" and name.endswith(suffix):
            paths.append(name)
            ids.append(blob.decode())
    return dict(zip(paths, read_blobs(root, ids), strict=True))


def files_in_history(root: Path, suffix: str) -> list[tuple[str, bytes]]:
    """``(path, content)`` of every version of every file ending in ``suffix``, in any commit of any ref."""
    has_commits = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "HEAD"], cwd=root, capture_output=True)
    refs = _git(root, "for-each-ref", "--format=%(objectname)").split()
    if not refs and has_commits.returncode != 0:
        return []
    head = ["HEAD"] if has_commits.returncode == 0 else []
    listing = _git(root, "rev-list", "--objects", "--filter=object:type=blob", "--all", *head)
    seen: dict[str, str] = {}
    for line in listing.decode(errors="replace").splitlines():
        blob, _, path = line.partition(" ")
        if path.endswith(suffix) and blob not in seen:
            seen[blob] = path
    ids = list(seen)
    return [(seen[b], data) for b, data in zip(ids, read_blobs(root, ids), strict=True)]


def ignored(root: Path, paths: list[str]) -> set[str]:
    """Those of ``paths`` (relative to ``root``) that git's ignore rules would hide."""
    if not paths:
        return set()
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "-z", "--stdin"],
        cwd=root,
        input="\0".join(paths).encode() + b"\0",
        capture_output=True,
        check=False,
    )
    if proc.returncode not in (0, 1):  # 1: none of them is ignored
        message = proc.stderr.decode(errors="replace").strip()
        raise UsageError(f"git check-ignore: {message or 'failed'}")
    return {p.decode() for p in proc.stdout.split(b"\0") if p}
