"""`conveyor import-dvc`: dvc.yaml in, conveyor.yaml out, and a warning for what does not carry over."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.cli._import_dvc import register
from conveyor.errors import ConveyorError, MissingFileError, UsageError
from conveyor.pipeline._import_dvc import DvcFileError, ImportResult, import_dvc, translate
from conveyor.workspace import Workspace

HEADER = "# Imported from dvc.yaml by conveyor import-dvc\n"

# A realistic DVC project: four stages, params in every form, foreach over a list and over
# a mapping, a matrix, vars from a file and inline, metrics, plots, frozen, always_changed.
ML_PIPELINE = """\
vars:
  - config/data.yaml
  - config/models.yaml:models
  - data_dir: data
    report_dir: reports

stages:
  prepare:
    desc: Clean the raw data and split it
    cmd:
      - mkdir -p ${data_dir}/prepared
      - python src/prepare.py ${data_dir}/raw.csv ${data_dir}/prepared
    deps:
      - src/prepare.py
      - ${data_dir}/raw.csv
    params:
      - prepare.split
      - prepare.seed
    outs:
      - ${data_dir}/prepared
    frozen: true

  featurize:
    foreach: ${sources}
    do:
      cmd: python src/featurize.py --source ${item} --out ${data_dir}/features/${item}.parquet
      deps:
        - src/featurize.py
        - ${data_dir}/prepared
      params:
        - featurize
        - config/features.yaml:
            - ngrams
            - max_features
      outs:
        - ${data_dir}/features/${item}.parquet

  train:
    foreach:
      small:
        epochs: 5
        lr: 0.1
      large:
        epochs: 50
        lr: 0.01
    do:
      cmd: python src/train.py --epochs ${item.epochs} --lr ${item.lr} --out models/${key}.pkl
      deps:
        - src/train.py
        - ${data_dir}/features
      params:
        - config/train.yaml:
        - train.batch_size
      outs:
        - models/${key}.pkl
        - checkpoints/${key}:
            persist: true
            cache: false

  evaluate:
    matrix:
      model: [small, large]
      split: [test, valid]
    cmd: python src/evaluate.py models/${item.model}.pkl ${item.split}
    deps:
      - src/evaluate.py
      - models/${item.model}.pkl
    metrics:
      - ${report_dir}/${item.model}-${item.split}.json:
          cache: false
      - ${report_dir}/summary-${item.model}-${item.split}.json
    plots:
      - ${report_dir}/roc-${item.model}-${item.split}.csv:
          x: fpr
          y: tpr
          title: ROC
          x_label: False positive rate
          y_label: True positive rate
          cache: false
    always_changed: true
"""

ML_EXPECTED: dict[str, Any] = {
    "schema": 1,
    "vars": ["config/data.yaml", "config/models.yaml:models", {"data_dir": "data", "report_dir": "reports"}],
    "stages": {
        "prepare": {
            "cmd": "mkdir -p ${data_dir}/prepared && python src/prepare.py ${data_dir}/raw.csv ${data_dir}/prepared",
            "deps": ["src/prepare.py", "${data_dir}/raw.csv"],
            "params": ["prepare.split", "prepare.seed"],
            "outs": ["${data_dir}/prepared"],
            "frozen": True,
        },
        "featurize": {
            "foreach": "${sources}",
            "do": {
                "cmd": "python src/featurize.py --source ${item} --out ${data_dir}/features/${item}.parquet",
                "deps": ["src/featurize.py", "${data_dir}/prepared"],
                "params": ["featurize", {"config/features.yaml": ["ngrams", "max_features"]}],
                "outs": ["${data_dir}/features/${item}.parquet"],
            },
        },
        "train": {
            "foreach": {"small": {"epochs": 5, "lr": 0.1}, "large": {"epochs": 50, "lr": 0.01}},
            "do": {
                "cmd": "python src/train.py --epochs ${item.epochs} --lr ${item.lr} --out models/${key}.pkl",
                "deps": ["src/train.py", "${data_dir}/features"],
                "params": [{"config/train.yaml": None}, "train.batch_size"],
                "outs": ["models/${key}.pkl", {"checkpoints/${key}": {"cache": False, "persist": True}}],
            },
        },
        "evaluate": {
            "matrix": {"model": ["small", "large"], "split": ["test", "valid"]},
            "cmd": "python src/evaluate.py models/${item.model}.pkl ${item.split}",
            "deps": ["src/evaluate.py", "models/${item.model}.pkl"],
            "metrics": [
                "${report_dir}/${item.model}-${item.split}.json",
                # DVC caches metrics unless told otherwise; conveyor does not, so it is said
                {"${report_dir}/summary-${item.model}-${item.split}.json": {"cache": True}},
            ],
            "plots": [
                {
                    "${report_dir}/roc-${item.model}-${item.split}.csv": {
                        "x": "fpr",
                        "y": "tpr",
                        "title": "ROC",
                        "x_label": "False positive rate",
                        "y_label": "True positive rate",
                    }
                }
            ],
            "always_run": True,
        },
    },
}


def convert(text: str, **kwargs: Any) -> tuple[dict[str, Any], ImportResult]:
    result = translate(text, **kwargs)
    loaded = yaml.safe_load(result.text)
    assert isinstance(loaded, dict)
    return loaded, result


def stage_of(text: str, name: str = "s") -> tuple[dict[str, Any], list[str]]:
    loaded, result = convert(text)
    return loaded["stages"][name], result.warnings


def one_warning(warnings: list[str], *needles: str) -> str:
    found = [w for w in warnings if all(n in w for n in needles)]
    assert len(found) == 1, f"expected one warning with {needles}, got {warnings}"
    return found[0]


@pytest.fixture
def dvc_project(tmp_path: Path) -> Path:
    """A DVC project that is also a conveyor workspace (no git needed here)."""
    root = tmp_path / "proj"
    root.mkdir()
    Workspace.init(root, no_scm=True)
    return root


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- the translation ------------------------------------------------------------------------


def test_ml_pipeline_translates_without_warnings() -> None:
    loaded, result = convert(ML_PIPELINE)
    assert loaded == ML_EXPECTED
    assert result.warnings == []
    assert result.stages == 4
    assert result.written is None


def test_output_is_readable_with_a_header_and_the_desc_as_a_comment() -> None:
    result = translate(ML_PIPELINE)
    assert result.text.startswith(HEADER)
    assert "  # Clean the raw data and split it\n  prepare:\n    cmd: mkdir -p" in result.text
    # stable key order: cmd, deps, params, outs, metrics, plots, then the rest
    evaluate = result.text[result.text.index("  evaluate:") :]
    order = [evaluate.index(f"\n    {key}:") for key in ("matrix", "cmd", "deps", "metrics", "plots", "always_run")]
    assert order == sorted(order)
    assert "\n      - src/prepare.py\n" in result.text  # lists indented under their key
    assert "desc" not in yaml.safe_load(result.text)["stages"]["prepare"]


def test_output_loads_with_conveyors_own_pipeline_loader(tmp_path: Path) -> None:
    spec = pytest.importorskip("conveyor.pipeline._spec")
    if not hasattr(spec, "parse_pipeline"):
        pytest.skip("conveyor.pipeline._spec has no parse_pipeline yet")
    write(tmp_path / "params.yaml", "prepare: {split: 0.2, seed: 1}\nfeaturize: {n: 1}\ntrain: {batch_size: 8}\n")
    write(tmp_path / "config/data.yaml", "sources: [web, mobile]\n")
    write(tmp_path / "config/models.yaml", "models: {kinds: [a]}\nother: 1\n")
    result = translate(ML_PIPELINE)
    pipeline = spec.parse_pipeline(result.text, root=tmp_path)
    assert sorted(pipeline.stages) == sorted(
        [
            "prepare",
            "featurize@web",
            "featurize@mobile",
            "train@small",
            "train@large",
            "evaluate@small-test",
            "evaluate@small-valid",
            "evaluate@large-test",
            "evaluate@large-valid",
        ]
    )
    prepare = pipeline.stages["prepare"]
    assert prepare.cmd == "mkdir -p data/prepared && python src/prepare.py data/raw.csv data/prepared"
    assert prepare.frozen
    train = pipeline.stages["train@large"]
    assert train.cmd == "python src/train.py --epochs 50 --lr 0.01 --out models/large.pkl"
    assert ("models/large.pkl", True, False) in {(o.path, o.cache, o.persist) for o in train.outs}
    assert {(p.file, p.keys) for p in train.params} == {
        ("config/train.yaml", None),
        ("params.yaml", ("train.batch_size",)),
    }
    evaluate = pipeline.stages["evaluate@small-test"]
    assert evaluate.always_run
    assert ("reports/small-test.json", "metric", False) in {(o.path, o.kind, o.cache) for o in evaluate.outs}


def test_templated_output_paths_with_options_load(tmp_path: Path) -> None:
    """DVC's own docs write '- ${models.us.filename}: {cache: true}': the key is templated too."""
    spec = pytest.importorskip("conveyor.pipeline._spec")
    text = (
        "vars:\n  - name: m\nstages:\n  s:\n    cmd: x\n    outs:\n      - out/${name}.pkl:\n          persist: true\n"
    )
    pipeline = spec.parse_pipeline(translate(text).text, root=tmp_path)
    assert [(o.path, o.persist) for o in pipeline.stages["s"].outs] == [("out/m.pkl", True)]


@pytest.mark.parametrize(
    ("commands", "joined"),
    [
        (["python a.py"], "python a.py"),
        (["pip install -r requirements.txt", "python train.py"], "pip install -r requirements.txt && python train.py"),
        (["python a.py 2>&1 | tee log", "python b.py"], "python a.py 2>&1 | tee log && python b.py"),
        (["a && b", "c"], "a && b && c"),
        # DVC runs each command in a shell of its own: state and list syntax stay inside
        (["cd src", "python x.py"], "(cd src) && python x.py"),
        (["export SEED=1", "python x.py"], "(export SEED=1) && python x.py"),
        (["A=1", "python x.py"], "(A=1) && python x.py"),
        (["a || b", "c"], "(a || b) && c"),
        (["a; b", "c"], "(a; b) && c"),
        (["a", "b; c"], "a && (b; c)"),
        (["a & b", "c"], "(a & b) && c"),
        (["python x.py # note", "y"], "(python x.py # note\n) && y"),
        (["x", "python y.py # note"], "x && python y.py # note"),
        (["A=1 python x.py", "cd"], "A=1 python x.py && cd"),
    ],
)
def test_a_list_of_commands_becomes_one_chain(commands: list[str], joined: str) -> None:
    stage, warnings = stage_of(json.dumps({"stages": {"s": {"cmd": commands}}}))
    assert stage["cmd"] == joined
    assert warnings == []


def test_params_in_every_dvc_form() -> None:
    text = """\
stages:
  s:
    cmd: x
    params:
      - lr
      - train.epochs
      - other.yaml: [a, b.c]
      - whole.json:
      - empty.toml: []
      - single.yaml: key
      - two.yaml: [x]
        three.yaml:
"""
    stage, warnings = stage_of(text)
    assert stage["params"] == [
        "lr",
        "train.epochs",
        {"other.yaml": ["a", "b.c"]},
        {"whole.json": None},
        {"empty.toml": None},
        {"single.yaml": ["key"]},
        {"two.yaml": ["x"], "three.yaml": None},
    ]
    assert warnings == []


def test_output_options_that_carry_over() -> None:
    text = """\
stages:
  s:
    cmd: x
    outs:
      - plain
      - nocache:
          cache: false
      - kept:
          persist: true
      - cached:
          cache: true
          persist: false
      - empty:
    metrics:
      - m.json
      - m2.json:
          cache: false
      - m3.json:
          persist: true
    plots:
      - p.png
      - p.csv:
          x: epoch
          y: [loss, acc]
          header: true
"""
    stage, warnings = stage_of(text)
    assert stage["outs"] == ["plain", {"nocache": {"cache": False}}, {"kept": {"persist": True}}, "cached", "empty"]
    assert stage["metrics"] == [
        {"m.json": {"cache": True}},
        "m2.json",
        {"m3.json": {"cache": True, "persist": True}},
    ]
    assert stage["plots"] == [
        {"p.png": {"cache": True}},
        {"p.csv": {"cache": True, "x": "epoch", "y": ["loss", "acc"]}},
    ]
    assert warnings == []


def test_wdir_frozen_always_changed_and_templates_in_flags() -> None:
    text = """\
stages:
  s:
    cmd: x
    wdir: sub/dir
    frozen: ${freeze}
    always_changed: false
    outs:
      - o:
          cache: ${cache_outs}
"""
    stage, warnings = stage_of(text)
    assert stage == {"cmd": "x", "outs": [{"o": {"cache": "${cache_outs}"}}], "wdir": "sub/dir", "frozen": "${freeze}"}
    assert warnings == []


def test_desc_and_meta_become_comments_even_on_several_lines() -> None:
    text = """\
stages:
  s:
    desc: |
      Train the model.
      Slow: about an hour.
    meta:
      owner: ml-team
      tags: [a, b]
    foreach: [1]
    do:
      cmd: x
"""
    result = translate(text.replace("    foreach: [1]\n    do:\n      cmd: x\n", "    cmd: x\n"))
    assert "  # Train the model.\n  # Slow: about an hour.\n  # meta:\n  #   owner: ml-team\n" in result.text
    assert yaml.safe_load(result.text)["stages"] == {"s": {"cmd": "x"}}
    assert result.warnings == []


def test_yaml_1_2_scalars_keep_their_dvc_meaning() -> None:
    """dvc.yaml is YAML 1.2: 'no' is a country code, not false, and 010 is ten."""
    text = """\
stages:
  s:
    foreach: [no, yes, on, 010, 0o10, 1e3, 1:20, true, null]
    do:
      cmd: python x.py ${item}
"""
    stage, _ = stage_of(text)
    assert stage["foreach"] == ["no", "yes", "on", 10, 8, 1000.0, "1:20", True, None]


def test_empty_and_stageless_files() -> None:
    loaded, result = convert("")
    assert loaded == {"schema": 1, "stages": {}}
    assert result.stages == 0
    loaded, _ = convert("vars:\n  - a: 1\n")
    assert loaded == {"schema": 1, "vars": [{"a": 1}], "stages": {}}


# -- what does not carry over ---------------------------------------------------------------

OUT_WARNINGS = [
    ("remote: store", "dropped 'remote: store'", {}),
    ("push: false", "dropped 'push: false'", {}),
    ("checkpoint: true", "'checkpoint: true' became 'persist: true'", {"persist": True}),
    ("type: model", "dropped metadata 'type'", {}),
    ("labels: [a, b]", "dropped metadata 'labels'", {}),
    ("meta: {framework: torch}", "dropped metadata 'meta'", {}),
    ("frobnicate: 1", "dropped unknown option 'frobnicate'", {}),
]


@pytest.mark.parametrize(("option", "needle", "options"), OUT_WARNINGS)
def test_output_options_conveyor_lacks_are_reported(option: str, needle: str, options: dict[str, Any]) -> None:
    text = f"stages:\n  s:\n    cmd: x\n    outs:\n      - model.pkl:\n          {option}\n"
    stage, warnings = stage_of(text)
    assert stage["outs"] == [{"model.pkl": options} if options else "model.pkl"]
    warning = one_warning(warnings, needle)
    assert warning.startswith("dvc.yaml:6:11: stage 's', outs 'model.pkl': ")


def test_harmless_defaults_and_desc_are_dropped_silently() -> None:
    text = """\
stages:
  s:
    cmd: x
    outs:
      - model.pkl:
          desc: the model
          push: true
          checkpoint: false
          remote: store
"""
    _, warnings = stage_of(text)
    assert len(warnings) == 1 and "remote" in warnings[0]


def test_plot_template_and_missing_header_are_reported() -> None:
    text = """\
stages:
  s:
    cmd: x
    plots:
      - confusion.csv:
          template: confusion
          x: actual
          y: predicted
          header: false
"""
    stage, warnings = stage_of(text)
    assert stage["plots"] == [{"confusion.csv": {"cache": True, "x": "actual", "y": "predicted"}}]
    one_warning(warnings, "dvc.yaml:6:11", "plots 'confusion.csv'", "dropped 'template: confusion'")
    one_warning(warnings, "dvc.yaml:9:11", "dropped 'header: false'", "header row")
    assert len(warnings) == 2


def test_urls_are_dropped_with_what_to_do() -> None:
    text = """\
stages:
  s:
    cmd: x
    deps:
      - s3://bucket/raw.csv
      - local.csv
    outs:
      - gs://bucket/model.pkl
      - model.pkl
"""
    stage, warnings = stage_of(text)
    assert stage["deps"] == ["local.csv"]
    assert stage["outs"] == ["model.pkl"]
    one_warning(warnings, "dvc.yaml:5:9", "deps 's3://bucket/raw.csv'", "download it")
    one_warning(warnings, "dvc.yaml:8:9", "outs 'gs://bucket/model.pkl'", "inside the workspace")


def test_python_params_files_are_reported() -> None:
    stage, warnings = stage_of("stages:\n  s:\n    cmd: x\n    params:\n      - params.py: [LR]\n")
    assert stage["params"] == [{"params.py": ["LR"]}]
    one_warning(warnings, "dvc.yaml:5:9", "params 'params.py'", "YAML, JSON and TOML")


def test_unknown_and_dvclive_stage_fields_are_reported() -> None:
    text = "stages:\n  s:\n    cmd: x\n    live:\n      logs: {}\n    dpes: [a]\n"
    stage, warnings = stage_of(text)
    assert stage == {"cmd": "x"}
    one_warning(warnings, "dvc.yaml:4:5", "dropped 'live'", "metrics and plots")
    one_warning(warnings, "dvc.yaml:6:5", "dropped unknown field 'dpes'")


def test_a_stage_name_conveyor_refuses_is_reported() -> None:
    _, warnings = stage_of("stages:\n  'my stage':\n    cmd: x\n", name="my stage")
    one_warning(warnings, "dvc.yaml:2:3", "stage 'my stage'", "rename it")


def test_fields_beside_foreach_are_reported() -> None:
    text = "stages:\n  s:\n    foreach: [a]\n    deps: [x]\n    do:\n      cmd: echo ${item}\n"
    stage, warnings = stage_of(text)
    assert stage == {"foreach": ["a"], "do": {"cmd": "echo ${item}"}}
    one_warning(warnings, "dvc.yaml:4:5", "dropped 'deps'", "under 'do'")


def test_stage_vars_move_to_the_top_level() -> None:
    text = """\
vars:
  - shared: 1
stages:
  a:
    vars:
      - conf/a.yaml:section
      - threshold: 0.5
        shared: 1
    wdir: sub
    cmd: x ${threshold}
  b:
    foreach: [1, 2]
    do:
      vars:
        - threshold: 0.9
      cmd: y ${threshold}
"""
    loaded, result = convert(text)
    assert loaded["vars"] == [{"shared": 1}, "sub/conf/a.yaml:section", {"threshold": 0.5, "shared": 1}]
    assert "vars" not in loaded["stages"]["a"] and "vars" not in loaded["stages"]["b"]["do"]
    one_warning(result.warnings, "dvc.yaml:5:5", "stage 'a', vars", "moved to the top-level vars")
    one_warning(result.warnings, "dvc.yaml:15:11", "stage 'b', vars 'threshold'", "another value", "rename it")
    assert len(result.warnings) == 2


def test_mappings_in_commands_are_reported(tmp_path: Path) -> None:
    """DVC unpacks ${dict} in cmd into --key value arguments; conveyor cannot."""
    write(tmp_path / "params.yaml", "train: {lr: 0.1, epochs: 3}\nname: x\n")
    text = """\
vars:
  - opts: {a: 1}
stages:
  s:
    cmd: python train.py ${train} --name ${name} --lr ${train.lr} ${opts}
  grid:
    matrix:
      cfg:
        - {depth: 3}
      seed: [1, 2]
    cmd: python fit.py ${item.cfg} ${item.seed}
  loop:
    foreach: [[1, 2]]
    do:
      cmd: echo ${item}
  whole:
    cmd: ${train}
"""
    result = translate(text, read_file=lambda rel: yaml.safe_load((tmp_path / rel).read_text()))
    one_warning(result.warnings, "dvc.yaml:5:5", "stage 's', cmd", "${train} is a mapping", "spell the arguments out")
    one_warning(result.warnings, "${opts} is a mapping")
    one_warning(result.warnings, "stage 'grid', cmd", "${item.cfg} is a mapping")
    one_warning(result.warnings, "stage 'loop', cmd", "${item} is a list")
    assert len(result.warnings) == 4


def test_top_level_sections_are_reported() -> None:
    text = """\
stages:
  evaluate:
    cmd: python evaluate.py
    wdir: eval
    outs:
      - metrics.json
      - roc.csv
params:
  - params.yaml
metrics:
  - eval/metrics.json
  - other.json
plots:
  - eval/roc.csv:
      x: fpr
      y: tpr
  - train_vs_test:
      y:
        train.csv: acc
        test.csv: acc
  - importance.png
artifacts:
  classifier:
    path: models/model.pkl
    type: model
datasets:
  - name: raw
    type: dvc
    url: https://example.com/repo
unknown_section: 1
"""
    loaded, result = convert(text)
    assert set(loaded) == {"schema", "stages"}
    warnings = result.warnings
    one_warning(warnings, "dvc.yaml:9:5", "top-level params 'params.yaml'", "under its params")
    one_warning(warnings, "dvc.yaml:11:5", "top-level metrics 'eval/metrics.json'", "of stage 'evaluate'")
    one_warning(warnings, "dvc.yaml:12:5", "top-level metrics 'other.json'", "the stage that writes it")
    one_warning(warnings, "dvc.yaml:14:5", "top-level plots 'eval/roc.csv'", "of stage 'evaluate'")
    one_warning(warnings, "dvc.yaml:17:5", "top-level plots 'train_vs_test'", "combine several files")
    one_warning(warnings, "dvc.yaml:21:5", "top-level plots 'importance.png'")
    one_warning(warnings, "dvc.yaml:23:3", "artifact 'classifier' (path models/model.pkl, type model)", "registry")
    one_warning(warnings, "dvc.yaml:26:1", "top-level 'datasets'", "not imported")
    one_warning(warnings, "dvc.yaml:30:1", "top-level 'unknown_section'", "dropped")
    assert len(warnings) == 9


def test_dvc_lock_and_pointer_files_are_reported(dvc_project: Path) -> None:
    write(dvc_project / "dvc.yaml", "stages:\n  s:\n    cmd: x\n    outs: [features]\n")
    write(dvc_project / "features/f.parquet.dvc", "never looked at: the folder is a stage's output\n")
    write(dvc_project / "dvc.lock", "schema: '2.0'\nstages: {}\n")
    for i in range(7):
        write(dvc_project / f"data/file{i}.csv.dvc", "outs:\n- path: x\n")
    write(dvc_project / "data/images.dvc", "outs:\n- path: images\n")
    write(dvc_project / "data/images/inner.csv.dvc", "never looked at: the folder is DVC's data\n")
    write(dvc_project / ".dvc/config", "")
    write(dvc_project / ".dvc/cache/x.dvc", "")
    write(dvc_project / "my data/a b.dvc", "")
    result = import_dvc(workspace=Workspace(dvc_project), dry_run=True)
    assert result.pointer_files == [
        "data/file0.csv.dvc",
        "data/file1.csv.dvc",
        "data/file2.csv.dvc",
        "data/file3.csv.dvc",
        "data/file4.csv.dvc",
        "data/file5.csv.dvc",
        "data/file6.csv.dvc",
        "data/images.dvc",
        "my data/a b.dvc",
    ]
    warnings = result.warnings
    one_warning(warnings, "dvc.lock: not imported", "the first 'conveyor run' runs every stage")
    one_warning(warnings, "data/file0.csv.dvc: data tracked by DVC", "conveyor add data/file0.csv")
    assert not any("file5" in w for w in warnings)
    one_warning(warnings, "... and 4 more .dvc files", "conveyor add PATH")
    assert len(warnings) == 1 + 5 + 1


# -- errors ---------------------------------------------------------------------------------


def test_bad_yaml_names_the_file_line_and_column(dvc_project: Path) -> None:
    write(dvc_project / "dvc.yaml", "stages:\n  train:\n    cmd: python train.py\n   deps: [a\n")
    with pytest.raises(DvcFileError) as caught:
        import_dvc(workspace=Workspace(dvc_project))
    assert caught.value.message.startswith("dvc.yaml:4:")
    assert "not valid YAML" in caught.value.message
    assert caught.value.hint
    assert caught.value.exit_code == 65
    assert not (dvc_project / "conveyor.yaml").exists()


@pytest.mark.parametrize(
    ("text", "where", "needle"),
    [
        ("stages:\n  a:\n    cmd: x\n  a:\n    cmd: y\n", "dvc.yaml:4:3", "duplicate key 'a'"),
        ("stages:\n  a:\n    deps: [x]\n", "dvc.yaml:2:3", "stage 'a': no 'cmd'"),
        ("stages:\n  a:\n    foreach: [1]\n", "dvc.yaml:2:3", "no 'do'"),
        ("stages:\n  a:\n    cmd: {x: 1}\n", "dvc.yaml:3:5", "'cmd' must be a command"),
        ("stages:\n  a:\n    cmd: []\n", "dvc.yaml:3:5", "'cmd' must be a command"),
        ("stages:\n  a:\n    cmd: ' '\n", "dvc.yaml:3:5", "empty 'cmd'"),
        ("stages:\n  a: python x.py\n", "dvc.yaml:2:3", "expected a mapping of stage fields"),
        ("stages: [a]\n", "dvc.yaml:1:1", "expected a mapping of stage names"),
        ("- a\n", "dvc.yaml:1:1", "expected a mapping with 'stages'"),
        ("vars: params.yaml\nstages: {}\n", "dvc.yaml:1:1", "vars"),
        ("a: &x [*x]\n", "dvc.yaml:1:", "alias"),
    ],
)
def test_malformed_pipelines_are_errors_with_a_location(text: str, where: str, needle: str) -> None:
    with pytest.raises(DvcFileError) as caught:
        translate(text)
    assert caught.value.message.startswith(where), caught.value.message
    assert needle in caught.value.message


def test_missing_dvc_yaml_says_what_to_do(dvc_project: Path) -> None:
    with pytest.raises(MissingFileError) as caught:
        import_dvc(workspace=Workspace(dvc_project))
    assert caught.value.message == "dvc.yaml: no such file"
    assert caught.value.hint and "conveyor import-dvc PATH/dvc.yaml" in caught.value.hint
    assert caught.value.exit_code == 66


def test_existing_conveyor_yaml_is_kept_without_force(dvc_project: Path) -> None:
    write(dvc_project / "dvc.yaml", "stages:\n  s:\n    cmd: x\n")
    write(dvc_project / "conveyor.yaml", "# mine\n")
    workspace = Workspace(dvc_project)
    with pytest.raises(UsageError) as caught:
        import_dvc(workspace=workspace)
    assert "conveyor.yaml: already exists" in caught.value.message
    assert caught.value.hint and "--force" in caught.value.hint
    assert (dvc_project / "conveyor.yaml").read_text() == "# mine\n"
    # a dry run writes nothing, so it does not need --force
    assert import_dvc(workspace=workspace, dry_run=True).written is None
    assert (dvc_project / "conveyor.yaml").read_text() == "# mine\n"
    result = import_dvc(workspace=workspace, force=True)
    assert result.written == dvc_project / "conveyor.yaml"
    assert (dvc_project / "conveyor.yaml").read_text() == result.text


def test_writes_conveyor_yaml_at_the_workspace_root(dvc_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(dvc_project / "dvc.yaml", ML_PIPELINE)
    (dvc_project / "src").mkdir()
    monkeypatch.chdir(dvc_project / "src")  # found from a subfolder, like the CLI does
    result = import_dvc()
    assert result.written == dvc_project / "conveyor.yaml"
    assert yaml.safe_load((dvc_project / "conveyor.yaml").read_text()) == ML_EXPECTED
    assert not list(dvc_project.glob(".cvytmp-*"))


def test_explicit_source_and_output_need_no_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "dvc.yaml", "stages:\n  s:\n    cmd: x\n")
    monkeypatch.chdir(tmp_path)  # no .conveyor/ here or above
    result = import_dvc(Path("dvc.yaml"), output=Path("conveyor.yaml"))
    assert result.written == tmp_path / "conveyor.yaml"
    assert result.stages == 1


def test_a_dvc_yaml_in_a_subfolder_keeps_its_paths(dvc_project: Path) -> None:
    """Paths in sub/dvc.yaml are relative to sub/; conveyor.yaml's are relative to the root."""
    write(dvc_project / "params.yaml", "top: 1\n")
    write(dvc_project / "sub/params.yaml", "lr: 0.1\n")
    text = """\
vars:
  - conf.yaml
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [lr]
  test:
    cmd: python test.py
    wdir: tests
    vars:
      - local.yaml
"""
    write(dvc_project / "sub/dvc.yaml", text)
    result = import_dvc(dvc_project / "sub", workspace=Workspace(dvc_project), dry_run=True)
    loaded = yaml.safe_load(result.text)
    assert result.text.startswith("# Imported from sub/dvc.yaml by conveyor import-dvc\n")
    assert loaded["vars"] == ["sub/params.yaml", "sub/conf.yaml", "sub/tests/local.yaml"]
    assert loaded["stages"]["train"] == {
        "cmd": "python train.py",
        "deps": ["train.py"],
        "params": ["lr"],
        "wdir": "sub",
    }
    assert loaded["stages"]["test"]["wdir"] == "sub/tests"
    one_warning(result.warnings, "params.yaml: conveyor also reads the params.yaml at the top")


def test_a_dvc_yaml_outside_the_output_folder_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "a/dvc.yaml", "stages: {}\n")
    with pytest.raises(UsageError) as caught:
        import_dvc(tmp_path / "a/dvc.yaml", output=tmp_path / "b/conveyor.yaml")
    assert "outside" in caught.value.message


# -- the command line -----------------------------------------------------------------------


def run_cli(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    group = click.Group("conveyor")
    register(group)
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(group, ["import-dvc", *args])


def test_cli_writes_and_reports(dvc_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(dvc_project / "dvc.yaml", ML_PIPELINE + "metrics: [m.json]\n")
    result = run_cli([], dvc_project, monkeypatch)
    assert result.exit_code == 0, result.output
    assert result.stdout == "wrote conveyor.yaml (4 stages)\n"
    assert result.stderr.startswith("warning: dvc.yaml:")
    assert "top-level metrics 'm.json'" in result.stderr
    assert yaml.safe_load((dvc_project / "conveyor.yaml").read_text())["stages"] == ML_EXPECTED["stages"]


def test_cli_dry_run_prints_the_yaml_only_on_stdout(dvc_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(dvc_project / "pipelines/dvc.yaml", "stages:\n  s:\n    cmd: x\n    outs:\n      - o:\n          remote: r\n")
    result = run_cli(["pipelines/dvc.yaml", "--dry-run"], dvc_project, monkeypatch)
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout) == {
        "schema": 1,
        "stages": {"s": {"cmd": "x", "outs": ["o"], "wdir": "pipelines"}},
    }
    assert result.stderr.count("warning: ") == 1
    assert "remote: r" in result.stderr
    assert not (dvc_project / "conveyor.yaml").exists()


def test_cli_output_option_and_force(dvc_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(dvc_project / "dvc.yaml", "stages:\n  s:\n    cmd: x\n")
    write(dvc_project / "conveyor.yaml", "# mine\n")
    result = run_cli([], dvc_project, monkeypatch)
    assert isinstance(result.exception, UsageError)
    assert isinstance(result.exception, ConveyorError) and result.exception.exit_code == 2
    result = run_cli(["-o", "conveyor.yaml", "--force"], dvc_project, monkeypatch)
    assert result.exit_code == 0
    assert result.stdout == "wrote conveyor.yaml (1 stage)\n"


def test_cli_module_stays_light() -> None:
    """The command imports the translator (and yaml) only when it runs."""
    import subprocess
    import sys

    code = "import sys, conveyor.cli._import_dvc; print('yaml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- properties -----------------------------------------------------------------------------

# Text a YAML file can hold as it is (no control characters or Unicode line separators, which
# YAML itself folds), plus the line breaks and tabs commands do contain.
_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")) | st.sampled_from("\n\t"), min_size=1, max_size=40
).filter(lambda s: s.strip() != "")
_NAME = st.from_regex(r"[a-z][a-z0-9_\-]{0,12}", fullmatch=True)
_PATH = st.text(string.ascii_letters + string.digits + "._-/ ${}", min_size=1, max_size=30).filter(
    lambda p: not p.startswith(" ") and "://" not in p
)


@st.composite
def simple_stages(draw: st.DrawFn) -> dict[str, Any]:
    stages = {}
    for name in draw(st.lists(_NAME, min_size=1, max_size=4, unique=True)):
        stage: dict[str, Any] = {"cmd": draw(_TEXT | st.lists(_TEXT, min_size=1, max_size=3))}
        if draw(st.booleans()):
            stage["deps"] = draw(st.lists(_PATH | _TEXT, max_size=4))
        if draw(st.booleans()):
            stage["outs"] = draw(st.lists(_PATH | _TEXT, max_size=4))
        if draw(st.booleans()):
            stage["desc"] = draw(_TEXT)
        stages[name] = stage
    return stages


@settings(max_examples=300, deadline=None)
@given(simple_stages())
def test_any_simple_stage_survives_translation(stages: dict[str, Any]) -> None:
    # JSON is YAML 1.2, and quotes every string: exactly what a dvc.yaml author means
    source = json.dumps({"stages": stages}, ensure_ascii=False, indent=1)
    result = translate(source)
    loaded = yaml.safe_load(result.text)
    assert list(loaded["stages"]) == list(stages)
    assert result.stages == len(stages)
    for name, stage in stages.items():
        out = loaded["stages"][name]
        cmd = stage["cmd"]
        if isinstance(cmd, str) or len(cmd) == 1:
            assert out["cmd"] == (cmd if isinstance(cmd, str) else cmd[0])
        else:
            for command in cmd:
                assert command in out["cmd"]
        assert out.get("deps", []) == stage.get("deps", [])
        assert out.get("outs", []) == stage.get("outs", [])
        assert set(out) <= {"cmd", "deps", "outs"}
