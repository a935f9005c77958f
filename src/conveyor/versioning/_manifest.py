"""Directory manifests: a tracked folder is an object listing its files, itself hashed.

A manifest is canonical JSON, entries sorted by path:
``{"schema":1,"entries":[["a/b.csv","<hash>",1024,0],...]}`` where the last field is the
executable bit. The same folder content always gives the same bytes and so the same
hash, whoever builds it.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from conveyor.errors import CorruptFileError

SCHEMA = 1


class Entry(NamedTuple):
    path: str
    digest: str
    size: int
    executable: int = 0  # 1 when any execute bit is set (kept as an int: it is the stored form)


class Manifest:
    """The files of one directory version, by relative POSIX path."""

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
        rows = sorted(self.entries.values())
        return json.dumps({"schema": SCHEMA, "entries": rows}, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "manifest") -> Manifest:
        try:
            doc = json.loads(data)
            if doc.get("schema") != SCHEMA:
                raise ValueError(f"unsupported schema {doc.get('schema')!r}")
            entries: dict[str, Entry] = {}
            make = tuple.__new__  # a manifest can hold 100,000 entries: skip NamedTuple's Python-level __new__
            for row in doc["entries"]:
                path, digest, size, executable = row
                if not isinstance(path, str) or not isinstance(digest, str) or len(digest) != 64:
                    raise ValueError(f"bad entry for {path!r}")
                if not isinstance(size, int) or executable not in (0, 1):
                    raise ValueError(f"bad size or mode for {path!r}")
                entries[path] = make(Entry, row)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptFileError(
                f"{source}: not a valid directory manifest ({exc})",
                hint="delete the cache object and re-add the directory",
            ) from exc
        return cls(entries)
