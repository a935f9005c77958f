"""YAML that remembers where every value came from, so errors can name the line and column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from conveyor.errors import ConveyorError


class SpecError(ConveyorError):
    """A pipeline file is malformed; the message names the file, line, column and field."""

    exit_code = 2


class Mark(NamedTuple):  # a tuple: a pipeline of 5,000 stages makes 100,000 of them
    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


Path_ = tuple[str | int, ...]


@dataclass(slots=True)
class Located:
    """A document's plain value plus the mark of every node, keyed by its path from the root."""

    value: Any
    file: str
    marks: dict[Path_, Mark]  # where each value starts
    key_marks: dict[Path_, Mark]  # where each mapping key starts

    def mark(self, path: Path_, *, key: bool = False) -> Mark:
        """The closest known mark for ``path`` (falling back to its parents)."""
        table = self.key_marks if key else self.marks
        while True:
            if path in table:
                return table[path]
            if key and path in self.marks:
                return self.marks[path]
            if not path:
                return Mark(self.file, 1, 1)
            path = path[:-1]


def load(text: str, file: str) -> Located:
    """Parse one YAML document, keeping marks; duplicate keys are errors, as users expect."""
    import yaml  # here, not at import: a command that finds its pipeline already parsed never needs it

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
        try:
            node = loader.get_single_node()
            marks: dict[Path_, Mark] = {}
            key_marks: dict[Path_, Mark] = {}
            value = None if node is None else _build(loader, node, (), file, marks, key_marks)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and "end of stream" in (exc.problem or ""):
            mark = exc.context_mark  # an unclosed quote or bracket: point where it opened
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else file
        raise SpecError(
            f"{where}: not valid YAML: {exc.problem or exc.context}",
            hint="fix the syntax (indentation, quotes, a ':' after each key)",
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{file}: not valid YAML: {exc}", hint="fix the syntax") from None
    return Located(value, file, marks, key_marks)


def _mark(node: Any, file: str) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)


_STR = "tag:yaml.org,2002:str"


def _scalar(loader: Any, node: Any) -> Any:
    """What ``construct_object`` gives a scalar node, without its bookkeeping (most nodes are scalars)."""
    if node.tag == _STR:
        return node.value
    construct = loader.yaml_constructors.get(node.tag)
    return construct(loader, node) if construct is not None else loader.construct_object(node, deep=True)


def _build(
    loader: Any, node: Any, path: Path_, file: str, marks: dict[Path_, Mark], key_marks: dict[Path_, Mark]
) -> Any:
    import yaml

    start = node.start_mark
    marks[path] = Mark(file, start.line + 1, start.column + 1)
    if type(node) is yaml.ScalarNode:
        return _scalar(loader, node)
    if isinstance(node, yaml.MappingNode):
        explicit = {id(k) for k, _v in node.value if k.tag != "tag:yaml.org,2002:merge"}
        loader.flatten_mapping(node)  # resolves '<<' merge keys: merged pairs come first
        result: dict[Any, Any] = {}
        merged: set[str] = set()
        for key_node, value_node in node.value:
            key = _scalar(loader, key_node) if type(key_node) is yaml.ScalarNode else loader.construct_object(key_node)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise SpecError(f"{_mark(key_node, file)}: a key must be a plain value", hint="write key: value")
            key = str(key) if not isinstance(key, str) else key
            if id(key_node) not in explicit:
                merged.add(key)
            elif key in merged:
                merged.discard(key)  # an explicit key overrides a merged one, as YAML says
            elif key in result:
                raise SpecError(
                    f"{_mark(key_node, file)}: duplicate key {key!r}",
                    hint="keep one of them: YAML would silently drop the first",
                )
            key_marks[(*path, key)] = _mark(key_node, file)
            result[key] = _build(loader, value_node, (*path, key), file, marks, key_marks)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), file, marks, key_marks) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
