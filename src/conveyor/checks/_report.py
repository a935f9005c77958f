"""Reports of a suite run: JSON (stable schema, for machines), Markdown (for a pull-request
comment), and one self-contained HTML file (no script, no network: styles and charts inline)."""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any

from conveyor import _fs
from conveyor.checks import _svg
from conveyor.checks._result import CheckResult, SuiteResult

ICONS = {"pass": "✅", "warn": "⚠️", "fail": "❌", "error": "💥", "skipped": "⏭️"}
COLOURS = {"pass": "#2e7d32", "warn": "#b26a00", "fail": "#c62828", "error": "#6a1b9a", "skipped": "#757575"}


_MARKS = {"pass": "ok  ", "warn": "WARN", "fail": "FAIL", "error": "ERR ", "skipped": "skip"}


def summary_lines(result: SuiteResult, *, failed: bool, quiet: bool = False) -> list[str]:
    """What a terminal shows: one line per check (only problems when ``quiet``), then the verdict."""
    lines = [
        f"{_MARKS[r.status]}  {r.title}: {r.summary}"
        for r in result.results
        if not (quiet and r.status in ("pass", "skipped"))
    ]
    counts = ", ".join(f"{n} {s}" for s, n in result.counts().items() if n)
    lines.append(f"check {result.suite}: {'FAILED' if failed else 'passed'} ({counts}) in {result.seconds:.2f} s")
    return lines


def to_json(result: SuiteResult) -> str:
    return json.dumps(result.to_dict(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def to_markdown(result: SuiteResult) -> str:
    counts = result.counts()
    verdict = "passed" if result.passed else "FAILED"
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    lines = [f"### {ICONS[result.status]} conveyor check `{result.suite}`: {verdict} ({tally})", ""]
    if result.inputs:
        lines.append("Inputs: " + "; ".join(_describe_input(k, v) for k, v in result.inputs.items()))
        lines.append("")
    lines += ["| | check | result |", "|---|---|---|"]
    for r in result.results:
        lines.append(f"| {ICONS[r.status]} | {r.title} | {_md(r.summary)} |")
    failing = [r for r in result.results if r.status in ("fail", "warn", "error")]
    if failing:
        lines += ["", "<details><summary>Conditions</summary>", ""]
        for r in failing:
            for c in r.conditions:
                if c.status != "pass":
                    lines.append(
                        f"- {ICONS[c.status]} **{r.check}.{c.name}**: {_md(c.description)} (value {_value(c.value)})"
                    )
            if r.status == "error":
                lines.append(f"- {ICONS['error']} **{r.check}** could not run: {_md(r.reason or '')}")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _describe_input(key: str, value: Any) -> str:
    if isinstance(value, dict) and "rows" in value:
        return f"{key} `{value['name']}` ({value['rows']:,} rows × {value['columns']} columns)"
    return f"{key} `{value}`"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:980px;color:#222;line-height:1.4}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin:0}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:.3rem;color:#fff;font-size:.8rem;font-weight:600}
details{border:1px solid #ddd;border-radius:.4rem;margin:.5rem 0;padding:.5rem .8rem}
summary{cursor:pointer;display:flex;gap:.6rem;align-items:baseline}
summary .text{color:#444}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
.figure{margin:.6rem 0}.figure p{margin:.2rem 0;font-size:.85rem;color:#555}
.meta{color:#666;font-size:.85rem}
"""


def to_html(result: SuiteResult) -> str:
    verdict = "passed" if result.passed else "failed"
    counts = " · ".join(f"{n} {s}" for s, n in result.counts().items() if n)
    inputs = "".join(f"<li>{escape(_describe_input(k, v)).replace('`', '')}</li>" for k, v in result.inputs.items())
    sections = "".join(_html_check(r) for r in result.results)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>conveyor check {escape(result.suite)}: {verdict}</title><style>{_STYLE}</style></head><body>"
        f"<h1>conveyor check <code>{escape(result.suite)}</code> {_badge(result.status, verdict)}</h1>"
        f"<p class='meta'>{counts} · {result.seconds:.2f} s</p><ul class='meta'>{inputs}</ul>"
        f"{sections}</body></html>\n"
    )


def _badge(status: str, text: str | None = None) -> str:
    return f"<span class='badge' style='background:{COLOURS[status]}'>{escape(text or status)}</span>"


def _html_check(r: CheckResult) -> str:
    opened = " open" if r.status in ("fail", "error") else ""
    body = []
    if r.conditions:
        rows = "".join(
            f"<tr><td>{_badge(c.status)}</td><td>{escape(c.name)}</td><td>{escape(c.description)}</td><td>{escape(_value(c.value))}</td></tr>"
            for c in r.conditions
        )
        body.append(f"<table><tr><th></th><th>condition</th><th>rule</th><th>value</th></tr>{rows}</table>")
    if r.reason and r.status in ("error", "skipped"):
        body.append(f"<p>{escape(r.reason)}</p>")
    for figure in r.figures:
        svg = _svg.render(figure.kind, figure.data)
        if svg:
            body.append(f"<div class='figure'><p>{escape(figure.title)}</p>{svg}</div>")
    table = _details_table(r.details)
    if table:
        body.append(table)
    return (
        f"<details{opened}><summary>{_badge(r.status)}<h2>{escape(r.title)}</h2>"
        f"<span class='text'>{escape(r.summary)}</span></summary>{''.join(body)}</details>"
    )


def _details_table(details: dict[str, Any]) -> str:
    """The first per-item mapping of the details (per column, per feature) as a table."""
    for key, value in details.items():
        if isinstance(value, dict) and value and all(isinstance(v, (int, float, dict)) for v in value.values()):
            items = list(value.items())[:50]
            if isinstance(items[0][1], dict):
                columns = list(items[0][1])
                head = "".join(f"<th>{escape(c)}</th>" for c in columns)
                rows = "".join(
                    f"<tr><td>{escape(str(k))}</td>"
                    + "".join(f"<td>{escape(_value(v.get(c)))}</td>" for c in columns)
                    + "</tr>"
                    for k, v in items
                )
                return f"<table><tr><th>{escape(key)}</th>{head}</tr>{rows}</table>"
            rows = "".join(f"<tr><td>{escape(str(k))}</td><td>{escape(_value(v))}</td></tr>" for k, v in items)
            return f"<table><tr><th colspan='2'>{escape(key)}</th></tr>{rows}</table>"
    return ""


def write_reports(result: SuiteResult, folder: str | os.PathLike[str], *, stem: str | None = None) -> dict[str, Path]:
    """Write ``<stem>.json``, ``.md`` and ``.html`` into ``folder``; returns their paths by format."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    name = stem or result.suite
    paths = {"json": out / f"{name}.json", "md": out / f"{name}.md", "html": out / f"{name}.html"}
    _fs.atomic_write_text(paths["json"], to_json(result), sync="none")
    _fs.atomic_write_text(paths["md"], to_markdown(result), sync="none")
    _fs.atomic_write_text(paths["html"], to_html(result), sync="none")
    return paths
