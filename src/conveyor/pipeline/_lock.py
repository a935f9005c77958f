"""``conveyor.lock``: what produced what, committed to git.

The text is canonical (stages sorted by name, keys in a fixed order, paths sorted), so the
same facts always give the same bytes and a change to one stage changes only its lines.
Each stage's text is rendered once and reused, and the file is replaced atomically.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor import _fs
from conveyor.pipeline._yaml import SpecError

LOCK_FILE = "conveyor.lock"
_SCHEMA = 1


@dataclass(frozen=True)
class Fact:
    """A dependency or output as it was: its path and content hash."""

    path: str
    hash: str
    size: int
    kind: str = "file"  # "file" or "dir"
    files: int = 1
    cache: bool = True  # outputs only: whether the lock's hash is also git-ignored data
    executable: bool = False  # file outputs only: restored with the execute bit

    def to_dict(self, *, out: bool) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "hash": self.hash, "size": self.size}
        if self.kind == "dir":
            data["kind"] = "dir"
            data["files"] = self.files
        if out and self.executable:
            data["executable"] = True
        if out and not self.cache:
            data["cache"] = False
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Fact:
        if not isinstance(data, dict) or not isinstance(data.get("path"), str) or not isinstance(data.get("hash"), str):
            raise _damaged(where)
        kind = data.get("kind", "file")
        return cls(
            data["path"],
            data["hash"],
            int(data.get("size", 0)),
            "dir" if kind == "dir" else "file",
            int(data.get("files", 1)),
            bool(data.get("cache", True)),
            bool(data.get("executable", False)),
        )


@dataclass
class LockEntry:
    """One stage's record: its command, the deps and params it read, the outputs it wrote."""

    cmd: str
    kwargs: dict[str, Any] | None = None
    env: dict[str, str] = field(default_factory=dict)
    wdir: str = "."
    deps: tuple[Fact, ...] = ()
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    outs: tuple[Fact, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"cmd": self.cmd}
        if self.kwargs is not None:
            data["kwargs"] = {k: self.kwargs[k] for k in sorted(self.kwargs)}
        if self.env:
            data["env"] = {k: self.env[k] for k in sorted(self.env)}
        if self.wdir != ".":
            data["wdir"] = self.wdir
        if self.deps:
            data["deps"] = [d.to_dict(out=False) for d in sorted(self.deps, key=lambda f: f.path)]
        if self.params:
            data["params"] = {
                file: {key: values[key] for key in sorted(values)} for file, values in sorted(self.params.items())
            }
        if self.outs:
            data["outs"] = [o.to_dict(out=True) for o in sorted(self.outs, key=lambda f: f.path)]
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str) -> LockEntry:
        if not isinstance(data, dict) or not isinstance(data.get("cmd"), str):
            raise _damaged(where)
        params = data.get("params") or {}
        if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
            raise _damaged(where)
        kwargs = data.get("kwargs")
        env = data.get("env") or {}
        if (kwargs is not None and not isinstance(kwargs, dict)) or not isinstance(env, dict):
            raise _damaged(where)
        return cls(
            cmd=data["cmd"],
            kwargs=kwargs,
            env={str(k): str(v) for k, v in env.items()},
            wdir=str(data.get("wdir", ".")),
            deps=tuple(Fact.from_dict(d, where) for d in data.get("deps") or ()),
            params={str(f): dict(v) for f, v in params.items()},
            outs=tuple(Fact.from_dict(o, where) for o in data.get("outs") or ()),
        )


def _render(name: str, data: dict[str, Any]) -> str:
    """One stage's lines in the lock, indented under ``stages:``: what PyYAML's block style
    writes, byte for byte. The common shapes (plain strings, numbers, flat mappings, the lists
    of deps and outs) are written here, about twenty times faster; anything else by PyYAML."""
    lines: list[str] | None = [] if _plain(name) else None
    if lines is not None:
        lines.append(f"  {name}:")
        for key, value in data.items():
            if isinstance(value, dict):
                if not _mapping(lines, "    ", key, value):
                    lines = None
                    break
            elif isinstance(value, list):
                if not value:
                    lines = None
                    break
                lines.append(f"    {key}:")
                for item in value:
                    if not isinstance(item, dict) or not item or not _mapping_items(lines, "    - ", "      ", item):
                        lines = None
                        break
                if lines is None:
                    break
            else:
                scalar = _scalar(value)
                if scalar is None:
                    lines = None
                    break
                lines.append(f"    {key}: {scalar}")
    if lines is not None:
        return "\n".join(lines) + "\n"
    return _render_by_pyyaml(name, data)


def _render_by_pyyaml(name: str, data: dict[str, Any]) -> str:
    import yaml

    body = yaml.dump(
        {name: data},
        Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=10_000,
    )
    return "".join("  " + line + "\n" for line in body.splitlines())


def _mapping(lines: list[str], indent: str, key: str, value: dict[Any, Any]) -> bool:
    """``key:`` and then ``value``'s items (scalars or one more level of flat mappings) below it."""
    if not value or not _plain(key):
        return False
    lines.append(f"{indent}{key}:")
    inner = indent + "  "
    for k, v in value.items():
        if isinstance(v, dict):
            if not v or not _plain(k) or not isinstance(k, str):
                return False
            lines.append(f"{inner}{k}:")
            if not _mapping_items(lines, inner + "  ", inner + "  ", v):
                return False
        elif not _mapping_items(lines, inner, inner, {k: v}):
            return False
    return True


def _mapping_items(lines: list[str], first: str, rest: str, value: dict[Any, Any]) -> bool:
    """Flat ``key: scalar`` lines; the first line starts with ``first`` (``- `` for a list item)."""
    indent = first
    for k, v in value.items():
        scalar = _scalar(v)
        if scalar is None or not isinstance(k, str) or not _plain(k):
            return False
        lines.append(f"{indent}{k}: {scalar}")
        indent = rest
    return True


_PLAIN = re.compile(r"[A-Za-z0-9_./][\x20-\x7e]*")
_STR_TAG = "tag:yaml.org,2002:str"


def _plain(text: object) -> bool:
    """Whether PyYAML writes ``text`` as it is (unquoted) in block style: conservatively."""
    if not isinstance(text, str) or len(text) > 4000 or not _PLAIN.fullmatch(text):
        return False
    if text.endswith((" ", ":")) or ": " in text or " #" in text or text.startswith(("---", "...")):
        return False
    return _implicit_tag(text) == _STR_TAG


@functools.lru_cache(maxsize=1)
def _resolver() -> Any:
    import yaml

    return yaml.resolver.Resolver()


def _implicit_tag(text: str) -> str:
    import yaml

    return str(_resolver().resolve(yaml.nodes.ScalarNode, text, (True, False)))


def _scalar(value: object) -> str | None:
    """A scalar as PyYAML's SafeDumper writes it, or None when this module leaves it to PyYAML."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        if value != value:
            return ".nan"
        if value in (math.inf, -math.inf):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value).lower()
        return text.replace("e", ".0e", 1) if "." not in text and "e" in text else text
    if type(value) is str and _plain(value):
        return value
    return None


def _damaged(where: str) -> SpecError:
    return SpecError(
        f"{where}: the lock file is damaged or was edited by hand",
        hint=f"restore it with 'git checkout {LOCK_FILE}', or delete it to run every stage again",
    )


class Lock:
    """The lock file's stages, read once and written back whole (atomically) after changes."""

    def __init__(self, path: Path, entries: dict[str, LockEntry] | None = None) -> None:
        self.path = path
        self.entries: dict[str, LockEntry] = entries or {}
        self._texts: dict[str, str] = {}
        self._written: str | None = None  # what this object last wrote to path

    @classmethod
    def read(cls, path: Path, *, conveyor_dir: Path | None = None) -> Lock:
        """The lock at ``path``; with ``conveyor_dir``, parsed once and reused while unchanged."""
        if conveyor_dir is None:
            return cls._read(path)
        from conveyor.pipeline._parsed import cached

        entries = cached(conveyor_dir, "lock", lambda: (cls._read(path).entries, [str(path)]))
        return cls(path, dict(entries))

    @classmethod
    def _read(cls, path: Path) -> Lock:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, path: Path, *, where: str = LOCK_FILE) -> Lock:
        if "\n<<<<<<< " in "\n" + text:
            raise SpecError(
                f"{where}: has unresolved git merge conflict markers",
                hint=f"take one side (git checkout --theirs {LOCK_FILE}) and run 'conveyor run' to bring it up to date",
            )
        import yaml  # lazily: a lock already parsed (see _parsed) is read without it

        try:
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError:
            raise _damaged(where) from None
        if data is None:
            return cls(path)
        if not isinstance(data, dict) or not isinstance(data.get("stages", {}), dict):
            raise _damaged(where)
        schema = data.get("schema", _SCHEMA)
        if schema != _SCHEMA:
            raise SpecError(
                f"{where}: written by a newer conveyor (schema {schema})", hint="upgrade conveyor to read it"
            )
        entries = {
            str(name): LockEntry.from_dict(raw, f"{where}: stage {name}")
            for name, raw in (data.get("stages") or {}).items()
        }
        return cls(path, entries)

    def get(self, name: str) -> LockEntry | None:
        return self.entries.get(name)

    def set(self, name: str, entry: LockEntry) -> None:
        self.entries[name] = entry
        self._texts.pop(name, None)

    def remove(self, name: str) -> None:
        self.entries.pop(name, None)
        self._texts.pop(name, None)

    def text(self) -> str:
        parts = [f"schema: {_SCHEMA}\n"]
        if self.entries:
            parts.append("stages:\n")
        for name in sorted(self.entries):
            rendered = self._texts.get(name)
            if rendered is None:
                rendered = self._texts[name] = _render(name, self.entries[name].to_dict())
            parts.append(rendered)
        return "".join(parts)

    def write(self) -> None:
        text = self.text()
        if text == self._written:
            return
        try:
            if self._written is None and self.path.read_text(encoding="utf-8") == text:
                self._written = text
                return
        except (FileNotFoundError, UnicodeDecodeError):
            pass
        # the content must be durable (never an empty lock after a power loss); the rename need not
        # be: an older lock that comes back only makes finished stages run (or restore) again
        _fs.atomic_write_text(self.path, text, sync="data")
        self._written = text
