"""``conveyor check`` and ``conveyor schema`` through the real CLI, and check stages in a real
pipeline: a failing condition stops ``conveyor run`` and leaves the report."""

from __future__ import annotations

import json
import sys
import textwrap

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn import datasets
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conftest import Project


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


@pytest.fixture(name="wine")
def fixture_wine(project: Project) -> Project:
    """The wine data as train.csv and test.csv, and a fitted model in model.pkl."""
    data = datasets.load_wine(as_frame=True).frame
    train, test = train_test_split(data, test_size=0.3, random_state=0, stratify=data["target"])
    train.to_csv(project.root / "train.csv", index=False)
    test.to_csv(project.root / "test.csv", index=False)
    features = [c for c in data.columns if c != "target"]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train[features], train["target"])
    joblib.dump(model, project.root / "model.pkl")
    worse = make_pipeline(StandardScaler(), LogisticRegression(C=0.0005, max_iter=2000)).fit(
        train[features], train["target"]
    )
    joblib.dump(worse, project.root / "worse.pkl")
    return project


def test_schema_then_a_passing_gate_then_a_failing_one(wine: Project) -> None:
    out = wine.ok("schema", "train.csv", "-o", "checks/schema.yaml", "--label", "target")
    assert "wrote checks/schema.yaml" in out
    passing = wine.cvy(
        "check", "data_integrity", "--data", "train.csv", "--label", "target", "--schema", "checks/schema.yaml"
    )
    assert passing.code == 0, passing
    assert "check data_integrity: passed" in passing.out
    bad = pd.read_csv(wine.root / "train.csv")
    bad.loc[0, "alcohol"] = 99.0
    bad = pd.concat([bad, bad.iloc[:20]], ignore_index=True)
    bad.to_csv(wine.root / "bad.csv", index=False)
    failing = wine.cvy(
        "check",
        "data_integrity",
        "--data",
        "bad.csv",
        "--label",
        "target",
        "--schema",
        "checks/schema.yaml",
        "--reports",
        "rep",
    )
    assert failing.code == 1, failing
    assert "FAIL  Schema:" in failing.out and "alcohol" in failing.out
    assert "FAIL  Duplicate rows:" in failing.out
    assert "check data_integrity: FAILED" in failing.out
    assert (wine.root / "rep" / "data_integrity.html").is_file()
    report = json.loads((wine.root / "rep" / "data_integrity.json").read_text())
    assert report["passed"] is False


def test_model_evaluation_and_champion_challenger_from_model_files(wine: Project) -> None:
    args = ["check", "model_evaluation", "--train", "train.csv", "--test", "test.csv", "--model", "model.pkl"]
    refused = wine.cvy(*args, "--label", "target")
    assert refused.code == 65, refused
    assert "model.pkl: a joblib file runs code when loaded, and nothing vouches for it" in refused.err
    assert "--trust" in refused.err
    no_traceback(refused.err)
    result = wine.cvy(*args, "--label", "target", "--trust")
    assert result.code == 0, result
    assert "Model performance: test accuracy" in result.out
    gate = wine.cvy(
        "check",
        "champion_challenger",
        "--test",
        "test.csv",
        "--model",
        "worse.pkl",
        "--champion",
        "model.pkl",
        "--label",
        "target",
        "--json",
        "--trust",
    )
    assert gate.code == 1, gate
    report = json.loads(gate.out)
    check = report["checks"][0]
    assert check["status"] == "fail" and check["values"]["gain"] < 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--data", "train.csv", "--label", "species"], 65, "train.csv: label column 'species' is not in the data"),
        (["--data", "nope.csv", "--label", "target"], 66, "nope.csv: no such data file"),
        (["--data", "train.csv", "--label", "target", "--schema", "nope.yaml"], 66, "nope.yaml: no such schema file"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(wine: Project, args: list[str], code: int, message: str) -> None:
    result = wine.cvy("check", "data_integrity", *args)
    assert result.code == code, result
    assert message in result.err, result
    no_traceback(result.err)


def test_a_missing_model_file_and_an_unknown_suite_are_named(wine: Project) -> None:
    missing = wine.cvy("check", "model_evaluation", "--test", "test.csv", "--model", "nope.pkl", "--label", "target")
    assert missing.code == 66 and "nope.pkl: no such model file" in missing.err, missing
    unknown = wine.cvy("check", "data_integrety", "--data", "train.csv")
    assert unknown.code == 2 and "did you mean 'data_integrity'" in unknown.err, unknown
    no_traceback(missing.err + unknown.err)


def test_a_whole_number_label_is_regression_when_declared_numeric(project: Project) -> None:
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    x = rng.normal(size=600)
    data = pd.DataFrame({"x": x, "target": np.clip(np.round(2 + x), 0, 4).astype(np.float64)})
    data.to_csv(project.root / "test.csv", index=False)
    joblib.dump(Ridge().fit(data[["x"]], data["target"]), project.root / "ridge.pkl")
    args = ["check", "model_evaluation", "--test", "test.csv", "--model", "ridge.pkl", "--label", "target", "--trust"]
    as_classes = project.cvy(*args, "--json")
    assert as_classes.code == 1, as_classes
    performance = json.loads(as_classes.out)["checks"][0]
    assert performance["status"] == "error"
    assert "is categorical but the model predicts continuous numbers" in performance["summary"]
    as_numbers = project.cvy(*args, "--numeric", "target", "--json")
    performance = json.loads(as_numbers.out)["checks"][0]
    assert performance["status"] == "pass" and performance["values"]["test_r2"] > 0.5, as_numbers


def test_a_custom_suite_file_tightens_a_condition(wine: Project) -> None:
    wine.write(
        "gate.yaml",
        textwrap.dedent(
            """\
            suite: train_test
            skip: [label_drift]
            conditions:
              feature_drift:
                max_drifted_share: {fail: 0.0}
            """
        ),
    )
    test = pd.read_csv(wine.root / "test.csv")
    test["alcohol"] = test["alcohol"] + 3
    test.to_csv(wine.root / "shifted.csv", index=False)
    result = wine.cvy("check", "gate.yaml", "--train", "train.csv", "--test", "shifted.csv", "--label", "target")
    assert result.code == 1, result
    assert "FAIL  Feature drift:" in result.out and "alcohol" in result.out
    assert "Label drift" not in result.out


PIPELINE = f"""\
stages:
  prepare:
    cmd: {sys.executable} prepare.py
    deps: [prepare.py]
    outs: [data/train.csv, data/test.csv]
  data_checks:
    check:
      suite: data_integrity
      data: data/train.csv
      label: target
  split_checks:
    check:
      suite:
        suite: train_test
        conditions:
          train_test_overlap:
            max_overlap_share: {{fail: 0.0}}
      train: data/train.csv
      test: data/test.csv
      label: target
"""

PREPARE = """\
import os, sys
import pandas as pd
from sklearn import datasets
from sklearn.model_selection import train_test_split
data = datasets.load_breast_cancer(as_frame=True).frame
train, test = train_test_split(data, test_size=0.3, random_state=0, stratify=data["target"])
if os.environ.get("LEAK") or os.path.exists("leak"):
    test = pd.concat([test, train.iloc[:5]])
os.makedirs("data", exist_ok=True)
train.to_csv("data/train.csv", index=False)
test.to_csv("data/test.csv", index=False)
"""


def test_check_stages_gate_a_pipeline(project: Project) -> None:
    project.write("conveyor.yaml", PIPELINE)
    project.write("prepare.py", PREPARE)
    first = project.run("run")
    assert first.code == 0, first
    assert (project.root / "reports" / "split_checks.html").is_file()
    metrics = json.loads((project.root / "reports" / "data_checks.json").read_text())
    assert metrics["passed"] is True
    shown = project.run("metrics", "show", "--json")
    assert shown.code == 0, shown
    assert "values.duplicate_rows.share" in shown.out, shown.out[:2000]
    again = project.run("run")
    assert again.code == 0 and "ran" not in again.out.replace("didn't run", ""), again
    project.write("leak", "")
    project.write("prepare.py", PREPARE + "\n# leak\n")
    failed = project.run("run")
    assert failed.code != 0, failed
    assert "split_checks" in failed.err + failed.out
    assert "Rows shared by train and test" in failed.out + failed.err
    report = json.loads((project.root / "reports" / "split_checks.json").read_text())
    assert report["passed"] is False


def test_a_bad_check_stage_is_reported_at_its_line(project: Project) -> None:
    project.write(
        "conveyor.yaml",
        textwrap.dedent(
            """\
            stages:
              gate:
                check:
                  suite: {suite: data_integrity, conditions: {missing_values: {max_share: {fail: 0}}}}
                  data: data.csv
            """
        ),
    )
    result = project.cvy("status")
    assert result.code != 0
    assert "conveyor.yaml:4:" in result.err and "no condition 'max_share'" in result.err, result
    no_traceback(result.err)
    project.write("conveyor.yaml", "stages:\n  gate:\n    check:\n      suite: data_integrity\n      dta: x.csv\n")
    typo = project.cvy("status")
    assert "unknown field 'dta'" in typo.err and "did you mean 'data'" in typo.err, typo
    project.write(
        "conveyor.yaml",
        "stages:\n  gate:\n    check:\n      suite: data_integrity\n      data: x.csv\n      numeric: rooms\n",
    )
    scalar = project.cvy("status")
    assert "conveyor.yaml:6:" in scalar.err and "a list of column names" in scalar.err, scalar
    no_traceback(scalar.err)


def test_the_api_runs_inside_a_pytest_test() -> None:
    """The way a team uses it in its own tests: assert on the result, print the Markdown."""
    from conveyor import checks

    data = datasets.load_iris(as_frame=True).frame
    result = checks.run_suite("data_integrity", data=data, label="target")
    assert result.passed, checks.to_markdown(result)
    assert np.isclose(result.get("class_imbalance").values["ratio"], 1.0)


def test_parquet_files_are_read_too(wine: Project) -> None:
    pd.read_csv(wine.root / "train.csv").to_parquet(wine.root / "train.parquet")
    pd.read_csv(wine.root / "test.csv").to_parquet(wine.root / "test.parquet")
    result = wine.cvy("check", "train_test", "--train", "train.parquet", "--test", "test.parquet", "--label", "target")
    assert result.code == 0, result
    assert "Sizes of train and test: 124 train rows, 54 test rows" in result.out
    wine.write("broken.parquet", b"not a parquet file")
    broken = wine.cvy("check", "data_integrity", "--data", "broken.parquet", "--label", "target")
    assert broken.code == 65 and "broken.parquet: cannot read it as a table" in broken.err, broken
    no_traceback(broken.err)
