"""``conveyor import-dvc``: translate a DVC project's ``dvc.yaml`` into ``conveyor.yaml``.

The two formats share their shapes (``vars``, ``${...}`` templates, ``foreach``/``do``,
``matrix``, ``deps``, ``params``, ``outs``/``metrics``/``plots``), so most of a ``dvc.yaml``
carries over as it is. What does not is reported, one warning per thing, naming the file,
line and column, the stage and field, what was dropped and what to do about it.

Behaviour is kept where the formats differ: DVC caches metrics and plots unless told
``cache: false`` while conveyor does not, so they get an explicit ``cache: true``; a list
of commands becomes one ``&&`` chain, with any command that could leak shell state into the
next one (``cd``, ``export``, ``;``...) run in a subshell, as DVC runs each in its own shell.

``dvc.yaml`` is YAML 1.2 (``no`` is a string there, not false), so it is read that way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conveyor import _fs
from conveyor.errors import ConveyorError, MissingFileError, UsageError
from conveyor.workspace import Workspace

DVC_FILE = "dvc.yaml"
DVC_LOCK = "dvc.lock"
PIPELINE_FILE = "conveyor.yaml"
DEFAULT_PARAMS = "params.yaml"
MAX_LISTED_POINTERS = 5

_PARAMS_SUFFIXES = (".yaml", ".yml", ".json", ".toml")  # what conveyor reads params from
_STAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")  # what conveyor.yaml accepts
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_TEMPLATE = re.compile(r"\$\{\s*([^{}]*?)\s*\}")
_SKIP_DIRS = frozenset({"node_modules", "__pycache__"})

# Shell syntax that behaves differently once a command is joined to others with '&&': list
# operators (';', '||', '&', a line break), and builtins or assignments whose effect would
# reach the next command (DVC runs each command of a list in a shell of its own).
_LIST_SYNTAX = re.compile(r"[;\n]|\|\||(?<![&>])&(?![&>])")
_STATEFUL = re.compile(
    r"(?:^|[;&|(\n])\s*(?:cd|pushd|popd|export|unset|source|\.|set|shopt|alias|umask|ulimit|trap|exec|exit)(?:\s|$)"
    r"|(?:^|[;&|(\n])\s*[A-Za-z_]\w*=\S*\s*(?:$|[;&|\n])"
)

_OUT_SECTIONS = ("outs", "metrics", "plots")
_PLOT_KEPT = ("x", "y", "title", "x_label", "y_label")
_METADATA = ("type", "labels", "meta")
_TOP_SECTIONS = ("vars", "stages", "params", "metrics", "plots", "artifacts", "datasets")

YamlPath = tuple[str | int, ...]


class DvcFileError(ConveyorError):
    """``dvc.yaml`` is not valid YAML, or not a pipeline DVC itself would accept."""

    exit_code = 65  # EX_DATAERR


@dataclass
class ImportResult:
    """What ``import-dvc`` produced: the ``conveyor.yaml`` text and everything it could not carry over."""

    written: Path | None  # None on a dry run
    text: str
    stages: int
    warnings: list[str] = field(default_factory=list)
    pointer_files: list[str] = field(default_factory=list)  # ``*.dvc`` files found, relative to the project


def import_dvc(
    source: Path | None = None,
    *,
    workspace: Workspace | None = None,
    output: Path | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> ImportResult:
    """Translate ``source`` (default: ``dvc.yaml`` at the workspace root) into ``output`` (``conveyor.yaml``).

    Refuses to replace an existing ``output`` unless ``force``; writes nothing if ``dry_run``.
    Relative paths are relative to the workspace's base (the current folder, for the CLI).
    """
    if workspace is None and (source is None or output is None):
        workspace = Workspace.find()
    base = workspace.base if workspace is not None else Path.cwd()
    root = workspace.root if workspace is not None else base
    source_path = _absolute(source, base) if source is not None else root / DVC_FILE
    if source_path.is_dir():
        source_path = source_path / DVC_FILE
    output_path = _absolute(output, base) if output is not None else root / PIPELINE_FILE
    if output_path.is_dir():
        output_path = output_path / PIPELINE_FILE
    project = output_path.parent
    source_name = _display(source_path, project)
    output_name = _display(output_path, project)

    prefix = os.path.relpath(source_path.parent, project).replace(os.sep, "/")
    if prefix == ".." or prefix.startswith("../"):
        raise UsageError(
            f"{source_path}: outside {project}, the folder {output_name} goes to",
            hint="write conveyor.yaml at the top of the project that holds dvc.yaml: -o PROJECT/conveyor.yaml",
        )
    prefix = "" if prefix == "." else prefix
    if not dry_run and output_path.exists() and not force:
        raise UsageError(
            f"{output_name}: already exists",
            hint="pass --force to replace it, or --dry-run to print the translation instead",
        )
    text = _read_source(source_path, source_name)

    sub_params = bool(prefix) and (source_path.parent / DEFAULT_PARAMS).is_file()

    def read_vars_file(rel: str) -> Any:
        return _read_data_file(project / rel)

    result, outputs = _translate(
        text, source_name=source_name, prefix=prefix, read_file=read_vars_file, sub_params=sub_params
    )
    if sub_params and (project / DEFAULT_PARAMS).is_file():
        result.warnings.append(
            f"{DEFAULT_PARAMS}: conveyor also reads the {DEFAULT_PARAMS} at the top of the project for ${{...}} "
            f"values, which DVC did not for {source_name}; "
            f"check that no name in it clashes with {prefix}/{DEFAULT_PARAMS}"
        )
    lock = source_path.parent / DVC_LOCK
    if lock.is_file():
        result.warnings.append(
            f"{_display(lock, project)}: not imported: conveyor records its own conveyor.lock, "
            "so the first 'conveyor run' runs every stage once; commit conveyor.lock afterwards"
        )
    result.pointer_files = _pointer_files(project, skip=outputs)
    result.warnings.extend(_pointer_warnings(result.pointer_files))
    if not dry_run:
        _fs.atomic_write_text(output_path, result.text)
        result.written = output_path
    return result


def translate(
    text: str,
    *,
    source_name: str = DVC_FILE,
    prefix: str = "",
    read_file: Callable[[str], Any] | None = None,
    sub_params: bool = False,
) -> ImportResult:
    """Translate the text of a ``dvc.yaml`` into ``conveyor.yaml`` text, touching no file.

    ``prefix`` is the folder of the ``dvc.yaml`` relative to the folder of ``conveyor.yaml``
    ("" for the same folder); ``read_file`` reads a vars file (path relative to the latter)
    and is only used to spot templates conveyor cannot expand; ``sub_params`` says that
    ``PREFIX/params.yaml`` exists (DVC loads it for templating; conveyor must be told).
    """
    return _translate(text, source_name=source_name, prefix=prefix, read_file=read_file, sub_params=sub_params)[0]


def _translate(
    text: str, *, source_name: str, prefix: str, read_file: Callable[[str], Any] | None, sub_params: bool
) -> tuple[ImportResult, set[str]]:
    """The translation, and the stages' output paths (relative to the folder of ``conveyor.yaml``)."""
    doc = _load(text, source_name)
    translator = _Translator(doc, prefix=prefix, read_file=read_file)
    if sub_params:
        translator.vars.append(f"{prefix}/{DEFAULT_PARAMS}")
    result = translator.run()
    return result, {_join(prefix, path) for path in translator.written_by}


# -- reading --------------------------------------------------------------------------------


def _absolute(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else base / path


def _display(path: Path, project: Path) -> str:
    try:
        return path.relative_to(project).as_posix()
    except ValueError:
        return str(path)


def _read_source(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingFileError(
            f"{name}: no such file",
            hint="run this at the top of the DVC project, or name its dvc.yaml: conveyor import-dvc PATH/dvc.yaml",
        ) from None
    except UnicodeDecodeError:
        raise DvcFileError(f"{name}: not UTF-8 text", hint="save it as UTF-8") from None
    except OSError as exc:
        raise MissingFileError(f"{name}: cannot read: {exc.strerror}", hint="check its permissions") from None


def _read_data_file(path: Path) -> Any:
    """A vars file's content for checking templates, or None when it cannot be read."""
    try:
        if path.suffix == ".toml":
            import tomllib

            return tomllib.loads(path.read_text(encoding="utf-8"))
        if path.suffix in (".yaml", ".yml", ".json"):
            return _load(path.read_text(encoding="utf-8"), path.name).value
    except (OSError, UnicodeDecodeError, ValueError, ConveyorError):
        return None
    return None


# YAML 1.2 core schema scalars, which DVC follows and PyYAML (YAML 1.1) does not: only
# true/false are booleans (not yes/no/on/off), 010 is ten, 1e3 is a number, 1:20 is a string.
_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_12 = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_TAG = "tag:yaml.org,2002:"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with the scalar rules of YAML 1.2."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_TAG + "bool", _TAG + "int", _TAG + "float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_TAG + "bool", _BOOL_12, list("tTfF"))
_Loader.add_implicit_resolver(_TAG + "int", _INT_12, list("-+0123456789"))
_Loader.add_implicit_resolver(_TAG + "float", _FLOAT_12, list("-+0123456789."))


def _construct_bool(loader: yaml.SafeLoader, node: yaml.Node) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"  # type: ignore[arg-type]


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = str(loader.construct_scalar(node)).lower()  # type: ignore[arg-type]
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


_Loader.add_constructor(_TAG + "bool", _construct_bool)
_Loader.add_constructor(_TAG + "int", _construct_int)
_Loader.add_constructor(_TAG + "float", _construct_float)


@dataclass
class _Doc:
    """A parsed document plus where each value (and each mapping key) starts: path -> (line, column)."""

    value: Any
    name: str
    marks: dict[YamlPath, tuple[int, int]]
    key_marks: dict[YamlPath, tuple[int, int]]

    def where(self, path: YamlPath) -> str:
        while True:
            found = self.key_marks.get(path) or self.marks.get(path)
            if found is not None:
                return f"{self.name}:{found[0]}:{found[1]}"
            if not path:
                return self.name
            path = path[:-1]


def _load(text: str, name: str) -> _Doc:
    marks: dict[YamlPath, tuple[int, int]] = {}
    key_marks: dict[YamlPath, tuple[int, int]] = {}
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            value = None if node is None else _build(loader, node, (), name, marks, key_marks, set())
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
        raise DvcFileError(
            f"{where}: not valid YAML: {exc.problem or exc.context}",
            hint="fix the syntax (indentation, quotes, a ':' after each key); dvc would refuse it too",
        ) from None
    except yaml.YAMLError as exc:
        raise DvcFileError(f"{name}: not valid YAML: {exc}", hint="fix the syntax") from None
    return _Doc(value, name, marks, key_marks)


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _build(
    loader: _Loader,
    node: yaml.Node,
    path: YamlPath,
    name: str,
    marks: dict[YamlPath, tuple[int, int]],
    key_marks: dict[YamlPath, tuple[int, int]],
    active: set[int],
) -> Any:
    marks[path] = _position(node)
    if id(node) in active:
        line, column = _position(node)
        raise DvcFileError(f"{name}:{line}:{column}: an alias refers to itself", hint="remove the recursive alias")
    if isinstance(node, yaml.MappingNode):
        active.add(id(node))
        loader.flatten_mapping(node)  # '<<' merge keys
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                line, column = _position(key_node)
                raise DvcFileError(f"{name}:{line}:{column}: a key must be a plain value", hint="write key: value")
            if key in result:
                line, column = _position(key_node)
                raise DvcFileError(
                    f"{name}:{line}:{column}: duplicate key {key!r}", hint="keep one of them; dvc refuses duplicates"
                )
            key_marks[(*path, str(key))] = _position(key_node)
            result[key] = _build(loader, value_node, (*path, str(key)), name, marks, key_marks, active)
        active.discard(id(node))
        return result
    if isinstance(node, yaml.SequenceNode):
        active.add(id(node))
        items = [_build(loader, item, (*path, i), name, marks, key_marks, active) for i, item in enumerate(node.value)]
        active.discard(id(node))
        return items
    return loader.construct_object(node, deep=True)


# -- writing --------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style with indented lists, literal blocks for multi-line text, and quotes for
    every string that YAML 1.1 or 1.2 would read as something else."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar(_TAG + "str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_implicit_resolver(_TAG + "bool", _BOOL_12, list("tTfF"))
_Dumper.add_implicit_resolver(_TAG + "int", _INT_12, list("-+0123456789"))
_Dumper.add_implicit_resolver(_TAG + "float", _FLOAT_12, list("-+0123456789."))


def _dump(data: Any) -> str:
    text: str = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 16
    )
    return text


def _comment(lines: list[str], text: str) -> None:
    for line in text.splitlines() or [""]:
        lines.append(f"  # {line}".rstrip())


def _emit(source_name: str, vars_: list[Any], stages: list[tuple[str, dict[str, Any], list[str]]]) -> str:
    lines = [f"# Imported from {source_name} by conveyor import-dvc", "schema: 1"]
    if vars_:
        lines.extend(_dump({"vars": vars_}).splitlines())
    if not stages:
        lines.append("stages: {}")
    else:
        lines.append("stages:")
        for name, body, comments in stages:
            for comment in comments:
                _comment(lines, comment)
            lines.extend(f"  {line}" if line else line for line in _dump({name: body}).splitlines())
    return "\n".join(lines) + "\n"


# -- translating ----------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A value as it reads in YAML: true, not True."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def _join(*parts: str) -> str:
    """Join POSIX path parts, dropping empty and '.' parts; keeps templates intact."""
    kept = [p for p in parts if p not in ("", ".")]
    if not kept:
        return "."
    joined = "/".join(kept)
    return joined if any(_is_template(p) for p in kept) else os.path.normpath(joined).replace(os.sep, "/")


def _join_commands(commands: list[str]) -> str:
    """One shell command running ``commands`` in order, stopping at the first failure.

    DVC runs each command of a list in a shell of its own: a command whose syntax or state
    would reach the next one once joined with ``&&`` runs in a subshell, ``( ... )``.
    """
    if len(commands) == 1:
        return commands[0]
    parts = []
    for i, command in enumerate(commands):
        last = i == len(commands) - 1
        lists = bool(_LIST_SYNTAX.search(command.replace("&&", "")))
        comment = "#" in command
        if lists or (not last and (comment or _STATEFUL.search(command))):
            # a line break before ')' keeps a comment or a here-document from swallowing it
            command = f"({command}\n)" if (comment or "\n" in command) else f"({command})"
        parts.append(command)
    return " && ".join(parts)


def _lookup(context: Any, dotted: str) -> tuple[bool, Any]:
    current = context
    for part in dotted.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return False, None
    return True, current


def _merge(into: dict[str, Any], data: Any) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merged = dict(into[key])
                _merge(merged, value)
                into[key] = merged
            else:
                into[str(key)] = value


class _Translator:
    def __init__(self, doc: _Doc, *, prefix: str, read_file: Callable[[str], Any] | None) -> None:
        self.doc = doc
        self.prefix = prefix
        self.read_file = read_file
        self.warnings: list[str] = []
        self.vars: list[Any] = []  # the top-level vars of conveyor.yaml
        self.inline: dict[str, Any] = {}  # inline vars values, to spot clashes when stage vars move up
        self.context: dict[str, Any] = {}  # every value a template may name, as far as it is known
        self.written_by: dict[str, str] = {}  # output path (relative to dvc.yaml) -> stage

    # -- reporting ---------------------------------------------------------------------------

    def warn(self, path: YamlPath, subject: str, message: str) -> None:
        self.warnings.append(f"{self.doc.where(path)}: {subject}: {message}")

    def error(self, path: YamlPath, message: str, hint: str) -> DvcFileError:
        return DvcFileError(f"{self.doc.where(path)}: {message}", hint=hint)

    # -- the document ------------------------------------------------------------------------

    def run(self) -> ImportResult:
        top = self.doc.value
        if top is None:
            top = {}
        if not isinstance(top, dict):
            raise self.error((), "expected a mapping with 'stages'", "dvc.yaml starts with 'stages:'")
        if self.read_file is not None:
            _merge(self.context, self.read_file(_join(self.prefix, DEFAULT_PARAMS)))
        self.top_vars(top.get("vars"))
        raw_stages = top.get("stages")
        if raw_stages is None:
            raw_stages = {}
        if not isinstance(raw_stages, dict):
            raise self.error(("stages",), "expected a mapping of stage names", "stages: {NAME: {cmd: ...}}")
        stages = [self.stage(str(name), raw) for name, raw in raw_stages.items()]
        self.top_sections(top)
        text = _emit(self.doc.name, self.vars, stages)
        return ImportResult(written=None, text=text, stages=len(stages), warnings=self.warnings)

    def top_vars(self, raw: Any) -> None:
        if raw is None:
            return
        if not isinstance(raw, list):
            raise self.error(("vars",), "'vars' must be a list", "vars: [params.json, {name: value}]")
        for i, item in enumerate(raw):
            if isinstance(item, str):
                self.add_vars_file(item, "", ("vars", i))
            elif isinstance(item, dict):
                self.vars.append(item)
                for key, value in item.items():
                    self.inline[str(key)] = value
                _merge(self.context, item)
            else:
                self.warn(("vars", i), "vars", f"dropped {item!r}: expected a file name or a mapping of values")

    def add_vars_file(self, item: str, wdir: str, path: YamlPath) -> None:
        file, colon, sections = item.partition(":")
        rel = _join(self.prefix, wdir, file)
        entry = f"{rel}{colon}{sections}"
        if entry not in self.vars:
            self.vars.append(entry)
        if self.read_file is not None and not _is_template(rel):
            data = self.read_file(rel)
            if sections and isinstance(data, dict):
                data = {s: data[s] for s in sections.split(",") if s in data}
            _merge(self.context, data)

    def top_sections(self, top: dict[Any, Any]) -> None:
        for key in top:
            if key not in _TOP_SECTIONS:
                self.warn((str(key),), f"top-level {key!r}", "not a dvc.yaml section conveyor knows; dropped")
        for section in ("metrics", "plots"):
            if top.get(section) is not None:
                self.top_outputs(section, top[section])
        params = top.get("params")
        if params is not None:
            for i, file in enumerate(params if isinstance(params, list) else [params]):
                self.warn(
                    ("params", i),
                    f"top-level params {str(file)!r}",
                    "conveyor has no top-level params files; list the keys each stage reads under its params",
                )
        artifacts = top.get("artifacts")
        if isinstance(artifacts, dict):
            for name, spec in artifacts.items():
                details = [f"{k} {spec[k]}" for k in ("path", "type") if isinstance(spec, dict) and spec.get(k)]
                self.warn(
                    ("artifacts", str(name)),
                    f"artifact {str(name)!r}" + (f" ({', '.join(details)})" if details else ""),
                    "conveyor has no artifact registry yet; not imported (the file itself should be a stage's output)",
                )
        elif artifacts is not None:
            self.warn(("artifacts",), "top-level 'artifacts'", "conveyor has no artifact registry yet; not imported")
        if top.get("datasets") is not None:
            self.warn(("datasets",), "top-level 'datasets'", "conveyor has no dataset registry; not imported")

    def top_outputs(self, section: str, raw: Any) -> None:
        """Top-level metrics and plots: conveyor knows them only as a stage's outputs."""
        entries: list[tuple[YamlPath, str, Any]] = []
        if isinstance(raw, dict):
            entries = [((section, str(k)), str(k), v) for k, v in raw.items()]
        elif isinstance(raw, list):
            for i, entry in enumerate(raw):
                if isinstance(entry, dict) and entry:
                    ident, flags = next(iter(entry.items()))
                    entries.append(((section, i), str(ident), flags))
                else:
                    entries.append(((section, i), str(entry), None))
        else:
            entries = [((section,), str(raw), None)]
        for path, ident, flags in entries:
            writer = None if _is_template(ident) else self.written_by.get(_join(ident))
            combined = isinstance(flags, dict) and any(isinstance(flags.get(axis), dict) for axis in ("x", "y"))
            if writer:
                todo = f"declare it under the {section} of stage {writer!r}, which writes it"
            else:
                todo = f"declare it under the {section} of the stage that writes it"
            nor = ", nor plots that combine several files" if combined else ""
            self.warn(path, f"top-level {section} {ident!r}", f"conveyor has no top-level {section}{nor}; {todo}")

    # -- stages ------------------------------------------------------------------------------

    def stage(self, name: str, raw: Any) -> tuple[str, dict[str, Any], list[str]]:
        path: YamlPath = ("stages", name)
        label = f"stage {name!r}"
        if not _STAGE_NAME.match(name):
            self.warn(path, label, "conveyor stage names use letters, digits, '_', '-' and '.'; rename it")
        if not isinstance(raw, dict):
            raise self.error(path, f"{label}: expected a mapping of stage fields", "{cmd: ..., deps: [...]}")
        comments: list[str] = []
        if "foreach" in raw or "do" in raw:
            if "foreach" not in raw or "do" not in raw:
                missing = "do" if "foreach" in raw else "foreach"
                raise self.error(path, f"{label}: 'foreach' and 'do' go together; no {missing!r}", "add it")
            for key in raw:
                if key not in ("foreach", "do"):
                    self.warn((*path, str(key)), label, f"dropped {key!r}: beside 'foreach', fields go under 'do'")
            item_context = self.sample_item(raw["foreach"], foreach=True)
            body = self.body(name, raw["do"], (*path, "do"), comments, item_context)
            return name, {"foreach": raw["foreach"], "do": body}, comments
        if "matrix" in raw:
            matrix = raw["matrix"]
            item_context = self.sample_item(matrix, foreach=False)
            body = self.body(name, {k: v for k, v in raw.items() if k != "matrix"}, path, comments, item_context)
            return name, {"matrix": matrix, **body}, comments
        return name, self.body(name, raw, path, comments, {}), comments

    def sample_item(self, raw: Any, *, foreach: bool) -> dict[str, Any]:
        """``item`` (and ``key``) as the first generated stage sees them, where that is known."""
        if _is_template(raw):
            whole = _TEMPLATE.fullmatch(raw)
            found, raw = _lookup(self.context, whole.group(1)) if whole else (False, None)
            if not found:
                return {}
        if foreach:
            if isinstance(raw, list) and raw:
                return {"item": raw[0], "key": "0"}
            if isinstance(raw, dict) and raw:
                key, value = next(iter(raw.items()))
                return {"item": value, "key": str(key)}
            return {}
        if isinstance(raw, dict):
            item = {}
            for axis, values in raw.items():
                if _is_template(values):
                    whole = _TEMPLATE.fullmatch(values)
                    found, values = _lookup(self.context, whole.group(1)) if whole else (False, None)
                    if not found:
                        continue
                if isinstance(values, list) and values:
                    item[str(axis)] = values[0]
            return {"item": item}
        return {}

    def body(
        self, name: str, raw: Any, path: YamlPath, comments: list[str], item_context: dict[str, Any]
    ) -> dict[str, Any]:
        label = f"stage {name!r}"
        if not isinstance(raw, dict):
            raise self.error(path, f"{label}: expected a mapping of stage fields", "{cmd: ..., deps: [...]}")
        if "cmd" not in raw:
            raise self.error(path, f"{label}: no 'cmd'", "add cmd: <the command the stage runs>")
        wdir_raw = raw.get("wdir", ".")
        wdir = str(wdir_raw) if wdir_raw is not None else "."
        out: dict[str, Any] = {"cmd": self.cmd(raw["cmd"], (*path, "cmd"), label, item_context)}
        deps = self.deps(raw.get("deps"), (*path, "deps"), label)
        if deps:
            out["deps"] = deps
        params = self.params(raw.get("params"), (*path, "params"), label)
        if params:
            out["params"] = params
        for section in _OUT_SECTIONS:
            outs = self.outputs(section, raw.get(section), (*path, section), name, wdir)
            if outs:
                out[section] = outs
        new_wdir = _join(self.prefix, wdir)
        if new_wdir != ".":
            out["wdir"] = new_wdir
        for flag, target in (("frozen", "frozen"), ("always_changed", "always_run")):
            value = raw.get(flag)
            if value is None or value is False:
                continue
            if value is True or _is_template(value):
                out[target] = value
            else:
                self.warn((*path, flag), label, f"dropped '{flag}: {_show(value)}': expected true or false")
        desc = raw.get("desc")
        if desc is not None:
            comments.append(str(desc))
        meta = raw.get("meta")
        if meta is not None:
            comments.extend(_dump({"meta": meta}).splitlines())
        if raw.get("vars") is not None:
            self.stage_vars(raw["vars"], (*path, "vars"), label, wdir)
        if "live" in raw:
            self.warn(
                (*path, "live"),
                label,
                "dropped 'live' (DVCLive outputs): declare the files it writes under metrics and plots",
            )
        known = {"cmd", "deps", "params", *_OUT_SECTIONS, "wdir", "frozen", "always_changed", "desc", "meta"}
        for key in raw:
            if key not in known | {"vars", "live"}:
                self.warn((*path, str(key)), label, f"dropped unknown field {key!r}")
        return out

    def cmd(self, raw: Any, path: YamlPath, label: str, item_context: dict[str, Any]) -> str:
        if isinstance(raw, list):
            if not raw or not all(isinstance(c, str | int | float) and not isinstance(c, bool) for c in raw):
                raise self.error(path, f"{label}: 'cmd' must be a command or a list of commands", "cmd: python x.py")
            command = _join_commands([str(c) for c in raw])
        elif isinstance(raw, str | int | float) and not isinstance(raw, bool):
            command = str(raw)
        else:
            raise self.error(path, f"{label}: 'cmd' must be a command or a list of commands", "cmd: python x.py")
        if not command.strip():
            raise self.error(path, f"{label}: empty 'cmd'", "write the command the stage runs")
        self.check_unpacking(command, path, label, item_context)
        return command

    def check_unpacking(self, command: str, path: YamlPath, label: str, item_context: dict[str, Any]) -> None:
        """Warn about ``${x}`` naming a mapping or list: DVC expands those into arguments, conveyor cannot."""
        if _TEMPLATE.fullmatch(command):
            return
        context = {**self.context, **item_context}
        for match in _TEMPLATE.finditer(command):
            found, value = _lookup(context, match.group(1))
            if found and isinstance(value, dict | list):
                kind = "a mapping" if isinstance(value, dict) else "a list"
                self.warn(
                    path,
                    f"{label}, cmd",
                    f"{match.group(0)} is {kind}: DVC expands it into command-line arguments, conveyor does not; "
                    "spell the arguments out (--name ${...} for each value)",
                )

    def deps(self, raw: Any, path: YamlPath, label: str) -> list[Any]:
        if raw is None:
            return []
        items = raw if isinstance(raw, list) else [raw]
        deps = []
        for i, item in enumerate(items):
            if isinstance(item, str) and _URL.match(item):
                self.warn(
                    (*path, i),
                    f"{label}, deps {item!r}",
                    "dropped: conveyor tracks files in the workspace only; download it in a stage of its own "
                    "and depend on the local copy",
                )
            elif isinstance(item, str | int | float) and not isinstance(item, bool):
                deps.append(str(item))
            else:
                self.warn((*path, i), f"{label}, deps", f"dropped {item!r}: expected a path")
        return deps

    def params(self, raw: Any, path: YamlPath, label: str) -> list[Any]:
        if raw is None:
            return []
        items = raw if isinstance(raw, list) else [raw]
        params: list[Any] = []
        for i, item in enumerate(items):
            if isinstance(item, str):
                params.append(item)
            elif isinstance(item, dict):
                entry: dict[str, Any] = {}
                for file, keys in item.items():
                    file = str(file)
                    if not _is_template(file) and not file.endswith(_PARAMS_SUFFIXES):
                        self.warn(
                            (*path, i, file),
                            f"{label}, params {file!r}",
                            "conveyor reads params from YAML, JSON and TOML files only; move these params "
                            "into one (params.yaml, say) and update the stage",
                        )
                    if keys is None or keys == []:
                        entry[file] = None  # every key of the file
                    elif isinstance(keys, str):
                        entry[file] = [keys]
                    else:
                        entry[file] = keys
                params.append(entry)
            else:
                self.warn((*path, i), f"{label}, params", f"dropped {item!r}: expected a key or {{file: [keys]}}")
        return params

    def outputs(self, section: str, raw: Any, path: YamlPath, stage: str, wdir: str) -> list[Any]:
        if raw is None:
            return []
        label = f"stage {stage!r}"
        items = raw if isinstance(raw, list) else [raw]
        result: list[Any] = []
        for i, item in enumerate(items):
            if isinstance(item, dict) and len(item) == 1:
                ((out_path, flags),) = item.items()
                out_path = str(out_path)
                flags = flags if flags is not None else {}
                if not isinstance(flags, dict):
                    self.warn((*path, i), f"{label}, {section} {out_path!r}", f"dropped options {flags!r}")
                    flags = {}
            elif isinstance(item, str):
                out_path, flags = item, {}
            else:
                self.warn((*path, i), f"{label}, {section}", f"dropped {item!r}: expected a path")
                continue
            subject = f"{label}, {section} {out_path!r}"
            where: YamlPath = (*path, i, out_path) if flags else (*path, i)
            if _URL.match(out_path):
                self.warn(
                    where,
                    subject,
                    "dropped: conveyor writes outputs inside the workspace only; write it locally, "
                    "then upload it in a later stage",
                )
                continue
            options = self.output_options(section, flags, where, subject)
            result.append({out_path: options} if options else out_path)
            if not _is_template(out_path) and not _is_template(wdir):
                self.written_by.setdefault(_join(wdir, out_path), stage)
        return result

    def output_options(self, section: str, flags: dict[Any, Any], where: YamlPath, subject: str) -> dict[str, Any]:
        options: dict[str, Any] = {}
        cache = flags.get("cache", True)
        if section == "outs":
            if cache is not True:
                options["cache"] = cache  # false, or a template
        elif cache is not False:
            options["cache"] = cache  # DVC caches metrics and plots by default, conveyor does not
        persist = flags.get("persist", False)
        if persist is not False:
            options["persist"] = persist
        checkpoint = flags.get("checkpoint", False)
        if checkpoint is True:
            options["persist"] = True
            self.warn(
                (*where, "checkpoint"),
                subject,
                "'checkpoint: true' became 'persist: true' (kept between runs); conveyor has no checkpoint "
                "experiments, so resuming from a checkpoint is up to the script",
            )
        elif checkpoint is not False:
            self.warn(
                (*where, "checkpoint"), subject, f"dropped 'checkpoint: {_show(checkpoint)}': expected true or false"
            )
        if "remote" in flags:
            self.warn(
                (*where, "remote"),
                subject,
                f"dropped 'remote: {_show(flags['remote'])}': conveyor has no per-output remote; "
                "the output goes wherever the workspace sends its data",
            )
        if flags.get("push", True) is not True:
            self.warn(
                (*where, "push"),
                subject,
                f"dropped 'push: {_show(flags['push'])}': conveyor has no per-output push setting, so this output "
                "is pushed like the others; use 'cache: false' and git-ignore it if it must stay local",
            )
        dropped_meta = [k for k in _METADATA if k in flags]
        if dropped_meta:
            names = ", ".join(repr(k) for k in dropped_meta)
            self.warn(
                (*where, dropped_meta[0]),
                subject,
                f"dropped metadata {names}: conveyor keeps none per output; note it in a comment if you need it",
            )
        known = {"cache", "persist", "checkpoint", "remote", "push", "desc", *_METADATA}
        if section == "plots":
            for key in _PLOT_KEPT:
                if key in flags:
                    options[key] = flags[key]
            if "template" in flags:
                self.warn(
                    (*where, "template"),
                    subject,
                    f"dropped 'template: {_show(flags['template'])}': conveyor has no plot templates; x and y are kept",
                )
            if flags.get("header", True) is not True:
                self.warn(
                    (*where, "header"),
                    subject,
                    f"dropped 'header: {_show(flags['header'])}': conveyor has no such option; "
                    "give the CSV/TSV file a header row",
                )
            known |= {*_PLOT_KEPT, "template", "header"}
        for key in flags:
            if key not in known:
                self.warn((*where, str(key)), subject, f"dropped unknown option {key!r}")
        return options

    def stage_vars(self, raw: Any, path: YamlPath, label: str, wdir: str) -> None:
        """Move a stage's own vars to the top level: conveyor has no per-stage vars."""
        if not isinstance(raw, list):
            self.warn(path, f"{label}, vars", f"dropped {raw!r}: expected a list")
            return
        moved = False
        for i, item in enumerate(raw):
            if isinstance(item, str):
                if _is_template(wdir):
                    self.warn((*path, i), f"{label}, vars", f"dropped {item!r}: its folder depends on a template")
                    continue
                self.add_vars_file(item, wdir, (*path, i))
                moved = True
            elif isinstance(item, dict):
                entry = {}
                for key, value in item.items():
                    key = str(key)
                    if key in self.inline and self.inline[key] != value:
                        self.warn(
                            (*path, i, key),
                            f"{label}, vars {key!r}",
                            "not moved to the top-level vars: another stage (or the top level) gives it another "
                            "value; rename it here and in this stage's templates",
                        )
                        continue
                    self.inline[key] = value
                    entry[key] = value
                if entry:
                    if entry not in self.vars:
                        self.vars.append(entry)
                    _merge(self.context, entry)
                    moved = True
            else:
                self.warn((*path, i), f"{label}, vars", f"dropped {item!r}: expected a file name or a mapping")
        if moved:
            self.warn(
                path,
                f"{label}, vars",
                "moved to the top-level vars (conveyor has no per-stage vars): every stage now sees these values",
            )


# -- .dvc pointer files ---------------------------------------------------------------------


def _pointer_files(project: Path, *, skip: set[str]) -> list[str]:
    """``*.dvc`` files under ``project`` (data tracked with ``dvc add``).

    Folders that are data (tracked by a ``.dvc`` file beside them, or a stage's output, in
    ``skip``) are not walked: they hold no pointers and may hold a million files.
    """
    found: list[str] = []
    for folder, dirs, files in os.walk(project):
        names = set(files)
        rel = Path(folder).relative_to(project).as_posix()
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and d not in _SKIP_DIRS and f"{d}.dvc" not in names and _join(rel, d) not in skip
        )
        for name in sorted(files):
            if name.endswith(".dvc") and len(name) > len(".dvc"):
                found.append(Path(folder, name).relative_to(project).as_posix())
    return found


def _pointer_warnings(pointers: list[str]) -> list[str]:
    import shlex

    warnings = [
        f"{pointer}: data tracked by DVC; conveyor does not read .dvc files: once the data is in the workspace "
        f"('dvc pull'), track it with: conveyor add {shlex.quote(pointer[: -len('.dvc')])}"
        for pointer in pointers[:MAX_LISTED_POINTERS]
    ]
    more = len(pointers) - MAX_LISTED_POINTERS
    if more > 0:
        warnings.append(
            f"... and {more} more .dvc file{'s' if more > 1 else ''}: "
            "run 'conveyor add PATH' for the data each one tracks"
        )
    return warnings
