"""The model registry through its API and the real CLI, on SQLite and on a real PostgreSQL:
versions, lineage, aliases and their history, the promotion policy, safe loading,
concurrency and bad input."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import joblib
import pytest
from sklearn import datasets
from sklearn.linear_model import LogisticRegression

from conftest import Project
from conveyor.config import set_value
from conveyor.errors import CorruptObjectError, ModelError, ObjectMissingError, UsageError
from conveyor.registry import PromotionRefused, Registry, Signature
from conveyor.workspace import Workspace


@pytest.fixture
def repo(project: Project, database_url: str) -> Project:
    """A project whose database is ``database_url`` (SQLite file or throw-away PostgreSQL)."""
    set_value(project.root / ".conveyor", "store.url", database_url, local=True)
    return project


def iris_model(project: Project, name: str = "model.pkl", c: float = 1.0) -> Path:
    data = datasets.load_iris(as_frame=True).frame
    model = LogisticRegression(C=c, max_iter=1000).fit(data.drop(columns="target"), data["target"])
    path = project.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    return path


def open_registry(project: Project) -> Registry:
    return Registry.open(Workspace.find(project.root))


# -- versions ------------------------------------------------------------------------------------


def test_versions_are_numbered_and_carry_their_artifact(repo: Project) -> None:
    iris_model(repo)
    first = repo.ok("model", "register", "iris", "model.pkl", "-d", "baseline", "--tag", "owner=ml")
    assert first.startswith("registered iris:1: model.pkl, sklearn (joblib)")
    iris_model(repo, c=0.1)
    assert repo.ok("model", "register", "iris", "model.pkl").startswith("registered iris:2:")
    shown = json.loads(repo.ok("model", "show", "iris:1", "--json"))
    assert shown["version"] == 1 and shown["description"] == "baseline" and shown["tags"] == {"owner": "ml"}
    assert shown["flavor"] == "sklearn" and shown["format"] == "joblib" and len(shown["artifact_hash"]) == 64
    listed = repo.ok("model", "list")
    assert "iris" in listed and "2" in listed
    with open_registry(repo) as registry:
        assert registry.get("iris").version == 2  # NAME alone: the latest
        assert registry.get("iris:latest").version == 2
        loaded = registry.load("iris:1")
        assert type(loaded).__name__ == "LogisticRegression"
        assert registry.model("iris").versions == 2


def test_objects_are_saved_as_skops_and_load_without_unpickling(repo: Project) -> None:
    data = datasets.load_iris(as_frame=True).frame
    model = LogisticRegression(max_iter=1000).fit(data.drop(columns="target"), data["target"])
    with open_registry(repo) as registry:
        version = registry.register("iris", model=model, signature=Signature.infer(data, label="target"))
        assert (version.flavor, version.format, version.artifact_name) == ("sklearn", "skops", "model.skops")
        assert version.signature is not None and version.signature.outputs[0].classes == (0, 1, 2)
        again = registry.load(version)
    assert (again.predict(data.drop(columns="target")) == model.predict(data.drop(columns="target"))).all()


def test_a_generic_python_callable_is_the_python_flavor(repo: Project) -> None:
    joblib.dump({"weights": [1, 2, 3]}, repo.root / "thing.joblib")
    assert "python (joblib)" in repo.ok("model", "register", "thing", "thing.joblib")


PIPELINE = f"""\
stages:
  prepare:
    cmd: {sys.executable} prepare.py
    deps: [prepare.py, raw.csv]
    outs: [data/train.csv]
  train:
    cmd: {sys.executable} train.py
    deps: [train.py, data/train.csv]
    params: [train.c]
    outs: [models/model.pkl]
    metrics: [metrics.json]
"""
PREPARE = """\
import shutil, os
os.makedirs("data", exist_ok=True)
shutil.copy("raw.csv", "data/train.csv")
"""
TRAIN = """\
import json, os, joblib, pandas as pd, yaml
from sklearn.linear_model import LogisticRegression
c = yaml.safe_load(open("params.yaml"))["train"]["c"]
data = pd.read_csv("data/train.csv")
model = LogisticRegression(C=c, max_iter=1000).fit(data.drop(columns="target"), data["target"])
os.makedirs("models", exist_ok=True)
joblib.dump(model, "models/model.pkl")
json.dump({"accuracy": model.score(data.drop(columns="target"), data["target"])}, open("metrics.json", "w"))
"""


def pipeline_project(project: Project) -> None:
    datasets.load_iris(as_frame=True).frame.to_csv(project.root / "raw.csv", index=False)
    project.write("conveyor.yaml", PIPELINE)
    project.write("prepare.py", PREPARE)
    project.write("train.py", TRAIN)
    project.write("params.yaml", "train:\n  c: 1.0\n")
    result = project.run("run")
    assert result.code == 0, result


def test_lineage_comes_from_the_run_that_made_the_artifact(repo: Project) -> None:
    pipeline_project(repo)
    out = repo.ok("model", "register", "iris", "models/model.pkl")
    assert "from run" in out and "(stage train)" in out
    version = json.loads(repo.ok("model", "show", "iris:1", "--json"))
    lineage = version["lineage"]
    assert lineage["stage"] == "train"
    assert set(lineage["deps"]) == {"train.py", "data/train.csv"}
    assert set(lineage["upstream"]) == {"prepare.py", "raw.csv"}  # through the prepare stage
    assert lineage["params"]["train.c"] == 1.0
    assert lineage["metrics"]["metrics.json:accuracy"] > 0.9
    assert version["git_commit"] == repo.git("rev-parse", "HEAD").strip()
    # the same through --from-run: the artifact comes from the cache, not the workspace file
    (repo.root / "models" / "model.pkl").unlink()
    second = json.loads(
        repo.ok("model", "register", "iris", "--from-run", "latest", "--out", "models/model.pkl", "--json")
    )
    assert second["artifact_hash"] == version["artifact_hash"] and second["run_id"] == version["run_id"]
    shown = repo.ok("model", "show", "iris:2")
    assert "stage train" in shown and "raw.csv" in shown


def test_a_run_output_that_does_not_exist_is_named(repo: Project) -> None:
    pipeline_project(repo)
    result = repo.cvy("model", "register", "iris", "--from-run", "latest", "--out", "models/modle.pkl")
    assert result.code == 2 and "has no output 'models/modle.pkl'" in result.err
    assert "did you mean 'models/model.pkl'" in result.err


# -- aliases and history -------------------------------------------------------------------------


def test_promote_rollback_and_history_answer_what_was_production_when(repo: Project) -> None:
    for c in (1.0, 0.5, 0.2):
        iris_model(repo, c=c)
        repo.ok("model", "register", "iris", "model.pkl")
    repo.ok("model", "promote", "iris", "1", "--to", "production", "--reason", "first release")
    time.sleep(0.02)
    between = time.time()
    time.sleep(0.02)
    assert repo.ok("model", "promote", "iris", "2", "--to", "production") == "production: iris:1 -> iris:2\n"
    repo.ok("model", "promote", "iris", "3", "--to", "production")
    assert repo.ok("model", "rollback", "iris", "--alias", "production", "--reason", "errors") == (
        "production: iris:3 -> iris:2\n"
    )
    assert repo.ok("model", "rollback", "iris", "--alias", "production") == "production: iris:2 -> iris:1\n"
    again = repo.cvy("model", "rollback", "iris", "--alias", "production")
    assert again.code == 2 and "has no earlier version to roll back to" in again.err
    same = repo.cvy("model", "promote", "iris", "1", "--to", "production")
    assert same.code == 2 and "already points at iris:1" in same.err
    history = json.loads(repo.ok("model", "history", "iris", "--json"))
    assert [(m["action"], m["from_version"], m["to_version"]) for m in history] == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("promote", 2, 3),
        ("rollback", 3, 2),
        ("rollback", 2, 1),
    ]
    assert history[0]["reason"] == "first release" and history[3]["reason"] == "errors"
    assert all(m["actor"] for m in history)
    with open_registry(repo) as registry:
        assert registry.alias_at("iris", "production", between) == 1
        assert registry.alias_at("iris", "production", history[2]["at"]) == 3
        assert registry.alias_at("iris", "production", history[0]["at"] - 1) is None
        assert registry.get("iris@production").version == 1
    at = json.loads(repo.ok("model", "history", "iris", "--at", "now", "--json"))
    assert at["aliases"] == {"production": 1}
    table = repo.ok("model", "history", "iris")
    assert "rollback" in table and "first release" in table


def test_tags_descriptions_and_several_aliases(repo: Project) -> None:
    iris_model(repo)
    repo.ok("model", "register", "iris", "model.pkl")
    repo.ok("model", "tag", "iris", "team=vision", "tier=1")
    repo.ok("model", "tag", "iris:1", "reviewed=yes")
    repo.ok("model", "tag", "iris", "--delete", "tier")
    repo.ok("model", "describe", "iris", "Classifies irises")
    repo.ok("model", "describe", "iris:1", "the first one")
    repo.ok("model", "promote", "iris", "1", "--to", "staging")
    repo.ok("model", "promote", "iris", "1", "--to", "champion")
    with open_registry(repo) as registry:
        info = registry.model("iris")
        assert info.tags == {"team": "vision"} and info.description == "Classifies irises"
        assert info.aliases == {"champion": 1, "staging": 1}
        version = registry.get("iris@staging")
        assert version.tags == {"reviewed": "yes"} and version.description == "the first one"
        assert version.aliases == ("champion", "staging")
        assert registry.versions("iris") == [version]  # the listing's batched lookups agree with get()


# -- the promotion policy ------------------------------------------------------------------------

POLICY = """\
registry:
  aliases:
    production:
      requires: [model_evaluation]
"""


def test_the_policy_refuses_a_version_without_its_checks_until_they_pass(repo: Project) -> None:
    data = datasets.load_iris(as_frame=True).frame.sample(frac=1.0, random_state=0)
    data.iloc[:100].to_csv(repo.root / "train.csv", index=False)
    data.iloc[100:].to_csv(repo.root / "test.csv", index=False)
    repo.write("conveyor.yaml", POLICY)
    iris_model(repo)
    repo.ok("model", "register", "iris", "model.pkl")
    refused = repo.cvy("model", "promote", "iris", "1", "--to", "production")
    assert refused.code == 1, refused
    assert "iris:1 cannot become 'production': no result of model_evaluation" in refused.err
    assert "Traceback" not in refused.err
    staging = repo.cvy("model", "promote", "iris", "1", "--to", "staging")  # no rule for staging
    assert staging.code == 0, staging
    check = repo.cvy(
        "check",
        "model_evaluation",
        "--model",
        "iris:1",
        "--train",
        "train.csv",
        "--test",
        "test.csv",
        "--label",
        "target",
    )
    assert check.code == 0, check
    shown = repo.ok("model", "show", "iris:1")
    assert "model_evaluation: passed" in shown and "on the model" in shown
    assert "model_evaluation ok" in repo.ok("model", "show", "iris")  # the versions table
    assert repo.ok("model", "promote", "iris", "1", "--to", "production") == "production: nothing -> iris:1\n"


def test_a_failed_check_refuses_and_force_needs_a_reason_that_history_keeps(repo: Project) -> None:
    data = datasets.load_iris(as_frame=True).frame
    data.to_csv(repo.root / "test.csv", index=False)
    repo.write("conveyor.yaml", POLICY)
    # a model that always says 0: no better than the trivial model, so the baseline check fails
    from sklearn.dummy import DummyClassifier

    joblib.dump(
        DummyClassifier(strategy="constant", constant=0).fit(data[["sepal length (cm)"]], data["target"]),
        repo.root / "bad.pkl",
    )
    repo.ok("model", "register", "iris", "bad.pkl")
    check = repo.cvy("check", "model_evaluation", "--model", "iris:1", "--test", "test.csv", "--label", "target")
    assert check.code == 1, check
    refused = repo.cvy("model", "promote", "iris", "1", "--to", "production")
    assert refused.code == 1 and "model_evaluation did not pass" in refused.err
    no_reason = repo.cvy("model", "promote", "iris", "1", "--to", "production", "--force")
    assert no_reason.code == 2 and "--force needs --reason" in no_reason.err
    forced = repo.ok("model", "promote", "iris", "1", "--to", "production", "--force", "--reason", "incident 42")
    assert forced == "production: nothing -> iris:1 (forced past the policy)\n"
    history = json.loads(repo.ok("model", "history", "iris", "--json"))
    assert history[-1]["forced"] is True and history[-1]["reason"] == "incident 42"
    assert history[-1]["policy"]["failed"] == ["model_evaluation"] and history[-1]["policy"]["overridden"] is True


def test_a_bad_policy_is_reported_at_its_line(repo: Project) -> None:
    iris_model(repo)
    repo.ok("model", "register", "iris", "model.pkl")
    repo.write("conveyor.yaml", "registry:\n  aliases:\n    production:\n      require: [x]\n")
    result = repo.cvy("model", "promote", "iris", "1", "--to", "production")
    assert result.code == 2 and "conveyor.yaml:4:7: unknown field 'require'" in result.err, result


def test_check_stages_record_their_results_for_the_versions_they_concern(repo: Project) -> None:
    pipeline_project(repo)
    repo.write(
        "conveyor.yaml",
        PIPELINE
        + textwrap.dedent(
            """\
              data_checks:
                check:
                  suite: data_integrity
                  data: data/train.csv
                  label: target
              model_checks:
                check:
                  suite: model_evaluation
                  model: models/model.pkl
                  test: data/train.csv
                  label: target
            registry:
              aliases:
                production:
                  requires: [data_integrity, model_checks]
            """
        ),
    )
    result = repo.run("run")
    assert result.code == 0, result
    repo.ok("model", "register", "iris", "models/model.pkl")
    version = json.loads(repo.ok("model", "show", "iris:1", "--json"))
    found = {(c["suite"], c["stage"], c["on"], c["passed"]) for c in version["checks"]}
    assert ("data_integrity", "data_checks", "data", True) in found  # on data/train.csv, in its lineage
    assert ("model_evaluation", "model_checks", "model", True) in found
    assert all(c["run_id"] for c in version["checks"])  # the run the check stages ran in
    assert repo.ok("model", "promote", "iris", "1", "--to", "production") == "production: nothing -> iris:1\n"


# -- safe loading --------------------------------------------------------------------------------


def test_an_artifact_is_verified_before_it_is_loaded(repo: Project) -> None:
    iris_model(repo)
    repo.ok("model", "register", "iris", "model.pkl")
    with open_registry(repo) as registry:
        version = registry.get("iris:1")
        cached = Path(registry.artifact_path(version))
        os.chmod(cached, 0o644)
        cached.write_bytes(cached.read_bytes()[:-10] + b"0123456789")
        with pytest.raises(CorruptObjectError, match="does not match its recorded hash"):
            registry.load("iris:1")
        cached.unlink()
        with pytest.raises(ObjectMissingError, match="is not in the cache") as missing:
            registry.load("iris:1")
        assert "conveyor pull" in (missing.value.hint or "")


def test_a_skops_file_with_types_nobody_accepted_does_not_load_unpinned(project: Project) -> None:
    from conveyor.registry import _flavors

    skops_io = pytest.importorskip("skops.io")
    from sklearn.preprocessing import FunctionTransformer

    path = project.root / "custom.skops"
    skops_io.dump(FunctionTransformer(func=textwrap.dedent), path)
    detected = _flavors.detect(path)
    assert detected.format == "skops" and detected.loader["trusted_types"]  # textwrap.dedent is not a safe type
    with pytest.raises(ModelError, match="cannot load the skops file"):
        _flavors.load(path, detected, pinned=False)
    assert _flavors.load(path, detected, pinned=True).func is textwrap.dedent


def test_registered_artifacts_survive_gc(repo: Project) -> None:
    iris_model(repo)
    repo.ok("model", "register", "iris", "model.pkl")
    (repo.root / "model.pkl").unlink()
    assert "removed 0 objects" in repo.ok("gc", "--no-run-cache") or "0 objects" in repo.ok("gc", "-n")
    with open_registry(repo) as registry:
        assert type(registry.load("iris:1")).__name__ == "LogisticRegression"


# -- concurrency ---------------------------------------------------------------------------------

_REGISTER = """
import sys
from conveyor.registry import Registry
from conveyor.workspace import Workspace
with Registry.open(Workspace.find(sys.argv[1])) as registry:
    for _ in range(int(sys.argv[2])):
        print(registry.register("race", sys.argv[3]).version, flush=True)
"""

_PROMOTE = """
import sys
from conveyor.registry import Registry
from conveyor.workspace import Workspace
with Registry.open(Workspace.find(sys.argv[1])) as registry:
    for i in range(int(sys.argv[2])):
        version = 1 + (i + int(sys.argv[3])) % 3
        try:
            registry.promote(f"race:{version}", to="production")
        except Exception as exc:
            if "already points" not in str(exc):
                raise
"""


def test_concurrent_processes_never_share_a_version_and_keep_the_history_whole(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two workspaces (two machines of a team) share one database and race on it."""
    projects = []
    for name in ("a", "b"):
        root = tmp_path / name
        root.mkdir()
        subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
        project = Project(root, capsys)
        project.ok("init")
        set_value(root / ".conveyor", "store.url", database_url, local=True)
        iris_model(project, c=1.0 if name == "a" else 0.5)
        projects.append(project)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _REGISTER, str(p.root), "6", str(p.root / "model.pkl")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for p in projects
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    numbers = sorted(int(n) for out, _err in outputs for n in out.split())
    assert numbers == list(range(1, 13))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PROMOTE, str(p.root), "8", str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i, p in enumerate(projects)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    with open_registry(projects[0]) as registry:
        history = registry.history("race", alias="production")
        current = registry.get("race@production").version
    assert history and history[0].from_version is None
    for before, after in itertools.pairwise(history):
        assert after.from_version == before.to_version  # no move lost or interleaved
    assert history[-1].to_version == current


# -- bad input -----------------------------------------------------------------------------------


def test_unknown_models_versions_and_aliases_are_one_line_errors(repo: Project) -> None:
    iris_model(repo)
    repo.ok("model", "register", "iris", "model.pkl")
    for args, message in [
        (("model", "show", "irsi"), "no model 'irsi' in the registry; did you mean 'iris'?"),
        (("model", "show", "iris:7"), "model 'iris' has no version 7; its versions are 1 to 1"),
        (("model", "show", "iris@production"), "model 'iris' has no alias 'production'"),
        (("model", "promote", "iris", "x", "--to", "production"), "bad model version 'x'"),
        (("model", "register", "bad name", "model.pkl"), "bad model name 'bad name'"),
        (("model", "register", "iris", "nope.pkl"), "nope.pkl: no such model file"),
    ]:
        result = repo.cvy(*args)
        assert result.code != 0 and message in result.err, (args, result)
        assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_a_file_that_is_no_model_is_refused_and_nothing_is_registered(repo: Project) -> None:
    repo.write("notes.txt", "hello")
    result = repo.cvy("model", "register", "iris", "notes.txt")
    assert result.code == 65 and "notes.txt: not a model file conveyor can read" in result.err
    assert "No models registered yet" in repo.ok("model", "list")


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("mysql://u@localhost/db", 2, "'mysql' is not supported"),
        ("not a url at all", 2, "is not a database URL"),
        ("postgresql://nobody:secret@127.0.0.1:1/none", 74, "cannot"),
    ],
)
def test_a_wrong_or_unreachable_database_is_one_line(project: Project, url: str, code: int, message: str) -> None:
    result = project.run("model", "list", env={"CONVEYOR_DB": url})
    assert result.code == code, result
    assert message in result.err and "secret" not in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_a_password_in_the_committed_config_is_refused(project: Project) -> None:
    project.write(".conveyor/config", "store:\n  url: postgresql://me:hunter2@db/registry\n")
    result = project.cvy("model", "list")
    assert result.code == 2 and "holds a password in the committed config" in result.err


def test_a_signature_names_the_column_that_does_not_fit() -> None:
    import pandas as pd

    data = datasets.load_iris(as_frame=True).frame
    signature = Signature.infer(data, label="target")
    signature.validate(data.drop(columns="target"))
    with pytest.raises(Exception, match="column 'petal width \\(cm\\)' is missing"):
        signature.validate(data.drop(columns=["target", "petal width (cm)"]))
    bad = data.drop(columns="target").astype({"sepal length (cm)": str})
    bad.loc[3, "sepal length (cm)"] = "tall"
    with pytest.raises(Exception, match="column 'sepal length \\(cm\\)' should be double: got text such as 'tall'"):
        signature.validate(bad)
    assert Signature.from_json(json.loads(json.dumps(signature.to_json()))) == signature
    with pytest.raises(Exception, match="label column 'species' is not in the data"):
        Signature.infer(pd.DataFrame({"a": [1]}), label="species")


def test_register_needs_a_workspace_for_artifacts(database_url: str) -> None:
    from conveyor.store._db import Database

    with Database(database_url) as db, pytest.raises(UsageError, match="without a workspace"):
        Registry(db).register("iris", "model.pkl")


def test_promotion_refused_is_exit_code_one() -> None:
    assert PromotionRefused("x").exit_code == 1


def test_data_that_does_not_fit_a_versions_signature_is_refused_before_any_check(repo: Project) -> None:
    data = datasets.load_iris(as_frame=True).frame
    data.to_csv(repo.root / "train.csv", index=False)
    data.drop(columns="petal width (cm)").to_csv(repo.root / "short.csv", index=False)
    iris_model(repo)
    repo.ok("model", "register", "iris", "model.pkl", "--signature-from", "train.csv", "--label", "target")
    shown = repo.ok("model", "show", "iris:1")
    assert "signature: (sepal length (cm): double" in shown and "-> (target: long)" in shown
    result = repo.cvy("check", "model_evaluation", "--model", "iris:1", "--test", "short.csv", "--label", "target")
    assert result.code == 65, result
    assert "short.csv (for the model iris:1): column 'petal width (cm)' is missing" in result.err
    assert len(result.err.strip().splitlines()) == 1
    fits = repo.cvy("check", "model_evaluation", "--model", "iris@missing", "--test", "train.csv", "--label", "target")
    assert fits.code == 2 and "model 'iris' has no alias 'missing'" in fits.err


def test_registered_artifacts_travel_with_push_and_fetch(repo: Project, tmp_path: Path) -> None:
    iris_model(repo)
    repo.ok("model", "register", "iris", "model.pkl")
    (repo.root / "model.pkl").unlink()
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"), "--default")
    repo.ok("push")  # the artifact goes with it: nothing else in this workspace names it
    for path in repo.cache_objects():
        os.chmod(path, 0o644)
        path.unlink()
    with open_registry(repo) as registry, pytest.raises(ObjectMissingError):
        registry.load("iris:1")
    repo.ok("fetch")
    with open_registry(repo) as registry:
        assert type(registry.load("iris:1")).__name__ == "LogisticRegression"


def test_a_champion_from_the_registry_gates_a_challenger_file(repo: Project) -> None:
    data = datasets.load_iris(as_frame=True).frame
    data.to_csv(repo.root / "test.csv", index=False)
    iris_model(repo)
    repo.ok("model", "register", "iris", "model.pkl")
    repo.ok("model", "promote", "iris", "1", "--to", "production")
    iris_model(repo, name="candidate.pkl", c=0.0005)  # heavily regularised: clearly worse
    result = repo.cvy(
        "check", "champion_challenger", "--model", "candidate.pkl", "--champion", "iris@production",
        "--test", "test.csv", "--label", "target", "--trust", "--json",
    )  # fmt: skip
    assert result.code == 1, result
    report = json.loads(result.out)
    assert report["inputs"]["champion"] == "iris:1" and report["checks"][0]["status"] == "fail"


def test_a_lightgbm_model_file_registers_loads_and_is_checked(repo: Project) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    data = datasets.load_breast_cancer(as_frame=True).frame
    features = data.drop(columns="target")
    booster = lightgbm.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 7}, lightgbm.Dataset(features, data["target"]), 20
    )
    booster.save_model(str(repo.root / "model.txt"))
    assert "lightgbm (lightgbm-text)" in repo.ok("model", "register", "cancer", "model.txt")
    with open_registry(repo) as registry:
        loaded = registry.load("cancer:1")
    assert ((loaded.predict(features) > 0.5) == (booster.predict(features) > 0.5)).all()


def test_an_onnx_model_registers_and_gates_like_any_other(repo: Project) -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    data = datasets.load_iris(as_frame=True).frame
    features = data.drop(columns="target")
    model = LogisticRegression(max_iter=1000).fit(features, data["target"])
    onnx_model = skl2onnx.convert_sklearn(
        model, initial_types=[("input", FloatTensorType([None, 4]))], options={id(model): {"zipmap": False}}
    )
    (repo.root / "model.onnx").write_bytes(onnx_model.SerializeToString())
    data.to_csv(repo.root / "test.csv", index=False)
    assert "onnx (onnx)" in repo.ok("model", "register", "iris", "model.onnx")
    with open_registry(repo) as registry:
        loaded = registry.load("iris:1")
    assert (loaded.predict(features) == model.predict(features)).all()
    check = repo.cvy(
        "check", "model_evaluation", "--model", "iris:1", "--test", "test.csv", "--label", "target", "--json"
    )
    assert check.code == 0, check
    values = json.loads(check.out)["checks"][0]["values"]
    assert values["test_accuracy"] > 0.9 and "test_roc_auc" in values  # probabilities came through


# -- found by review -----------------------------------------------------------------------------


def test_a_strict_gate_that_fails_on_a_warning_is_recorded_as_failed(repo: Project) -> None:
    data = datasets.load_iris(as_frame=True).frame
    data.to_csv(repo.root / "test.csv", index=False)
    repo.write("conveyor.yaml", POLICY.replace("[model_evaluation]", "[strict]"))  # the suite file's name
    iris_model(repo)
    repo.ok("model", "register", "iris", "model.pkl")
    args = ["check", "model_evaluation", "--model", "iris:1", "--test", "test.csv", "--label", "target"]
    suite = repo.root / "strict.yaml"
    suite.write_text("suite: model_evaluation\nconditions:\n  inference_time:\n    max_ms_per_row: {warn: 0}\n")
    strict = repo.cvy("check", str(suite), *args[2:], "--strict")
    assert strict.code == 1, strict
    refused = repo.cvy("model", "promote", "iris", "1", "--to", "production")
    assert refused.code == 1 and "did not pass" in refused.err, refused


def test_a_model_suite_run_without_a_model_counts_for_no_version(repo: Project) -> None:
    data = datasets.load_iris(as_frame=True).frame
    data.to_csv(repo.root / "test.csv", index=False)
    repo.write("conveyor.yaml", POLICY)
    pipeline_free = iris_model(repo)
    repo.ok("model", "register", "iris", str(pipeline_free.name))
    skipped = repo.cvy("check", "model_evaluation", "--test", "test.csv", "--label", "target")
    assert skipped.code == 0, skipped  # every check skipped: nothing failed
    refused = repo.cvy("model", "promote", "iris", "1", "--to", "production")
    assert refused.code == 1 and "no result of model_evaluation" in refused.err, refused


def test_from_run_refuses_a_file_the_run_did_not_produce(repo: Project) -> None:
    pipeline_project(repo)
    iris_model(repo, name="other.pkl", c=0.3)
    result = repo.cvy("model", "register", "iris", "other.pkl", "--from-run", "latest")
    assert result.code == 2 and "did not produce this file" in result.err, result


def test_a_workspace_whose_path_looks_like_url_escapes_keeps_its_database_and_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "p%41q"
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    project = Project(root, capsys)
    project.ok("init")
    iris_model(project)
    project.ok("model", "register", "m", "model.pkl")
    assert (root / ".conveyor" / "store" / "conveyor.db").is_file()
    assert not (tmp_path / "pAq").exists()
    (root / "model.pkl").unlink()
    project.ok("gc")
    with open_registry(project) as registry:
        assert type(registry.load("m:1")).__name__ == "LogisticRegression"


def test_a_push_from_a_workspace_without_another_ones_models_succeeds(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    projects = []
    for name in ("a", "b"):
        root = tmp_path / name
        root.mkdir()
        subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
        project = Project(root, capsys)
        project.ok("init")
        set_value(root / ".conveyor", "store.url", database_url, local=True)
        project.ok("remote", "add", "origin", str(tmp_path / "remote"), "--default")
        projects.append(project)
    iris_model(projects[0])
    projects[0].ok("model", "register", "iris", "model.pkl")
    projects[1].write("data.txt", "hello")
    projects[1].ok("add", "data.txt")
    projects[1].ok("push")  # the model registered in a is not b's to send
    projects[1].ok("fetch")  # nor missing: a has not pushed it yet
    projects[0].ok("push")
    projects[1].ok("fetch")
    with open_registry(projects[1]) as registry:
        assert type(registry.load("iris:1")).__name__ == "LogisticRegression"  # now it travelled


def test_passwords_stay_out_of_the_committed_config_and_of_messages(project: Project) -> None:
    committed = project.cvy("config", "store.url", "postgresql://u:secret@h/db")
    assert committed.code == 2 and "must not go into the committed config" in committed.err
    query = project.run("model", "list", env={"CONVEYOR_DB": "postgresql://u@127.0.0.1:1/db?password=topsecret"})
    assert query.code == 74 and "topsecret" not in query.err, query


def test_odd_references_times_and_paths_are_one_line_errors(repo: Project, tmp_path: Path) -> None:
    iris_model(repo)
    repo.ok("model", "register", "iris", "model.pkl")
    for args, message in [
        (("model", "show", "iris:²"), "bad model version"),
        (("model", "show", "iris:99999999999999999999"), "bad model version"),
        (("model", "history", "iris", "--at", "0001-01-01"), "is not a time"),
        (("model", "history", "iris", "--at", "yesterday"), "is not a time"),
    ]:
        result = repo.cvy(*args)
        assert result.code == 2 and message in result.err, (args, result)
        assert len(result.err.strip().splitlines()) == 1
    outside = iris_model(Project(tmp_path, None), name="elsewhere.pkl")  # type: ignore[arg-type]
    shown = json.loads(repo.ok("model", "register", "iris", str(outside), "--json"))
    assert shown["source"] == str(outside)


def test_a_challenger_counts_only_against_the_champion_the_alias_serves(repo: Project) -> None:
    from sklearn.dummy import DummyClassifier

    data = datasets.load_iris(as_frame=True).frame
    data.to_csv(repo.root / "test.csv", index=False)
    repo.write("conveyor.yaml", POLICY.replace("[model_evaluation]", "[champion_challenger]"))
    iris_model(repo)
    repo.ok("model", "register", "iris", "model.pkl")  # 1: good
    joblib.dump(
        DummyClassifier(strategy="most_frequent").fit(data.drop(columns="target"), data["target"]),
        repo.root / "dummy.pkl",
    )
    repo.ok("model", "register", "iris", "dummy.pkl")  # 2: a weak reference anyone could beat
    repo.ok("model", "promote", "iris", "1", "--to", "production", "--force", "--reason", "bootstrap")
    features = data.drop(columns="target")
    joblib.dump(LogisticRegression(max_iter=1001).fit(features, data["target"]), repo.root / "candidate.pkl")
    repo.ok("model", "register", "iris", "candidate.pkl")  # 3: as good as 1, other bytes
    args = ["check", "champion_challenger", "--model", "iris:3", "--test", "test.csv", "--label", "target"]
    assert repo.cvy(*args, "--champion", "iris:2").code == 0  # beats the dummy, says nothing of production
    refused = repo.cvy("model", "promote", "iris", "3", "--to", "production")
    assert refused.code == 1 and "no result of champion_challenger" in refused.err, refused
    assert repo.cvy(*args, "--champion", "iris@production").code == 0
    assert repo.ok("model", "promote", "iris", "3", "--to", "production") == "production: iris:1 -> iris:3\n"


def test_config_lists_remotes_and_never_prints_a_database_password(project: Project) -> None:
    project.ok("remote", "add", "origin", "/tmp/somewhere")
    project.ok("config", "store.url", "postgresql://u:hunter2@db/registry?password=also", "--local")
    listed = project.ok("config")
    assert "remote.origin.url = /tmp/somewhere" in listed and "store.url = postgresql://u:***@db" in listed
    assert "hunter2" not in listed and "also" not in listed
    assert "hunter2" not in project.ok("config", "--json") and "hunter2" not in project.ok("config", "store.url")
