"""Checks on real data sets that ship with scikit-learn: clean ones pass with the default
conditions, and each planted defect is caught by the check meant for it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor import checks
from conveyor.errors import ConveyorError, DataError, ModelError, UsageError


def frame(loader: str) -> pd.DataFrame:
    bunch = getattr(datasets, loader)(as_frame=True)
    data = bunch.frame.copy()
    data.columns = [str(c).replace(" ", "_") for c in data.columns]
    return data


def split(data: pd.DataFrame, seed: int = 0, stratify: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    strata = data["target"] if stratify else None
    train, test = train_test_split(data, test_size=0.3, random_state=seed, stratify=strata)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def statuses(result: checks.SuiteResult) -> dict[str, str]:
    return {r.check: r.status for r in result.results}


CLASSIFICATION_SETS = ["load_breast_cancer", "load_wine", "load_iris"]


# -- clean data passes -----------------------------------------------------------------------------


@pytest.mark.parametrize("loader", [*CLASSIFICATION_SETS, "load_diabetes"])
def test_a_clean_real_data_set_passes_data_integrity(loader: str) -> None:
    result = checks.run_suite("data_integrity", data=frame(loader), label="target")
    assert result.passed, checks.to_markdown(result)
    assert statuses(result)["schema"] == "skipped"  # no schema given: said, not failed


@pytest.mark.parametrize("loader", [*CLASSIFICATION_SETS, "load_diabetes"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_clean_random_split_passes_train_test(loader: str, seed: int) -> None:
    train, test = split(frame(loader), seed, stratify=loader != "load_diabetes")
    result = checks.run_suite("train_test", train=train, test=test, label="target")
    assert result.passed, checks.to_markdown(result)


def test_a_good_model_passes_evaluation_and_a_trivial_one_fails_the_baseline() -> None:
    train, test = split(frame("load_breast_cancer"))
    features = [c for c in train.columns if c != "target"]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(train[features], train["target"])
    result = checks.run_suite("model_evaluation", train=train, test=test, model=model, label="target")
    assert result.passed, checks.to_markdown(result)
    performance = result.get("performance")
    assert performance.values["test_accuracy"] > 0.9
    assert 0 <= performance.values["test_roc_auc"] <= 1

    def always_benign(frame: pd.DataFrame) -> np.ndarray:
        return np.ones(len(frame), dtype=int)

    trivial = checks.run_suite("model_evaluation", train=train, test=test, model=always_benign, label="target")
    assert trivial.get("baseline").status == "fail", checks.to_markdown(trivial)
    assert not trivial.passed


def test_regression_evaluation_reports_its_metrics() -> None:
    train, test = split(frame("load_diabetes"), stratify=False)
    features = [c for c in train.columns if c != "target"]
    model = Ridge().fit(train[features], train["target"])
    result = checks.run_suite("model_evaluation", train=train, test=test, model=model, label="target")
    values = result.get("performance").values
    assert {"test_mae", "test_rmse", "test_r2", "test_mape"} <= set(values)
    assert values["test_r2"] > 0.3
    assert result.get("baseline").status == "pass"


# -- planted defects are caught by the right check ---------------------------------------------------


def integrity(data: pd.DataFrame, **kwargs: object) -> checks.SuiteResult:
    return checks.run_suite("data_integrity", data=data, label="target", **kwargs)  # type: ignore[arg-type]


def test_duplicated_rows_are_caught() -> None:
    data = frame("load_wine")
    planted = pd.concat([data, data.sample(frac=0.1, random_state=0)], ignore_index=True)
    result = integrity(planted)
    assert result.get("duplicate_rows").status == "fail"
    assert result.get("duplicate_rows").values["count"] == round(len(data) * 0.1)


def test_conflicting_labels_are_caught() -> None:
    data = frame("load_breast_cancer")
    flipped = data.sample(n=10, random_state=1).copy()
    flipped["target"] = 1 - flipped["target"]
    result = integrity(pd.concat([data, flipped], ignore_index=True))
    assert result.get("conflicting_labels").status in ("warn", "fail")
    assert result.get("conflicting_labels").values["groups"] == 10


def test_a_string_variant_is_caught() -> None:
    data = frame("load_iris")
    rng = np.random.default_rng(0)
    data["country"] = rng.choice(["US", "France", "Japan"], size=len(data))
    data.loc[data.index[:3], "country"] = ["us ", "U.S.", "US"]
    result = integrity(data)
    check = result.get("string_variants")
    assert check.status == "fail"
    assert ["U.S.", "US", "us "] in check.details["variants"]["country"]


def test_a_leaking_feature_is_caught() -> None:
    data = frame("load_breast_cancer")
    data["diagnosis_code"] = data["target"] * 10 + np.random.default_rng(0).integers(0, 3, len(data))
    result = integrity(data)
    check = result.get("feature_label_leakage")
    assert check.status == "warn"  # a hint: it warns by default (a stage can make it fail)
    assert next(iter(check.details["power_by_feature"])) == "diagnosis_code"


def test_single_value_and_all_missing_columns_are_caught() -> None:
    data = frame("load_wine")
    data["constant"] = 7
    data["empty"] = np.nan
    result = integrity(data)
    assert result.get("single_value").status == "fail"
    assert "constant" in result.get("single_value").details["single_value"]
    missing = result.get("missing_values")
    assert missing.status == "fail"
    assert missing.details["all_missing"] == ["empty"]
    assert "empty" in missing.summary


def test_mixed_types_are_caught() -> None:
    data = frame("load_iris")
    data["size"] = ["large" if i % 10 == 0 else str(i) for i in range(len(data))]
    result = integrity(data)
    assert result.get("mixed_types").status == "warn"
    assert result.get("mixed_types").details["rarer_kind_share"]["size"] == pytest.approx(0.1)


def test_drift_in_one_feature_is_caught_and_named() -> None:
    train, test = split(frame("load_breast_cancer"))
    test["mean_radius"] = test["mean_radius"] * 1.5
    result = checks.run_suite("train_test", train=train, test=test, label="target")
    drift = result.get("feature_drift")
    assert drift.status == "warn"
    drifted = [n for n, r in drift.details["by_feature"].items() if r["drifted"]]
    assert drifted == ["mean_radius"]


def test_leakage_of_train_rows_into_test_is_caught() -> None:
    train, test = split(frame("load_wine"))
    leaked = pd.concat([test, train.sample(n=10, random_state=0)], ignore_index=True)
    result = checks.run_suite("train_test", train=train, test=leaked, label="target")
    overlap = result.get("train_test_overlap")
    assert overlap.status == "fail"
    assert overlap.values["rows"] == 10


def test_new_categories_in_test_are_caught() -> None:
    train, test = split(frame("load_iris"))
    train["site"] = "north"
    test["site"] = ["north"] * (len(test) - 2) + ["south"] * 2
    result = checks.run_suite("train_test", train=train, test=test, label="target")
    assert result.get("new_categories").status == "warn"
    assert result.get("new_categories").details["by_feature"]["site"]["examples"] == ["south"]


# -- champion and challenger ---------------------------------------------------------------------------


def fitted(train: pd.DataFrame, c: float) -> object:
    features = [col for col in train.columns if col != "target"]
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)).fit(train[features], train["target"])


def test_a_worse_challenger_fails_and_an_equal_one_passes() -> None:
    train, test = split(frame("load_breast_cancer"))
    champion = fitted(train, 1.0)
    worse = fitted(train, 0.0005)  # heavily regularised: clearly less accurate
    result = checks.run_suite("champion_challenger", test=test, model=worse, champion=champion, label="target")
    check = result.get("champion_challenger")
    assert check.status == "fail", check.summary
    assert check.values["gain"] < 0 and check.values["worst_degradation"] > 0.01
    same = checks.run_suite("champion_challenger", test=test, model=champion, champion=champion, label="target")
    assert same.get("champion_challenger").status == "pass"
    assert same.get("champion_challenger").values["mcnemar_p"] == 1.0


def test_the_gate_takes_any_metric_and_a_tolerance() -> None:
    train, test = split(frame("load_breast_cancer"))
    champion, challenger = fitted(train, 1.0), fitted(train, 0.3)
    suite = checks.Suite.from_spec(
        {
            "suite": "champion_challenger",
            "params": {"champion_challenger": {"metric": "roc_auc", "resamples": 300}},
            "conditions": {"champion_challenger": {"max_degradation": {"fail": 0.05}}},
        }
    )
    result = checks.run_suite(suite, test=test, model=challenger, champion=champion, label="target")
    check = result.get("champion_challenger")
    assert check.details["metric"] == "roc_auc" and check.values["resamples"] == 300
    assert check.values["ci_low"] <= check.values["gain"] <= check.values["ci_high"]
    assert check.status == "pass", check.summary


# -- bad input -----------------------------------------------------------------------------------------


def test_empty_data_fails_the_gate_with_reasons_and_never_crashes() -> None:
    empty = frame("load_iris").iloc[0:0]
    result = integrity(empty)
    assert not result.passed
    assert all(r.status in ("error", "skipped") for r in result.results), checks.to_markdown(result)
    assert "the data has no rows" in (result.get("duplicate_rows").reason or "")
    train, _test = split(frame("load_iris"))
    pair = checks.run_suite("train_test", train=train, test=empty, label="target")
    assert not pair.passed and "test: the data has no rows" in (pair.get("feature_drift").reason or "")


def test_a_missing_label_column_is_one_clear_error() -> None:
    with pytest.raises(DataError, match="label column 'species' is not in the data"):
        checks.run_suite("data_integrity", data=frame("load_iris"), label="species")


def test_columns_that_differ_between_train_and_test_fail_one_check_and_the_rest_run() -> None:
    train, test = split(frame("load_wine"))
    test = test.drop(columns=["alcohol"]).rename(columns={"hue": "colour_hue"})
    result = checks.run_suite("train_test", train=train, test=test, label="target")
    columns = result.get("columns_match")
    assert columns.status == "fail"
    assert set(columns.details["missing_in_test"]) == {"alcohol", "hue"}
    assert columns.details["only_in_test"] == ["colour_hue"]
    assert result.get("feature_drift").status in ("pass", "warn")  # on the shared columns


def test_a_model_whose_predict_fails_is_reported_per_check() -> None:
    train, test = split(frame("load_iris"))

    def broken(frame: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("weights file not found")

    result = checks.run_suite("model_evaluation", train=train, test=test, model=broken, label="target")
    assert not result.passed
    errors = [r for r in result.results if r.status == "error"]
    assert errors and all("weights file not found" in (r.reason or "") for r in errors)


def test_a_text_label_for_a_regression_model_is_explained() -> None:
    train, test = split(frame("load_diabetes"), stratify=False)
    features = [c for c in train.columns if c != "target"]
    model = Ridge().fit(train[features], train["target"])
    test = test.assign(target=np.where(test["target"] > 140, "high", "low"))
    result = checks.run_suite("model_evaluation", test=test, model=model, label="target")
    assert result.get("performance").status == "error"
    assert "categorical but the model predicts continuous numbers" in (result.get("performance").reason or "")
    assert not result.passed


def test_a_huge_number_of_categories_is_handled() -> None:
    rng = np.random.default_rng(0)
    n = 50_000
    data = pd.DataFrame(
        {
            "user": [f"user-{i}" for i in range(n)],
            "x": rng.normal(size=n),
            "target": rng.integers(0, 2, n),
        }
    )
    train, test = data.iloc[:40_000], data.iloc[40_000:].reset_index(drop=True)
    result = checks.run_suite("train_test", train=train, test=test, label="target")
    assert result.get("new_categories").values["max_share"] == 1.0  # every test user is new
    assert checks.run_suite("data_integrity", data=data, label="target").get("string_variants").status == "pass"


def test_unknown_checks_conditions_and_parameters_are_named() -> None:
    with pytest.raises(UsageError, match="no check 'missing_value' \\(did you mean 'missing_values'\\?\\)"):
        checks.Suite.from_spec({"checks": ["missing_value"]})
    with pytest.raises(UsageError, match="no condition 'max_share'"):
        checks.Suite.from_spec(
            {"suite": "data_integrity", "conditions": {"missing_values": {"max_share": {"fail": 1}}}}
        )
    with pytest.raises(UsageError, match="no parameter 'bins'"):
        checks.Suite.from_spec({"suite": "train_test", "params": {"feature_drift": {"bins": 3}}})
    with pytest.raises(UsageError, match="no built-in suite 'data_integrety' \\(did you mean 'data_integrity'\\?\\)"):
        checks.Suite.builtin("data_integrety")


def test_conditions_can_be_tightened_and_a_warning_can_become_a_failure() -> None:
    data = frame("load_breast_cancer")
    suite = checks.Suite.from_spec(
        {"suite": "data_integrity", "conditions": {"outliers": {"max_outlier_share": {"fail": 0.0}}}}
    )
    result = checks.run_suite(suite, data=data, label="target")
    assert result.get("outliers").status == "fail"
    assert not result.passed


# -- schema ------------------------------------------------------------------------------------------------


def test_an_inferred_schema_round_trips_and_catches_violations(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    data = frame("load_iris")
    data["species"] = data["target"].map({0: "setosa", 1: "versicolor", 2: "virginica"})
    schema = checks.infer_schema(checks.Dataset(data, label="target"))
    schema.write(folder / "schema.yaml")
    loaded = checks.load_schema(folder / "schema.yaml")
    assert loaded.columns["species"].categories == ["setosa", "versicolor", "virginica"]
    assert (
        checks.run_suite("data_integrity", data=data, label="target", schema=folder / "schema.yaml")
        .get("schema")
        .status
        == "pass"
    )
    bad = data.drop(columns=["petal_width_(cm)"]).copy()
    bad.loc[0, "species"] = "unknown"
    bad.loc[1, "sepal_length_(cm)"] = 99.0
    check = checks.run_suite("data_integrity", data=bad, label="target", schema=loaded).get("schema")
    assert check.status == "fail"
    problems = {v["column"]: v["problem"] for v in check.details["violations"]}
    assert problems["petal_width_(cm)"] == "required column is missing"
    assert "'unknown'" in problems["species"]
    assert "outside" in problems["sepal_length_(cm)"]


def test_a_damaged_schema_file_is_one_clear_error(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "schema.yaml"
    path.write_text("schema: 1\ncolumns:\n  x: {kind: number}\n")
    with pytest.raises(ConveyorError, match=r"columns\.x\.kind: 'number' is not numeric"):
        checks.load_schema(path)


# -- reports -----------------------------------------------------------------------------------------------


def test_reports_are_self_contained_and_the_json_is_stable(tmp_path: object) -> None:
    from pathlib import Path

    train, test = split(frame("load_breast_cancer"))
    test["mean_radius"] = test["mean_radius"] * 1.5
    model = fitted(train, 1.0)
    result = checks.run_suite("model_evaluation", train=train, test=test, model=model, label="target")
    paths = checks.write_reports(result, Path(str(tmp_path)))
    html = paths["html"].read_text()
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert html.count("<svg") >= 2  # confusion matrix, calibration
    doc = json.loads(paths["json"].read_text())
    assert doc["schema"] == 1 and doc["suite"] == "model_evaluation"
    assert set(doc) == {"schema", "suite", "status", "passed", "counts", "inputs", "seconds", "values", "checks"}
    assert doc["values"]["performance"]["test_accuracy"] == result.get("performance").values["test_accuracy"]
    assert {c["check"] for c in doc["checks"]} == set(checks.BUILTIN["model_evaluation"])
    assert "| check | result |" in paths["md"].read_text()


def test_the_callers_frame_is_left_as_it_was() -> None:
    data = pd.DataFrame({0: [1.0, 2.0, 3.0], 1: ["a", "b", "a"], "target": [0, 1, 0]})
    before = data.copy()
    result = checks.run_suite("data_integrity", data=data, label="target")
    assert result.get("missing_values").status == "pass"
    pd.testing.assert_frame_equal(data, before)
    assert list(data.columns) == [0, 1, "target"]


def test_r2_keeps_its_precision_far_from_zero() -> None:
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)
    x = rng.normal(size=5000)
    data = pd.DataFrame({"x": x, "target": 1e8 + 2 * x + rng.normal(size=5000)})
    train, test = data.iloc[:4000], data.iloc[4000:].reset_index(drop=True)
    model = LinearRegression().fit(train[["x"]], train["target"])
    result = checks.run_suite("model_evaluation", train=train, test=test, model=model, label="target")
    expected = r2_score(test["target"], model.predict(test[["x"]]))
    assert result.get("performance").values["test_r2"] == pytest.approx(expected, abs=1e-6)
    assert abs(result.get("baseline").values["trivial"]) < 0.01


def test_rows_and_categories_match_by_value_whatever_the_dtype() -> None:
    """One missing value makes read_csv give floats: 1.0 in test is still the 1 of train."""
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {"rooms": rng.integers(1, 6, 3000), "x": rng.normal(size=3000), "target": rng.integers(0, 2, 3000)}
    )
    test = train.sample(n=900, random_state=0).reset_index(drop=True)
    test["rooms"] = test["rooms"].astype("float64")
    test.loc[0, "rooms"] = np.nan
    result = checks.run_suite("train_test", train=train, test=test, label="target", categorical=["rooms"])
    assert result.get("train_test_overlap").values["rows"] >= 898
    assert result.get("new_categories").status == "pass", result.get("new_categories").summary


def test_predictions_in_chunks_equal_one_call() -> None:
    train, test = split(frame("load_breast_cancer"))
    model = fitted(train, 1.0)
    data = checks.Dataset(test, label="target")
    whole = checks.Model(model).predictions(data, chunk=10_000)
    chunked = checks.Model(model).predictions(data, chunk=7)
    np.testing.assert_array_equal(whole.labels, chunked.labels)
    assert whole.proba is not None and chunked.proba is not None
    np.testing.assert_allclose(whole.proba, chunked.proba)
    assert len(chunked.labels) == len(test)


def test_chunked_predictions_keep_every_character_of_longer_later_labels() -> None:
    data = checks.Dataset(pd.DataFrame({"x": np.arange(10), "target": ["a"] * 10}), label="target")

    def grows(features: pd.DataFrame) -> np.ndarray:
        return np.array(["short" if x < 5 else "much longer" for x in features["x"]])

    predictions = checks.Model(grows).predictions(data, chunk=5)
    assert list(predictions.labels) == ["short"] * 5 + ["much longer"] * 5


@pytest.mark.parametrize("extra", [-1, 1])
def test_a_model_returning_the_wrong_number_of_rows_is_named(extra: int) -> None:
    data = checks.Dataset(pd.DataFrame({"x": np.arange(10), "target": [0, 1] * 5}), label="target")
    with pytest.raises(ModelError, match=r"predict returned shape \(\d+,\) for 4 rows"):
        checks.Model(lambda features: np.zeros(len(features) + extra)).predictions(data, chunk=4)


def test_the_trivial_model_guesses_the_majority_class_of_a_float_label() -> None:
    """A label read as 0.0/1.0 is the class 1 the model predicts: the trivial model must guess it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    y = (x > -1).astype(np.float64)  # about 84% ones
    data = pd.DataFrame({"x": x, "target": y})
    train, test = data.iloc[:1500], data.iloc[1500:].reset_index(drop=True)
    model = LogisticRegression().fit(train[["x"]], train["target"].astype(int))
    result = checks.run_suite("model_evaluation", train=train, test=test, model=model, label="target")
    baseline = result.get("baseline")
    assert baseline.details["trivial_model"] == "always '1'"
    assert baseline.values["trivial"] == pytest.approx(float(test["target"].mean()))


def test_a_whole_number_label_can_be_declared_numeric_for_regression() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=1000)
    data = pd.DataFrame({"x": x, "target": np.clip(np.round(2 + x), 0, 4).astype(np.float64)})
    assert checks.Dataset(data, label="target").task == "classification"  # five whole numbers: classes
    assert checks.Dataset(data, label="target", numeric=["target"]).task == "regression"
    with pytest.raises(UsageError, match="column 'target' is declared both categorical and numeric"):
        checks.Dataset(data, label="target", categorical=["target"], numeric=["target"])
    model = Ridge().fit(data[["x"]], data["target"])
    result = checks.run_suite("model_evaluation", test=data, model=model, label="target", numeric=["target"])
    assert "test_r2" in result.get("performance").values
