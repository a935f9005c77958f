"""Model metrics, computed for many row weightings at once.

Every metric takes a weight matrix ``W`` (resamples × rows): one row of ones gives the
ordinary value; rows of bootstrap counts give a thousand resampled values in a few matrix
products, which is what makes a paired bootstrap of any metric affordable on large data
(scikit-learn's metric functions, called a thousand times, would take minutes). The tests
check every metric against scikit-learn's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Task = Literal["classification", "regression"]
_EPS = 1e-15


@dataclass(frozen=True)
class Target:
    """Truth and predictions of one model on one data set, encoded for the metrics."""

    task: Task
    y: np.ndarray  # classification: class index 0..K-1; regression: float values
    pred: np.ndarray  # same encoding as y
    proba: np.ndarray | None  # rows × K, columns in class-index order
    classes: np.ndarray  # class values by index (classification), empty for regression

    @property
    def n(self) -> int:
        return len(self.y)


def encode(
    task: Task,
    y_raw: np.ndarray,
    pred_raw: np.ndarray,
    proba: np.ndarray | None,
    proba_classes: np.ndarray | None,
    also: frozenset[str] = frozenset(),
) -> Target:
    """Map labels, predictions and probability columns onto shared class indices (``also``: more
    classes to include, so that two models' targets share one encoding)."""
    if task == "regression":
        return Target(task, y_raw.astype(np.float64), pred_raw.astype(np.float64), None, np.array([]))
    y_codes, y_names = _named(y_raw)
    pred_codes, pred_names = _named(pred_raw)
    known = [class_name(c) for c in (proba_classes if proba_classes is not None else ())]
    classes = sorted(set(y_names) | set(pred_names) | set(known) | also, key=_class_order)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[n] for n in y_names], dtype=np.int64)[y_codes]
    pred = np.array([index[n] for n in pred_names], dtype=np.int64)[pred_codes]
    aligned = None
    if proba is not None and proba_classes is not None and known == classes:
        aligned = proba  # already one column per class, in class order (the usual case): no copy
    elif proba is not None and proba_classes is not None:
        aligned = np.zeros((len(y), len(classes)), dtype=np.float64)
        for j, name in enumerate(known):
            aligned[:, index[name]] = proba[:, j]
    return Target(task, y, pred, aligned, np.array(classes, dtype=object))


def class_name(value: object) -> str:
    """A class's name: numbers by value (the label 1.0 read from a CSV is the class 1 a model
    predicts), anything else as its text."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return f"{float(value):.15g}"
    return str(value)


def _named(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """A code per row and each code's class name (factorised first: one name per distinct value)."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object) if np.asarray(values).dtype.kind == "b" else values)
    return codes, [class_name(u) for u in uniques]


def _class_order(text: str) -> tuple[int, float, str]:
    """Numbers in numeric order, then text: the positive class of a binary task is the larger."""
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def ones(n: int) -> np.ndarray:
    return np.ones((1, n), dtype=np.float64)


# -- classification ---------------------------------------------------------------------------


def accuracy(t: Target, W: np.ndarray) -> np.ndarray:
    return (W @ (t.y == t.pred).astype(np.float64)) / W.sum(axis=1)


def _per_class(t: Target, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, predicted and actual counts per class: each (resamples × classes)."""
    k = len(t.classes)
    if W.shape[0] == 1:  # the plain value: weighted counts, without rows × classes matrices
        w = W[0].astype(np.float64, copy=False)
        hit = t.y == t.pred

        def counts(codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
            return np.bincount(codes, weights=weights, minlength=k).astype(np.float64)[None]  # float even when empty

        return counts(t.y[hit], w[hit]), counts(t.pred, w), counts(t.y, w)
    cols = np.arange(k)
    actual = (t.y[:, None] == cols).astype(np.float64)
    predicted = (t.pred[:, None] == cols).astype(np.float64)
    return W @ (actual * predicted), W @ predicted, W @ actual


def _averaged(values: np.ndarray, t: Target, present: np.ndarray) -> np.ndarray:
    """Binary: the positive class (the larger label, as scikit-learn); more classes: macro average
    over the classes present in the truth."""
    if len(t.classes) == 2:
        return values[:, 1]
    mask = present > 0
    return np.where(mask, values, 0.0).sum(axis=1) / np.maximum(mask.sum(axis=1), 1)


def precision(t: Target, W: np.ndarray) -> np.ndarray:
    tp, predicted, actual = _per_class(t, W)
    return _averaged(np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0), t, actual)


def recall(t: Target, W: np.ndarray) -> np.ndarray:
    tp, _predicted, actual = _per_class(t, W)
    return _averaged(np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0), t, actual)


def f1(t: Target, W: np.ndarray) -> np.ndarray:
    tp, predicted, actual = _per_class(t, W)
    denominator = predicted + actual
    return _averaged(np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0), t, actual)


def log_loss(t: Target, W: np.ndarray) -> np.ndarray:
    proba = _proba(t)
    clipped = np.clip(proba, _EPS, 1 - _EPS)
    losses = np.log(clipped.sum(axis=1)) - np.log(clipped[np.arange(t.n), t.y])  # renormalised, as scikit-learn
    del clipped
    return (W @ losses) / W.sum(axis=1)


def brier(t: Target, W: np.ndarray) -> np.ndarray:
    """Binary: mean squared error of the positive class's probability (scikit-learn's); more
    classes: the squared error summed over the classes."""
    proba = _proba(t)
    if len(t.classes) == 2:
        return (W @ (proba[:, 1] - (t.y == 1)) ** 2) / W.sum(axis=1)
    # sum over classes of (p - onehot)²: Σp² − 2·p[truth] + 1, without a rows × classes temporary
    squared = np.einsum("ij,ij->i", proba, proba) - 2 * proba[np.arange(t.n), t.y] + 1
    return (W @ squared) / W.sum(axis=1)


def roc_auc(t: Target, W: np.ndarray) -> np.ndarray:
    """Binary: AUC of the positive class's score; more classes: macro one-vs-rest."""
    proba = _proba(t)
    if len(t.classes) == 2:
        return _binary_auc(proba[:, 1], t.y == 1, W)
    aucs = [_binary_auc(proba[:, c], t.y == c, W) for c in range(len(t.classes)) if (t.y == c).any()]
    return np.mean(aucs, axis=0)


def _binary_auc(score: np.ndarray, positive: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney statistic: P(score of a positive > score of a negative), ties half."""
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    pos = positive[order].astype(np.float64)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # each run of tied scores
    Ws = W[:, order]
    pos_w = np.add.reduceat(Ws * pos, starts, axis=1)
    neg_w = np.add.reduceat(Ws * (1 - pos), starts, axis=1)
    neg_before = np.cumsum(neg_w, axis=1) - neg_w
    total_pos, total_neg = pos_w.sum(axis=1), neg_w.sum(axis=1)
    wins = (pos_w * (neg_before + 0.5 * neg_w)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((total_pos > 0) & (total_neg > 0), wins / (total_pos * total_neg), np.nan)


def _proba(t: Target) -> np.ndarray:
    if t.proba is None:
        raise ValueError("the model gives no probabilities (predict_proba)")
    return t.proba


def confusion(t: Target) -> np.ndarray:
    k = len(t.classes)
    return np.bincount(t.y * k + t.pred, minlength=k * k).reshape(k, k)


def calibration(t: Target, bins: int = 10) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error and the reliability curve: binary on the positive class's
    probability; more classes on the top class's confidence."""
    proba = _proba(t)
    if len(t.classes) == 2:
        confidence, hit = proba[:, 1], (t.y == 1).astype(np.float64)
    else:
        confidence = proba.max(axis=1)
        hit = (proba.argmax(axis=1) == t.y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    mean_conf = np.bincount(which, weights=confidence, minlength=bins)
    mean_hit = np.bincount(which, weights=hit, minlength=bins)
    curve = []
    ece = 0.0
    for b in range(bins):
        if counts[b]:
            c, h = mean_conf[b] / counts[b], mean_hit[b] / counts[b]
            ece += counts[b] / len(hit) * abs(c - h)
            curve.append({"predicted": float(c), "observed": float(h), "rows": int(counts[b])})
    return float(ece), curve


# -- regression -------------------------------------------------------------------------------


def mae(t: Target, W: np.ndarray) -> np.ndarray:
    return (W @ np.abs(t.y - t.pred)) / W.sum(axis=1)


def rmse(t: Target, W: np.ndarray) -> np.ndarray:
    return np.sqrt((W @ (t.y - t.pred) ** 2) / W.sum(axis=1))


def r2(t: Target, W: np.ndarray) -> np.ndarray:
    total = W.sum(axis=1)
    residual = W @ (t.y - t.pred) ** 2
    centred = t.y - t.y.mean()  # sums of squares far from zero lose every digit (a label near 1e8)
    mean = (W @ centred) / total
    spread = W @ (centred**2) - total * mean**2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(spread > 0, 1 - residual / spread, np.nan)


def mape(t: Target, W: np.ndarray) -> np.ndarray:
    ape = np.abs(t.y - t.pred) / np.maximum(np.abs(t.y), np.finfo(np.float64).eps)
    return (W @ ape) / W.sum(axis=1)


MetricFn = Callable[[Target, np.ndarray], np.ndarray]

# name -> (function, higher is better, needs probabilities)
CLASSIFICATION: dict[str, tuple[MetricFn, bool, bool]] = {
    "accuracy": (accuracy, True, False),
    "precision": (precision, True, False),
    "recall": (recall, True, False),
    "f1": (f1, True, False),
    "roc_auc": (roc_auc, True, True),
    "log_loss": (log_loss, False, True),
    "brier": (brier, False, True),
}
REGRESSION: dict[str, tuple[MetricFn, bool, bool]] = {
    "mae": (mae, False, False),
    "rmse": (rmse, False, False),
    "r2": (r2, True, False),
    "mape": (mape, False, False),
}


def metrics_for(task: Task) -> dict[str, tuple[MetricFn, bool, bool]]:
    return CLASSIFICATION if task == "classification" else REGRESSION


def metric(task: Task, name: str) -> tuple[MetricFn, bool, bool]:
    table = metrics_for(task)
    if name not in table:
        from conveyor.errors import UsageError

        raise UsageError(f"metric '{name}' is not a {task} metric", hint=f"choose one of {', '.join(table)}")
    return table[name]


def evaluate(t: Target) -> dict[str, float]:
    """Every metric of the task that the predictions allow, on all rows."""
    w = ones(t.n)
    out: dict[str, float] = {}
    for name, (fn, _higher, needs_proba) in metrics_for(t.task).items():
        if needs_proba and t.proba is None:
            continue
        out[name] = float(fn(t, w)[0])
    return out
