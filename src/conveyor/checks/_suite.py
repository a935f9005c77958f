"""Suites: lists of checks with their conditions, built in or declared; and running one.

A suite runs every check it can with the inputs given. A check whose input is absent is
``skipped`` with the reason; one that raises is ``error`` with the reason; neither stops
the others. The suite passes when no condition failed and no check errored: that is the
gate a pipeline stage enforces.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from conveyor._suggest import did_you_mean
from conveyor.checks import _compare, _evaluation, _integrity, _schema, _traintest  # noqa: F401 - register checks
from conveyor.checks._dataset import Dataset, as_dataset
from conveyor.checks._model import Model, load_model
from conveyor.checks._registry import CHECKS, CheckSkipped, Context
from conveyor.checks._result import STATUS_ORDER, CheckResult, Condition, ConditionResult, Status, SuiteResult
from conveyor.errors import ConveyorError, UsageError

BUILTIN: dict[str, tuple[str, ...]] = {
    "data_integrity": (
        "schema",
        "missing_values",
        "duplicate_rows",
        "single_value",
        "mixed_types",
        "string_variants",
        "conflicting_labels",
        "outliers",
        "class_imbalance",
        "feature_label_leakage",
    ),
    "train_test": (
        "columns_match",
        "size_mismatch",
        "feature_drift",
        "label_drift",
        "train_test_overlap",
        "new_categories",
    ),
    "model_evaluation": ("performance", "baseline", "weak_segments", "prediction_drift", "inference_time"),
    "champion_challenger": ("champion_challenger",),
}

INPUT_HINTS = {
    "data": "a data set (--data)",
    "train": "a training set (--train)",
    "test": "a test set (--test)",
    "model": "a model (--model)",
    "champion": "a champion model (--champion)",
    "schema": "a schema (--schema; infer one with 'conveyor schema')",
}


@dataclass
class CheckSpec:
    id: str
    params: dict[str, Any] = field(default_factory=dict)
    conditions: tuple[Condition, ...] = ()


@dataclass
class Suite:
    """A named list of checks, each with its parameters and condition thresholds."""

    name: str
    checks: list[CheckSpec]

    @classmethod
    def builtin(cls, name: str) -> Suite:
        if name not in BUILTIN:
            raise UsageError(
                f"no built-in suite '{name}'{_did_you_mean(name, BUILTIN)}", hint=f"choose one of {', '.join(BUILTIN)}"
            )
        return cls(name, [_default_spec(c) for c in BUILTIN[name]])

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | str, *, name: str | None = None, where: str = "suite") -> Suite:
        """A suite from its declaration: a built-in's name, or a mapping with ``suite`` (a built-in
        to start from) and/or ``checks`` (ids, or ``{id: {params, conditions}}``), plus ``skip``
        and per-check ``conditions`` overrides."""
        if isinstance(spec, str):
            return cls.builtin(spec)
        if not isinstance(spec, Mapping):
            raise UsageError(f"{where}: expected a suite name or a mapping")
        unknown = set(spec) - {"suite", "checks", "skip", "conditions", "params", "name"}
        if unknown:
            raise UsageError(
                f"{where}: unknown key '{sorted(unknown)[0]}'", hint="use suite, checks, skip, conditions, params"
            )
        base = spec.get("suite")
        suite = cls.builtin(base) if base else cls(str(spec.get("name") or name or "custom"), [])
        if name or spec.get("name"):
            suite.name = str(spec.get("name") or name)
        for entry in spec.get("checks") or []:
            options: Mapping[str, Any]
            if isinstance(entry, str):
                check_id, options = entry, {}
            elif isinstance(entry, Mapping) and len(entry) == 1:
                check_id, options = next(iter(entry.items()))
                options = options or {}
            else:
                raise UsageError(f"{where}.checks: each entry is a check name or {{name: {{params, conditions}}}}")
            spec_ = _default_spec(_known_check(check_id, where))
            suite.checks = [c for c in suite.checks if c.id != check_id] + [spec_]
            suite.configure(check_id, params=options.get("params"), conditions=options.get("conditions"), where=where)
        for check_id in spec.get("skip") or []:
            _known_check(check_id, where)
            suite.checks = [c for c in suite.checks if c.id != check_id]
        for check_id, overrides in (spec.get("conditions") or {}).items():
            suite.configure(check_id, conditions=overrides, where=f"{where}.conditions")
        for check_id, params in (spec.get("params") or {}).items():
            suite.configure(check_id, params=params, where=f"{where}.params")
        if not suite.checks:
            raise UsageError(f"{where}: the suite has no checks", hint="name a built-in suite or list checks")
        return suite

    def configure(
        self,
        check_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        conditions: Mapping[str, Any] | None = None,
        where: str = "suite",
    ) -> Suite:
        """Change a check's parameters and condition thresholds (``{name: {warn: x, fail: y}}``;
        ``null`` turns a level off)."""
        _known_check(check_id, where)
        spec = next((c for c in self.checks if c.id == check_id), None)
        if spec is None:
            raise UsageError(f"{where}: check '{check_id}' is not in suite '{self.name}'", hint="add it under checks")
        definition = CHECKS[check_id]
        for key, value in (params or {}).items():
            if key not in definition.params:
                known = ", ".join(definition.params) or "none"
                raise UsageError(
                    f"{where}: check '{check_id}' has no parameter '{key}'", hint=f"its parameters: {known}"
                )
            spec.params[key] = value
        current = {c.name: c for c in spec.conditions}
        for name, levels in (conditions or {}).items():
            if name not in current:
                known = ", ".join(current) or "none"
                raise UsageError(
                    f"{where}: check '{check_id}' has no condition '{name}'", hint=f"its conditions: {known}"
                )
            if not isinstance(levels, Mapping) or set(levels) - {"warn", "fail"}:
                raise UsageError(f"{where}: condition '{check_id}.{name}' takes {{warn: NUMBER, fail: NUMBER}}")
            warn = levels.get("warn", current[name].warn)
            fail = levels.get("fail", current[name].fail)
            for level, value in (("warn", warn), ("fail", fail)):
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise UsageError(
                        f"{where}: condition '{check_id}.{name}' {level}: expected a number, got {value!r}"
                    )
            current[name] = current[name].with_thresholds(warn, fail)
        spec.conditions = tuple(current.values())
        return self


def _default_spec(check_id: str) -> CheckSpec:
    definition = CHECKS[check_id]
    return CheckSpec(check_id, dict(definition.params), tuple(definition.conditions))


def _known_check(check_id: Any, where: str) -> str:
    if not isinstance(check_id, str) or check_id not in CHECKS:
        raise UsageError(
            f"{where}: no check '{check_id}'{_did_you_mean(str(check_id), CHECKS)}",
            hint=f"checks: {', '.join(sorted(CHECKS))}",
        )
    return check_id


def _did_you_mean(name: str, choices: Sequence[str] | Mapping[str, Any]) -> str:
    close = did_you_mean(name, choices)
    return f" ({close})" if close else ""


DataInput = Dataset | Any | str | os.PathLike[str] | None


def run_suite(
    suite: Suite | str | Mapping[str, Any],
    *,
    data: DataInput = None,
    train: DataInput = None,
    test: DataInput = None,
    model: Any = None,
    champion: Any = None,
    schema: Any = None,
    label: str | None = None,
    categorical: Sequence[str] = (),
    numeric: Sequence[str] = (),
    seed: int = 0,
    reports: str | os.PathLike[str] | None = None,
) -> SuiteResult:
    """Run ``suite`` (a :class:`Suite`, a built-in's name, or a declaration) on the inputs given.

    Data inputs are DataFrames, :class:`Dataset` objects or paths to CSV/Parquet files;
    models are objects with ``predict`` (scikit-learn API), callables, model files, or
    ``module:function``; ``schema`` is a :class:`Schema` or a path to its YAML file.
    ``reports`` names a folder to write the JSON, Markdown and HTML reports into
    (``result.reports`` then holds their paths).
    """
    started = time.perf_counter()
    chosen = suite if isinstance(suite, Suite) else Suite.from_spec(suite)
    ctx = Context(seed=seed)
    inputs: dict[str, Any] = {}
    for key, value in (("data", data), ("train", train), ("test", test)):
        if value is not None:
            dataset = as_dataset(
                value,
                label=label,
                categorical=categorical,
                numeric=numeric,
                name=key if not isinstance(value, (str, os.PathLike)) else "data",
            )
            if isinstance(value, (str, os.PathLike)):
                dataset.name = os.fspath(value)
            setattr(ctx, key, dataset)
            inputs[key] = {
                "name": dataset.name,
                "rows": len(dataset),
                "columns": len(dataset.frame.columns),
                "label": dataset.label,
            }
    for key, value in (("model", model), ("champion", champion)):
        if value is not None:
            loaded: Model = load_model(value, name=key if not isinstance(value, (str, os.PathLike)) else None)
            setattr(ctx, key, loaded)
            inputs[key] = loaded.name
    if schema is not None:
        ctx.schema = schema if isinstance(schema, _schema.Schema) else _schema.load_schema(schema)
        inputs["schema"] = os.fspath(schema) if isinstance(schema, (str, os.PathLike)) else "given"
    results = [_run_one(spec, ctx) for spec in chosen.checks]
    result = SuiteResult(chosen.name, results, inputs, time.perf_counter() - started)
    if reports is not None:
        from conveyor.checks._report import write_reports

        result.reports = {k: str(v) for k, v in write_reports(result, reports).items()}
    return result


def _run_one(spec: CheckSpec, ctx: Context) -> CheckResult:
    definition = CHECKS[spec.id]
    started = time.perf_counter()
    missing = [n for n in definition.needs if not _available(ctx, n)]
    if missing:
        reason = "needs " + " and ".join(INPUT_HINTS[n] for n in missing)
        return CheckResult(spec.id, definition.title, "skipped", reason, reason=reason)
    try:
        measured = definition.run(ctx, dict(spec.params))
    except CheckSkipped as exc:
        return CheckResult(
            spec.id, definition.title, "skipped", str(exc), reason=str(exc), seconds=time.perf_counter() - started
        )
    except Exception as exc:  # a check must never take the suite down: report it and go on
        if isinstance(exc, ConveyorError):
            reason = exc.format_message()
        else:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        summary = f"could not run: {reason}"
        return CheckResult(
            spec.id, definition.title, "error", summary, reason=reason, seconds=time.perf_counter() - started
        )
    verdicts = []
    for cond in spec.conditions:
        value = measured.values.get(cond.measure)
        verdicts.append(
            ConditionResult(
                cond.name, cond.text(), cond.measure, value, cond.direction, cond.warn, cond.fail, cond.judge(value)
            )
        )
    status: Status = max((v.status for v in verdicts), key=STATUS_ORDER.__getitem__, default="pass")
    return CheckResult(
        spec.id,
        definition.title,
        status,
        measured.summary,
        measured.values,
        verdicts,
        measured.details,
        measured.figures,
        seconds=time.perf_counter() - started,
    )


def _available(ctx: Context, need: str) -> bool:
    if need == "data":
        return ctx.data is not None or ctx.train is not None
    return ctx.has(need)


def suite_names() -> list[str]:
    return list(BUILTIN)


def with_check(suite: Suite, check_id: str) -> Suite:
    return replace(suite, checks=[*suite.checks, _default_spec(_known_check(check_id, "suite"))])


def suite_from_argument(text: str) -> Suite:
    """A suite named on the command line: a built-in's name, or a YAML file declaring one."""
    from pathlib import Path

    if text in BUILTIN:
        return Suite.builtin(text)
    path = Path(text)
    if text.endswith((".yaml", ".yml")) or path.is_file():
        import yaml

        from conveyor.errors import CorruptFileError, MissingFileError

        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MissingFileError(f"{text}: no such suite file", hint="give a built-in suite or a YAML file") from None
        except yaml.YAMLError as exc:
            raise CorruptFileError(f"{text}: not valid YAML: {exc}", hint="fix the suite file") from None
        return Suite.from_spec(doc, name=path.stem, where=text)
    return Suite.builtin(text)
