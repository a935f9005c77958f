"""Render docs/api.md from the public API's signatures and docstrings.

Run ``python docs/gen_api.py`` after changing the API; a test fails while api.md is stale.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path

import conveyor
import conveyor.errors
import conveyor.pipeline
import conveyor.remote
import conveyor.store
import conveyor.versioning

HEADER = """\
# Python API

Generated from the code by `docs/gen_api.py`; do not edit by hand.

Every CLI command is one call to a function below. Functions take an optional `workspace`
(a `conveyor.Workspace`); without it they find the workspace from the current directory.
Errors are `conveyor.ConveyorError` subclasses (see *Errors*), each with an `exit_code`,
a `message` and a `hint`.

```python
import conveyor

conveyor.init("project")                # a git repository's top folder
ws = conveyor.Workspace.find("project")
conveyor.add(["data/train.csv"], workspace=ws)
print(conveyor.status(workspace=ws).clean)
```
"""


def _doc(obj: object) -> str:
    return inspect.cleandoc(obj.__doc__ or "").strip()


def _level(value: float | None) -> str:
    return "—" if value is None else str(value)


def _functions(module: object, names: tuple[str, ...]) -> list[str]:
    """A heading with the signature, then the docstring, for each function."""
    parts = []
    for name in names:
        func = getattr(module, name)
        signature = str(inspect.signature(func)).replace("'", "")
        parts.append(f"### `{module.__name__}.{name}{signature}`\n\n{_doc(func)}\n")  # type: ignore[attr-defined]
    return parts


def render() -> str:
    parts = [HEADER, "## Functions\n"]
    parts += _functions(conveyor, ("init", "add", "status", "checkout", "unprotect", "diff", "gc", "verify"))
    parts.append("## Pipelines\n")
    parts += _functions(
        conveyor,
        (
            "run",
            "pipeline_status",
            "dag",
            "verify_reproducible",
            "diff_params",
            "show_metrics",
            "diff_metrics",
            "show_plots",
            "diff_plots",
            "import_dvc",
        ),
    )
    parts.append("## Remotes\n")
    parts += _functions(
        conveyor,
        (
            "remote_add",
            "remote_list",
            "remote_modify",
            "remote_remove",
            "push",
            "fetch",
            "pull",
            "remote_status",
            "remote_gc",
        ),
    )
    parts.append("## Checks (`conveyor.checks`)\n")
    import conveyor.checks as checks

    parts.append(f"{_doc(checks)}\n")
    parts += _functions(
        checks, ("run_suite", "infer_schema", "load_schema", "load_model", "read_table", "write_reports")
    )
    for name in ("Suite", "SuiteResult", "CheckResult", "Dataset", "Schema"):
        obj = getattr(checks, name)
        parts.append(f"### `conveyor.checks.{name}`\n\n{_doc(obj)}\n")
        methods = [m for m in ("builtin", "from_spec", "configure", "get", "failures", "to_dict") if hasattr(obj, m)]
        for meth in methods:
            func = getattr(obj, meth)
            signature = str(inspect.signature(func)).replace("'", "")
            first = _doc(func).splitlines()[0] if _doc(func) else ""
            parts.append(f"- `{name}.{meth}{signature}`: {first}")
        parts.append("")
    parts.append("Checks, by id (each with its default conditions; see docs/checks.md):\n")
    parts.append("| check | needs | conditions (warn / fail) |\n|---|---|---|")
    for check_id, definition in checks.CHECKS.items():
        conditions = "; ".join(
            f"`{c.name}` {c.direction} {_level(c.warn)} / {_level(c.fail)}" for c in definition.conditions
        )
        parts.append(f"| `{check_id}` | {', '.join(definition.needs)} | {conditions} |")
    parts.append("")
    parts.append("## Results\n")
    for module in (conveyor.versioning, conveyor.pipeline, conveyor.remote, conveyor.store):
        for name in sorted(module.__all__):
            obj = getattr(module, name)
            if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
                continue
            fields = ", ".join(f"`{f.name}`" for f in dataclasses.fields(obj))
            doc = _doc(obj)
            doc = "" if doc.startswith(f"{name}(") else f"{doc.splitlines()[0] if doc else ''} "
            parts.append(f"- **`{module.__name__}.{name}`**: {doc}Fields: {fields}.")
    parts.append("\n## Run records\n")
    store = conveyor.store.RunStore
    parts.append(f"### `conveyor.store.RunStore`\n\n{_doc(store)}\n")
    for meth in ("open", "start_run", "record_stage", "finish_run", "list_runs", "get_run", "count_runs"):
        func = getattr(store, meth)
        signature = str(inspect.signature(func)).replace("'", "")
        parts.append(f"- `RunStore.{meth}{signature}`: {_doc(func).splitlines()[0] if _doc(func) else ''}")
    parts.append("\n## Model registry (`conveyor.registry`)\n")
    import conveyor.registry as registry

    parts.append(f"{_doc(registry)}\n")
    reg = registry.Registry
    parts.append(f"### `conveyor.registry.Registry`\n\n{_doc(reg)}\n")
    methods = ("open", "register", "models", "model", "aliases", "versions", "get", "promote", "rollback")
    methods += (
        "remove_alias",
        "abort",
        "history",
        "alias_at",
        "set_tag",
        "describe",
        "checks_of",
        "judge",
        "artifact_path",
        "load",
        "environment_of",
        "record_bundle",
        "bundles",
        "find_bundle",
    )
    for meth in methods:
        func = getattr(reg, meth)
        signature = str(inspect.signature(func)).replace("'", "")
        parts.append(f"- `Registry.{meth}{signature}`: {_doc(func).splitlines()[0] if _doc(func) else ''}")
    parts.append("")
    for name in ("ModelVersion", "ModelInfo", "AliasMove", "CheckRecord", "Lineage", "Signature", "BundleRecord"):
        obj = getattr(registry, name)
        fields = ", ".join(f"`{f.name}`" for f in dataclasses.fields(obj))
        parts.append(f"- **`conveyor.registry.{name}`**: {_doc(obj).splitlines()[0]} Fields: {fields}.")
    parts.append("\n## Serving and delivery (`conveyor.serving`, `conveyor.delivery`)\n")
    import conveyor.delivery as delivery
    import conveyor.serving as serving

    parts.append(f"{_doc(serving)}\n")
    parts += _functions(serving, ("serve",))
    parts.append(f"{_doc(delivery)}\n")
    parts += _functions(
        delivery,
        ("deliver", "watch", "monitor", "deploy_status", "deploy_promote", "deploy_rollback", "delivery_stats"),
    )
    for name in (
        "DeliveryReport",
        "Step",
        "MonitorReport",
        "DeployConfig",
        "MonitorConfig",
        "BundleConfig",
        "DeliveryStats",
        "ModelStats",
        "Figures",
        "Bucket",
        "Release",
    ):
        obj = getattr(delivery, name)
        fields = ", ".join(f"`{f.name}`" for f in dataclasses.fields(obj))
        first = _doc(obj).splitlines()[0] if _doc(obj) and not _doc(obj).startswith(f"{name}(") else ""
        parts.append(f"- **`conveyor.delivery.{name}`**: {first} Fields: {fields}.")
    from conveyor.serving._rollout import RolloutSettings, Slo

    for obj in (RolloutSettings, Slo):
        fields = ", ".join(f"`{f.name}`" for f in dataclasses.fields(obj))
        parts.append(f"- **`{obj.__name__}`** (`deploy: rollout:`): {_doc(obj).splitlines()[0]} Fields: {fields}.")
    parts.append("\n## Bundles (`conveyor.build`)\n")
    import conveyor.build as build

    parts.append(f"{_doc(build)}\n")
    parts += _functions(build, ("build_bundle", "serve_bundle"))
    fields = ", ".join(f"`{f.name}`" for f in dataclasses.fields(build.Bundle))
    parts.append(f"- **`conveyor.build.Bundle`**: {_doc(build.Bundle).splitlines()[0]} Fields: {fields}.")
    parts.append("\n## The dashboard (`conveyor.ui`)\n")
    import conveyor.ui as ui

    parts.append(f"{_doc(ui)}\n")
    parts += _functions(ui, ("serve_ui",))
    parts.append("\n## CI integration (`conveyor.ci`)\n")
    import conveyor.ci as ci

    parts += _functions(ci, ("init_workflow", "build_report", "report_markdown"))
    for name in ("Workflow", "Report", "Verdict", "Gate", "PlotImage"):
        obj = getattr(ci, name)
        fields = ", ".join(f"`{f.name}`" for f in dataclasses.fields(obj))
        first = _doc(obj).splitlines()[0] if _doc(obj) and not _doc(obj).startswith(f"{name}(") else ""
        parts.append(f"- **`conveyor.ci.{name}`**: {first} Fields: {fields}.")
    parts.append("\n## Workspace\n")
    ws = conveyor.Workspace
    parts.append(f"### `conveyor.Workspace`\n\n{_doc(ws)}\n")
    for meth in ("find", "init", "lock", "resolve_target"):
        func = getattr(ws, meth)
        signature = str(inspect.signature(func)).replace("'", "")
        parts.append(f"- `Workspace.{meth}{signature}`: {_doc(func).splitlines()[0]}")
    parts.append("\n## Errors\n")
    parts.append("| exception | exit code | meaning |\n|---|---|---|")
    from conveyor.pipeline._runner import StageFailedError
    from conveyor.pipeline._yaml import SpecError

    errors = [(name, obj) for name, obj in vars(conveyor.errors).items() if isinstance(obj, type)]
    errors += [("pipeline.SpecError", SpecError), ("pipeline.StageFailedError", StageFailedError)]
    errors += [
        ("delivery.DeliveryStopped", delivery.DeliveryStopped),
        ("delivery.DriftAlarm", delivery.DriftAlarm),
        ("delivery.ServerError", delivery.ServerError),
    ]
    for name, obj in errors:
        if issubclass(obj, conveyor.errors.ConveyorError):
            parts.append(f"| `{name}` | {obj.exit_code} | {_doc(obj).splitlines()[0]} |")
    return "\n".join(parts) + "\n"


def main() -> int:
    target = Path(__file__).with_name("api.md")
    text = render()
    if "--check" in sys.argv:
        return 0 if target.exists() and target.read_text() == text else 1
    target.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
