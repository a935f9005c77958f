"""Is a stage up to date? The facts of its deps, params and outputs now, compared with the lock."""

from __future__ import annotations

import os
import stat as stat_mod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError, MissingFileError
from conveyor.pipeline._lock import Fact, LockEntry
from conveyor.pipeline._spec import Stage
from conveyor.versioning._repo import Repo

_ABSENT = object()


class _MissingFile(dict[str, Any]):
    """The params of a file that does not exist (or cannot be read)."""


def same_value(a: Any, b: Any) -> bool:
    """Equal values of equal types, all the way down; NaN equals NaN (a param left as it was)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a stage must run: ``kind`` is stable for scripts, ``detail`` is for people."""

    kind: str  # new, command, env, dep-changed, dep-missing, deps-list, param-changed, param-missing,
    # params-list, out-missing, out-changed, outs-list, always-run, upstream, forced
    detail: str

    def __str__(self) -> str:
        return self.detail


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Facts:
    """Reads the current content hashes and param values, each path and file once per command."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self._params: dict[str, dict[str, Any] | Exception] = {}
        self._stamps: dict[str, tuple[int, ...]] = {}
        self._stored: dict[str, tuple[tuple[int, ...], Fact]] = {}

    def remember(self, fact: Fact, stamp: tuple[int, ...]) -> None:
        """``fact`` is a file output this command just hashed, whose stat data was ``stamp`` all
        along: a stage depending on it is decided on that hash while the file keeps that stat data
        (it is read again only to check that it did not change while that stage ran)."""
        self._stored[fact.path] = (stamp, fact)

    def path_fact(self, rel: str, *, skip_pointers: bool = False, fresh: bool = False) -> Fact | None:
        path = self._abs(rel)
        known = None if fresh else self._stored.get(rel)
        if known is not None and file_stamp(path) == known[0]:
            return known[1]
        snap = self.repo.snapshot(path, skip_pointers=skip_pointers)
        if snap.kind == "missing" or snap.digest is None:
            return None
        return Fact(rel, snap.digest, snap.size, snap.kind, snap.files, executable=snap.executable)

    def _abs(self, rel: str) -> Path:
        return Path(rel) if os.path.isabs(rel) else self.repo.ws.root / rel

    def params_file(self, rel: str) -> dict[str, Any]:
        # re-read when the file changed: a stage decided later must see what it will run with
        try:
            st = os.stat(self._abs(rel))
            stamp: tuple[int, ...] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            stamp = ()
        if self._stamps.get(rel) != stamp:
            self._params.pop(rel, None)
            self._stamps[rel] = stamp
        cached = self._params.get(rel)
        if cached is None:
            from conveyor.pipeline._params import read_params

            try:
                cached = read_params(self._abs(rel))
            except ConveyorError as exc:
                absolute = str(self._abs(rel))
                exc.message = exc.message.replace(absolute, rel)  # name it as conveyor.yaml does
                exc.args = (exc.message,)
                cached = exc
            self._params[rel] = cached
        if isinstance(cached, Exception):
            raise cached
        return cached

    def params(self, stage: Stage, *, strict: bool) -> dict[str, dict[str, Any]]:
        """``{file: {key: value}}`` for the params ``stage`` reads; missing keys raise when ``strict``."""
        from conveyor.pipeline._params import flatten, lookup

        values: dict[str, dict[str, Any]] = {}
        for ref in stage.params:
            try:
                data = self.params_file(ref.file)
            except ConveyorError:
                if strict:
                    raise
                values[ref.file] = _MissingFile()
                continue
            if ref.keys is None:
                values[ref.file] = flatten(data)
                continue
            chosen: dict[str, Any] = {}
            for key in ref.keys:
                try:
                    chosen[key] = lookup(data, key, source=ref.file)
                except Exception:
                    if strict:
                        raise
                    chosen[key] = _ABSENT
            values[ref.file] = chosen
        return values

    def deps(self, stage: Stage, *, strict: bool, fresh: bool = False) -> list[Fact | str]:
        """One fact per dep, or the dep's path when it does not exist (an error when ``strict``);
        ``fresh``: each read again, none taken from :meth:`remember`."""
        found: list[Fact | str] = []
        for dep in stage.deps:
            fact = self.path_fact(dep, skip_pointers=True, fresh=fresh)
            if fact is None:
                if strict:
                    raise MissingFileError(
                        f"{dep}: dependency of stage {stage.name!r} does not exist",
                        hint="create it, add the stage that writes it, or remove it from deps",
                    )
                found.append(dep)
            else:
                found.append(fact)
        return found


def file_stamp(path: str | os.PathLike[str]) -> tuple[int, ...] | None:
    """A regular file's (inode, size, mtime, ctime), or None (not there, or not a regular file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat_mod.S_ISREG(st.st_mode):
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def stale_reasons(
    stage: Stage, entry: LockEntry | None, facts: Facts, *, check_outs: bool = True
) -> tuple[list[Reason], list[Fact | str], dict[str, dict[str, Any]]]:
    """Why ``stage`` differs from its lock ``entry`` (empty: up to date), with the facts read."""
    deps = facts.deps(stage, strict=False)
    params = facts.params(stage, strict=False)
    reasons: list[Reason] = []
    if entry is None:
        reasons.append(Reason("new", "never ran (not in conveyor.lock)"))
        return reasons, deps, params
    if entry.cmd != stage.command:
        reasons.append(Reason("command", "command changed"))
    elif stage.call is not None and not same_value(entry.kwargs, stage.kwargs):
        old_kwargs = entry.kwargs or {}
        changed = sorted(
            k for k in old_kwargs.keys() | stage.kwargs.keys() if not same_value(old_kwargs.get(k), stage.kwargs.get(k))
        )
        detail = ", ".join(
            f"{k} {_short(old_kwargs.get(k, '(none)'))} -> {_short(stage.kwargs.get(k, '(none)'))}" for k in changed[:3]
        )
        reasons.append(Reason("command", f"kwargs changed: {detail}"))
    if entry.env != stage.env:
        reasons.append(Reason("env", "env changed"))
    if entry.wdir != stage.wdir:
        reasons.append(Reason("command", f"wdir changed: {entry.wdir} -> {stage.wdir}"))
    recorded = {d.path: d for d in entry.deps}
    for dep in deps:
        if isinstance(dep, str):
            reasons.append(Reason("dep-missing", f"dependency {dep} is missing"))
            continue
        before = recorded.get(dep.path)
        if before is None:
            reasons.append(Reason("deps-list", f"new dependency {dep.path}"))
        elif before.hash != dep.hash:
            reasons.append(Reason("dep-changed", f"dependency {dep.path} changed"))
    for path in sorted(set(recorded) - set(stage.deps)):
        reasons.append(Reason("deps-list", f"dependency {path} was removed"))
    for file, values in params.items():
        old = entry.params.get(file)
        if isinstance(values, _MissingFile):
            reasons.append(Reason("param-missing", f"params file {file} is missing"))
            continue
        for key, value in values.items():
            if value is _ABSENT:
                reasons.append(Reason("param-missing", f"param {key} is missing from {file}"))
            elif old is None or key not in old:
                reasons.append(Reason("params-list", f"new param {key} ({file})"))
            elif not same_value(old[key], value):
                reasons.extend(_param_changes(key, old[key], value))
        if old is not None:
            for key in sorted(set(old) - set(values)):
                reasons.append(Reason("params-list", f"param {key} is no longer used ({file})"))
    for file in sorted(set(entry.params) - set(params)):
        reasons.append(Reason("params-list", f"params of {file} are no longer used"))
    if check_outs:
        reasons.extend(out_reasons(stage, entry, facts))
    return reasons, deps, params


def _param_changes(key: str, old: Any, new: Any) -> list[Reason]:
    """One reason per changed leaf, so ``params: [train]`` reads like ``train.lr`` does."""
    if isinstance(old, dict) and isinstance(new, dict):
        from conveyor.pipeline._params import flatten

        flat_old, flat_new = flatten(old), flatten(new)
        changes = []
        for sub in [*flat_new, *(k for k in flat_old if k not in flat_new)]:
            a, b = flat_old.get(sub, _ABSENT), flat_new.get(sub, _ABSENT)
            if not same_value(a, b):
                before = "(none)" if a is _ABSENT else _short(a)
                after = "(none)" if b is _ABSENT else _short(b)
                changes.append(Reason("param-changed", f"param {key}.{sub} changed: {before} -> {after}"))
        if changes:
            return changes
    return [Reason("param-changed", f"param {key} changed: {_short(old)} -> {_short(new)}")]


def out_reasons(stage: Stage, entry: LockEntry, facts: Facts) -> list[Reason]:
    reasons: list[Reason] = []
    recorded = {o.path: o for o in entry.outs}
    declared = {o.path for o in stage.outs}
    for out in stage.outs:
        before = recorded.get(out.path)
        if before is None:
            reasons.append(Reason("outs-list", f"new output {out.path}"))
            continue
        if before.cache != out.cache:
            reasons.append(Reason("outs-list", f"output {out.path} changed to cache: {str(out.cache).lower()}"))
            continue
        now = facts.path_fact(out.path)
        if now is None:
            reasons.append(Reason("out-missing", f"output {out.path} is missing"))
        elif now.hash != before.hash or now.executable != before.executable:
            reasons.append(Reason("out-changed", f"output {out.path} was changed since the stage ran"))
    for path in sorted(set(recorded) - declared):
        reasons.append(Reason("outs-list", f"output {path} was removed from the stage"))
    return reasons
