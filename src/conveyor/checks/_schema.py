"""A data schema: inferred from a reference data set, saved as YAML to review and commit, enforced.

Per column: its kind, whether it is required, whether it may be missing, the allowed
categories (when there are few) and the numeric range seen. Enforcing it reports each
violation with the column and the rows' share, so a schema change is a reviewed diff.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conveyor import _fs
from conveyor.checks._dataset import Dataset
from conveyor.checks._registry import CheckSkipped, Context, Measured, check, condition
from conveyor.errors import CorruptFileError, MissingFileError

SCHEMA_VERSION = 1
MAX_CATEGORIES = 50  # more distinct values than this: no list of allowed categories


@dataclass
class ColumnRule:
    kind: str
    required: bool = True
    nullable: bool = False
    categories: list[str] | None = None
    min: float | None = None
    max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "required": self.required, "nullable": self.nullable}
        if self.categories is not None:
            out["categories"] = self.categories
        if self.min is not None:
            out["min"] = self.min
            out["max"] = self.max
        return out


@dataclass
class Schema:
    """The rules of each column (:class:`ColumnRule`), and the label's name."""

    columns: dict[str, ColumnRule] = field(default_factory=dict)
    label: str | None = None

    def to_yaml(self) -> str:
        import yaml

        doc: dict[str, Any] = {"schema": SCHEMA_VERSION}
        if self.label is not None:
            doc["label"] = self.label
        doc["columns"] = {name: rule.to_dict() for name, rule in self.columns.items()}
        header = (
            "# Data schema inferred by 'conveyor schema'. Review it, edit the rules you want\n"
            "# (allowed categories, ranges, nullable), and commit it: 'schema' checks enforce it.\n"
        )
        return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)

    def write(self, path: str | os.PathLike[str]) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _fs.atomic_write_text(path, self.to_yaml())


def infer_schema(ds: Dataset) -> Schema:
    """The schema ``ds`` satisfies: every column required, its kind, categories and range as seen."""
    schema = Schema(label=ds.label)
    for name in [*ds.features, *([ds.label] if ds.label else [])]:
        column = ds.column(name)
        rule = ColumnRule(kind=column.kind, nullable=bool(column.missing.any()))
        if column.kind == "categorical":
            _codes, uniques = column.codes()
            if len(uniques) <= MAX_CATEGORIES:
                rule.categories = sorted(str(u) for u in uniques)
        elif column.kind == "numeric":
            finite = column.numbers[np.isfinite(column.numbers)]
            if len(finite):
                rule.min, rule.max = _plain_number(finite.min()), _plain_number(finite.max())
        schema.columns[name] = rule
    return schema


def _plain_number(value: Any) -> float | int:
    number = float(value)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def load_schema(path: str | os.PathLike[str]) -> Schema:
    """Read a schema file; every rule is validated, and a bad one is named with its column."""
    import yaml

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingFileError(
            f"{file}: no such schema file", hint="infer one with 'conveyor schema DATA -o FILE'"
        ) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CorruptFileError(f"{file}: not valid YAML: {exc}", hint="fix the file or infer it again") from None

    def bad(what: str) -> CorruptFileError:
        return CorruptFileError(f"{file}: {what}", hint="fix the file, or infer it again with 'conveyor schema'")

    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_VERSION:
        raise bad(f"not a conveyor data schema (expected 'schema: {SCHEMA_VERSION}' at the top)")
    columns = doc.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise bad("'columns' must map column names to rules")
    schema = Schema(label=doc.get("label"))
    for name, raw in columns.items():
        if not isinstance(raw, dict):
            raise bad(f"columns.{name}: expected a mapping of rules")
        unknown = set(raw) - {"kind", "required", "nullable", "categories", "min", "max"}
        if unknown:
            raise bad(f"columns.{name}: unknown rule '{sorted(unknown)[0]}'")
        kind = raw.get("kind", "numeric")
        if kind not in ("numeric", "categorical", "datetime", "text"):
            raise bad(f"columns.{name}.kind: '{kind}' is not numeric, categorical, datetime or text")
        categories = raw.get("categories")
        if categories is not None and not isinstance(categories, list):
            raise bad(f"columns.{name}.categories: expected a list")
        for bound in ("min", "max"):
            value = raw.get(bound)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise bad(f"columns.{name}.{bound}: expected a number, got {value!r}")
        schema.columns[str(name)] = ColumnRule(
            kind=kind,
            required=bool(raw.get("required", True)),
            nullable=bool(raw.get("nullable", False)),
            categories=None if categories is None else [str(c) for c in categories],
            min=raw.get("min"),
            max=raw.get("max"),
        )
    return schema


@check(
    "schema",
    "Schema",
    needs=("data", "schema"),
    conditions=(condition("no_violations", "violations", "max", fail=0, text="schema violations"),),
)
def schema_check(ctx: Context, params: dict[str, Any]) -> Measured:
    """Enforce the schema: required columns present, kinds as declared, no missing values where
    not nullable, only allowed categories, numbers within range. Extra columns are listed."""
    ds = ctx.reference()
    schema = ctx.schema
    if schema is None:
        raise CheckSkipped("no schema given (infer one with 'conveyor schema')")
    violations: list[dict[str, Any]] = []
    present = set(ds.frame.columns)
    for name, rule in schema.columns.items():
        if name not in present:
            if rule.required:
                violations.append({"column": name, "problem": "required column is missing"})
            continue
        column = ds.column(name)
        if column.kind != rule.kind and not (rule.kind == "numeric" and column.kind == "categorical"):
            # integers with few values read as categories still satisfy a numeric rule
            violations.append({"column": name, "problem": f"kind is {column.kind}, the schema says {rule.kind}"})
        missing = float(column.missing.mean()) if len(ds) else 0.0
        if missing and not rule.nullable:
            violations.append({"column": name, "problem": f"{missing:.2%} missing, the schema says not nullable"})
        if rule.categories is not None:
            codes, uniques = column.codes()
            allowed = set(rule.categories)
            unknown = [i for i, u in enumerate(uniques) if str(u) not in allowed]
            if unknown:
                share = float(np.isin(codes, unknown).mean())
                shown = ", ".join(repr(str(uniques[i])) for i in unknown[:5])
                violations.append({"column": name, "problem": f"categories not allowed: {shown} ({share:.2%} of rows)"})
        if rule.min is not None or rule.max is not None:
            values = column.numbers
            low = -math.inf if rule.min is None else rule.min
            high = math.inf if rule.max is None else rule.max
            with np.errstate(invalid="ignore"):
                out = (values < low) | (values > high)
            if out.any():
                violations.append(
                    {
                        "column": name,
                        "problem": f"{out.mean():.2%} of values outside [{low:g}, {high:g}] "
                        f"(seen {np.nanmin(values):g} to {np.nanmax(values):g})",
                    }
                )
    extra = sorted(present - set(schema.columns))
    summary = (
        f"{len(violations)} violation(s): " + "; ".join(f"{v['column']}: {v['problem']}" for v in violations[:3])
        if violations
        else "the data matches the schema"
    )
    if extra:
        summary += f" ({len(extra)} column(s) not in the schema: {', '.join(extra[:5])})"
    return Measured(
        summary,
        {"violations": len(violations), "extra_columns": len(extra)},
        {"violations": violations, "extra_columns": extra},
    )
