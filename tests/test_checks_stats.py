"""The statistics behind the checks agree with the reference implementations: every metric with
scikit-learn's (weighted ones too: a bootstrap weight is a row counted that many times), drift
scores with SciPy's, and the bootstrap's interval covers the truth."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn import metrics as skm

from conveyor.checks import _drift, _metrics
from conveyor.checks._compare import mcnemar, paired_bootstrap


def classification(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)  # every class present
    proba = rng.dirichlet(np.ones(k), n)
    proba[np.arange(n), y] += rng.uniform(0, 1, n)  # informative
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    return y, pred, proba


@pytest.mark.parametrize("k", [2, 3, 5])
def test_classification_metrics_equal_scikit_learn(k: int) -> None:
    y, pred, proba = classification(500, k, seed=k)
    t = _metrics.encode("classification", y, pred, proba, np.arange(k))
    got = _metrics.evaluate(t)
    average = "binary" if k == 2 else "macro"
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, average=average, zero_division=0))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, average=average, zero_division=0))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, average=average, zero_division=0))
    auc = skm.roc_auc_score(y, proba[:, 1]) if k == 2 else skm.roc_auc_score(y, proba, multi_class="ovr")
    assert got["roc_auc"] == pytest.approx(auc)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    np.testing.assert_array_equal(_metrics.confusion(t), skm.confusion_matrix(y, pred))


def test_regression_metrics_equal_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(10, 3, 400)
    pred = y + rng.normal(0, 1, 400)
    got = _metrics.evaluate(_metrics.encode("regression", y, pred, None, None))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(4, 60),
    seed=st.integers(0, 10_000),
    ties=st.booleans(),
)
def test_weighted_auc_and_f1_equal_scikit_learn_with_sample_weights(n: int, seed: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    score = rng.integers(0, 4, n).astype(float) if ties else rng.uniform(size=n)
    weights = rng.integers(0, 4, n).astype(float)
    weights[:2] = 1  # both classes keep some weight
    proba = np.column_stack([1 - score / 4, score / 4]) if ties else np.column_stack([1 - score, score])
    pred = (proba[:, 1] >= 0.5).astype(int)
    t = _metrics.encode("classification", y, pred, proba, np.array([0, 1]))
    W = weights[None, :]
    assert _metrics.roc_auc(t, W)[0] == pytest.approx(skm.roc_auc_score(y, proba[:, 1], sample_weight=weights))
    assert _metrics.f1(t, W)[0] == pytest.approx(skm.f1_score(y, pred, sample_weight=weights, zero_division=0))
    assert _metrics.accuracy(t, W)[0] == pytest.approx(skm.accuracy_score(y, pred, sample_weight=weights))


def test_string_labels_and_the_positive_class() -> None:
    y = np.array(["no", "yes", "yes", "no", "yes"])
    pred = np.array(["no", "yes", "no", "no", "yes"])
    t = _metrics.encode("classification", y, pred, None, None)
    assert list(t.classes) == ["no", "yes"]
    assert _metrics.evaluate(t)["recall"] == pytest.approx(skm.recall_score(y, pred, pos_label="yes"))
    numeric = _metrics.encode("classification", np.array([9, 10, 10]), np.array([9, 10, 9]), None, None)
    assert list(numeric.classes) == ["9", "10"]  # numbers in numeric order: 10 is the positive class


def test_drift_scores_equal_scipy_and_flag_a_shift() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 800), rng.normal(0, 1, 700)
    same = _drift.numeric_drift(a, b)
    assert same.method == "ks" and same.score == pytest.approx(stats.ks_2samp(a, b).pvalue)
    big_a, big_b = rng.normal(0, 1, 5000), rng.normal(0.5, 1, 5000)
    shifted = _drift.numeric_drift(big_a, big_b)
    assert shifted.method == "wasserstein" and shifted.drifted
    assert shifted.score == pytest.approx(stats.wasserstein_distance(big_a, big_b) / np.std(big_a))
    codes_a, codes_b = rng.integers(0, 4, 3000), rng.integers(0, 4, 3000)
    cat = _drift.categorical_drift(codes_a, codes_b, ["a", "b", "c", "d"])
    assert cat.method == "jensenshannon" and not cat.drifted
    psi = _drift.categorical_drift(codes_a, np.where(codes_b == 0, 1, codes_b), list("abcd"), method="psi")
    assert psi.drifted


def test_bootstrap_interval_covers_the_true_difference_and_mcnemar_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    y = rng.integers(0, 2, n)
    right_a = rng.uniform(size=n) < 0.85
    right_b = rng.uniform(size=n) < 0.80
    pa, pb = np.where(right_a, y, 1 - y), np.where(right_b, y, 1 - y)
    ta = _metrics.encode("classification", y, pa, None, None)
    tb = _metrics.encode("classification", y, pb, None, None)
    diffs = paired_bootstrap(ta, tb, _metrics.accuracy, resamples=500, seed=0)
    low, high = np.quantile(diffs, [0.025, 0.975])
    observed = right_b.mean() - right_a.mean()
    assert low < observed < high
    assert high < 0  # a challenger 5 points worse on 2,000 rows is worse with confidence
    only_a, only_b, p = mcnemar(ta, tb)
    assert p == pytest.approx(stats.binomtest(only_b, only_a + only_b, 0.5).pvalue)


def test_a_label_read_as_float_matches_integer_predictions() -> None:
    """A CSV gives the label 1.0, a classifier predicts 1: the same class."""
    t = _metrics.encode(
        "classification",
        np.array([0.0, 1.0, 2.0, 1.0]),
        np.array([0, 1, 1, 1]),
        np.eye(3)[[0, 1, 1, 1]],
        np.array([0, 1, 2]),
    )
    assert list(t.classes) == ["0", "1", "2"]
    assert _metrics.evaluate(t)["accuracy"] == pytest.approx(0.75)
    assert t.proba is not None and t.proba[1].tolist() == [0.0, 1.0, 0.0]


def test_clean_random_splits_rarely_drift_and_a_real_shift_still_does() -> None:
    """25 features, 20 seeded clean splits of 2,000 rows: without the multiple-testing adjustment
    and the significance behind distances, nearly every split warned (measured: 20 of 20)."""
    import pandas as pd

    from conveyor import checks

    rng = np.random.default_rng(0)
    base = pd.DataFrame(rng.normal(size=(2000, 25)), columns=[f"f{i}" for i in range(25)])
    base["target"] = (base["f0"] + rng.normal(size=2000) > 0).astype(int)
    warned = 0
    for seed in range(20):
        order = np.random.default_rng(seed).permutation(len(base))
        train, test = base.iloc[order[:1400]], base.iloc[order[1400:]].reset_index(drop=True)
        result = checks.run_suite("train_test", train=train, test=test, label="target")
        warned += result.get("feature_drift").status != "pass"
    assert warned <= 3, f"{warned} of 20 clean splits warned of drift"
    shifted = test.assign(f3=test["f3"] + 1.0)
    drift = checks.run_suite("train_test", train=train, test=shifted, label="target").get("feature_drift")
    assert [n for n, r in drift.details["by_feature"].items() if r["drifted"]] == ["f3"]
