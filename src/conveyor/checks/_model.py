"""A model to evaluate: anything with scikit-learn's ``predict`` (and ``predict_proba``), or a
plain callable from features to predictions; loaded from a pickle/joblib file or named as
``module:function``."""

from __future__ import annotations

import importlib
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from conveyor.errors import MissingFileError, ModelError, UsageError

if TYPE_CHECKING:
    from conveyor.checks._dataset import Dataset


@dataclass
class Predictions:
    labels: np.ndarray  # predicted class (classification) or value (regression), one per row
    proba: np.ndarray | None  # rows × classes, for classifiers that give probabilities
    classes: np.ndarray | None  # the class of each probability column
    seconds: float = 0.0


CHUNK_ROWS = 32_768


class Model:
    """Wraps what predicts: an estimator-like object or a callable."""

    def __init__(self, obj: Any, *, name: str = "model") -> None:
        self.obj = obj
        self.name = name
        if not (hasattr(obj, "predict") or callable(obj)):
            raise ModelError(
                f"{name}: a {type(obj).__name__} cannot predict",
                hint="pass an object with predict() (scikit-learn API) or a function from features to predictions",
            )

    def predictions(self, data: Dataset, *, chunk: int = CHUNK_ROWS) -> Predictions:
        """Predictions for every row, ``chunk`` rows at a time, written into arrays sized once: a
        model's own copies of its input (a pipeline's encoders, binning) then stay small whatever
        the number of rows, and no list of parts is held beside the result."""
        as_array = hasattr(self.obj, "n_features_in_") and not hasattr(self.obj, "feature_names_in_")
        wants_proba = hasattr(self.obj, "predict") and hasattr(self.obj, "predict_proba")
        wants_proba = wants_proba and data.task == "classification"
        n = len(data)
        labels = _Filler(n, ndim=1)
        proba = _Filler(n, ndim=2) if wants_proba else None
        try:
            for start in range(0, max(n, 1), chunk):
                # rows first: selecting the columns of the whole frame would copy all of it for every chunk
                features: Any = data.frame.iloc[start : start + chunk][data.features]
                rows = len(features)
                if as_array:
                    features = features.to_numpy()  # fitted on an array: give it one (no feature-name warning)
                if hasattr(self.obj, "predict"):
                    labels.put(start, rows, np.asarray(self.obj.predict(features)))
                    if proba is not None:
                        proba.put(start, rows, np.asarray(self.obj.predict_proba(features), dtype=np.float64))
                else:
                    labels.put(start, rows, np.asarray(self.obj(features)))
        except Exception as exc:  # whatever the model raises is the model's error, reported as such
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"{self.name}: predict failed on {data.name}: {type(exc).__name__}: {reason}",
                hint="check that the model was trained on the same feature columns",
            ) from exc
        if labels.wrong is not None or labels.out is None:
            shape, rows = labels.wrong or ((), n)
            raise ModelError(
                f"{self.name}: predict returned shape {shape} for {rows} rows",
                hint="predict must return one prediction per row",
            )
        if proba is None or proba.wrong is not None or proba.out is None:
            return Predictions(labels.out, None, None)  # no usable probabilities: evaluate the labels only
        classes = np.asarray(getattr(self.obj, "classes_", np.arange(proba.out.shape[1])))
        return Predictions(labels.out, proba.out, classes)


class _Filler:
    """A model's output, chunk by chunk, written into one array of ``n`` rows: allocated on the
    first chunk (its dtype and columns), widened when a later chunk needs a wider dtype (longer
    strings, say). ``wrong`` keeps the first chunk that is not one row of ``ndim`` dimensions per
    input row: (its shape, the rows it was given)."""

    def __init__(self, n: int, *, ndim: int) -> None:
        self.n = n
        self.ndim = ndim
        self.out: np.ndarray | None = None
        self.wrong: tuple[tuple[int, ...], int] | None = None

    def put(self, start: int, rows: int, part: np.ndarray) -> None:
        if self.wrong is not None:
            return
        fits = part.ndim == self.ndim and len(part) == rows
        if fits and self.out is not None:
            fits = part.shape[1:] == self.out.shape[1:]
        if not fits:
            self.wrong = (part.shape, rows)
            return
        if self.out is None:
            self.out = np.empty((self.n, *part.shape[1:]), dtype=part.dtype)
        elif part.dtype != self.out.dtype:
            self.out = self.out.astype(np.result_type(self.out, part))
        self.out[start : start + rows] = part


def load_model(spec: str | os.PathLike[str] | Any, *, name: str | None = None) -> Model:
    """A :class:`Model` from an object, a pickle/joblib file, or ``module:function``."""
    if isinstance(spec, Model):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        return Model(spec, name=name or type(spec).__name__)
    text = os.fspath(spec)
    label = name or text
    path = Path(text)
    if not path.exists() and ":" in text and not text.startswith(("/", ".")):
        return Model(_import_callable(text), name=label)
    if not path.is_file():
        raise MissingFileError(
            f"{text}: no such model file", hint="give the path of a pickled model or module:function"
        )
    try:
        try:
            import joblib

            obj = joblib.load(path)
        except ImportError:
            with path.open("rb") as handle:
                obj = pickle.load(handle)
    except Exception as exc:
        raise ModelError(
            f"{text}: cannot load the model: {type(exc).__name__}: {str(exc).strip()[:200]}",
            hint="save it with joblib.dump or pickle.dump, with the same library versions installed",
        ) from exc
    return Model(obj, name=label)


def _import_callable(text: str) -> Callable[..., Any]:
    module_name, _, attr = text.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"{text}: cannot import module '{module_name}': {exc}", hint="check the module path") from exc
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise UsageError(f"{text}: module '{module_name}' has no '{attr}'", hint="check the function's name")
    if not callable(target):
        raise UsageError(f"{text}: '{attr}' is not callable", hint="name a function or a model object")
    return target
