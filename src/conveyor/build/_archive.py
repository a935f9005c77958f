"""A ``.tar.gz`` whose bytes depend on the files alone: entries sorted, one timestamp, owner root,
modes 0644 (0755 for folders and scripts), and a gzip header without a time or a name. It is
streamed to disk (a model of any size), then hashed."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from pathlib import Path

_EXECUTABLE = frozenset({"serve.py"})


def _entries(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, names in os.walk(folder):
        base = Path(root)
        found.extend(base / d for d in dirs)
        found.extend(base / n for n in names)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def write_archive(folder: Path, target: Path, *, top: str, mtime: int) -> str:
    """Write ``folder`` as ``target`` (entries under ``top/``); returns the archive's SHA-256."""
    with (
        target.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in [folder, *_entries(folder)]:
            relative = path.relative_to(folder).as_posix()
            item = tarfile.TarInfo(top if relative == "." else f"{top}/{relative}")
            item.mtime = mtime
            item.uid = item.gid = 0
            item.uname = item.gname = "root"
            if path.is_dir():
                item.type, item.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(item)
                continue
            item.size = path.stat().st_size
            item.mode = 0o755 if relative in _EXECUTABLE else 0o644
            with path.open("rb") as handle:
                tar.addfile(item, handle)
    with target.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
