"""Small inline SVG charts for the HTML report: bars, paired histograms, a matrix, a line.

The report embeds summaries (shares per bin, per category), never rows, so a chart is a few
hundred bytes and a report of a million-row data set opens at once; no plotting library is
imported to draw them and no script or network is needed to show them.
"""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH = 560
BAR_HEIGHT = 16
BLUE = "#3b6fb6"
ORANGE = "#e07b39"


def render(kind: str, data: dict[str, Any]) -> str:
    if kind == "bars":
        return bars(data["labels"], data["values"])
    if kind == "histograms":
        return histograms(data["labels"], data["reference"], data["current"])
    if kind == "matrix":
        return matrix(data["labels"], data["counts"])
    if kind == "line":
        return line(data["x"], data["y"], diagonal=bool(data.get("diagonal")))
    return ""


def _svg(width: int, height: int, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="sans-serif" font-size="11">{body}</svg>'
    )


def _text(x: float, y: float, body: str, anchor: str = "start", fill: str = "#000") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}">{escape(body)}</text>'


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def bars(labels: list[str], values: list[float]) -> str:
    """Horizontal bars, one per label, scaled to the largest value."""
    if not values:
        return ""
    top = max(max(values), 1e-12)
    label_w, bar_w = 200, WIDTH - 260
    rows = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = i * (BAR_HEIGHT + 4) + 4
        w = max(1.0, bar_w * value / top) if value > 0 else 0.0
        rows.append(
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(_clip(str(label)))}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{BAR_HEIGHT}" fill="{BLUE}"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 12}">{_fmt(value)}</text>'
        )
    return _svg(WIDTH, len(values) * (BAR_HEIGHT + 4) + 8, "".join(rows))


def histograms(labels: list[str], reference: list[float], current: list[float]) -> str:
    """Two distributions over the same bins or categories, side by side per bin."""
    n = len(labels)
    if not n:
        return ""
    height, base, left = 170, 140, 36
    step = (WIDTH - left - 10) / n
    top = max(max(reference, default=0), max(current, default=0), 1e-12)
    parts = [f'<line x1="{left}" y1="{base}" x2="{WIDTH - 10}" y2="{base}" stroke="#999"/>']
    for i in range(n):
        x = left + i * step
        for j, (share, colour) in enumerate(((reference[i], BLUE), (current[i], ORANGE))):
            h = (base - 26) * share / top  # room for the legend above the tallest bar
            parts.append(
                f'<rect x="{x + j * step / 2 + 1:.1f}" y="{base - h:.1f}" width="{max(step / 2 - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(str(labels[i]))}: {_fmt(share)}</title></rect>'
            )
    every = max(1, n // 8)
    for i in range(0, n, every):
        parts.append(f'<text x="{left + i * step:.1f}" y="{base + 14}">{escape(_clip(str(labels[i]), 10))}</text>')
    for offset, colour, name in ((0, BLUE, "reference"), (90, ORANGE, "current")):
        parts.append(f'<rect x="{left + offset}" y="4" width="10" height="10" fill="{colour}"/>')
        parts.append(_text(left + offset + 14, 13, name))
    return _svg(WIDTH, height, "".join(parts))


def matrix(labels: list[str], counts: list[list[int]]) -> str:
    """A confusion matrix: cells shaded by their share of the row (the true class)."""
    k = len(labels)
    if not k or k > 30:
        return ""
    cell, left, top_margin = min(40, 480 // k), 110, 30
    parts = []
    for i in range(k):
        row_total = max(sum(counts[i]), 1)
        parts.append(_text(left - 6, top_margin + i * cell + cell / 2 + 4, _clip(labels[i], 16), "end"))
        for j in range(k):
            share = counts[i][j] / row_total
            x, y = left + j * cell, top_margin + i * cell
            opacity = 0.08 + 0.92 * share
            size = cell - 1
            parts.append(
                f'<rect x="{x}" y="{y}" width="{size}" height="{size}" fill="{BLUE}" fill-opacity="{opacity:.2f}"/>'
            )
            ink = "#fff" if share > 0.5 else "#000"
            parts.append(_text(x + cell / 2, y + cell / 2 + 4, str(counts[i][j]), "middle", ink))
    for j in range(k):
        parts.append(_text(left + j * cell + cell / 2, top_margin - 8, _clip(labels[j], 6), "middle"))
    return _svg(left + k * cell + 10, top_margin + k * cell + 10, "".join(parts))


def line(x: list[float], y: list[float], *, diagonal: bool = False) -> str:
    """Points joined by a line on [0, 1] × [0, 1] (a calibration curve), with the ideal diagonal."""
    size, pad = 220, 30
    scale = size - 2 * pad

    def px(v: float) -> float:
        return pad + v * scale

    def py(v: float) -> float:
        return size - pad - v * scale

    parts = [f'<rect x="{pad}" y="{pad}" width="{scale}" height="{scale}" fill="none" stroke="#999"/>']
    if diagonal:
        parts.append(f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#bbb" stroke-dasharray="4"/>')
    points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x, y, strict=True))
    parts.append(f'<polyline points="{points}" fill="none" stroke="{ORANGE}" stroke-width="2"/>')
    parts.append(f'<text x="{size / 2}" y="{size - 6}" text-anchor="middle">predicted</text>')
    parts.append(
        f'<text x="10" y="{size / 2}" transform="rotate(-90 10 {size / 2})" text-anchor="middle">observed</text>'
    )
    return _svg(size, size, "".join(parts))


def _clip(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
