"""Small SVG charts, laid out here and drawn by the templates (which escape every label)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 12, 36


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    label: str  # the tooltip
    href: str | None = None
    width: float = 0.0  # bars only
    height: float = 0.0


@dataclass(frozen=True)
class Chart:
    kind: str  # "line" or "bar"
    marks: list[Mark]
    path: str = ""  # the line through the marks
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    bottom: int = HEIGHT - BOTTOM
    left: int = LEFT


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high == low:
        return [low]
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def line_chart(points: Sequence[tuple[float, float, str, str | None]]) -> Chart:
    """``points``: (unix time, value, tooltip, link), drawn in time order."""
    chosen = sorted((p for p in points if math.isfinite(p[1])), key=lambda p: p[0])
    if not chosen:
        return Chart("line", [])
    xs, ys = [p[0] for p in chosen], [p[1] for p in chosen]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y0 == y1:
        y0, y1 = y0 - 1, y1 + 1
    span_x = (x1 - x0) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / span_x * plot_w if x1 > x0 else LEFT + plot_w / 2

    def py(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * plot_h

    marks = [Mark(round(px(x), 1), round(py(y), 1), label, href) for x, y, label, href in chosen]
    path = "M" + " L".join(f"{m.x},{m.y}" for m in marks)
    y_ticks = [(round(py(v), 1), _fmt(v)) for v in _nice_ticks(y0, y1)]
    x_ticks = [(marks[0].x, _date(x0))] + ([(marks[-1].x, _date(x1))] if x1 > x0 else [])
    return Chart("line", marks, path, x_ticks, y_ticks)


def bar_chart(bars: list[tuple[str, float, str]]) -> Chart:
    """``bars``: (x label, value, tooltip), left to right."""
    if not bars:
        return Chart("bar", [])
    top = max((v for _l, v, _t in bars), default=0.0) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(bars)
    marks, x_ticks = [], []
    for i, (label, value, tip) in enumerate(bars):
        h = value / top * plot_h
        x = LEFT + i * slot + slot * 0.15
        marks.append(Mark(round(x, 1), round(TOP + plot_h - h, 1), tip, None, round(slot * 0.7, 1), round(h, 1)))
        if len(bars) <= 12 or i % math.ceil(len(bars) / 12) == 0:
            x_ticks.append((round(x + slot * 0.35, 1), label))
    y_ticks = [(round(TOP + plot_h - v / top * plot_h, 1), _fmt(v)) for v in _nice_ticks(0, top)]
    return Chart("bar", marks, "", x_ticks, y_ticks)


def _date(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(at))
