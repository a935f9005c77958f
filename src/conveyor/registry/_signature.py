"""A model's input/output signature: column names and types, inferred from the training data.

Types are MLflow's names (``double``, ``long``, ``boolean``, ``string``, ``datetime``), so a
signature reads the same to users of either. :meth:`Signature.validate` names the first
column that does not fit, for the registry, the model server and the checks alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.errors import DataError, UsageError

if TYPE_CHECKING:
    import pandas as pd

TYPES = ("double", "long", "boolean", "string", "datetime")


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str  # one of TYPES
    classes: tuple[Any, ...] | None = None  # outputs of a classifier: the labels it can predict

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.classes is not None:
            data["classes"] = list(self.classes)
        return data


@dataclass(frozen=True)
class Signature:
    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[ColumnSpec, ...] = field(default_factory=tuple)

    @classmethod
    def infer(cls, frame: pd.DataFrame, *, label: str | None = None, max_classes: int = 100) -> Signature:
        """The signature of a model trained on ``frame`` to predict ``label`` (if given)."""
        if label is not None and label not in frame.columns:
            raise DataError(
                f"label column '{label}' is not in the data",
                hint=f"columns are {', '.join(map(str, frame.columns[:10]))}",
            )
        inputs = tuple(ColumnSpec(str(c), _type_of(frame[c])) for c in frame.columns if c != label)
        outputs: tuple[ColumnSpec, ...] = ()
        if label is not None:
            kind = _type_of(frame[label])
            values = frame[label].dropna().unique()
            classes = None
            if kind in ("long", "string", "boolean") and len(values) <= max_classes:
                classes = tuple(sorted((_plain(v) for v in values), key=lambda v: (str(type(v)), v)))
            outputs = (ColumnSpec(str(label), kind, classes),)
        return cls(inputs, outputs)

    @classmethod
    def from_file(cls, path: str, *, label: str | None = None) -> Signature:
        """Infer from a CSV or Parquet file (needs the ``checks`` extra: pandas)."""
        try:
            from conveyor.checks import read_table
        except ImportError:
            raise UsageError("inferring a signature needs pandas", hint="pip install 'conveyor[checks]'") from None
        return cls.infer(read_table(path), label=label)

    def to_json(self) -> dict[str, Any]:
        return {"inputs": [c.to_json() for c in self.inputs], "outputs": [c.to_json() for c in self.outputs]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Signature:
        def columns(items: Any) -> tuple[ColumnSpec, ...]:
            found = []
            for item in items or []:
                classes = item.get("classes")
                found.append(
                    ColumnSpec(str(item["name"]), str(item["type"]), None if classes is None else tuple(classes))
                )
            return tuple(found)

        return cls(columns(data.get("inputs")), columns(data.get("outputs")))

    def validate(self, frame: pd.DataFrame, *, what: str = "input") -> None:
        """Raise :class:`DataError` naming the first input column missing from ``frame`` or of
        the wrong type. Extra columns are allowed (and ignored by the model)."""
        for spec in self.inputs:
            if spec.name not in frame.columns:
                raise DataError(
                    f"{what}: column '{spec.name}' is missing",
                    hint=f"the model expects {', '.join(c.name for c in self.inputs[:8])}"
                    + (", ..." if len(self.inputs) > 8 else ""),
                )
            problem = _mismatch(frame[spec.name], spec.type)
            if problem:
                raise DataError(
                    f"{what}: column '{spec.name}' should be {spec.type}: {problem}",
                    hint="send values of the type the model was trained on",
                )

    def describe(self) -> str:
        ins = ", ".join(f"{c.name}: {c.type}" for c in self.inputs)
        outs = ", ".join(f"{c.name}: {c.type}" for c in self.outputs)
        return f"({ins}) -> ({outs})" if outs else f"({ins})"


def _plain(value: Any) -> Any:
    """A JSON-able Python value for a NumPy scalar."""
    return value.item() if hasattr(value, "item") else value


def _type_of(series: pd.Series) -> str:
    from pandas.api import types

    if types.is_bool_dtype(series.dtype):
        return "boolean"
    if types.is_integer_dtype(series.dtype):
        return "long"
    if types.is_float_dtype(series.dtype):
        return "double"
    if types.is_datetime64_any_dtype(series.dtype):
        return "datetime"
    return "string"


def _mismatch(series: pd.Series, expected: str) -> str | None:
    """Why ``series`` cannot be of type ``expected`` (with an example), or None when it can be.

    Integers are accepted where doubles are expected, and whole-number doubles (what JSON and
    CSV give after one missing value) where integers are.
    """
    import numpy as np
    from pandas.api import types

    present = series.dropna()
    if present.empty:
        return None
    actual = _type_of(series)
    if actual == expected or (expected == "double" and actual in ("long", "boolean")):
        return None
    if expected == "long" and actual == "double":
        values = present.to_numpy(dtype=np.float64)
        if bool(np.all(np.mod(values, 1) == 0)):
            return None
        return f"got fractional numbers such as {values[np.mod(values, 1) != 0][0]!r}"
    if expected in ("double", "long") and actual == "string":
        numbers = _to_numeric(present)
        bad = present[numbers.isna()]
        if bad.empty and (expected == "double" or bool(np.all(np.mod(numbers.to_numpy(), 1) == 0))):
            return None
        return f"got text such as {str(bad.iloc[0] if not bad.empty else present.iloc[0])!r}"
    if expected == "string":
        return None  # anything has a text form
    if expected == "datetime" and actual == "string":
        import pandas as pd

        parsed = pd.to_datetime(present, errors="coerce")
        bad = present[parsed.isna()]
        return None if bad.empty else f"got {str(bad.iloc[0])!r}, not a date"
    if expected == "boolean" and types.is_numeric_dtype(series.dtype):
        return None if bool(present.isin([0, 1]).all()) else f"got {present.iloc[0]!r}"
    return f"got {actual} values such as {present.iloc[0]!r}"


def _to_numeric(series: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.to_numeric(series, errors="coerce")
