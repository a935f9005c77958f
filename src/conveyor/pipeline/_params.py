"""Params files: YAML, JSON or TOML mappings whose keys stages name with dots (``train.lr``).

Three public functions, shared by the pipeline runner and ``conveyor params diff``:

- :func:`read_params` reads one file into a mapping (an empty file is an empty mapping);
- :func:`lookup` finds one dotted key in it;
- :func:`flatten` turns it into ``{"a.b.c": value}``, the form that is compared and stored.

Dicts nest; lists and every other value are leaves (a list of layer sizes is one param).
A key that itself holds a dot (``{"a.b": 1}``) is found too: :func:`lookup` tries the
longest name first at each level.

:func:`diff_params` compares the params of two versions (git revisions or the workspace)
for ``conveyor params diff``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError, UsageError

if TYPE_CHECKING:
    from conveyor.pipeline._metrics import Version
    from conveyor.workspace import Workspace


class ParamsError(UsageError):
    """A params file is missing, cannot be parsed, or lacks a key a stage names."""


def read_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in the params file at ``path``; YAML, JSON or TOML by its suffix."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ParamsError(
            f"{os.fspath(path)}: params file not found",
            hint="create it, or remove it from the stage's params in conveyor.yaml",
        ) from None
    except IsADirectoryError:
        raise ParamsError(
            f"{os.fspath(path)}: is a folder, not a params file", hint="name a YAML, JSON or TOML file"
        ) from None
    except OSError as exc:
        raise ParamsError(
            f"{os.fspath(path)}: cannot read params file: {exc.strerror}", hint="check its permissions"
        ) from None
    return _parse(data, os.fspath(path))


def lookup(data: Mapping[str, Any], dotted_key: str, *, source: str | None = None) -> Any:
    """The value at ``dotted_key`` (``"train.optimizer.lr"``) in ``data``.

    Lists are indexed by number (``"layers.0"``). Raises :class:`ParamsError` naming
    ``source`` (the file, when given) and the key, with the closest existing keys as a hint.
    """
    found, value = _find(data, dotted_key.split(".")) if dotted_key else (False, None)
    if found:
        return value
    where = f"{source}: " if source else ""
    known = list(flatten(data))
    hint = _suggest(dotted_key, known, source)
    raise ParamsError(f"{where}no param '{dotted_key}'", hint=hint)


def flatten(data: Mapping[Any, Any]) -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` as ``{"a.b": 1, "c": [1, 2]}``, in the file's order.

    Nested mappings are joined with dots; an empty mapping stays a leaf so nothing is lost.
    Keys that are not strings (YAML allows ``1: x``) become their ``str()``.
    """
    flat: dict[str, Any] = {}
    _flatten_into(flat, data, "")
    return flat


# -- internals ------------------------------------------------------------------------------


def _flatten_into(flat: dict[str, Any], node: Mapping[Any, Any], prefix: str) -> None:
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            _flatten_into(flat, value, name + ".")
        else:
            flat[name] = value


def _find(node: Any, parts: list[str]) -> tuple[bool, Any]:
    if not parts:
        return True, node
    if isinstance(node, Mapping):
        keys = {str(k): k for k in node}
        for n in range(len(parts), 0, -1):  # the longest name first: keys may hold dots
            name = ".".join(parts[:n])
            if name in keys:
                found, value = _find(node[keys[name]], parts[n:])
                if found:
                    return True, value
        return False, None
    if isinstance(node, list) and parts[0].isdigit():
        index = int(parts[0])
        if index < len(node):
            return _find(node[index], parts[1:])
    return False, None


def _suggest(key: str, known: list[str], source: str | None) -> str:
    from conveyor._suggest import did_you_mean

    close = did_you_mean(key, known, n=3)
    if close:
        return close
    if not known:
        return f"{source or 'the file'} holds no params; add '{key}' to it"
    return f"add '{key}' to {source or 'the params file'}, or fix the name in conveyor.yaml"


def _parse(data: bytes, name: str, *, what: str = "params", error: type[ConveyorError] = ParamsError) -> dict[str, Any]:
    """Parse the bytes of the file ``name`` (a path, or ``REV:path``) into a mapping.

    ``what`` names the kind of file in messages; ``error`` is the exception raised.
    """
    suffix = os.path.splitext(name)[1].lower()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise error(f"{name}: not UTF-8 text", hint=f"{what} files are YAML, JSON or TOML text") from None
    try:
        if suffix == ".json":
            value = _parse_json(text)
        elif suffix == ".toml":
            value = _parse_toml(text)
        else:
            value = _parse_yaml(text)
    except _SyntaxProblem as exc:
        raise error(f"{name}{exc.where}: {exc}", hint="fix the file") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise error(
            f"{name}: holds a {type(value).__name__}, not a mapping of names to values",
            hint=f"write the {what} as 'name: value' pairs",
        )
    return value


class _SyntaxProblem(Exception):
    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where


def _parse_json(text: str) -> Any:
    import json

    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError as exc:
        raise _SyntaxProblem(f"invalid JSON: {exc.msg}", f":{exc.lineno}:{exc.colno}") from None


def _parse_toml(text: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _SyntaxProblem(f"invalid TOML: {exc}") from None


def _parse_yaml(text: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise _SyntaxProblem(f"invalid YAML: {getattr(exc, 'problem', None) or 'cannot parse'}", where) from None


# -- params diff ------------------------------------------------------------------------------

DEFAULT_PARAMS = "params.yaml"


@dataclass(frozen=True, slots=True)
class ParamDiff:
    """One param in two versions; ``old``/``new`` are None where it is absent (see ``status``)."""

    path: str
    param: str
    old: Any
    new: Any
    status: str  # "added", "deleted", "modified" or "unchanged"

    @property
    def changed(self) -> bool:
        return self.status != "unchanged"


@dataclass(slots=True)
class ParamsDiff:
    """Params compared between ``old`` and ``new`` (revision names or "workspace")."""

    old: str
    new: str
    rows: list[ParamDiff] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _files_used(versions: Sequence[Version]) -> dict[str, tuple[str, ...] | None]:
    """``{file: keys}`` of the params the versions' pipelines use; keys None: the whole file.

    params.yaml is always there, whole; other files with the keys stages name (a key that is a
    section stands for everything below it). Without conveyor.yaml: params.yaml alone.
    """
    files: dict[str, set[str] | None] = {DEFAULT_PARAMS: None}
    for version in reversed(versions):
        pipeline = version.pipeline()
        for stage in pipeline.stages.values() if pipeline is not None else ():
            for ref in stage.params:
                keys = files.get(ref.file, set())
                if ref.keys is None or keys is None:
                    files[ref.file] = None
                else:
                    files[ref.file] = keys | set(ref.keys)
    return {path: None if keys is None else tuple(sorted(keys)) for path, keys in files.items()}


def diff_params(
    a_rev: str | None = None,
    b_rev: str | None = None,
    *,
    paths: Iterable[str] | None = None,
    show_unchanged: bool = False,
    workspace: Workspace | None = None,
) -> ParamsDiff:
    """Compare params at ``a_rev`` (default HEAD) with ``b_rev`` (default: the workspace).

    The files are ``paths`` (every key of each), or params.yaml and the params the stages of
    conveyor.yaml (in either version) read. Only params that changed are listed unless
    ``show_unchanged``.
    """
    from conveyor.pipeline._metrics import _user_paths, _workspace, same, versions

    ws = _workspace(workspace)
    old, new = versions(ws, a_rev, b_rev, command="params diff")
    path_list = list(paths) if paths is not None else []
    files: dict[str, tuple[str, ...] | None] = (
        dict.fromkeys(_user_paths(ws, path_list)) if path_list else _files_used([old, new])
    )
    result = ParamsDiff(old=old.name, new=new.name)
    sides = []
    for version in (old, new):
        contents = version.read(files)
        values: dict[str, dict[str, Any]] = {}
        for path, data in contents.items():
            try:
                values[path] = flatten(_parse(data, version.label(path)))
            except ParamsError as exc:
                if version.rev is None:
                    raise
                result.problems.append(exc.message)
        sides.append(values)
    for path, keys in files.items():
        a = _select(sides[0].get(path, {}), keys)
        b = _select(sides[1].get(path, {}), keys)
        for param in list(b) + [k for k in a if k not in b]:
            if param not in a:
                row = ParamDiff(path, param, None, b[param], "added")
            elif param not in b:
                row = ParamDiff(path, param, a[param], None, "deleted")
            else:
                status = "unchanged" if same(a[param], b[param]) else "modified"
                row = ParamDiff(path, param, a[param], b[param], status)
            if show_unchanged or row.changed:
                result.rows.append(row)
    result.problems.extend(old.problems + new.problems)
    return result


def _select(flat: dict[str, Any], keys: tuple[str, ...] | None) -> dict[str, Any]:
    """The entries of ``flat`` that ``keys`` name: exactly, as a section above them, or inside a list."""
    if keys is None:
        return flat
    return {
        name: value
        for name, value in flat.items()
        if any(name == k or name.startswith(k + ".") or k.startswith(name + ".") for k in keys)
    }
