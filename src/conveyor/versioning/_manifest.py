"""Directory manifests: a tracked folder is an object listing its files, itself hashed.

A manifest is text, one file a line, sorted by path, after a header naming the schema::

    conveyor-manifest 1
    <64 hex hash> <size> <executable 0|1> <path>

Paths are POSIX, relative to the folder, with ``\\`` and newline escaped as ``\\\\`` and
``\\n``. The same folder content always gives the same bytes and so the same hash, whoever
builds it. A text format rather than JSON: it is diffable with the tools people have, and
for 100,000 files it is written twice and read three times as fast.
"""

from __future__ import annotations

from typing import NamedTuple

from conveyor.errors import CorruptFileError

SCHEMA = 1
_HEADER = f"conveyor-manifest {SCHEMA}\n"


class Entry(NamedTuple):
    path: str
    digest: str
    size: int
    executable: int = 0  # 1 when any execute bit is set (kept as an int: it is the stored form)


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace("\n", "\\n") if ("\\" in path or "\n" in path) else path


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in "\\n":
            out.append("\n" if text[i + 1] == "n" else "\\")
            i += 2
        elif char == "\\":
            raise ValueError("bad escape in a path")
        else:
            out.append(char)
            i += 1
    return "".join(out)


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
        entries = self.entries
        paths = sorted(entries)
        everything = "".join(paths)
        if "\\" in everything or "\n" in everything:
            lines = [f"{e[1]} {e[2]} {e[3]} {_escape(e[0])}\n" for e in map(entries.__getitem__, paths)]
        else:  # the usual case: no path needs escaping, so skip a call per file
            lines = [f"{e[1]} {e[2]} {e[3]} {e[0]}\n" for e in map(entries.__getitem__, paths)]
        return (_HEADER + "".join(lines)).encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "manifest") -> Manifest:
        try:
            text = data.decode()
            if not text.startswith(_HEADER):
                raise ValueError(f"expected the header {_HEADER.strip()!r}")
            entries: dict[str, Entry] = {}
            make = tuple.__new__  # 100,000 entries: skip NamedTuple's Python-level __new__
            lines = text[len(_HEADER) :].split("\n")
            if lines.pop() != "":
                raise ValueError("the last line is not terminated")
            for line in lines:
                digest, size, executable, path = line.split(" ", 3)
                if len(digest) != 64 or executable not in ("0", "1") or not path:
                    raise ValueError(f"bad line {line[:80]!r}")
                path = _unescape(path)
                length = int(size)
                if length < 0:
                    raise ValueError(f"negative size for {path!r}")
                entries[path] = make(Entry, (path, digest, length, int(executable)))
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptFileError(
                f"{source}: not a valid directory manifest ({exc})",
                hint="delete the cache object and re-add the directory",
            ) from exc
        return cls(entries)
