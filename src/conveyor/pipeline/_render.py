"""``dag``: the stage graph drawn for a terminal, or as Mermaid or Graphviz DOT for documents."""

from __future__ import annotations

from conveyor.errors import UsageError
from conveyor.pipeline._dag import Dag
from conveyor.pipeline._spec import load_pipeline
from conveyor.workspace import Workspace

FORMATS = ("text", "mermaid", "dot")


def dag(targets: list[str] | None = None, *, fmt: str = "text", workspace: Workspace | None = None) -> str:
    """The graph of ``conveyor.yaml`` (all stages, or ``targets`` and their upstream) in ``fmt``."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint=f"choose one of {', '.join(FORMATS)}")
    ws = workspace or Workspace.find()
    graph = Dag.build(load_pipeline(ws))
    names = graph.select(graph.normalize_targets(ws, targets))
    edges = [(up, name) for name in names for up in sorted(graph.upstream[name], key=names.index)]
    if fmt == "mermaid":
        return render_mermaid(names, edges)
    if fmt == "dot":
        return render_dot(names, edges)
    return render_text(names, edges)


def render_mermaid(names: list[str], edges: list[tuple[str, str]]) -> str:
    ids = {name: f"s{i}" for i, name in enumerate(names)}
    lines = ["flowchart TD"]
    lines += [f'  {ids[n]}["{_escape(n)}"]' for n in names]
    lines += [f"  {ids[a]} --> {ids[b]}" for a, b in edges]
    return "\n".join(lines) + "\n"


def render_dot(names: list[str], edges: list[tuple[str, str]]) -> str:
    lines = ["digraph pipeline {", "  rankdir=TB;", "  node [shape=box];"]
    lines += [f'  "{_escape(n)}";' for n in names]
    lines += [f'  "{_escape(a)}" -> "{_escape(b)}";' for a, b in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _escape(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def render_text(names: list[str], edges: list[tuple[str, str]]) -> str:
    """Stages in layers (a stage sits one layer below its deepest upstream stage), boxed.

    A layer of one stage that feeds only the next layer's single stage is joined by an
    arrow; otherwise the edges leaving a layer are listed under it.
    """
    if not names:
        return "(no stages)\n"
    ups: dict[str, list[str]] = {n: [] for n in names}
    downs: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        ups[b].append(a)
        downs[a].append(b)
    depth: dict[str, int] = {}
    for name in names:  # topological order: every upstream stage has its depth already
        depth[name] = 1 + max((depth[u] for u in ups[name]), default=-1)
    layers: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for name in names:
        layers[depth[name]].append(name)
    out: list[str] = []
    for i, layer in enumerate(layers):
        boxes = [_box(name) for name in layer]
        for row in range(3):
            out.append("  ".join(box[row] for box in boxes).rstrip())
        if i + 1 == len(layers):
            break
        nxt = layers[i + 1]
        leaving = [(a, b) for a in layer for b in downs[a]]
        if len(layer) == 1 and len(nxt) == 1 and leaving == [(layer[0], nxt[0])]:
            centre = len(boxes[0][0]) // 2
            out.append(" " * centre + "│")
            out.append(" " * centre + "▼")
        else:
            for a in layer:
                if downs[a]:
                    out.append(f"  {a} ──▶ {', '.join(downs[a])}")
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _box(name: str) -> tuple[str, str, str]:
    width = len(name) + 2
    return ("┌" + "─" * width + "┐", "│ " + name + " │", "└" + "─" * width + "┘")
