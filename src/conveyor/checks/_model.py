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


CHUNK_ROWS = 65_536


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
        """Predictions for every row, ``chunk`` rows at a time: a model's own copies of its input
        (a pipeline's encoders, binning) then stay small whatever the number of rows."""
        as_array = hasattr(self.obj, "n_features_in_") and not hasattr(self.obj, "feature_names_in_")
        wants_proba = hasattr(self.obj, "predict") and hasattr(self.obj, "predict_proba")
        wants_proba = wants_proba and data.task == "classification"
        parts: list[np.ndarray] = []
        proba_parts: list[np.ndarray] = []
        try:
            for start in range(0, max(len(data), 1), chunk):
                features: Any = data.frame[data.features].iloc[start : start + chunk]
                if as_array:
                    features = features.to_numpy()  # fitted on an array: give it one (no feature-name warning)
                if hasattr(self.obj, "predict"):
                    parts.append(np.asarray(self.obj.predict(features)))
                    if wants_proba:
                        proba_parts.append(np.asarray(self.obj.predict_proba(features), dtype=np.float64))
                else:
                    parts.append(np.asarray(self.obj(features)))
            labels = np.concatenate(parts) if len(parts) > 1 else parts[0]
            proba = None
            classes = None
            if proba_parts:
                proba = np.concatenate(proba_parts) if len(proba_parts) > 1 else proba_parts[0]
                classes = np.asarray(getattr(self.obj, "classes_", np.arange(proba.shape[1])))
        except Exception as exc:  # whatever the model raises is the model's error, reported as such
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"{self.name}: predict failed on {data.name}: {type(exc).__name__}: {reason}",
                hint="check that the model was trained on the same feature columns",
            ) from exc
        if labels.ndim != 1 or len(labels) != len(data):
            raise ModelError(
                f"{self.name}: predict returned shape {labels.shape} for {len(data)} rows",
                hint="predict must return one prediction per row",
            )
        if proba is not None and (proba.ndim != 2 or proba.shape[0] != len(data)):
            proba = classes = None  # unusable probabilities: evaluate the labels only
        return Predictions(labels, proba, classes)


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
