"""The process a ``check:`` stage of ``conveyor.yaml`` runs: the suite, its reports, the gate.

Paths are relative to the stage's folder (the process runs there). The reports go to
``<reports>/<stage>.html``, ``.md`` and ``.json`` (the stage's declared outputs, the JSON as
its metrics); a failed gate exits 1, which fails the stage and stops the pipeline.
"""

from __future__ import annotations

import sys
from typing import Any

from conveyor.checks._report import summary_lines, write_reports
from conveyor.checks._suite import Suite, run_suite
from conveyor.errors import ConveyorError


def run(
    *,
    stage: str,
    suite: str | dict[str, Any],
    reports: str = "reports",
    data: str | None = None,
    train: str | None = None,
    test: str | None = None,
    model: str | None = None,
    champion: str | None = None,
    schema: str | None = None,
    label: str | None = None,
    categorical: list[str] | None = None,
    numeric: list[str] | None = None,
    strict: bool = False,
    seed: int = 0,
    trust: bool = False,
) -> None:
    import os

    # this process is a shell over the checks, as the CLI is: it may reach the registry and the store
    from conveyor.registry._checking import ModelInputs, record_result
    from conveyor.workspace import Workspace

    try:
        ws = Workspace.find()
        inputs = ModelInputs(ws, trust=trust)
        for role, spec in (("data", data), ("train", train), ("test", test), ("schema", schema)):
            inputs.data(role, spec)
        result = run_suite(
            Suite.from_spec(suite, name=stage),
            data=data,
            train=train,
            test=test,
            model=inputs.model(model, "model"),
            champion=inputs.model(champion, "champion"),
            schema=schema,
            label=label,
            categorical=categorical or (),
            numeric=numeric or (),
            seed=seed,
        )
        paths = write_reports(result, reports, stem=stage)
    except ConveyorError as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    failed = not result.passed or (strict and result.status == "warn")
    run_id = os.environ.get("CONVEYOR_RUN_ID")
    record_result(ws, result, inputs.files, passed=not failed, stage=stage, run_id=run_id)
    for line in summary_lines(result, failed=failed):
        print(line)
    print(f"report: {paths['html']}")
    if failed:
        sys.exit(1)
