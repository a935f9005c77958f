"""A wheel of the conveyor installed here, byte for byte the same for the same code.

A bundle ships the conveyor that built and tested it rather than trusting an index to hold that
exact version. The wheel is packed from the installed package's files (no ``__pycache__``) and
its metadata, entries sorted, every timestamp 1980-01-01 and every mode 0644, so building the
same code twice gives the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import io
import os
import zipfile
from pathlib import Path

_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = frozenset({"__pycache__"})
_SKIP_SUFFIXES = (".pyc", ".pyo")


def _files(package: Path) -> list[tuple[str, Path]]:
    found = []
    for folder, dirs, names in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in names:
            if name.endswith(_SKIP_SUFFIXES) or name.startswith("."):
                continue
            path = Path(folder) / name
            found.append((f"conveyor/{path.relative_to(package).as_posix()}", path))
    return sorted(found)


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def build_wheel() -> tuple[str, bytes]:
    """(file name, bytes) of a wheel of the installed conveyor."""
    import conveyor

    try:
        dist = md.distribution("conveyor")
    except md.PackageNotFoundError:
        from conveyor.errors import UsageError

        raise UsageError(
            "conveyor is not installed as a package here (run from a source folder?): its wheel cannot be made",
            hint="install it (pip install -e .) and build again",
        ) from None
    version = dist.version
    info = f"conveyor-{version}.dist-info"
    package = Path(conveyor.__file__).parent
    entries: list[tuple[str, bytes]] = [(arcname, path.read_bytes()) for arcname, path in _files(package)]
    entries.append((f"{info}/METADATA", (dist.read_text("METADATA") or "").encode()))
    entries.append(
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: conveyor build\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    )
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        entries.append((f"{info}/entry_points.txt", entry_points.encode()))
    entries.append((f"{info}/top_level.txt", b"conveyor\n"))
    record = "\n".join([*(_record_line(a, d) for a, d in entries), f"{info}/RECORD,,"]) + "\n"
    entries.append((f"{info}/RECORD", record.encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for arcname, data in entries:
            item = zipfile.ZipInfo(arcname, date_time=_EPOCH)
            item.external_attr = 0o100644 << 16
            item.create_system = 3  # unix, so the mode above is read
            archive.writestr(item, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return f"conveyor-{version}-py3-none-any.whl", buffer.getvalue()
