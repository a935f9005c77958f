"""Directory manifests: a tracked folder is an object listing its files, itself hashed.

A manifest is canonical JSON, one entry a line, sorted by path:
``{"schema": 1, "entries": [["a/b.csv", "<hash>", 1024, 0], ...]}`` where the last field
is the executable bit. The same folder content always gives the same bytes and so the
same hash, whoever builds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from conveyor.errors import CorruptFileError
from conveyor.versioning._hashing import is_hash

SCHEMA = 1


@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    digest: str
    size: int
    executable: bool = False


class Manifest:
    """The sorted files of one directory version, by relative POSIX path."""

    __slots__ = ("entries",)

    def __init__(self, entries: dict[str, Entry]) -> None:
        self.entries = entries

    @classmethod
    def from_entries(cls, entries: list[Entry]) -> Manifest:
        return cls({entry.path: entry for entry in entries})

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    def to_bytes(self) -> bytes:
        lines = [
            json.dumps([e.path, e.digest, e.size, int(e.executable)], ensure_ascii=False)
            for e in sorted(self.entries.values(), key=lambda e: e.path)
        ]
        body = ",\n".join(lines)
        return f'{{"schema": {SCHEMA}, "entries": [\n{body}\n]}}\n'.encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "manifest") -> Manifest:
        try:
            doc = json.loads(data)
            if doc.get("schema") != SCHEMA:
                raise ValueError(f"unsupported schema {doc.get('schema')!r}")
            entries: dict[str, Entry] = {}
            for path, digest, size, executable in doc["entries"]:
                if not isinstance(path, str) or not is_hash(digest) or not isinstance(size, int):
                    raise ValueError(f"bad entry for {path!r}")
                entries[path] = Entry(path, digest, size, bool(executable))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptFileError(
                f"{source}: not a valid directory manifest ({exc})",
                hint="delete the cache object and re-add the directory",
            ) from exc
        return cls(entries)
