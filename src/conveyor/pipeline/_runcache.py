"""The run cache: outputs of every (command, deps, params) a stage ran with, by fingerprint.

An entry is a small JSON file at ``.conveyor/runcache/<2 hex>/<62 hex>.json`` naming the
output objects; the objects themselves live in the object store. A stage whose fingerprint
has an entry whose objects are all present is restored instead of run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from blake3 import blake3

from conveyor import _fs
from conveyor.errors import storage_error
from conveyor.pipeline._lock import Fact, LockEntry

RUNCACHE_DIR = "runcache"


def fingerprint(entry: LockEntry, outs: list[tuple[str, str, bool]]) -> str:
    """The key of a run: what ran, on which inputs, declaring which outputs (path, kind, cache)."""
    material = {
        "cmd": entry.cmd,
        "kwargs": entry.kwargs,
        "env": entry.env,
        "wdir": entry.wdir,
        "deps": sorted((d.path, d.hash) for d in entry.deps),
        "params": {f: {k: v for k, v in sorted(p.items())} for f, p in sorted(entry.params.items())},
        "outs": sorted(outs),
    }
    data = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str).encode()
    return blake3(data).hexdigest()


class RunCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._shards: set[Path] = set()  # folders known to exist

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key[2:]}.json"

    def get(self, key: str) -> list[Fact] | None:
        try:
            data: Any = json.loads(self.path(key).read_bytes())
            return [
                Fact(o["path"], o["hash"], int(o["size"]), o["kind"], int(o["files"]), True, bool(o.get("exec", 0)))
                for o in data["outs"]
            ]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent, or damaged by something outside conveyor: treated as a miss

    def put(self, key: str, outs: list[Fact], *, durable: bool = False) -> None:
        data = {
            "schema": 1,
            "outs": [
                {
                    "path": o.path,
                    "hash": o.hash,
                    "size": o.size,
                    "kind": o.kind,
                    "files": o.files,
                    "exec": int(o.executable),
                }
                for o in sorted(outs, key=lambda f: f.path)
            ],
        }
        target = self.path(key)
        if target.parent not in self._shards:
            os.makedirs(target.parent, exist_ok=True)
            self._shards.add(target.parent)
        text = json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n"
        if durable:
            _fs.atomic_write_text(target, text, sync="all")
            return
        # a lost or torn entry is only a miss (it is parsed and checked when read: no prefix of a
        # JSON object is one), so a new entry is written in place, with no temp file or sync
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            _fs.atomic_write_text(target, text, sync="none")  # replaced whole: a reader may be reading it
            return
        except OSError as exc:
            raise storage_error(exc, target, "write") from exc
        try:
            _fs.write_all(fd, text.encode())
        except OSError as exc:
            raise storage_error(exc, target, "write") from exc
        finally:
            os.close(fd)

    def entries(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for shard in self.root.iterdir() if shard.is_dir() for p in shard.glob("*.json"))
