"""Validation: ``conveyor check SUITE`` (the gate) and ``conveyor schema`` (infer a data schema)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from conveyor.workspace import Workspace


def register(cli: click.Group) -> None:
    cli.add_command(check_cmd)
    cli.add_command(schema_cmd)


@click.command("check")
@click.argument("suite")
@click.option("--data", type=click.Path(dir_okay=False), help="The data set (CSV or Parquet) for data checks.")
@click.option("--train", type=click.Path(dir_okay=False), help="The training (reference) set.")
@click.option("--test", type=click.Path(dir_okay=False), help="The test (current) set.")
@click.option(
    "--model", help="The model: NAME@ALIAS or NAME:VERSION of the registry, a model file, or module:function."
)
@click.option("--champion", help="The model to compare against (champion_challenger), given the same ways.")
@click.option("--trust", is_flag=True, help="Load pickle files that nothing vouches for (they run code when loaded).")
@click.option("--label", help="The label column.")
@click.option("--schema", type=click.Path(dir_okay=False), help="A data schema (YAML) to enforce.")
@click.option("--categorical", multiple=True, metavar="COLUMN", help="Treat COLUMN as categorical (repeatable).")
@click.option(
    "--numeric", multiple=True, metavar="COLUMN", help="Treat COLUMN as numbers, a label as regression (repeatable)."
)
@click.option(
    "--reports", "report_dir", type=click.Path(file_okay=False), help="Write JSON, Markdown and HTML reports here."
)
@click.option("--strict", is_flag=True, help="Warnings fail the gate too.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the resampling checks.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print only problems and the verdict.")
def check_cmd(
    suite: str,
    data: str | None,
    train: str | None,
    test: str | None,
    model: str | None,
    champion: str | None,
    trust: bool,
    label: str | None,
    schema: str | None,
    categorical: tuple[str, ...],
    numeric: tuple[str, ...],
    report_dir: str | None,
    strict: bool,
    seed: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run a check SUITE and gate on it: exit 1 when a condition fails or a check cannot run.

    SUITE is a built-in suite (data_integrity, train_test, model_evaluation,
    champion_challenger) or a YAML file declaring one.
    """
    from conveyor import checks
    from conveyor.checks._suite import suite_from_argument
    from conveyor.registry._checking import ModelInputs, record_result

    chosen = suite_from_argument(suite)
    ws = _workspace_or_none()
    inputs = ModelInputs(ws, trust=trust)
    for role, spec in (("data", data), ("train", train), ("test", test), ("schema", schema)):
        inputs.data(role, spec)
    loaded_model = inputs.model(model, "model")
    loaded_champion = inputs.model(champion, "champion")
    given = {k: v for k, v in (("data", data), ("train", train), ("test", test)) if v is not None}
    frames = inputs.datasets(given, label=label, categorical=categorical, numeric=numeric)
    result = checks.run_suite(
        chosen,
        data=frames.get("data"),
        train=frames.get("train"),
        test=frames.get("test"),
        model=loaded_model,
        champion=loaded_champion,
        label=label,
        schema=schema,
        categorical=categorical,
        numeric=numeric,
        seed=seed,
        reports=report_dir,
    )
    failed = not result.passed or (strict and result.status == "warn")
    record_result(ws, result, inputs.files, passed=not failed)  # as the gate decided, --strict included
    if as_json:
        click.echo(checks.to_json(result), nl=False)
    else:
        for line in checks.summary_lines(result, failed=failed, quiet=quiet):
            click.echo(line)
        if result.reports:
            click.echo(f"reports: {result.reports['html']} (also .md, .json)")
    if failed:
        from conveyor.errors import GateFailedError

        problems = [r.check for r in result.results if r.status in ("fail", "error") or (strict and r.status == "warn")]
        where = f"; report: {result.reports['html']}" if result.reports else ""
        raise GateFailedError(
            f"check {result.suite} failed: {', '.join(problems)}{where}",
            hint="fix the data or the model, or change the conditions if they are wrong",
        )


def _workspace_or_none() -> Workspace | None:
    """The workspace around the current folder, if any: checks also run outside one."""
    from conveyor.errors import WorkspaceError
    from conveyor.workspace import Workspace

    try:
        return Workspace.find()
    except WorkspaceError:
        return None


@click.command("schema")
@click.argument("data", type=click.Path(dir_okay=False))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), required=True, help="Where to write the schema (YAML)."
)
@click.option("--label", help="The label column.")
@click.option("--categorical", multiple=True, metavar="COLUMN", help="Treat COLUMN as categorical (repeatable).")
@click.option("--numeric", multiple=True, metavar="COLUMN", help="Treat COLUMN as numbers (repeatable).")
def schema_cmd(
    data: str, output: str, label: str | None, categorical: tuple[str, ...], numeric: tuple[str, ...]
) -> None:
    """Infer the schema DATA satisfies and write it to a YAML file to review and commit."""
    from conveyor import checks

    schema = checks.infer_schema(
        checks.Dataset(checks.read_table(data), label=label, categorical=categorical, numeric=numeric, name=data)
    )
    schema.write(output)
    click.echo(f"wrote {output}: {len(schema.columns)} columns; review it, then enforce it with --schema")
