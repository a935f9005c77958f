"""Experiment comparison commands: params diff, metrics show/diff, plots show/diff."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click


def register(cli: click.Group) -> None:
    for group in (params_group, metrics_group, plots_group):
        cli.add_command(group)


# -- rendering -----------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool, right: Sequence[int] = ()) -> str:
    """A plain table (columns two spaces apart) or a GitHub Markdown one; ``right``: right-aligned columns."""
    if markdown:

        def cell(text: str) -> str:
            return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

        rule = ["---:" if i in right else ":---" for i in range(len(headers))]
        lines = [headers, rule, *rows]
        return "\n".join(
            "| " + " | ".join(cell(c) if n != 1 else c for c in line) + " |" for n, line in enumerate(lines)
        )
    widths = [max(len(str(line[i])) for line in (headers, *rows)) for i in range(len(headers))]
    out = []
    for line in (headers, *rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _cell(value: Any, present: bool, precision: int | None) -> str:
    """A value in a diff table: "—" where it is absent, "null" where it is there but empty."""
    from conveyor.pipeline._metrics import format_value

    if not present:
        return "—"
    return "null" if value is None else format_value(value, precision)


def _signed(value: float | int | None, precision: int) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0"
    if isinstance(value, int):
        return f"{value:+d}"
    return f"{value:+.{precision}g}"


def _percent(value: float | None) -> str:
    if value is None:
        return "—"
    return "0%" if value == 0 else f"{value:+.3g}%"


def _json(data: Any) -> str:
    import json

    return json.dumps(data, indent=2, default=str)


def _warn(problems: Sequence[str]) -> None:
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)


_all_option = click.option("-a", "--all", "show_all", is_flag=True, help="Also list what did not change.")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
_md_option = click.option("--md", "markdown", is_flag=True, help="Print a Markdown table (for CI comments).")
_targets_option = click.option(
    "--targets",
    multiple=True,
    metavar="PATH",
    type=click.Path(readable=False),
    help="Compare these files instead of those in conveyor.yaml (repeatable).",
)
_precision_option = click.option(
    "--precision", type=click.IntRange(1, 17), default=5, show_default=True, help="Significant digits of numbers."
)


# -- params ----------------------------------------------------------------------------------------


@click.group("params")
def params_group() -> None:
    """Compare the parameters stages read (params.yaml and the files conveyor.yaml names)."""


@params_group.command("diff", short_help="Compare params between commits or with the workspace.")
@click.argument("a_rev", required=False)
@click.argument("b_rev", required=False)
@_targets_option
@_all_option
@_json_option
@_md_option
def params_diff_cmd(
    a_rev: str | None, b_rev: str | None, targets: tuple[str, ...], show_all: bool, as_json: bool, markdown: bool
) -> None:
    """Params changed from A_REV (HEAD) to B_REV (the workspace).

    One REV compares it with the workspace; two compare them with each other.
    """
    from conveyor.pipeline._params import diff_params

    result = diff_params(a_rev, b_rev, paths=targets or None, show_unchanged=show_all)
    _warn(result.problems)
    if as_json:
        rows = [{"path": r.path, "param": r.param, "old": r.old, "new": r.new, "status": r.status} for r in result.rows]
        click.echo(_json({"old": result.old, "new": result.new, "params": rows}))
        return
    if not result.rows:
        click.echo(f"No params changed between {result.old} and {result.new}.")
        return
    body = [
        [r.path, r.param, _cell(r.old, r.status != "added", None), _cell(r.new, r.status != "deleted", None)]
        for r in result.rows
    ]
    click.echo(_table(["Path", "Param", result.old, result.new], body, markdown=markdown))


# -- metrics ---------------------------------------------------------------------------------------


@click.group("metrics")
def metrics_group() -> None:
    """Show and compare metrics: JSON or YAML files of numbers that stages write."""


@metrics_group.command("show", short_help="Print the metrics of the workspace.")
@click.argument("paths", nargs=-1, type=click.Path(readable=False))
@_json_option
@_md_option
@_precision_option
def metrics_show_cmd(paths: tuple[str, ...], as_json: bool, markdown: bool, precision: int) -> None:
    """Print the metrics in PATHS, or in every metrics file conveyor.yaml declares."""
    from conveyor.pipeline._metrics import format_value, show_metrics

    result = show_metrics(paths or None)
    _warn(result.problems)
    if as_json:
        click.echo(_json(result.by_path()))
        return
    if not result.metrics:
        click.echo("No metrics.")
        return
    rows = [[m.path, m.key, format_value(m.value, precision)] for m in result.metrics]
    click.echo(_table(["Path", "Metric", "Value"], rows, markdown=markdown, right=(2,)))


@metrics_group.command("diff", short_help="Compare metrics between commits or with the workspace.")
@click.argument("a_rev", required=False)
@click.argument("b_rev", required=False)
@_targets_option
@_all_option
@_json_option
@_md_option
@_precision_option
def metrics_diff_cmd(
    a_rev: str | None,
    b_rev: str | None,
    targets: tuple[str, ...],
    show_all: bool,
    as_json: bool,
    markdown: bool,
    precision: int,
) -> None:
    """Metrics changed from A_REV (HEAD) to B_REV (the workspace), with the change and the change in %.

    One REV compares it with the workspace; two compare them with each other.
    """
    from conveyor.pipeline._metrics import diff_metrics

    result = diff_metrics(a_rev, b_rev, paths=targets or None, show_unchanged=show_all)
    _warn(result.problems)
    if as_json:
        rows = [
            {
                "path": r.path,
                "metric": r.key,
                "old": r.old,
                "new": r.new,
                "status": r.status,
                "change": r.change,
                "change_pct": r.change_pct,
            }
            for r in result.rows
        ]
        click.echo(_json({"old": result.old, "new": result.new, "metrics": rows}))
        return
    if not result.rows:
        click.echo(f"No metrics changed between {result.old} and {result.new}.")
        return
    body = [
        [
            r.path,
            r.key,
            _cell(r.old, r.status != "added", precision),
            _cell(r.new, r.status != "deleted", precision),
            _signed(r.change, precision),
            _percent(r.change_pct),
        ]
        for r in result.rows
    ]
    headers = ["Path", "Metric", result.old, result.new, "Change", "Change %"]
    click.echo(_table(headers, body, markdown=markdown, right=(2, 3, 4, 5)))


# -- plots -----------------------------------------------------------------------------------------


@click.group("plots")
def plots_group() -> None:
    """Draw data series and images into one offline HTML page, and compare them across commits."""


def _plot_options(func: Any) -> Any:
    options = [
        click.option(
            "-o",
            "--out",
            "out_dir",
            metavar="DIR",
            help="Folder for index.html and the charts.  [default: conveyor_plots]",
        ),
        click.option(
            "-x", "x", metavar="COLUMN", help="The column for the x axis (default: the first, or the row number)."
        ),
        click.option(
            "-y",
            "y",
            metavar="COLUMN",
            multiple=True,
            help="A column for the y axis (repeatable; default: the last numeric one).",
        ),
        click.option("--title", help="The chart title (default: the file's path)."),
        click.option("--x-label", help="The x axis label."),
        click.option("--y-label", help="The y axis label."),
        click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _report_out(report: Any, as_json: bool) -> None:
    from conveyor.cli._render import relative_to_cwd

    _warn(report.problems)
    if as_json:
        plots = [
            {
                "path": p.path,
                "kind": p.kind,
                "title": p.title,
                "revs": [v.rev for v in p.versions],
                "absent": p.absent,
                "png": None if p.png_file is None else str(p.png_file),
            }
            for p in report.plots
        ]
        click.echo(_json({"revs": report.revs, "index": str(report.index), "plots": plots}))
        return
    click.echo(relative_to_cwd(str(report.index)))


@plots_group.command("show", short_help="Draw plots into an offline HTML page.")
@click.argument("paths", nargs=-1, type=click.Path(readable=False))
@_plot_options
def plots_show_cmd(
    paths: tuple[str, ...],
    out_dir: str | None,
    x: str | None,
    y: tuple[str, ...],
    title: str | None,
    x_label: str | None,
    y_label: str | None,
    as_json: bool,
) -> None:
    """Draw PATHS (or every plots file conveyor.yaml declares) into DIR/index.html and print its path."""
    from conveyor.pipeline._plots import show_plots

    options = {"x": x, "y": list(y) or None, "title": title, "x_label": x_label, "y_label": y_label}
    _report_out(show_plots(paths or None, out_dir=out_dir, options=options), as_json)


@plots_group.command("diff", short_help="Overlay the plots of several commits and the workspace.")
@click.argument("revs", nargs=-1)
@_targets_option
@_plot_options
def plots_diff_cmd(
    revs: tuple[str, ...],
    targets: tuple[str, ...],
    out_dir: str | None,
    x: str | None,
    y: tuple[str, ...],
    title: str | None,
    x_label: str | None,
    y_label: str | None,
    as_json: bool,
) -> None:
    """Overlay each plot as it is in REVS: none given, HEAD and the workspace; one, REV and the
    workspace; more, exactly those. Prints the path of the HTML page."""
    from conveyor.pipeline._plots import diff_plots

    options = {"x": x, "y": list(y) or None, "title": title, "x_label": x_label, "y_label": y_label}
    _report_out(diff_plots(revs, paths=targets or None, out_dir=out_dir, options=options), as_json)
