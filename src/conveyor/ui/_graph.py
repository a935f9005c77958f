"""A pipeline's DAG laid out for drawing: stages in columns by depth, ordered to keep edges short.

A small layered layout (longest-path layering, then two sweeps ordering each column by the
mean position of its neighbours) is enough for the pipelines people draw; past
:data:`MAX_DRAWN` stages the dashboard lists them instead.
"""

from __future__ import annotations

from dataclasses import dataclass

NODE_W, NODE_H = 168, 34
GAP_X, GAP_Y = 64, 18
MARGIN = 12
MAX_DRAWN = 400


@dataclass(frozen=True)
class Node:
    name: str
    x: int
    y: int
    label: str  # the name, shortened to fit the box

    @property
    def cx(self) -> int:
        return self.x + NODE_W // 2


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str  # an SVG path from the source's right side to the target's left side


@dataclass(frozen=True)
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def layout(order: list[str], upstream: dict[str, set[str]]) -> Layout:
    """Positions for the stages in ``order`` (topological) with their ``upstream`` edges."""
    chosen = set(order)
    depth: dict[str, int] = {}
    for name in order:
        up_depths = [depth[u] for u in upstream.get(name, ()) if u in chosen and u in depth]
        depth[name] = 1 + max(up_depths) if up_depths else 0
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name in order:
        columns[depth[name]].append(name)
    downstream: dict[str, list[str]] = {name: [] for name in order}
    for name in order:
        for up in upstream.get(name, ()):
            if up in downstream:
                downstream[up].append(name)
    position = {name: i for column in columns for i, name in enumerate(column)}

    def sweep(cols: list[list[str]], neighbours: dict[str, list[str]]) -> None:
        for column in cols:

            def mean(name: str) -> float:
                near = [position[n] for n in neighbours.get(name, ()) if n in position]
                return sum(near) / len(near) if near else position[name]

            column.sort(key=lambda n: (mean(n), position[n]))
            position.update({name: i for i, name in enumerate(column)})

    ups = {name: [u for u in upstream.get(name, ()) if u in chosen] for name in order}
    sweep(columns[1:], ups)
    sweep(list(reversed(columns[:-1])), downstream)
    tallest = max((len(c) for c in columns), default=0)
    nodes: dict[str, Node] = {}
    for col, column in enumerate(columns):
        offset = (tallest - len(column)) * (NODE_H + GAP_Y) // 2  # centre short columns
        for row, name in enumerate(column):
            x = MARGIN + col * (NODE_W + GAP_X)
            y = MARGIN + offset + row * (NODE_H + GAP_Y)
            nodes[name] = Node(name, x, y, name if len(name) <= 22 else name[:20] + "…")
    edges = []
    lowest = max((n.y for n in nodes.values()), default=0) + NODE_H
    below = 0  # how far the arcs of edges that skip columns reach under the nodes
    for name in order:
        for up in sorted(ups[name]):
            a, b = nodes[up], nodes[name]
            if depth[name] - depth[up] > 1:
                # an edge that skips a column passes under the nodes between, not through them
                x1, y1, x2, y2 = a.cx, a.y + NODE_H, b.cx, b.y + NODE_H
                dip = max(y1, y2) + GAP_Y + 10 * (depth[name] - depth[up])
                below = max(below, dip - lowest)
                path = f"M{x1},{y1} C{x1},{dip} {x2},{dip} {x2},{y2}"
            else:
                x1, y1, x2, y2 = a.x + NODE_W, a.y + NODE_H // 2, b.x, b.y + NODE_H // 2
                bend = (x2 - x1) // 2
                path = f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"
            edges.append(Edge(up, name, path))
    width = MARGIN * 2 + max(len(columns), 1) * (NODE_W + GAP_X) - GAP_X
    height = MARGIN * 2 + max(tallest, 1) * (NODE_H + GAP_Y) - GAP_Y + max(0, below)
    return Layout([nodes[name] for name in order], edges, width, height)
