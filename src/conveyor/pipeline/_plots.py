"""Plots: data series (CSV, TSV, JSON, YAML) drawn as charts, and images, in one offline HTML page.

``show_plots`` draws the workspace's plots; ``diff_plots`` overlays each series as it is in
several versions (git revisions and the workspace), one chart per file, with a legend naming
the version, and puts the versions of an image side by side.

Charts are drawn with matplotlib (the optional ``plots`` extra), through a bare ``Figure``
and its Agg canvas: no pyplot, so no global figure registry to leak into and no GUI backend.
The page embeds every chart and image as a ``data:`` URI, so it needs no network, no
JavaScript and no files beside it; the charts are also written as PNG files next to it.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError, MissingFileError, UsageError
from conveyor.pipeline._metrics import (
    Version,
    _user_paths,
    _workspace,
    declared_files,
    declared_outs,
    format_value,
    is_number,
)

if TYPE_CHECKING:
    from conveyor.workspace import Workspace

DEFAULT_OUT_DIR = "conveyor_plots"
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
}
SERIES_TYPES = (".csv", ".tsv", ".json", ".yaml", ".yml")
TABLE_ROWS = 10  # rows of each series shown under its chart
_OPTION_NAMES = ("x", "y", "title", "x_label", "y_label")


class PlotsError(ConveyorError):
    """A plots file cannot be read as a data series, or charts cannot be drawn."""

    exit_code = 65  # EX_DATAERR


class MissingDependencyError(ConveyorError):
    """An optional dependency a command needs is not installed."""

    exit_code = 69  # EX_UNAVAILABLE


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Table:
    """One data series: records with named columns. ``name`` is "" unless a file holds several."""

    name: str
    columns: list[str]
    rows: list[dict[str, Any]]

    def numeric_columns(self) -> list[str]:
        numeric = []
        for column in self.columns:
            values = [row.get(column) for row in self.rows if row.get(column) is not None]
            if values and all(is_number(v) for v in values):
                numeric.append(column)
        return numeric


@dataclass(slots=True)
class PlotVersion:
    """A plots file as it is in one version: its series, or its image bytes."""

    rev: str
    tables: list[Table] = field(default_factory=list)
    image: bytes | None = None


@dataclass(slots=True)
class Plot:
    """One plots file, drawn from every version that has it."""

    path: str
    kind: str  # "series" or "image"
    title: str
    x: str | None = None  # None: the row number ("step")
    y: list[str] = field(default_factory=list)
    x_label: str = ""
    y_label: str = ""
    versions: list[PlotVersion] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)  # versions without the file
    png: bytes | None = None  # the chart, for a series
    png_file: Path | None = None


@dataclass(slots=True)
class PlotsReport:
    """What ``plots show``/``plots diff`` wrote: ``index`` is the HTML page."""

    revs: list[str]
    index: Path
    plots: list[Plot] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# -- the public API ---------------------------------------------------------------------------


def show_plots(
    paths: Iterable[str] | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    options: dict[str, Any] | None = None,
    workspace: Workspace | None = None,
) -> PlotsReport:
    """Draw the workspace's plots (``paths``, or every plots file in conveyor.yaml) into ``out_dir``.

    ``options`` (``x``, ``y``, ``title``, ``x_label``, ``y_label``) override those in conveyor.yaml.
    """
    ws = _workspace(workspace)
    return _report(ws, [Version(ws, None)], paths, out_dir, options, must_exist=True)


def diff_plots(
    revs: Sequence[str] = (),
    *,
    paths: Iterable[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    options: dict[str, Any] | None = None,
    workspace: Workspace | None = None,
) -> PlotsReport:
    """Overlay the plots of several versions: none given, HEAD and the workspace; one, REV and the
    workspace; more, exactly those revisions."""
    ws = _workspace(workspace)
    if not ws.has_scm:
        raise UsageError(
            "plots diff compares git revisions, and this workspace has no git", hint="use 'conveyor plots show'"
        )
    names: list[str | None] = list(revs) if len(revs) >= 2 else [revs[0] if revs else "HEAD", None]
    return _report(ws, [Version(ws, rev) for rev in names], paths, out_dir, options, must_exist=False)


# -- reading ------------------------------------------------------------------------------------


def parse_series(data: bytes, name: str) -> list[Table]:
    """The data series in a CSV, TSV, JSON or YAML file (``name`` gives the type and the messages).

    JSON and YAML hold a list of records, or a mapping whose values are lists of records
    (one series each, named by the key).
    """
    suffix = os.path.splitext(name)[1].lower()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PlotsError(f"{name}: not UTF-8 text", hint="plots files are CSV, TSV, JSON or YAML") from None
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        columns = list(reader.fieldnames or [])
        rows = [{k: _cell(v) for k, v in row.items() if k is not None} for row in reader]
        if not columns:
            raise PlotsError(f"{name}: no header row", hint="start the file with the column names")
        return [Table("", columns, rows)]
    from conveyor.pipeline._params import _parse_json, _parse_yaml, _SyntaxProblem

    try:
        value = _parse_json(text) if suffix == ".json" else _parse_yaml(text)
    except _SyntaxProblem as exc:
        raise PlotsError(f"{name}{exc.where}: {exc}", hint="fix the file") from None
    if _is_records(value):
        return [_table("", value)]
    if isinstance(value, dict):
        tables = [_table(str(key), records) for key, records in value.items() if _is_records(records)]
        if tables:
            return tables
    raise PlotsError(
        f"{name}: holds no data series",
        hint='write a list of records ([{"step": 1, "loss": 0.5}, ...]) or {name: [records]}',
    )


def _cell(text: str | None) -> Any:
    if text is None or text.strip() == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _is_records(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _table(name: str, records: list[dict[Any, Any]]) -> Table:
    columns: dict[str, None] = {}
    rows = []
    for record in records:
        row = {str(k): v for k, v in record.items()}
        columns.update(dict.fromkeys(row))
        rows.append(row)
    return Table(name, list(columns), rows)


# -- building the report ------------------------------------------------------------------------


def _report(
    ws: Workspace,
    versions: list[Version],
    paths: Iterable[str] | None,
    out_dir: str | os.PathLike[str] | None,
    options: dict[str, Any] | None,
    *,
    must_exist: bool,
) -> PlotsReport:
    path_list = list(paths) if paths is not None else []
    declared = dict(declared_outs(versions, "plot"))
    if path_list:
        files = [(path, declared.get(path, {})) for path in _user_paths(ws, path_list)]
    else:
        files = [(path, declared[path]) for path in declared_files(versions, "plot")]
    overrides = {k: v for k, v in (options or {}).items() if k in _OPTION_NAMES and v not in (None, (), [])}
    target = Path(out_dir if out_dir is not None else DEFAULT_OUT_DIR)
    target = target if target.is_absolute() else ws.base / target
    report = PlotsReport(revs=[v.name for v in versions], index=target / "index.html")
    contents = [version.read(path for path, _ in files) for version in versions]
    for path, declared_options in files:
        plot = _plot(path, {**declared_options, **overrides}, versions, contents, report.problems)
        if plot is None:
            continue
        if not plot.versions:
            if must_exist and path_list:
                raise MissingFileError(f"{path}: no such plots file", hint="check the path")
            report.problems.append(f"{path}: not found in {' or '.join(report.revs)}")
        report.plots.append(plot)
    for version in versions:
        report.problems.extend(version.problems)
    _write(report, target)
    return report


def _plot(
    path: str,
    options: dict[str, Any],
    versions: list[Version],
    contents: list[dict[str, bytes]],
    problems: list[str],
) -> Plot | None:
    suffix = os.path.splitext(path)[1].lower()
    title = str(options.get("title") or path)
    if suffix in IMAGE_TYPES:
        plot = Plot(path, "image", title)
        for version, found in zip(versions, contents, strict=True):
            if path in found:
                plot.versions.append(PlotVersion(version.name, image=found[path]))
            else:
                plot.absent.append(version.name)
        return plot
    if suffix not in SERIES_TYPES:
        problems.append(f"{path}: not a plots file conveyor can draw (CSV, TSV, JSON, YAML, or an image)")
        return None
    plot = Plot(path, "series", title)
    for version, found in zip(versions, contents, strict=True):
        if path not in found:
            plot.absent.append(version.name)
            continue
        try:
            tables = parse_series(found[path], version.label(path))
        except PlotsError as exc:
            if version.rev is None:
                raise
            problems.append(exc.message)
            plot.absent.append(version.name)
            continue
        plot.versions.append(PlotVersion(version.name, tables=tables))
    if plot.versions:
        _choose_axes(plot, options, problems)
    return plot


def _choose_axes(plot: Plot, options: dict[str, Any], problems: list[str]) -> None:
    """x and y from the options, else the first column (or the row number) and the last numeric column."""
    reference = plot.versions[-1].tables[0]  # the newest version's first series
    x = options.get("x")
    if x is None:
        plot.x = reference.columns[0] if len(reference.columns) >= 2 else None
    else:
        plot.x = str(x)
    y = options.get("y")
    if y is None:
        candidates = [c for c in reference.numeric_columns() if c != plot.x]
        plot.y = candidates[-1:]
        if not plot.y:
            problems.append(f"{plot.path}: no numeric column to plot; name one with 'y:'")
    elif isinstance(y, list | tuple):
        plot.y = [str(item) for item in y]
    else:
        plot.y = [str(y)]
    plot.x_label = str(options.get("x_label") or plot.x or "step")
    plot.y_label = str(options.get("y_label") or (plot.y[0] if len(plot.y) == 1 else "value"))
    for version in plot.versions:
        for table in version.tables:
            wanted = ([plot.x] if plot.x else []) + plot.y
            missing = [c for c in wanted if c not in table.columns]
            if missing:
                where = f"{plot.path} in {version.rev}" + (f" ({table.name})" if table.name else "")
                names = ", ".join(f"'{c}'" for c in missing)
                problems.append(f"{where}: no column {names} (columns: {', '.join(table.columns)})")


# -- drawing -----------------------------------------------------------------------------------


def _draw(plot: Plot) -> bytes | None:
    """The chart of a series plot as PNG bytes; None when there is nothing to draw."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError(
            "drawing plots needs matplotlib, which is not installed", hint="pip install 'conveyor[plots]'"
        ) from None
    several_versions = len(plot.versions) > 1
    lines = []
    for version in plot.versions:
        several_tables = len(version.tables) > 1
        for table in version.tables:
            if plot.x and plot.x not in table.columns:
                continue
            xs: list[Any] = [row.get(plot.x) for row in table.rows] if plot.x else list(range(len(table.rows)))
            for column in plot.y:
                if column not in table.columns:
                    continue
                ys = [_as_float(row.get(column)) for row in table.rows]
                parts = [
                    version.rev if several_versions else "",
                    table.name if several_tables else "",
                    column if len(plot.y) > 1 else "",
                ]
                label = " ".join(p for p in parts if p) or column
                lines.append((label, xs, ys))
    if not lines:
        return None
    figure = Figure(figsize=(7.0, 4.2), dpi=100, layout="constrained")
    try:
        axes = figure.add_subplot()
        categorical = any(isinstance(x, str) for _, xs, _ in lines for x in xs)
        for label, xs, ys in lines:
            xs_drawn = [("" if x is None else str(x)) for x in xs] if categorical else [_as_float(x) for x in xs]
            axes.plot(xs_drawn, ys, label=label, marker="o" if len(ys) <= 30 else None, markersize=3)
        if not categorical and all(isinstance(x, int) for _, xs, _ in lines for x in xs):
            from matplotlib.ticker import MaxNLocator

            axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps and epochs: no 1.5
        axes.set_title(plot.title)
        axes.set_xlabel(plot.x_label)
        axes.set_ylabel(plot.y_label)
        axes.grid(True, alpha=0.3)
        if len(lines) > 1:
            axes.legend()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
        return buffer.getvalue()
    finally:
        figure.clear()


def _as_float(value: Any) -> float:
    if is_number(value):
        return float(value)
    return float("nan")


# -- the page ------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
section { margin-bottom: 3em; }
h2 { margin-bottom: 0.2em; }
.path { color: #666; font-family: monospace; margin-top: 0; }
.note { color: #a60; }
.images { display: flex; flex-wrap: wrap; gap: 1.5em; }
figure { margin: 0; }
figcaption { text-align: center; font-family: monospace; }
img { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 1.5em 0.5em 0; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: right; }
caption { text-align: left; font-family: monospace; }
.tables { display: flex; flex-wrap: wrap; align-items: flex-start; }
"""


def _write(report: PlotsReport, target: Path) -> None:
    import base64
    from html import escape

    from conveyor import _fs

    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from conveyor.errors import storage_error

        raise storage_error(exc, target, "create the folder") from None
    heading = "Plots: " + (" vs ".join(report.revs) if len(report.revs) > 1 else report.revs[0])
    body = [f"<h1>{escape(heading)}</h1>"]
    if not report.plots:
        body.append('<p class="note">No plots.</p>')
    used_names: set[str] = set()
    for number, plot in enumerate(report.plots, 1):
        body.append(f'<section id="plot-{number}">')
        body.append(f"<h2>{escape(plot.title)}</h2>")
        body.append(f'<p class="path">{escape(plot.path)}</p>')
        if plot.absent and plot.versions:
            body.append(f'<p class="note">not in {escape(", ".join(plot.absent))}</p>')
        elif not plot.versions:
            body.append(f'<p class="note">not found in {escape(" or ".join(report.revs))}</p>')
        if plot.kind == "image":
            body.append('<div class="images">')
            mime = IMAGE_TYPES[os.path.splitext(plot.path)[1].lower()]
            for version in plot.versions:
                data = base64.b64encode(version.image or b"").decode()
                body.append(
                    f'<figure><img alt="{escape(plot.title)} ({escape(version.rev)})" '
                    f'src="data:{mime};base64,{data}"><figcaption>{escape(version.rev)}</figcaption></figure>'
                )
            body.append("</div>")
        elif plot.versions:
            plot.png = _draw(plot)
            if plot.png is not None:
                name = _file_name(plot.path, used_names)
                plot.png_file = target / name
                _fs.atomic_write_bytes(plot.png_file, plot.png)
                data = base64.b64encode(plot.png).decode()
                body.append(f'<img alt="{escape(plot.title)}" src="data:image/png;base64,{data}">')
            body.append('<div class="tables">')
            for version in plot.versions:
                for table in version.tables:
                    body.append(_html_table(table, version.rev if len(report.revs) > 1 else ""))
            body.append("</div>")
        body.append("</section>")
    if report.problems:
        body.append("<section><h2>Problems</h2><ul>")
        body.extend(f"<li>{escape(problem)}</li>" for problem in report.problems)
        body.append("</ul></section>")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(heading)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    _fs.atomic_write_text(report.index, page)


def _html_table(table: Table, rev: str) -> str:
    from html import escape

    caption = " ".join(p for p in (rev, table.name) if p)
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    rows = []
    for row in table.rows[:TABLE_ROWS]:
        rows.append("<tr>" + "".join(f"<td>{escape(format_value(row.get(c)))}</td>" for c in table.columns) + "</tr>")
    more = len(table.rows) - TABLE_ROWS
    if more > 0:
        rows.append(f'<tr><td colspan="{len(table.columns)}">… {more} more rows</td></tr>')
    caption_html = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{caption_html}<tr>{head}</tr>{''.join(rows)}</table>"


def _file_name(path: str, used: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path).strip("._") or "plot"
    name, n = f"{stem}.png", 1
    while name in used:
        n += 1
        name = f"{stem}-{n}.png"
    used.add(name)
    return name
