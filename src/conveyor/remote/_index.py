"""What a remote holds: loose objects, and small objects bundled in pack files.

Layout under the remote's root::

    objects/<2 hex>/<62 hex>     a large object, as it is
    packs/<hash>.pack            small objects, one after another
    packs/<hash>.idx             "conveyor-pack 1", then "<object hash> <offset> <size>" per line
    runs/<hash>.json             run-cache entries, many per file
    tmp/                         uploads in flight on filesystems (renamed when complete)

A pack counts only once its index exists, and the index is written after the pack, so a
push killed in between leaves a pack nobody reads (``gc --remote`` removes it). Pack and
bundle names are the BLAKE3 hash of their content; indexes are immutable, so each is read
from the remote once and then kept under ``.conveyor/remotes/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from blake3 import blake3

from conveyor import _fs
from conveyor.errors import CorruptRemoteObjectError
from conveyor.remote._backend import Backend
from conveyor.versioning._hashing import is_hash

PACK_HEADER = "conveyor-pack 1"


def object_key(digest: str) -> str:
    return f"objects/{digest[:2]}/{digest[2:]}"


def parse_index(text: str, where: str) -> list[tuple[str, int, int]]:
    lines = text.splitlines()
    if not lines or lines[0] != PACK_HEADER:
        raise CorruptRemoteObjectError(f"{where}: not a pack index", hint="delete it; 'conveyor push' writes it again")
    entries = []
    for line in lines[1:]:
        parts = line.split()
        if len(parts) != 3 or not is_hash(parts[0]):
            raise CorruptRemoteObjectError(f"{where}: damaged pack index", hint="delete it and push again")
        entries.append((parts[0], int(parts[1]), int(parts[2])))
    return entries


def render_index(entries: list[tuple[str, int, int]]) -> bytes:
    return (PACK_HEADER + "\n" + "".join(f"{d} {o} {s}\n" for d, o, s in entries)).encode()


@dataclass(slots=True)
class RemoteIndex:
    """Every object a remote holds, and where: loose, or at an offset in a pack."""

    loose: dict[str, int] = field(default_factory=dict)  # digest -> size
    packed: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # digest -> (pack, offset, size)
    packs: dict[str, int] = field(default_factory=dict)  # pack name -> size of its .pack
    orphans: list[str] = field(default_factory=list)  # keys of packs without an index, and stray files
    runs: dict[str, int] = field(default_factory=dict)  # run-cache bundle keys

    def has(self, digest: str) -> bool:
        return digest in self.loose or digest in self.packed

    def __len__(self) -> int:
        return len(self.loose.keys() | self.packed.keys())

    @classmethod
    def load(cls, backend: Backend, cache_dir: Path, *, create_ok: bool = False) -> RemoteIndex:
        """List the remote (a few listing requests) and read the indexes not seen before.

        A remote that does not exist is an error, except that a push (``create_ok``) may
        create a folder.
        """
        backend.check_root(create_ok=create_ok)
        index = cls()
        for key, size in backend.list_keys("objects").items():
            parts = key.split("/")
            digest = parts[-2] + parts[-1] if len(parts) == 3 else ""
            if is_hash(digest):
                index.loose[digest] = size
        listing = backend.list_keys("packs")
        idx_dir = cache_dir / "idx"
        for key, size in listing.items():
            name = key.rsplit("/", 1)[-1]
            if name.endswith(".pack"):
                pack = name[: -len(".pack")]
                if f"packs/{pack}.idx" in listing:
                    index.packs[pack] = size
                else:
                    index.orphans.append(key)
        for pack in index.packs:
            local = idx_dir / f"{pack}.idx"
            try:
                text = local.read_text(encoding="utf-8")
            except FileNotFoundError:
                data = backend.read(f"packs/{pack}.idx")
                text = data.decode("utf-8", errors="replace")
                os.makedirs(idx_dir, exist_ok=True)
                _fs.atomic_write_bytes(local, data, sync="none")
            for digest, offset, size in parse_index(text, f"remote pack index {pack}.idx"):
                index.packed.setdefault(digest, (pack, offset, size))
        index.runs = {k: v for k, v in backend.list_keys("runs").items() if k.endswith(".json")}
        return index


class PackWriter:
    """Builds one pack file locally: objects appended, their offsets noted, the name = content hash."""

    def __init__(self, tmp_dir: Path) -> None:
        self.path = _fs.tmp_name(tmp_dir, "pack-")
        self._handle = open(self.path, "wb")  # noqa: SIM115 - closed in finish()
        self._hasher = blake3()
        self.entries: list[tuple[str, int, int]] = []
        self.size = 0

    def add(self, digest: str, data: bytes) -> None:
        self._handle.write(data)
        self._hasher.update(data)
        self.entries.append((digest, self.size, len(data)))
        self.size += len(data)

    def finish(self) -> str:
        """Close the pack; its name hashes its bytes and its index, so two packs of the same bytes
        cut into different objects (``a`` + ``b`` and ``ab``) never share a name."""
        self._handle.close()
        self._hasher.update(render_index(self.entries))
        return str(self._hasher.hexdigest())

    def discard(self) -> None:
        self._handle.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def read_object(backend: Backend, index: RemoteIndex, digest: str) -> bytes | None:
    """One object's bytes from the remote, verified; None when the remote lacks it."""
    from conveyor.versioning._hashing import hash_bytes

    if digest in index.loose:
        data = backend.read(object_key(digest))
    elif digest in index.packed:
        pack, offset, size = index.packed[digest]
        data = backend.read_range(f"packs/{pack}.pack", offset, offset + size)
    else:
        return None
    if hash_bytes(data) != digest:
        raise CorruptRemoteObjectError(
            f"remote '{backend.remote.name}': object {digest} does not match its hash (damaged or tampered with)",
            hint="push it again from a clone that has it, or delete it on the remote",
        )
    return data
