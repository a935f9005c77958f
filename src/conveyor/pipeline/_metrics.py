"""Metrics: JSON or YAML files of numbers that stages write, shown and compared across commits.

A metrics file is a mapping, nested as deep as one likes; its values are addressed by dotted
keys (``train.loss``) exactly like params. Numbers are compared (absolute and relative
change); strings, booleans and lists are shown and reported as changed or not.

The files of a *version* (the workspace, or a git revision) are read by :class:`Version`:
from git's tree for files git tracks, and for outputs kept in the cache (``cache: true``,
hence git-ignored) through that version's ``conveyor.lock`` and the object store. A file
missing from a version is simply absent (shown as "—"), never an error.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from conveyor.errors import ConveyorError, MissingFileError, UsageError
from conveyor.pipeline._params import _parse, flatten

if TYPE_CHECKING:
    from conveyor.pipeline._spec import Pipeline
    from conveyor.versioning._odb import ObjectStore
    from conveyor.workspace import Workspace

WORKSPACE = "workspace"
PIPELINE_FILE = "conveyor.yaml"
LOCK_FILE = "conveyor.lock"


class MetricsError(ConveyorError):
    """A metrics file cannot be parsed, or there are no metrics to show."""

    exit_code = 65  # EX_DATAERR


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    """One value of one metrics file."""

    path: str  # workspace-relative, POSIX
    key: str  # dotted: "train.loss"
    value: Any  # a number, string, bool, list or None


@dataclass(slots=True)
class MetricsShow:
    """The metrics of one version (``rev``: "workspace" or a revision as given)."""

    rev: str
    metrics: list[Metric] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # files missing or unreadable, said once each

    def by_path(self) -> dict[str, dict[str, Any]]:
        """``{path: {key: value}}``, in file order."""
        nested: dict[str, dict[str, Any]] = {}
        for metric in self.metrics:
            nested.setdefault(metric.path, {})[metric.key] = metric.value
        return nested


@dataclass(frozen=True, slots=True)
class MetricDiff:
    """One metric in two versions. ``old``/``new`` are None where the metric is absent."""

    path: str
    key: str
    old: Any
    new: Any
    status: str  # "added", "deleted", "modified" or "unchanged"
    change: float | int | None  # new - old, when both are numbers
    change_pct: float | None  # 100 * (new - old) / |old|, when both are numbers and old != 0

    @property
    def changed(self) -> bool:
        return self.status != "unchanged"


@dataclass(slots=True)
class MetricsDiff:
    """Metrics compared between ``old`` and ``new`` (revision names or "workspace")."""

    old: str
    new: str
    rows: list[MetricDiff] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# -- the public API ---------------------------------------------------------------------------


def show_metrics(paths: Iterable[str] | None = None, *, workspace: Workspace | None = None) -> MetricsShow:
    """The metrics in the workspace: of ``paths``, or of every metrics file in conveyor.yaml."""
    ws = _workspace(workspace)
    path_list = list(paths) if paths is not None else []
    explicit = bool(path_list)
    version = Version(ws, None)
    files = _user_paths(ws, path_list) if explicit else declared_files([version], "metric")
    contents = version.read(files)
    result = MetricsShow(rev=WORKSPACE)
    for path in files:
        data = contents.get(path)
        if data is None:
            if explicit:
                raise MissingFileError(f"{path}: no such metrics file", hint="check the path")
            result.problems.append(f"{path}: not found in the workspace (run the pipeline to write it)")
            continue
        for key, value in _metric_values(data, path).items():
            result.metrics.append(Metric(path, key, value))
    result.problems.extend(version.problems)
    return result


def diff_metrics(
    a_rev: str | None = None,
    b_rev: str | None = None,
    *,
    paths: Iterable[str] | None = None,
    show_unchanged: bool = False,
    workspace: Workspace | None = None,
) -> MetricsDiff:
    """Compare metrics at ``a_rev`` (default HEAD) with ``b_rev`` (default: the workspace).

    Only metrics that changed are listed unless ``show_unchanged``.
    """
    ws = _workspace(workspace)
    old, new = versions(ws, a_rev, b_rev, command="metrics diff")
    path_list = list(paths) if paths is not None else []
    files = _user_paths(ws, path_list) if path_list else declared_files([old, new], "metric")
    result = MetricsDiff(old=old.name, new=new.name)
    before = _values_of(old, files, result.problems)
    after = _values_of(new, files, result.problems)
    for path in files:
        a, b = before.get(path, {}), after.get(path, {})
        for key in _ordered_keys(a, b):
            row = compare(path, key, a.get(key, _ABSENT), b.get(key, _ABSENT))
            if show_unchanged or row.changed:
                result.rows.append(row)
    result.problems.extend(old.problems + new.problems)
    return result


def read_metrics(workspace: Workspace, pipeline: Pipeline | None = None) -> dict[str, Any]:
    """The numbers in the workspace's metrics files as ``{"path:key": number}``.

    What the runner stores with each run (passing the ``pipeline`` it already loaded). Files
    declared in conveyor.yaml that do not exist are skipped; a file that cannot be parsed
    raises :class:`MetricsError`.
    """
    version = Version(workspace, None)
    if pipeline is not None:
        version._pipeline = pipeline
    files = [path for path, _ in declared_outs([version], "metric")]
    flat: dict[str, Any] = {}
    contents = version.read(files)
    for path in files:
        data = contents.get(path)
        if data is None:
            continue
        for key, value in _metric_values(data, path).items():
            if is_number(value):
                flat[f"{path}:{key}"] = value
    return flat


# -- comparing -----------------------------------------------------------------------------------


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same(a: object, b: object) -> bool:
    """Equal as values: ``1 == 1.0``, but ``True`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if is_number(a) and is_number(b):
        return a == b or (a != a and b != b)  # NaN is NaN
    return type(a) is type(b) and a == b


def compare(path: str, key: str, old: Any, new: Any) -> MetricDiff:
    """One row of a metrics diff; ``_ABSENT`` marks a side where the metric does not exist."""
    if old is _ABSENT:
        return MetricDiff(path, key, None, new, "added", None, None)
    if new is _ABSENT:
        return MetricDiff(path, key, old, None, "deleted", None, None)
    change: float | int | None = None
    pct: float | None = None
    if is_number(old) and is_number(new):
        change = _tidy(new - old)
        pct = _tidy(100.0 * (new - old) / abs(old)) if old else None
    status = "unchanged" if same(old, new) else "modified"
    return MetricDiff(path, key, old, new, status, change, pct)


def format_value(value: Any, precision: int | None = 5) -> str:
    """A value as a table shows it: floats to ``precision`` significant digits (None: all of
    them), "—" for none."""
    if value is None or value is _ABSENT:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if precision is None else f"{value:.{precision}g}"
    if isinstance(value, list):
        shown = ", ".join(format_value(item, precision) for item in value[:6])
        return f"[{shown}{', …' if len(value) > 6 else ''}]"
    if isinstance(value, dict):
        return "{…}" if value else "{}"
    return str(value)


def _tidy(value: float | int) -> float | int:
    """Drop float noise (``0.81 - 0.76`` is ``0.05000000000000004``) but keep 12 digits."""
    if isinstance(value, int):
        return value
    return float(f"{value:.12g}")


def _ordered_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The keys of ``b`` in its order, then those only ``a`` has."""
    return list(b) + [k for k in a if k not in b]


def _metric_values(data: bytes, name: str) -> dict[str, Any]:
    values = flatten(_parse(data, name, what="metrics", error=MetricsError))
    return {k: v for k, v in values.items() if not isinstance(v, dict)}  # an empty section holds no metric


def _values_of(version: Version, files: list[str], problems: list[str]) -> dict[str, dict[str, Any]]:
    """``{path: {key: value}}`` of the files ``version`` has; unparsable files become problems."""
    values: dict[str, dict[str, Any]] = {}
    for path, data in version.read(files).items():
        try:
            values[path] = _metric_values(data, version.label(path))
        except MetricsError as exc:
            if version.rev is None:
                raise  # the workspace's own file: the user can and should fix it
            problems.append(exc.message)  # history cannot be fixed: show the rest
    return values


# -- which files ---------------------------------------------------------------------------------


def _workspace(workspace: Workspace | None) -> Workspace:
    if workspace is not None:
        return workspace
    from conveyor.workspace import Workspace

    return Workspace.find()


def _user_paths(ws: Workspace, paths: Iterable[str]) -> list[str]:
    """Paths the user typed (relative to where they are) as workspace-relative POSIX paths."""
    return list(dict.fromkeys(ws.relpath(ws.resolve_target(p, must_exist=False)) for p in paths))


def declared_outs(versions: Sequence[Version], kind: str) -> list[tuple[str, dict[str, Any]]]:
    """``(path, options)`` of every output of ``kind`` ("metric", "plot") the versions' conveyor.yaml
    declare: the newest version's first, in its order, then those only older versions declare."""
    seen: dict[str, dict[str, Any]] = {}
    for version in reversed(versions):
        pipeline = version.pipeline()
        for stage in pipeline.stages.values() if pipeline is not None else ():
            for out in stage.outs:
                if out.kind == kind and out.path not in seen:
                    seen[out.path] = dict(out.options)
    return list(seen.items())


def declared_files(versions: Sequence[Version], kind: str) -> list[str]:
    """The paths of ``kind`` outputs the versions declare; none at all is an error that says what to do."""
    noun = {"metric": "metrics", "plot": "plots"}[kind]
    files = [path for path, _ in declared_outs(versions, kind)]
    if files:
        return files
    if not any(version.has_pipeline() for version in versions):
        ws = versions[0].ws
        raise MissingFileError(
            f"no {PIPELINE_FILE} in {ws.root}, so no declared {noun} files",
            hint=f"name the files (conveyor {noun} show PATH...) or declare them under '{noun}:' in a stage",
        )
    raise UsageError(
        f"{PIPELINE_FILE} declares no {noun} files",
        hint=f"add them under '{noun}:' in a stage, or name them (conveyor {noun} show PATH...)",
    )


# -- versions: the workspace or a git revision ---------------------------------------------------


def versions(ws: Workspace, a_rev: str | None, b_rev: str | None, *, command: str) -> tuple[Version, Version]:
    """The two versions a ``diff`` compares: HEAD and the workspace, REV and the workspace, or two REVs."""
    if not ws.has_scm:
        raise UsageError(
            f"{command} compares git revisions, and this workspace has no git",
            hint=f"use 'conveyor {command.split()[0]} show'",
        )
    return Version(ws, a_rev or "HEAD"), Version(ws, b_rev)


class Version:
    """The files of the workspace (``rev`` None) or of one git revision.

    The workspace's files are read from disk. A revision's git-tracked files come from its
    tree; its outputs kept in the cache come from its ``conveyor.lock`` and the object store.
    Problems (an object not in the cache, an unreadable lock file) are collected in
    :attr:`problems`, not raised.
    """

    def __init__(self, ws: Workspace, rev: str | None) -> None:
        self.ws = ws
        self.rev = rev
        self.name = rev if rev is not None else WORKSPACE
        self.commit: str | None = None
        if rev is not None:
            from conveyor import _git

            self.commit = _git.resolve_rev(ws.root, rev)
        self.problems: list[str] = []
        self._cached: dict[str, str] | None = None
        self._odb: ObjectStore | None = None
        self._pipeline: Pipeline | Literal[False] | None = False  # False: not loaded yet

    def label(self, path: str) -> str:
        """How messages name ``path`` in this version: ``REV:path``, or the path itself."""
        return path if self.rev is None else f"{self.rev}:{path}"

    def read(self, paths: Iterable[str]) -> dict[str, bytes]:
        """``{path: content}`` of those of ``paths`` this version has."""
        wanted = list(dict.fromkeys(paths))
        found = self._read_plain(wanted)
        rest = [p for p in wanted if p not in found]
        if rest and self.commit is not None:  # the workspace is what is on disk, nothing else
            cached = self.cached_outs()
            for path in rest:
                digest = cached.get(path)
                if digest is not None:
                    data = self._read_object(path, digest)
                    if data is not None:
                        found[path] = data
        return {p: found[p] for p in wanted if p in found}

    def has_pipeline(self) -> bool:
        if self.commit is None:
            return (self.ws.root / PIPELINE_FILE).is_file()
        return bool(self._read_plain([PIPELINE_FILE]))

    def pipeline(self) -> Pipeline | None:
        """This version's conveyor.yaml, validated; None when it has none.

        The workspace's must be valid (errors are raised: the user can fix them); an old
        revision's that is not becomes a problem, and the version counts as having none.
        """
        if self._pipeline is not False:
            return self._pipeline
        found: Pipeline | None = None
        if self.commit is None:
            if self.has_pipeline():
                from conveyor.pipeline._spec import load_pipeline

                found = load_pipeline(self.ws)
        else:
            data = self._read_plain([PIPELINE_FILE]).get(PIPELINE_FILE)
            if data is not None:
                from conveyor.pipeline._spec import parse_pipeline

                try:
                    text = data.decode("utf-8")
                    found = parse_pipeline(
                        text, root=self.ws.root, file=self.label(PIPELINE_FILE), read_params=self._params_at
                    )
                except (ConveyorError, UnicodeDecodeError) as exc:
                    reason = exc.format_message() if isinstance(exc, ConveyorError) else "not UTF-8 text"
                    self.problems.append(f"{self.label(PIPELINE_FILE)} is not used: {reason}")
        self._pipeline = found
        return found

    def _params_at(self, path: Path) -> Any:
        """A params file as this revision has it, for templating its conveyor.yaml ({} if absent)."""
        from conveyor.pipeline._params import _parse

        try:
            rel = path.relative_to(self.ws.root).as_posix()
        except ValueError:
            return {}
        data = self._read_plain([rel]).get(rel)
        return {} if data is None else _parse(data, self.label(rel))

    def cached_outs(self) -> dict[str, str]:
        """``{path: hash}`` of the cached file outputs this version's conveyor.lock records."""
        if self._cached is None:
            data = self._read_plain([LOCK_FILE]).get(LOCK_FILE)
            self._cached = {} if data is None else self._parse_lock(data)
        return self._cached

    # -- internals ------------------------------------------------------------------------------

    def _read_plain(self, paths: list[str]) -> dict[str, bytes]:
        if self.commit is None:
            found: dict[str, bytes] = {}
            for path in paths:
                try:
                    found[path] = (self.ws.root / path).read_bytes()
                except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                    continue
            return found
        return _blobs_at(self.ws, self.commit, paths)

    def _parse_lock(self, data: bytes) -> dict[str, str]:
        import yaml

        try:
            lock = yaml.safe_load(data.decode("utf-8", errors="replace"))
        except yaml.YAMLError:
            self.problems.append(f"{self.label(LOCK_FILE)}: cannot be parsed, so cached outputs are not shown")
            return {}
        cached: dict[str, str] = {}
        stages = lock.get("stages") if isinstance(lock, dict) else None
        for stage in (stages or {}).values() if isinstance(stages, dict) else ():
            outs = stage.get("outs") if isinstance(stage, dict) else None
            for out in outs if isinstance(outs, list) else ():
                if not isinstance(out, dict) or out.get("cache") is False or out.get("kind", "file") != "file":
                    continue
                path, digest = out.get("path"), out.get("hash")
                if isinstance(path, str) and isinstance(digest, str):
                    cached[path] = digest.rpartition(":")[2]  # "blake3:<hex>" or bare hex
        return cached

    def _read_object(self, path: str, digest: str) -> bytes | None:
        from conveyor.errors import CorruptObjectError, ObjectMissingError

        if self._odb is None:
            from conveyor.versioning._odb import ObjectStore

            self._odb = ObjectStore(self.ws.cache_dir, self.ws.cache_tmp_dir)
        try:
            return self._odb.read_bytes(digest)
        except ObjectMissingError:
            self.problems.append(
                f"{self.label(path)}: its content ({digest[:12]}) is not in the cache; "
                "fetch it, or check that revision out and run the pipeline"
            )
        except CorruptObjectError as exc:
            self.problems.append(f"{self.label(path)}: {exc.message}")
        return None


def _blobs_at(ws: Workspace, commit: str, paths: list[str]) -> dict[str, bytes]:
    """``{path: content}`` of those of ``paths`` that are files in ``commit``: one ls-tree, one cat-file."""
    if not paths:
        return {}
    from conveyor import _git

    proc = subprocess.run(
        ["git", "ls-tree", "-r", "-z", "--full-tree", commit, "--", *paths],
        cwd=ws.root,
        capture_output=True,
        check=False,
        env=_literal_pathspecs(),
    )
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise UsageError(f"git ls-tree: {message[-1] if message else 'failed'}")
    wanted = set(paths)
    names: list[str] = []
    blobs: list[str] = []
    for record in proc.stdout.split(b"\0"):
        meta, _, raw = record.partition(b"\t")
        name = raw.decode(errors="surrogateescape")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == b"blob" and name in wanted:
            names.append(name)
            blobs.append(parts[2].decode())
    return dict(zip(names, _git.read_blobs(ws.root, blobs), strict=True))


def _literal_pathspecs() -> dict[str, str]:
    import os

    return {**os.environ, "GIT_LITERAL_PATHSPECS": "1"}
