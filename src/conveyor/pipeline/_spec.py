"""``conveyor.yaml``: load, template, expand and validate the pipeline declaration.

Every mistake is reported with its file, line and column, the field, what was wrong and a
fix. Templating (``${...}``) and ``foreach``/``matrix`` expansion happen here, so the rest
of the pipeline code sees only plain, validated :class:`Stage` objects with paths relative
to the workspace root.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor._suggest import did_you_mean
from conveyor.errors import MissingFileError
from conveyor.pipeline._yaml import Located, Mark, SpecError
from conveyor.pipeline._yaml import Path_ as YamlPath
from conveyor.pipeline._yaml import load as load_yaml
from conveyor.workspace import CONVEYOR_DIR, Workspace

PIPELINE_FILE = "conveyor.yaml"
_CHECK_FIELDS = (
    "suite",
    "data",
    "train",
    "test",
    "model",
    "champion",
    "schema",
    "label",
    "categorical",
    "numeric",
    "reports",
    "strict",
    "seed",
    "trust",
)
DEFAULT_PARAMS = "params.yaml"

# registry: the promotion policy; deploy: delivery and rollouts; notify: webhooks
_TOP_FIELDS = ("schema", "vars", "stages", "registry", "deploy", "notify")
_STAGE_FIELDS = (
    "cmd",
    "call",
    "check",
    "kwargs",
    "deps",
    "params",
    "outs",
    "metrics",
    "plots",
    "env",
    "wdir",
    "retries",
    "retry_delay",
    "timeout",
    "resources",
    "priority",
    "process",
    "always_run",
    "frozen",
    "desc",
    "foreach",
    "do",
    "matrix",
)
_OUT_OPTIONS = {
    "outs": ("cache", "persist", "desc"),
    "metrics": ("cache", "persist", "desc"),
    "plots": ("cache", "persist", "desc", "x", "y", "title", "x_label", "y_label"),
}
_KIND = {"outs": "out", "metrics": "metric", "plots": "plot"}
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
_CALL = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*\Z")
_TEMPLATE = re.compile(r"\$\{\s*([^{}]*?)\s*\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VAR_NAME = re.compile(r"[A-Za-z_][\w\-]*(\.[\w\-]+)*\Z")


@dataclass(frozen=True)
class Out:
    """A file or folder a stage writes: a plain output, a metrics file or a plots file."""

    path: str  # relative to the workspace root, POSIX
    kind: str = "out"  # "out", "metric" or "plot"
    cache: bool = True
    persist: bool = False
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class ParamRef:
    """Params a stage reads from one params file: some keys, or every key (``keys is None``)."""

    file: str  # relative to the workspace root
    keys: tuple[str, ...] | None


@dataclass(frozen=True)
class Stage:
    """One validated stage, after templating and expansion."""

    name: str
    cmd: str | None
    call: str | None  # "module:function"
    kwargs: dict[str, Any]
    deps: tuple[str, ...]  # relative to the workspace root (absolute when outside it)
    params: tuple[ParamRef, ...]
    outs: tuple[Out, ...]
    env: dict[str, str]
    wdir: str  # relative to the workspace root ("." for the root)
    retries: int = 0
    retry_delay: float = 1.0
    timeout: float | None = None
    cpus: float = 1.0  # resources: {cpus: N}: what the stage uses; the local scheduler never oversubscribes
    memory: int | None = None  # resources: {memory: 8GB}, in bytes (for executors that place stages)
    gpus: int = 0
    priority: int = 0  # among stages ready at once, higher starts first
    shared: bool = False  # process: shared: a call stage runs in a process kept for the next ones
    always_run: bool = False
    frozen: bool = False
    desc: str | None = None
    mark: Mark | None = None
    places: dict[str, Mark] = field(default_factory=dict, hash=False, compare=False)  # "dep:PATH"/"out:PATH"

    def place(self, kind: str, path: str) -> Mark | None:
        """Where ``conveyor.yaml`` names this dep or output (``kind`` "dep" or "out")."""
        return self.places.get(f"{kind}:{path}", self.mark)

    @property
    def command(self) -> str:
        """What the stage runs, as shown to users and recorded in the lock."""
        if self.cmd is not None:
            return self.cmd
        return f"call {self.call}"


@dataclass
class Pipeline:
    """The stages of ``conveyor.yaml`` in file order."""

    path: Path
    stages: dict[str, Stage]
    vars: dict[str, Any]

    def stage(self, name: str) -> Stage:
        try:
            return self.stages[name]
        except KeyError:
            raise SpecError(f"no stage named {name!r} in {PIPELINE_FILE}", hint=_suggest(name, self.stages)) from None

    def param_files(self) -> list[str]:
        return sorted({ref.file for stage in self.stages.values() for ref in stage.params})


def load_pipeline(workspace: Workspace, path: Path | None = None) -> Pipeline:
    """Load and validate ``conveyor.yaml`` (or ``path``) of ``workspace``."""
    path = path or workspace.root / PIPELINE_FILE
    if not path.is_file():
        raise MissingFileError(
            f"{_display(workspace.root, path)}: no pipeline here",
            hint=f"declare stages in {PIPELINE_FILE} (see 'conveyor run --help'), or import one: conveyor import-dvc",
        )
    from conveyor.pipeline._parsed import cached

    def build() -> tuple[Pipeline, list[str]]:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SpecError(f"{_display(workspace.root, path)}: not UTF-8 text", hint="save it as UTF-8") from None
        builder = _Builder(load_yaml(text, _display(workspace.root, path)), workspace.root, _read_params_file)
        return builder.build(), [str(path), *builder.inputs]

    return cached(workspace.conveyor_dir, "pipeline", build)


def parse_pipeline(
    text: str, *, root: Path, file: str = PIPELINE_FILE, read_params: Callable[[Path], Any] | None = None
) -> Pipeline:
    """Validate pipeline ``text`` (named ``file`` in errors) for a workspace at ``root``."""
    doc = load_yaml(text, file)
    return _Builder(doc, root, read_params or _read_params_file).build()


def _display(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _read_params_file(path: Path) -> Any:
    from conveyor.pipeline._params import read_params

    return read_params(path)


def _suggest(word: str, choices: Any) -> str:
    close = did_you_mean(word, choices)
    if close:
        return close
    names = ", ".join(repr(c) for c in list(choices)[:8])
    return f"choose one of {names}" if names else "declare it first"


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "true/false",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


class _Builder:
    def __init__(self, doc: Located, root: Path, read_params: Callable[[Path], Any]) -> None:
        self.doc = doc
        self.root = root
        self._read_params = read_params
        self.vars: dict[str, Any] = {}
        self.inputs: list[str] = []  # every file read or looked for: the result depends on them
        self._sources: dict[tuple[str, str], str | None] = {}

    def read_params(self, path: Path) -> Any:
        self.inputs.append(str(path))
        return self._read_params(path)

    # -- errors ---------------------------------------------------------------------------

    def error(self, path: YamlPath, what: str, hint: str, *, key: bool = False) -> SpecError:
        mark = self.doc.mark(path, key=key)
        dotted = ".".join(str(p) for p in path) or "top level"
        return SpecError(f"{mark}: {dotted}: {what}", hint=hint)

    def expect(self, value: Any, types: type | tuple[type, ...], path: YamlPath, what: str, example: str) -> None:
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            ok = False
        else:
            ok = isinstance(value, types)
        if not ok:
            raise self.error(path, f"expected {what}, got {_type_name(value)}", f"write it as {example}")

    def check_fields(self, mapping: dict[str, Any], allowed: tuple[str, ...], path: YamlPath) -> None:
        for name in mapping:
            if name not in allowed:
                raise self.error((*path, name), f"unknown field {name!r}", _suggest(name, allowed), key=True) from None

    # -- the document ---------------------------------------------------------------------

    def build(self) -> Pipeline:
        top = self.doc.value
        if top is None:
            top = {}
        self.expect(top, dict, (), "a mapping with 'stages'", "stages: {NAME: {cmd: ...}}")
        self.check_fields(top, _TOP_FIELDS, ())
        schema = top.get("schema", 1)
        if schema != 1:
            raise self.error(("schema",), f"unsupported schema {schema!r}", "this conveyor reads schema 1; upgrade it")
        self.vars = self.load_vars(top.get("vars"))
        stages_raw = top.get("stages") or {}
        self.expect(stages_raw, dict, ("stages",), "a mapping of stage names", "stages: {train: {cmd: ...}}")
        stages: dict[str, Stage] = {}
        for name, raw in stages_raw.items():
            path: YamlPath = ("stages", name)
            if not _NAME.match(name):
                raise self.error(
                    path,
                    f"bad stage name {name!r}",
                    "use letters, digits, '_', '-' and '.' ('@' is kept for foreach/matrix)",
                    key=True,
                )
            self.expect(raw, dict, path, "a mapping of stage fields", "{cmd: ..., deps: [...], outs: [...]}")
            self.check_fields(raw, _STAGE_FIELDS, path)
            for stage in self.expand(name, raw, path):
                if stage.name in stages:
                    raise self.error(path, f"stage {stage.name!r} is defined twice", "rename one of them", key=True)
                stages[stage.name] = stage
        return Pipeline(self.root / PIPELINE_FILE, stages, self.vars)

    def load_vars(self, raw: Any) -> dict[str, Any]:
        context: dict[str, Any] = {}
        default = self.root / DEFAULT_PARAMS
        self.inputs.append(str(default))
        if default.is_file():
            loaded = self.read_params(default)
            if isinstance(loaded, dict):
                context.update(loaded)
        if raw is None:
            return context
        self.expect(raw, list, ("vars",), "a list", "vars: [params.yaml, {name: value}]")
        for i, item in enumerate(raw):
            path: YamlPath = ("vars", i)
            if isinstance(item, dict):
                context.update(item)
            elif isinstance(item, str):
                file, _, sections = item.partition(":")
                target = (self.root / file).resolve()
                self.inputs.append(str(target))
                if not target.is_file():
                    raise self.error(path, f"vars file {file!r} does not exist", "create it or fix the path")
                data = self.read_params(target)
                if not isinstance(data, dict):
                    raise self.error(path, f"vars file {file!r} is not a mapping", "write key: value pairs in it")
                if sections:
                    for section in sections.split(","):
                        if section not in data:
                            raise self.error(path, f"no {section!r} in {file}", _suggest(section, data))
                        context[section] = data[section]
                else:
                    context.update(data)
            else:
                raise self.error(path, f"expected a file name or a mapping, got {_type_name(item)}", "- params.yaml")
        return context

    # -- expansion ------------------------------------------------------------------------

    def expand(self, name: str, raw: dict[str, Any], path: YamlPath) -> list[Stage]:
        if "foreach" in raw:
            extra = set(raw) - {"foreach", "do", "desc"}
            if extra:
                raise self.error(
                    (*path, sorted(extra)[0]),
                    "beside 'foreach', fields go under 'do'",
                    "move them into 'do:'",
                    key=True,
                )
            if "do" not in raw:
                raise self.error(
                    path, "'foreach' needs a 'do' with the stage to repeat", "add do: {cmd: ...}", key=True
                )
            body = raw["do"]
            self.expect(body, dict, (*path, "do"), "a mapping of stage fields", "do: {cmd: ...}")
            self.check_fields(
                body, tuple(f for f in _STAGE_FIELDS if f not in ("foreach", "do", "matrix")), (*path, "do")
            )
            items = raw["foreach"]
            if isinstance(items, str):
                items = self.template(items, self.vars, (*path, "foreach"))
            if isinstance(items, list):
                pairs = [(_key_for(item, i), item) for i, item in enumerate(items)]
            elif isinstance(items, dict):
                pairs = [(str(k), v) for k, v in items.items()]
            else:
                raise self.error(
                    (*path, "foreach"),
                    f"expected a list, a mapping or ${{var}}, got {_type_name(items)}",
                    "foreach: [a, b] or foreach: ${models}",
                )
            if not pairs:
                raise self.error((*path, "foreach"), "nothing to repeat over", "give it at least one item")
            stages = []
            for key, item in pairs:
                context = {**self.vars, "item": item, "key": key}
                stages.append(self.stage(f"{name}@{key}", body, (*path, "do"), context))
            return stages
        if "do" in raw:
            raise self.error(
                (*path, "do"), "'do' without 'foreach'", "add foreach: [...] or move the fields up", key=True
            )
        if "matrix" in raw:
            matrix = raw["matrix"]
            self.expect(matrix, dict, (*path, "matrix"), "a mapping of axis: [values]", "matrix: {model: [rf, lr]}")
            axes: list[tuple[str, list[tuple[str, Any]]]] = []
            for axis, values in matrix.items():
                if isinstance(values, str):
                    values = self.template(values, self.vars, (*path, "matrix", axis))
                if not isinstance(values, list) or not values:
                    raise self.error(
                        (*path, "matrix", axis), "expected a non-empty list of values", f"{axis}: [value1, value2]"
                    )
                axes.append((axis, [(_key_for(v, i), v) for i, v in enumerate(values)]))
            body = {k: v for k, v in raw.items() if k != "matrix"}
            stages = []
            for combo in itertools.product(*(values for _axis, values in axes)):
                item = {axis: value for (axis, _), (_k, value) in zip(axes, combo, strict=True)}
                key = "-".join(k for k, _v in combo)
                stages.append(self.stage(f"{name}@{key}", body, path, {**self.vars, "item": item}))
            return stages
        return [self.stage(name, raw, path, self.vars)]

    # -- templating -----------------------------------------------------------------------

    def template(self, value: Any, context: dict[str, Any], path: YamlPath, *, key: bool = False) -> Any:
        if isinstance(value, str):
            if "${" not in value:
                return value
            whole = _TEMPLATE.fullmatch(value)
            if whole and not key:
                return self.lookup(whole.group(1), context, path)

            def replace(match: re.Match[str]) -> str:
                found = self.lookup(match.group(1), context, path, key=key)
                if isinstance(found, dict | list):
                    raise self.error(
                        path,
                        f"${{{match.group(1)}}} is {_type_name(found)}, not a value",
                        "name a single value inside it",
                        key=key,
                    )
                if isinstance(found, bool):
                    return "true" if found else "false"
                return "" if found is None else str(found)

            return _TEMPLATE.sub(replace, value)
        if isinstance(value, dict):
            # keys too: an output with options is written `- ${dir}/model.pkl: {persist: true}`
            result: dict[Any, Any] = {}
            for name, item in value.items():
                new_name = self.template(name, context, (*path, name), key=True) if isinstance(name, str) else name
                if new_name in result:
                    raise self.error(
                        (*path, name), f"duplicate key {new_name!r} once templated", "make the keys differ", key=True
                    )
                result[new_name] = self.template(item, context, (*path, name))
            return result
        if isinstance(value, list):
            return [self.template(v, context, (*path, i)) for i, v in enumerate(value)]
        return value

    def lookup(self, name: str, context: dict[str, Any], path: YamlPath, *, key: bool = False) -> Any:
        if not _VAR_NAME.match(name):
            raise self.error(path, f"bad template ${{{name}}}", "write ${name} or ${section.key}", key=key)
        current: Any = context
        seen: list[str] = []
        for part in name.split("."):
            if isinstance(current, dict) and part in current:
                current = current[part]
            elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            else:
                where = ".".join(seen)
                choices = current if isinstance(current, dict) else {}
                scope = f" in {where!r}" if where else ""
                raise self.error(path, f"${{{name}}}: no {part!r}{scope}", _suggest(part, choices), key=key)
            seen.append(part)
        return current

    # -- one stage ------------------------------------------------------------------------

    def stage(self, name: str, raw: dict[str, Any], path: YamlPath, context: dict[str, Any]) -> Stage:
        body = self.template(raw, context, path)
        if "check" in body:
            body = self.check_stage(name, body, path)
        cmd = body.get("cmd")
        call = body.get("call")
        if cmd is None and call is None:
            raise self.error(
                path, "a stage needs a 'cmd' or a 'call'", "add cmd: <shell command> or call: module:function", key=True
            )
        if cmd is not None and call is not None:
            raise self.error((*path, "call"), "'cmd' and 'call' both given", "keep one of them", key=True)
        if cmd is not None:
            if isinstance(cmd, list) and cmd and all(isinstance(c, str) for c in cmd):
                cmd = " && ".join(cmd)
            if isinstance(cmd, int | float) and not isinstance(cmd, bool):
                cmd = str(cmd)
            self.expect(cmd, str, (*path, "cmd"), "a shell command", "cmd: python train.py")
            if not cmd.strip():
                raise self.error((*path, "cmd"), "empty command", "write the command to run")
        kwargs = body.get("kwargs") or {}
        if call is not None:
            self.expect(call, str, (*path, "call"), "'module:function'", "call: src.train:main")
            if not _CALL.match(call):
                raise self.error((*path, "call"), f"{call!r} is not 'module:function'", "call: src.train:main")
            self.expect(kwargs, dict, (*path, "kwargs"), "a mapping", "kwargs: {lr: 0.1}")
            self.check_json(kwargs, (*path, "kwargs"))
        elif "kwargs" in body:
            raise self.error((*path, "kwargs"), "'kwargs' only goes with 'call'", "remove it or use call:", key=True)

        wdir_raw = body.get("wdir", ".")
        self.expect(wdir_raw, str, (*path, "wdir"), "a folder", "wdir: src")
        wdir_abs = os.path.normpath(os.path.join(self.root, wdir_raw))
        if not self._inside(wdir_abs):
            raise self.error((*path, "wdir"), f"{wdir_raw!r} is outside the workspace", "use a folder inside it")
        wdir = os.path.relpath(wdir_abs, self.root).replace(os.sep, "/")

        places: dict[str, Mark] = {}
        deps = []
        for i, raw_dep in enumerate(self.strings(body, "deps", path)):
            dep = self.path(raw_dep, wdir_abs, (*path, "deps", i), allow_outside=True)
            deps.append(dep)
            places.setdefault(f"dep:{dep}", self.doc.mark((*path, "deps", i)))
        if call is not None:
            source = self.module_source(call, wdir_abs)
            if source is not None and source not in deps:
                deps.append(source)
        params = self.params(body.get("params"), wdir_abs, (*path, "params"))
        outs: list[Out] = []
        for section in ("outs", "metrics", "plots"):
            outs.extend(self.outs(body.get(section), section, wdir_abs, (*path, section), places))
        env = body.get("env") or {}
        self.expect(env, dict, (*path, "env"), "a mapping of names to values", "env: {SEED: '1'}")
        for key, value in env.items():
            if not _ENV_NAME.match(key):
                raise self.error(
                    (*path, "env", key),
                    f"{key!r} cannot be an environment variable name",
                    "use letters, digits and '_', not starting with a digit",
                    key=True,
                )
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise self.error((*path, "env", key), f"expected a string, got {_type_name(value)}", f"{key}: 'value'")
        retries = body.get("retries", 0)
        self.expect(retries, int, (*path, "retries"), "a whole number", "retries: 2")
        if retries < 0:
            raise self.error((*path, "retries"), "must not be negative", "retries: 0 for no retry")
        retry_delay = body.get("retry_delay", 1.0)
        self.expect(retry_delay, (int, float), (*path, "retry_delay"), "seconds", "retry_delay: 5")
        if not 0 <= retry_delay < float("inf"):
            raise self.error((*path, "retry_delay"), "must be zero or more seconds", "retry_delay: 5")
        timeout = body.get("timeout")
        if timeout is not None:
            self.expect(timeout, (int, float), (*path, "timeout"), "seconds", "timeout: 600")
            if not 0 < timeout < float("inf"):
                raise self.error((*path, "timeout"), "must be positive", "timeout: 600 (seconds), or remove it")
        cpus, memory, gpus = self.resources(body.get("resources"), (*path, "resources"))
        priority = body.get("priority", 0)
        self.expect(priority, int, (*path, "priority"), "a whole number", "priority: 10 (higher starts first)")
        process = body.get("process", "fresh")
        if process not in ("fresh", "shared"):
            raise self.error(
                (*path, "process"),
                f"{process!r} is not a process mode",
                "process: fresh (a new process per run, the default) or process: shared (call stages)",
            )
        if process == "shared" and call is None:
            raise self.error(
                (*path, "process"),
                "only a call: stage can share a process",
                "remove process: shared, or make the stage a call: stage",
            )
        for flag in ("always_run", "frozen"):
            if flag in body:
                self.expect(body[flag], bool, (*path, flag), "true or false", f"{flag}: true")
        desc = body.get("desc")
        if desc is not None:
            self.expect(desc, str, (*path, "desc"), "a string", "desc: what the stage does")
        return Stage(
            name=name,
            cmd=cmd,
            call=call,
            kwargs=dict(kwargs),
            deps=tuple(deps),
            params=tuple(params),
            outs=tuple(outs),
            env={k: str(v) for k, v in env.items()},
            wdir=wdir,
            retries=retries,
            retry_delay=float(retry_delay),
            timeout=None if timeout is None else float(timeout),
            cpus=cpus,
            memory=memory,
            gpus=gpus,
            priority=priority,
            shared=process == "shared",
            always_run=bool(body.get("always_run", False)),
            frozen=bool(body.get("frozen", False)),
            desc=desc,
            mark=self.doc.mark(path, key=True),
            places=places,
        )

    def resources(self, value: Any, path: YamlPath) -> tuple[float, int | None, int]:
        """``resources: {cpus: 2, memory: 8GB, gpus: 1}`` as (cpus, memory in bytes, gpus)."""
        if value is None:
            return 1.0, None, 0
        self.expect(value, dict, path, "a mapping", "resources: {cpus: 2, memory: 8GB, gpus: 1}")
        for key in value:
            if key not in ("cpus", "memory", "gpus"):
                raise self.error(
                    (*path, key), f"unknown resource '{key}'", "resources take cpus, memory, gpus", key=True
                )
        cpus = value.get("cpus", 1)
        self.expect(cpus, (int, float), (*path, "cpus"), "a number of CPUs", "cpus: 2")
        if not 0 < cpus < float("inf"):
            raise self.error((*path, "cpus"), "must be more than 0", "cpus: 1 (or 0.5 for a light stage)")
        gpus = value.get("gpus", 0)
        self.expect(gpus, int, (*path, "gpus"), "a whole number", "gpus: 1")
        if gpus < 0:
            raise self.error((*path, "gpus"), "must not be negative", "gpus: 1")
        memory = value.get("memory")
        size = None
        if memory is not None:
            size = _size(memory)
            if size is None:
                raise self.error((*path, "memory"), f"'{memory}' is not a size", "memory: 8GB (or 512MB, or bytes)")
        return float(cpus), size, gpus

    def check_json(self, value: Any, path: YamlPath) -> None:
        """``kwargs`` travel to the child process as JSON: only JSON values may be given."""
        if isinstance(value, dict):
            for key, item in value.items():
                self.check_json(item, (*path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.check_json(item, (*path, i))
        elif not (value is None or isinstance(value, str | int | float | bool)):
            raise self.error(
                path, f"{_type_name(value)} cannot be passed to a function", "quote it to pass it as a string"
            )

    def strings(self, body: dict[str, Any], name: str, path: YamlPath) -> list[str]:
        raw = body.get(name)
        if raw is None:
            return []
        if isinstance(raw, str):
            raw = [raw]
        self.expect(raw, list, (*path, name), "a list of paths", f"{name}: [path/one, path/two]")
        for i, item in enumerate(raw):
            self.expect(item, str, (*path, name, i), "a path", "- data/file.csv")
        return list(raw)

    def _inside(self, absolute: str) -> bool:
        root = str(self.root)
        return absolute == root or absolute.startswith(root.rstrip(os.sep) + os.sep)

    def path(self, raw: str, wdir_abs: str, path: YamlPath, *, allow_outside: bool = False) -> str:
        if not raw.strip():
            raise self.error(path, "empty path", "name a file or folder")
        absolute = os.path.normpath(os.path.join(wdir_abs, raw))
        if not self._inside(absolute):
            if allow_outside:
                return absolute
            raise self.error(path, f"{raw!r} is outside the workspace", "write outputs inside the workspace")
        root = str(self.root).rstrip(os.sep)
        rel = "." if absolute == root else absolute[len(root) + 1 :].replace(os.sep, "/")  # inside, normalised
        first = rel.split("/", 1)[0]
        if rel == "." or first in (".git", CONVEYOR_DIR):
            raise self.error(path, f"{raw!r} is conveyor's or git's own folder", "name a path of the project")
        return rel

    def params(self, raw: Any, wdir_abs: str, path: YamlPath) -> list[ParamRef]:
        if raw is None:
            return []
        self.expect(raw, list, path, "a list of keys", "params: [train.lr, {other.yaml: [key]}]")
        default_file = self.path(DEFAULT_PARAMS, wdir_abs, path)
        grouped: dict[str, list[str] | None] = {}
        for i, item in enumerate(raw):
            if isinstance(item, str):
                keys = grouped.setdefault(default_file, [])
                if keys is not None and item not in keys:
                    keys.append(item)
            elif isinstance(item, dict):
                for file, keys_raw in item.items():
                    rel = self.path(file, wdir_abs, (*path, i, file))
                    if keys_raw is None:
                        grouped[rel] = None
                        continue
                    if isinstance(keys_raw, str):
                        keys_raw = [keys_raw]
                    self.expect(keys_raw, list, (*path, i, file), "a list of keys", f"{file}: [key.one, key.two]")
                    keys = grouped.setdefault(rel, [])
                    for j, key in enumerate(keys_raw):
                        self.expect(key, str, (*path, i, file, j), "a key", "- train.lr")
                        if keys is not None and key not in keys:
                            keys.append(key)
            else:
                raise self.error(
                    (*path, i), f"expected a key or {{file: [keys]}}, got {_type_name(item)}", "- train.lr"
                )
        return [ParamRef(file, None if keys is None else tuple(keys)) for file, keys in grouped.items()]

    def outs(self, raw: Any, section: str, wdir_abs: str, path: YamlPath, places: dict[str, Mark]) -> list[Out]:
        if raw is None:
            return []
        if isinstance(raw, str):
            raw = [raw]
        self.expect(raw, list, path, "a list of paths", f"{section}: [path/one, {{path/two: {{cache: false}}}}]")
        kind = _KIND[section]
        allowed = _OUT_OPTIONS[section]
        result = []
        for i, item in enumerate(raw):
            options: dict[str, Any] = {}
            if isinstance(item, dict):
                if len(item) != 1:
                    raise self.error((*path, i), "one path per item", f"- path: {{{allowed[0]}: ...}}")
                ((item, options),) = item.items()
                options = options or {}
                self.expect(options, dict, (*path, i, item), "a mapping of options", "{cache: false}")
                self.check_fields(options, allowed, (*path, i, item))
            elif not isinstance(item, str):
                raise self.error((*path, i), f"expected a path, got {_type_name(item)}", "- model.pkl")
            for flag in ("cache", "persist"):
                if flag in options:
                    self.expect(options[flag], bool, (*path, i, item, flag), "true or false", f"{flag}: true")
            rel = self.path(item, wdir_abs, (*path, i))
            places.setdefault(f"out:{rel}", self.doc.mark((*path, i)))
            cache = options.get("cache", kind == "out")
            extra = {k: v for k, v in options.items() if k not in ("cache", "persist", "desc")}
            result.append(Out(rel, kind, bool(cache), bool(options.get("persist", False)), extra))
        return result

    def check_stage(self, name: str, body: dict[str, Any], path: YamlPath) -> dict[str, Any]:
        """A ``check:`` stage is a ``call`` of conveyor's check runner: its inputs become deps,
        its reports outputs, and a failing condition fails the stage (the gate)."""
        for other in ("cmd", "call", "kwargs"):
            if other in body:
                raise self.error(
                    (*path, other), f"'check' and '{other}' both given", "a check stage runs the check", key=True
                )
        spec = body["check"]
        where = (*path, "check")
        self.expect(spec, dict, where, "a mapping", "check: {suite: data_integrity, data: data/clean.csv, label: y}")
        self.check_fields(spec, _CHECK_FIELDS, where)
        if "suite" not in spec:
            raise self.error(where, "no 'suite'", "suite: data_integrity (or a mapping of checks)", key=True)
        self.check_json(spec, where)
        try:
            from conveyor.checks._suite import Suite
        except ImportError:
            raise self.error(
                where, "check stages need NumPy, pandas and SciPy", "pip install 'conveyor[checks]'", key=True
            ) from None
        from conveyor.errors import UsageError

        try:
            Suite.from_spec(spec["suite"], name=name, where="suite")
        except UsageError as exc:
            raise self.error((*where, "suite"), exc.message, exc.hint or "fix the suite") from None
        for key in ("data", "train", "test", "model", "champion", "schema", "label", "reports"):
            if key in spec:
                self.expect(spec[key], str, (*where, key), "a string", f"{key}: path")
        if not any(k in spec for k in ("data", "train", "test")):
            raise self.error(where, "no data to check", "add data: PATH, or train: and test:", key=True)
        for key in ("strict", "trust"):
            if key in spec:
                self.expect(spec[key], bool, (*where, key), "true or false", f"{key}: true")
        for key, example in (("categorical", "categorical: [city]"), ("numeric", "numeric: [rooms]")):
            self.expect(spec.get(key, []), list, (*where, key), "a list of column names", example)
        reports = spec.get("reports", "reports")
        deps = list(self.strings(body, "deps", path))
        for key in ("data", "train", "test", "model", "champion", "schema"):
            value = spec.get(key)
            if value is None or (key in ("model", "champion") and ":" in value and "/" not in value):
                continue  # module:function: an installed or importable callable, not a file
            if value not in deps:
                deps.append(value)
        stem = f"{reports}/{name}"
        outs = [*list(body.get("outs") or []), {f"{stem}.html": {"cache": False}}, {f"{stem}.md": {"cache": False}}]
        metrics = [*list(body.get("metrics") or []), {f"{stem}.json": {"cache": False}}]
        kwargs = {k: v for k, v in spec.items()}
        kwargs["stage"] = name
        kwargs["reports"] = reports
        rewritten = dict(body)
        del rewritten["check"]
        rewritten.update(call="conveyor.checks._stage:run", kwargs=kwargs, deps=deps, outs=outs, metrics=metrics)
        return rewritten

    def module_source(self, call: str, wdir_abs: str) -> str | None:
        module = call.split(":", 1)[0]
        known = self._sources.get((module, wdir_abs), self)  # many stages call the same module
        if known is not self:
            return known  # type: ignore[return-value]
        base = os.path.join(wdir_abs, *module.split("."))
        found = None  # an installed module: its version is part of the environment, not the workspace
        for candidate in (base + ".py", os.path.join(base, "__init__.py")):
            self.inputs.append(candidate)
            if os.path.isfile(candidate):
                found = os.path.relpath(candidate, self.root).replace(os.sep, "/")
                break
        self._sources[(module, wdir_abs)] = found
        return found


def _key_for(item: Any, index: int) -> str:
    if isinstance(item, str | int | float) and not isinstance(item, bool):
        text = str(item)
        if _NAME.match(text):
            return text
    return str(index)


_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_UNITS.update({"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4})


def _size(value: Any) -> int | None:
    """Bytes in ``8GB``, ``512MiB``, ``1.5 GB`` or a plain number; None when it is none of these."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value) if value >= 0 else None
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
    if match is None or match.group(2).lower() not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
