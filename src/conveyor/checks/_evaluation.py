"""Model evaluation on the holdout set: metrics, overfitting, the gain over a trivial model, the
weakest data segments, calibration, prediction drift and inference time."""

from __future__ import annotations

from typing import Any

import numpy as np

from conveyor.checks import _metrics
from conveyor.checks._dataset import Dataset
from conveyor.checks._integrity import binned
from conveyor.checks._model import Predictions
from conveyor.checks._registry import CheckSkipped, Context, Measured, check, condition
from conveyor.checks._result import Figure
from conveyor.errors import DataError

PRIMARY = {"classification": "accuracy", "regression": "r2"}


def target(data: Dataset, predictions: Predictions, also: frozenset[str] = frozenset()) -> _metrics.Target:
    """Truth and predictions on the rows whose label is known, encoded for the metrics."""
    if data.label is None:
        raise CheckSkipped("no label column given")
    task = data.task
    assert task is not None
    label = data.column(data.label)
    keep = ~label.missing
    if not keep.any():
        raise CheckSkipped(f"the label column '{data.label}' is entirely missing")
    everything = bool(keep.all())  # the usual case: no copies of the rows
    y = label.series.to_numpy() if everything else label.series.to_numpy()[keep]
    pred = predictions.labels if everything else predictions.labels[keep]
    if task == "regression":
        try:
            pred = pred.astype(np.float64)
        except (TypeError, ValueError):
            raise DataError(
                f"label '{data.label}' is numeric but the model predicts categories",
                hint="give a regression model, or the categorical label it was trained on",
            ) from None
    elif pred.dtype.kind == "f" and not np.all(np.mod(pred[np.isfinite(pred)], 1) == 0):
        raise DataError(
            f"label '{data.label}' is categorical but the model predicts continuous numbers",
            hint="give a classifier, or the numeric label the regression model was trained on",
        )
    proba = predictions.proba if predictions.proba is None or everything else predictions.proba[keep]
    return _metrics.encode(task, y, pred, proba, predictions.classes, also)


def _test_target(ctx: Context, which: str = "model") -> _metrics.Target:
    if ctx.test is None:
        raise CheckSkipped("no test set given")
    test = ctx.test
    return ctx.memo(("target", which, "test"), lambda: target(test, ctx.predictions(which, "test")))


def _primary(t: _metrics.Target, params: dict[str, Any]) -> tuple[str, bool]:
    name = params.get("metric") or PRIMARY[t.task]
    _fn, higher, _needs = _metrics.metric(t.task, name)
    return name, higher


@check(
    "performance",
    "Model performance",
    needs=("model", "test"),
    needs_label=True,
    conditions=(condition("max_overfit_gap", "overfit_gap", "max", warn=0.1, text="train score − test score"),),
    params={"metric": None},
)
def performance(ctx: Context, params: dict[str, Any]) -> Measured:
    """Every metric of the task on the test set (and the training set, when given); the gap
    between them on the main metric (accuracy, or R² for regression) shows overfitting."""
    test = _test_target(ctx)
    values: dict[str, Any] = {f"test_{k}": v for k, v in _metrics.evaluate(test).items()}
    name, higher = _primary(test, params)
    fn = _metrics.metric(test.task, name)[0]
    test_score = float(fn(test, _metrics.ones(test.n))[0])
    details: dict[str, Any] = {"metric": name}
    figures: list[Figure] = []
    summary = f"test {name} {test_score:.4g}"
    if ctx.train is not None and ctx.train.label is not None:
        train = target(ctx.train, ctx.predictions("model", "train"))
        values.update({f"train_{k}": v for k, v in _metrics.evaluate(train).items()})
        train_score = float(fn(train, _metrics.ones(train.n))[0])
        gap = train_score - test_score if higher else test_score - train_score
        values["overfit_gap"] = gap
        summary += f", train {train_score:.4g} (gap {gap:+.3g})"
    if test.task == "classification":
        matrix = _metrics.confusion(test)
        labels = [str(c) for c in test.classes]
        details["confusion_matrix"] = {"labels": labels, "counts": matrix.tolist()}
        figures.append(
            Figure("matrix", "Confusion matrix (rows: truth, columns: prediction)", details["confusion_matrix"])
        )
        if test.proba is not None:
            ece, curve = _metrics.calibration(test)
            values["calibration_error"] = ece
            details["calibration"] = curve
            figures.append(
                Figure(
                    "line",
                    f"Calibration (expected calibration error {ece:.3f})",
                    {"x": [p["predicted"] for p in curve], "y": [p["observed"] for p in curve], "diagonal": True},
                )
            )
    return Measured(summary, values, details, figures)


@check(
    "baseline",
    "Gain over a trivial model",
    needs=("model", "test"),
    needs_label=True,
    conditions=(
        condition("min_gain", "gain", "min", warn=0.01, fail=0.001, text="model score − trivial model's score"),
    ),
    params={"metric": None},
)
def baseline(ctx: Context, params: dict[str, Any]) -> Measured:
    """The model against the trivial one (the training set's most common class, or its mean) on
    the test set: a model no better than that has learnt nothing."""
    test = _test_target(ctx)
    name, higher = _primary(test, params)
    fn, _higher, needs_proba = _metrics.metric(test.task, name)
    source = ctx.train if ctx.train is not None and ctx.train.label is not None else ctx.test
    assert source is not None and source.label is not None
    label = source.column(source.label)
    if test.task == "classification":
        counts: dict[str, int] = {}
        for value, count in label.series.value_counts(dropna=True).items():  # by value: no string per row
            cls = _metrics.class_name(value)  # the label 1.0 read from a CSV is the class 1
            counts[cls] = counts.get(cls, 0) + int(count)
        guess = max(counts, key=counts.__getitem__)
        index = {str(c): i for i, c in enumerate(test.classes)}
        constant = np.full(test.n, index.get(guess, 0))
        proba = None
        if needs_proba and test.proba is not None:
            total = sum(counts.values())
            shares = np.array([counts.get(str(c), 0) / total for c in test.classes], dtype=np.float64)
            proba = np.tile(shares, (test.n, 1))
        trivial = _metrics.Target(test.task, test.y, constant, proba, test.classes)
        what = f"always '{guess}'"
    else:
        mean = float(np.nanmean(label.numbers))
        trivial = _metrics.Target(test.task, test.y, np.full(test.n, mean), None, test.classes)
        what = f"always {mean:.4g}"
    w = _metrics.ones(test.n)
    model_score, trivial_score = float(fn(test, w)[0]), float(fn(trivial, w)[0])
    gain = model_score - trivial_score if higher else trivial_score - model_score
    return Measured(
        f"{name} {model_score:.4g} against {trivial_score:.4g} for the trivial model ({what}): gain {gain:+.4g}",
        {"gain": gain, "model": model_score, "trivial": trivial_score},
        {"metric": name, "trivial_model": what},
    )


@check(
    "weak_segments",
    "Weakest data segments",
    needs=("model", "test"),
    needs_label=True,
    conditions=(condition("max_segment_gap", "worst_gap", "max", warn=0.2, text="overall score − worst segment's"),),
    params={"min_share": 0.05, "min_rows": 10, "bins": 5},
)
def weak_segments(ctx: Context, params: dict[str, Any]) -> Measured:
    """Per feature, the test rows cut into segments (quantile bins, or the most common
    categories); the segments where the model does worst, by accuracy or mean absolute error."""
    assert ctx.test is not None
    test = _test_target(ctx)
    data = ctx.test
    known = ~data.column(data.label).missing  # type: ignore[arg-type]
    keep = None if known.all() else known  # rows with a label; None: all of them (no copies)
    if test.task == "classification":
        per_row = (test.y == test.pred).astype(np.float64)
        measure, higher = "accuracy", True
    else:
        per_row = np.abs(test.y - test.pred)
        measure, higher = "mean absolute error", False
    overall = float(per_row.mean())
    smallest = max(params["min_rows"], int(params["min_share"] * test.n))
    segments: list[dict[str, Any]] = []
    for name in data.features:
        column = data.column(name)
        if column.kind == "text":
            continue
        bins = binned(column, bins=params["bins"], max_categories=10)
        bins = bins if keep is None else bins[keep]
        counts = np.bincount(bins)
        sums = np.bincount(bins, weights=per_row)
        for b in np.flatnonzero(counts >= smallest):
            score = sums[b] / counts[b]
            segments.append(
                {
                    "feature": name,
                    "segment": _describe(column, bins, int(b), keep),
                    "rows": int(counts[b]),
                    "score": float(score),
                }
            )
    if not segments:
        raise CheckSkipped("no segment is large enough")
    segments.sort(key=lambda s: s["score"] if higher else -s["score"])
    worst = segments[0]["score"]
    gap = overall - worst if higher else worst - overall
    top = segments[:10]
    return Measured(
        f"weakest segment: {top[0]['feature']} {top[0]['segment']} "
        f"({measure} {worst:.3g} against {overall:.3g} overall)",
        {"worst_gap": gap, "overall": overall, "worst": worst},
        {"measure": measure, "segments": top},
        [
            Figure(
                "bars",
                f"Weakest segments ({measure})",
                {"labels": [f"{s['feature']} {s['segment']}" for s in top], "values": [s["score"] for s in top]},
            )
        ],
    )


def _describe(column: Any, bins: np.ndarray, b: int, keep: np.ndarray | None) -> str:
    """A readable name for segment ``b`` of a column: a value range, or the category."""
    if column.kind in ("numeric", "datetime"):
        values = column.numbers if keep is None else column.numbers[keep]
        values = values[bins == b]
        finite = values[np.isfinite(values)]
        if len(finite) == 0:
            return "missing"
        return f"in [{finite.min():.4g}, {finite.max():.4g}]"
    codes, uniques = column.codes()
    codes = codes if keep is None else codes[keep]
    present = np.unique(codes[bins == b])
    present = present[present >= 0]
    if len(present) == 0:
        return "missing"
    return f"= {str(uniques[present[0]])!r}" if len(present) == 1 else f"other ({len(present)} values)"


@check(
    "prediction_drift",
    "Prediction drift",
    needs=("model", "train", "test"),
    conditions=(condition("no_prediction_drift", "drifted", "max", warn=0, text="prediction drift"),),
)
def prediction_drift(ctx: Context, params: dict[str, Any]) -> Measured:
    """Whether the model's predictions are distributed differently on test than on train."""
    from conveyor.checks import _drift

    if ctx.train is None or ctx.test is None:
        raise CheckSkipped("needs a train and a test set")
    a = ctx.predictions("model", "train").labels
    b = ctx.predictions("model", "test").labels
    if ctx.test.task == "regression":
        drift = _drift.numeric_drift(a.astype(np.float64), b.astype(np.float64))
    else:
        import pandas as pd

        codes, uniques = pd.factorize(np.concatenate([a, b]))  # by value: no string per row
        drift = _drift.categorical_drift(codes[: len(a)], codes[len(a) :], [str(u) for u in uniques])
    verb = "drifted" if drift.drifted else "did not drift"
    return Measured(
        f"predictions {verb} ({drift.method} = {drift.score:.3g})",
        {"drifted": int(drift.drifted), "score": drift.score},
        {"method": drift.method},
        [
            Figure(
                "histograms",
                "Predictions: train and test",
                {"labels": drift.labels, "reference": drift.reference["share"], "current": drift.current["share"]},
            )
        ],
    )


@check(
    "inference_time",
    "Inference time",
    needs=("model", "test"),
    conditions=(condition("max_ms_per_row", "ms_per_row", "max", warn=10.0, text="milliseconds per row"),),
)
def inference_time(ctx: Context, params: dict[str, Any]) -> Measured:
    """Wall time of the model's predict on the test set, per row."""
    assert ctx.test is not None
    predictions = ctx.predictions("model", "test")
    rows = max(1, len(ctx.test))
    ms = predictions.seconds * 1000 / rows
    return Measured(
        f"{ms:.4f} ms per row ({predictions.seconds:.3f} s for {rows:,} rows, predict and predict_proba)",
        {"ms_per_row": ms, "seconds": predictions.seconds},
    )
