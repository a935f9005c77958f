"""Pointer files: ``PATH.cvy``, the small YAML file git keeps in place of the data.

Stable formatting (fixed key order, one key a line) so diffs of pointer files are
readable in review. Anything hand-edited into an invalid state is reported with the
file and the field, never silently used.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from conveyor import _fs
from conveyor.errors import CorruptFileError
from conveyor.versioning._hashing import ALGORITHM, is_hash

SCHEMA = 1
_HEADER = "# Tracked by conveyor: 'conveyor checkout' restores the data this file names.\n"

Kind = Literal["file", "dir"]

# The exact text dump() writes for a name YAML leaves unquoted (the usual case).
_CANONICAL = re.compile(
    r"(?:#[^\n]*\n)*schema: 1\npath: (?P<path>[A-Za-z0-9_][A-Za-z0-9_.-]*)\nkind: (?P<kind>file|dir)\n"
    r"hash: blake3:(?P<hash>[0-9a-f]{64})\nsize: (?P<size>0|[1-9][0-9]*)\nfiles: (?P<files>0|[1-9][0-9]*)\n"
    r"(?P<executable>executable: true\n)?"
)


@dataclass(frozen=True, slots=True)
class Pointer:
    path: str  # the tracked file or folder, relative to the pointer's folder
    kind: Kind
    digest: str  # the file's content hash, or the directory manifest's hash
    size: int
    files: int
    executable: bool = False  # a file with an execute bit; a folder's files carry theirs in its manifest

    def dump(self) -> str:
        return (
            _HEADER
            + f"schema: {SCHEMA}\n"
            + f"path: {_quote(self.path)}\n"
            + f"kind: {self.kind}\n"
            + f"hash: {ALGORITHM}:{self.digest}\n"
            + f"size: {self.size}\n"
            + f"files: {self.files}\n"
            + ("executable: true\n" if self.executable else "")
        )

    def write(self, pointer_file: Path) -> None:
        _fs.atomic_write_text(pointer_file, self.dump())


def _quote(text: str) -> str:
    import yaml

    dumped: str = yaml.safe_dump(text, default_style=None, width=1 << 30)
    return dumped.removesuffix("\n...\n").rstrip("\n")


def _bad(pointer_file: Path | str, what: str) -> CorruptFileError:
    return CorruptFileError(
        f"{pointer_file}: {what}",
        hint="restore it with 'git checkout -- <file>' or re-create it with 'conveyor add'",
    )


def parse(text: str, pointer_file: Path | str, *, name: str | None = None) -> Pointer:
    """Parse and validate pointer text; errors name the file and the field.

    ``name`` is the pointer file's own name when ``pointer_file`` is only a label
    (``REV:path`` for a pointer read from git).
    """
    expected = os.path.basename(name or str(pointer_file))[: -len(".cvy")]
    canonical = _CANONICAL.fullmatch(text)
    if (
        canonical is not None
        and canonical["path"] == expected
        and not (canonical["executable"] and canonical["kind"] == "dir")
    ):
        # exactly what dump() writes, for a plain name: no YAML parser needed (nor its import)
        plain_kind: Kind = "dir" if canonical["kind"] == "dir" else "file"
        return Pointer(
            expected,
            plain_kind,
            canonical["hash"],
            int(canonical["size"]),
            int(canonical["files"]),
            canonical["executable"] is not None,
        )
    import yaml

    try:
        doc: Any = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise _bad(pointer_file, f"not valid YAML{where}") from exc
    if not isinstance(doc, dict):
        raise _bad(pointer_file, "not a conveyor pointer file (expected a mapping)")
    if doc.get("schema") != SCHEMA:
        raise _bad(pointer_file, f"unsupported schema {doc.get('schema')!r} (expected {SCHEMA})")
    unknown = set(doc) - {"schema", "path", "kind", "hash", "size", "files", "executable"}
    if unknown:
        raise _bad(pointer_file, f"unknown field '{sorted(unknown)[0]}'")
    path = doc.get("path")
    if not isinstance(path, str) or path != expected:
        raise _bad(pointer_file, f"field 'path' must be {expected!r}, got {path!r}")
    kind = doc.get("kind")
    if kind not in ("file", "dir"):
        raise _bad(pointer_file, f"field 'kind' must be 'file' or 'dir', got {kind!r}")
    raw_hash = doc.get("hash")
    algorithm, _, digest = str(raw_hash).partition(":")
    if algorithm != ALGORITHM or not is_hash(digest):
        raise _bad(pointer_file, f"field 'hash' must be '{ALGORITHM}:' and 64 hex digits, got {raw_hash!r}")
    size, files = doc.get("size"), doc.get("files")
    for name, value in (("size", size), ("files", files)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _bad(pointer_file, f"field '{name}' must be a whole number >= 0, got {value!r}")
    assert isinstance(size, int) and isinstance(files, int)
    executable = doc.get("executable", False)
    if not isinstance(executable, bool):
        raise _bad(pointer_file, f"field 'executable' must be true or false, got {executable!r}")
    if executable and kind != "file":
        raise _bad(pointer_file, "field 'executable' is for a file; a folder's manifest records its files' modes")
    return Pointer(path=path, kind=kind, digest=digest, size=size, files=files, executable=executable)


def read(pointer_file: Path) -> Pointer:
    try:
        text = pointer_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(pointer_file, "not UTF-8 text") from exc
    except OSError as exc:
        from conveyor.errors import MissingFileError

        raise MissingFileError(
            f"{pointer_file}: cannot read ({os.strerror(exc.errno or 0)})", hint="check that it exists and is readable"
        ) from exc
    return parse(text, pointer_file)
