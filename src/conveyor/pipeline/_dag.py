"""The stage graph: which stage produces what, which stages feed which, in what order."""

from __future__ import annotations

import bisect
import graphlib
import os
from dataclasses import dataclass

from conveyor.pipeline._spec import Pipeline, Stage
from conveyor.pipeline._yaml import SpecError
from conveyor.workspace import Workspace


@dataclass(slots=True)
class Dag:
    """Stages and the edges between them: ``upstream[s]`` are the stages whose outputs ``s`` reads."""

    pipeline: Pipeline
    upstream: dict[str, set[str]]
    downstream: dict[str, set[str]]
    order: list[str]  # topological, ties in file order
    producers: dict[str, str]  # output path -> stage

    @classmethod
    def build(cls, pipeline: Pipeline) -> Dag:
        stages = pipeline.stages
        producers: dict[str, str] = {}
        for stage in stages.values():
            for out in stage.outs:
                other = producers.get(out.path)
                if other is not None:
                    who = f"stage {other!r}" if other != stage.name else "it"
                    raise SpecError(
                        f"{_where(stage, 'out', out.path)}{out.path}: output of stage {stage.name!r} "
                        f"is also an output of {who}",
                        hint="an output has exactly one producer: rename one of them",
                    )
                producers[out.path] = stage.name
        paths = sorted(producers)
        for path in paths:
            parts = path.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent in producers:
                    raise SpecError(
                        f"{_where(stages[producers[path]], 'out', path)}{path}: output of stage {producers[path]!r} "
                        f"lies inside {parent}, the output of stage {producers[parent]!r}",
                        hint="outputs must not overlap: write them to separate folders",
                    )
        upstream: dict[str, set[str]] = {name: set() for name in stages}
        for stage in stages.values():
            # a params file another stage writes is an input too
            for dep in (*stage.deps, *(ref.file for ref in stage.params)):
                for producer in _producers_of(dep, producers, paths):
                    if producer == stage.name:
                        raise SpecError(
                            f"{_where(stage, 'dep', dep)}{dep}: stage {stage.name!r} lists it as a dependency "
                            "and writes it as an output",
                            hint="a stage cannot read its own output: remove it from deps (or use persist: true)",
                        )
                    upstream[stage.name].add(producer)
        downstream: dict[str, set[str]] = {name: set() for name in stages}
        for name, ups in upstream.items():
            for up in ups:
                downstream[up].add(name)
        order = _toposort(stages, upstream)
        return cls(pipeline, upstream, downstream, order, producers)

    def stage(self, name: str) -> Stage:
        return self.pipeline.stage(name)

    def ancestors(self, names: set[str]) -> set[str]:
        return self._closure(names, self.upstream)

    def descendants(self, names: set[str]) -> set[str]:
        return self._closure(names, self.downstream)

    @staticmethod
    def _closure(names: set[str], edges: dict[str, set[str]]) -> set[str]:
        seen = set(names)
        todo = list(names)
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def normalize_targets(self, ws: Workspace, targets: list[str] | None) -> list[str] | None:
        """Targets as stage names or workspace-relative output paths; a path is taken relative
        to where the command runs (``ws.base``), as every other path argument is."""
        if not targets:
            return targets
        normalized = []
        for target in targets:
            if target in self.pipeline.stages or any(n.split("@", 1)[0] == target for n in self.pipeline.stages):
                normalized.append(target)
                continue
            absolute = os.path.normpath(os.path.join(ws.base, target))
            rel = os.path.relpath(absolute, ws.root).replace(os.sep, "/")
            normalized.append(rel if rel in self.producers else target)
        return normalized

    def resolve_targets(self, targets: list[str]) -> set[str]:
        """Stage names for ``targets``: stage names, ``name@*`` groups, or output paths."""
        found: set[str] = set()
        for target in targets:
            if target in self.pipeline.stages:
                found.add(target)
                continue
            group = [n for n in self.pipeline.stages if n.split("@", 1)[0] == target]
            if group:
                found.update(group)
                continue
            path = target.rstrip("/")
            if path.startswith("./"):
                path = path[2:]
            if path in self.producers:
                found.add(self.producers[path])
                continue
            raise SpecError(
                f"{target}: no such stage or stage output", hint=_suggest_stage(target, list(self.pipeline.stages))
            )
        return found

    def select(self, targets: list[str] | None, *, single_stage: bool = False, downstream: bool = False) -> list[str]:
        """The stages a command works on, in topological order."""
        if not targets:
            chosen = set(self.pipeline.stages)
        else:
            chosen = self.resolve_targets(targets)
            if downstream:
                chosen = self.descendants(chosen)
            elif not single_stage:
                chosen = self.ancestors(chosen)
        return [name for name in self.order if name in chosen]


def _where(stage: Stage, kind: str | None = None, path: str | None = None) -> str:
    mark = stage.place(kind, path) if kind is not None and path is not None else stage.mark
    return f"{mark}: " if mark is not None else ""


def _suggest_stage(target: str, names: list[str]) -> str:
    from conveyor._suggest import did_you_mean

    return did_you_mean(target, names, cutoff=0.5) or "see the stages with 'conveyor dag'"


def _producers_of(dep: str, producers: dict[str, str], paths: list[str]) -> set[str]:
    """Stages whose outputs ``dep`` reads: the output itself, a folder holding it, or outputs inside it."""
    found: set[str] = set()
    if dep in producers:
        found.add(producers[dep])
    parts = dep.split("/")
    for i in range(1, len(parts)):
        parent = "/".join(parts[:i])
        if parent in producers:
            found.add(producers[parent])
    prefix = dep + "/"
    i = bisect.bisect_left(paths, prefix)
    while i < len(paths) and paths[i].startswith(prefix):
        found.add(producers[paths[i]])
        i += 1
    return found


def _toposort(stages: dict[str, Stage], upstream: dict[str, set[str]]) -> list[str]:
    position = {name: i for i, name in enumerate(stages)}
    sorter = graphlib.TopologicalSorter(upstream)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        chain = " -> ".join(cycle)
        raise SpecError(
            f"{_where(stages[cycle[0]])}the stages {chain} depend on each other in a cycle",
            hint="break the cycle: one of those stages must not read what a later one writes",
        ) from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order.extend(ready)
        sorter.done(*ready)
    return order
