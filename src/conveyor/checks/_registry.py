"""The checks conveyor knows, what each needs, and the shared context they run in.

A check is a function of a :class:`Context` and its parameters that returns what it
measured; it is registered with its default conditions. The context holds the inputs of a
suite run (data, train/test, models) and computes shared things once: a model's
predictions on the test set serve every model check.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.checks._result import Condition, Figure
from conveyor.errors import DataError

if TYPE_CHECKING:
    from conveyor.checks._dataset import Dataset
    from conveyor.checks._model import Model, Predictions
    from conveyor.checks._schema import Schema


def _empty(ds: Dataset) -> DataError:
    """An empty data set is an error, not a pass: a gate must not open on no data."""
    return DataError(f"{ds.name}: the data has no rows", hint="check the step that produced it")


class CheckSkipped(Exception):
    """An input the check needs is not there, or does not apply (no label for a label check)."""


@dataclass
class Measured:
    summary: str
    values: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)


@dataclass
class CheckDef:
    id: str
    title: str
    needs: tuple[str, ...]  # inputs of the Context: "data", "train", "test", "model", "champion", "schema"
    run: Callable[[Context, dict[str, Any]], Measured]
    conditions: tuple[Condition, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    needs_label: bool = False
    doc: str = ""


CHECKS: dict[str, CheckDef] = {}


def check(
    id: str,
    title: str,
    *,
    needs: tuple[str, ...],
    conditions: tuple[Condition, ...] = (),
    params: dict[str, Any] | None = None,
    needs_label: bool = False,
) -> Callable[[Callable[[Context, dict[str, Any]], Measured]], Callable[[Context, dict[str, Any]], Measured]]:
    """Register a check function under ``id``."""

    def register(fn: Callable[[Context, dict[str, Any]], Measured]) -> Callable[[Context, dict[str, Any]], Measured]:
        CHECKS[id] = CheckDef(id, title, needs, fn, conditions, dict(params or {}), needs_label, fn.__doc__ or "")
        return fn

    return register


def condition(
    name: str, measure: str, direction: str, *, warn: float | None = None, fail: float | None = None, text: str
) -> Condition:
    assert direction in ("max", "min")
    return Condition(name, measure, direction, warn, fail, text)  # type: ignore[arg-type]


@dataclass
class Context:
    """The inputs of one suite run, and what is computed once from them."""

    data: Dataset | None = None
    train: Dataset | None = None
    test: Dataset | None = None
    model: Model | None = None
    champion: Model | None = None
    schema: Schema | None = None
    seed: int = 0
    _predictions: dict[tuple[str, str], Predictions] = field(default_factory=dict)
    _memo: dict[tuple[str, ...], Any] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return getattr(self, name) is not None

    def reference(self) -> Dataset:
        """The data set a single-data check looks at: ``data``, else the training set."""
        chosen = self.data if self.data is not None else self.train
        if chosen is None:
            raise CheckSkipped("no data given")
        if not len(chosen):
            raise _empty(chosen)
        return chosen

    def memo(self, key: tuple[str, ...], compute: Callable[[], Any]) -> Any:
        """``compute()``, once per suite run: what several checks derive from the same inputs."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def predictions(self, which: str, on: str) -> Predictions:
        """``which`` model's predictions (``"model"`` or ``"champion"``) on ``on`` (``"train"``/``"test"``)."""
        key = (which, on)
        if key not in self._predictions:
            model = getattr(self, which)
            data = getattr(self, on)
            if model is None or data is None:
                raise CheckSkipped(f"no {which if model is None else on} given")
            started = time.perf_counter()
            self._predictions[key] = model.predictions(data)
            self._predictions[key].seconds = time.perf_counter() - started
        return self._predictions[key]
