"""CI integration: ``conveyor ci init`` (a workflow file) and ``conveyor report`` (the pull-request comment)."""

from __future__ import annotations

from pathlib import Path

import click


def register(cli: click.Group) -> None:
    cli.add_command(ci_group)
    cli.add_command(report_cmd)


@click.group("ci")
def ci_group() -> None:
    """Set up CI: a workflow that runs the pipeline on every push and pull request and comments on it."""


@ci_group.command("init", short_help="Write a CI workflow file (GitHub Actions or GitLab CI).")
@click.argument("provider", metavar="github|gitlab")
@click.option("-f", "--force", is_flag=True, help="Replace the workflow file if it exists.")
@click.option("--branch", default="main", show_default=True, help="The main branch: its pushes deliver.")
@click.option("--python", default="3.11", show_default=True, help="The Python version of the CI job.")
def ci_init_cmd(provider: str, force: bool, branch: str, python: str) -> None:
    """Write .github/workflows/conveyor.yml (github) or .gitlab-ci.yml (gitlab): on every pull
    request and push to the main branch, pull from the remote, run the pipeline (check stages are
    the gates) and post 'conveyor report --md' on the pull request; pushes to the main branch also
    deliver when conveyor.yaml has a deploy: section."""
    from conveyor.ci import init_workflow
    from conveyor.ci._workflows import NAMES
    from conveyor.cli._render import relative_to_cwd

    workflow = init_workflow(provider, force=force, branch=branch, python=python)
    shown = relative_to_cwd(str(workflow.path))
    click.echo(f"wrote {shown} ({NAMES[workflow.provider]})")
    for note in workflow.notes:
        click.echo(f"note: {note}")
    if workflow.secrets:
        where = (
            "Settings > Secrets and variables > Actions"
            if workflow.provider == "github"
            else "Settings > CI/CD > Variables"
        )
        click.echo(f"set these in {where} (see the comments in the file): {', '.join(workflow.secrets)}")
    click.echo(f"commit it: git add {shown} && git commit -m 'CI: conveyor'")


@click.command("report", short_help="Write a pull-request comment: diff vs main, gates, plots.")
@click.option("--md", "markdown", is_flag=True, help="Write Markdown (a pull-request comment).")
@click.option("--json", "as_json", is_flag=True, help="Write the report as JSON.")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
@click.option("--base", default="main", show_default=True, metavar="REV", help="Compare with this revision.")
@click.option("--run", "run_ref", metavar="RUN", help="Judge by this run (default: the latest of HEAD's commit).")
@click.option(
    "--plots-dir", metavar="DIR", help="Folder for the plot images (default: FILE's name + _plots, or report_plots)."
)
@click.option("--plots-url", metavar="URL", help="The URL the plots folder is published at: images link there.")
@click.option(
    "--artifact-url", metavar="URL", help="Link the plots to this page (a CI run's artifacts) instead of showing them."
)
def report_cmd(
    markdown: bool,
    as_json: bool,
    output: str | None,
    base: str,
    run_ref: str | None,
    plots_dir: str | None,
    plots_url: str | None,
    artifact_url: str | None,
) -> None:
    """Compare the workspace with --base (main): the gates' verdict (from the run of this commit),
    metrics and params that changed, each check stage's results, and the plots drawn as PNG files
    linked from the Markdown. Post it with 'gh pr comment --body-file FILE' (docs/ci.md)."""
    import json

    from conveyor import _fs
    from conveyor.ci import build_report
    from conveyor.cli._render import relative_to_cwd
    from conveyor.errors import UsageError

    if markdown == as_json:
        raise UsageError(
            "choose the report's format" if not markdown else "--md and --json both given",
            hint="pass --md (a pull-request comment) or --json",
        )
    target = Path(output).absolute() if output else None
    if plots_dir is not None:
        folder = Path(plots_dir).absolute()
    elif target is not None:
        folder = target.with_name(f"{target.stem}_plots")
    else:
        folder = Path("report_plots").absolute()
    report = build_report(base=base, run=run_ref, plots_dir=folder, plots_url=plots_url, artifact_url=artifact_url)
    here = target.parent if target is not None else Path.cwd()
    text = json.dumps(report.to_json(), indent=2) + "\n" if as_json else report.to_markdown(relative_to=here)
    if target is None:
        click.echo(text, nl=False)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    _fs.atomic_write_text(target, text, sync="none")
    mark = {"passed": "✓", "failed": "✗"}.get(report.verdict.status, "-")
    click.echo(f"{mark} {report.verdict.summary}")
    drawn = f"; plots in {relative_to_cwd(str(report.plots_dir))}" if report.plots and report.plots_dir else ""
    click.echo(f"wrote {relative_to_cwd(str(target))}{drawn}")
