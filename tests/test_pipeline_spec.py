"""``conveyor.yaml``: loading, templating, foreach/matrix, and every validation error.

Each mistake must give exit code 2 and exactly one line on stderr,
``error: conveyor.yaml:LINE:COL: FIELD: what; how to fix it``, pointing at the right place.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Project
from conveyor.pipeline._lock import Fact, Lock, LockEntry
from conveyor.pipeline._spec import parse_pipeline

DOCS = Path(__file__).resolve().parent.parent / "docs" / "pipelines.md"


def write_pipeline(project: Project, text: str) -> None:
    project.write("conveyor.yaml", textwrap.dedent(text).lstrip("\n"))


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {err!r}"
    assert "Traceback" not in err
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def spec_error(project: Project, text: str, *command: str) -> str:
    """Write ``text`` as conveyor.yaml, run ``conveyor dag`` (or ``command``): exit 2, one line."""
    write_pipeline(project, text)
    result = project.cvy(*(command or ("dag",)))
    assert result.code == 2, (result.code, result.out, result.err)
    return one_error_line(result.err)


def run_json(project: Project, *args: str) -> dict[str, Any]:
    result = project.cvy("run", "--json", *args)
    assert result.code == 0, result.err
    report: dict[str, Any] = json.loads(result.out)
    return report


# -- loading, templating, expansion ------------------------------------------------------------


def test_foreach_list_mapping_and_matrix_expand_to_named_stages(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          sweep:
            foreach: [small, large]
            do:
              cmd: echo ${item} > out/sweep-${item}.txt
              outs:
                - out/sweep-${item}.txt
          sized:
            foreach:
              tiny: {size: 1}
              huge: {size: 9}
            do:
              cmd: echo ${key} ${item.size} > out/sized-${key}.txt
              outs:
                - out/sized-${key}.txt
          grid:
            matrix:
              model: [rf, lr]
              seed: [1, 2]
            cmd: echo ${item.model} ${item.seed} > out/grid-${item.model}-${item.seed}.txt
            outs:
              - out/grid-${item.model}-${item.seed}.txt
        """,
    )
    report = run_json(project)
    names = [s["name"] for s in report["stages"]]
    assert sorted(names) == sorted(
        [
            "sweep@small",
            "sweep@large",
            "sized@tiny",
            "sized@huge",
            "grid@rf-1",
            "grid@rf-2",
            "grid@lr-1",
            "grid@lr-2",
        ]
    )
    assert {s["status"] for s in report["stages"]} == {"ran"}
    out = project.root / "out"
    assert (out / "sweep-large.txt").read_text() == "large\n"
    assert (out / "sized-huge.txt").read_text() == "huge 9\n"
    assert (out / "grid-lr-2.txt").read_text() == "lr 2\n"
    lock = yaml.safe_load((project.root / "conveyor.lock").read_text())
    assert lock["stages"]["grid@rf-1"]["cmd"] == "echo rf 1 > out/grid-rf-1.txt"
    assert list(lock["stages"]) == sorted(lock["stages"])


def test_foreach_over_a_var_and_vars_from_files(project: Project) -> None:
    project.write("params.yaml", "models: [rf, svm]\ntrain:\n  lr: 0.1\n  layers: [8, 16]\n")
    project.write("config/extra.yaml", "extra:\n  depth: 4\nunused:\n  x: 1\n")
    write_pipeline(
        project,
        """
        vars:
          - config/extra.yaml:extra
          - data_dir: data
            n: 3
        stages:
          fit:
            foreach: ${models}
            do:
              cmd: echo ${item} ${train.lr} ${train.layers.1} ${extra.depth} ${n} > ${data_dir}/${item}.txt
              outs:
                - ${data_dir}/${item}.txt
        """,
    )
    report = run_json(project)
    assert sorted(s["name"] for s in report["stages"]) == ["fit@rf", "fit@svm"]
    assert (project.root / "data" / "svm.txt").read_text() == "svm 0.1 16 4 3\n"


def test_a_whole_template_keeps_the_type_of_the_value(project: Project) -> None:
    project.write("params.yaml", "train:\n  lr: 0.1\n  epochs: 3\n  layers: [8, 16]\n  warm: true\n")
    project.write(
        "src/fit.py",
        "import json\n"
        "def main(**kwargs):\n"
        "    types = {k: type(v).__name__ for k, v in kwargs.items()}\n"
        "    with open('kwargs.json', 'w') as f:\n"
        "        json.dump({'values': kwargs, 'types': types}, f, sort_keys=True)\n",
    )
    write_pipeline(
        project,
        """
        stages:
          fit:
            call: src.fit:main
            kwargs:
              lr: ${train.lr}
              epochs: ${train.epochs}
              layers: ${train.layers}
              warm: ${train.warm}
              label: lr=${train.lr}/${train.warm}
            retries: ${train.epochs}
            outs: [kwargs.json]
        """,
    )
    project.ok("run")
    written = json.loads((project.root / "kwargs.json").read_text())
    assert written["values"] == {"lr": 0.1, "epochs": 3, "layers": [8, 16], "warm": True, "label": "lr=0.1/true"}
    assert written["types"] == {"lr": "float", "epochs": "int", "layers": "list", "warm": "bool", "label": "str"}
    lock = yaml.safe_load((project.root / "conveyor.lock").read_text())
    assert lock["stages"]["fit"]["kwargs"]["epochs"] == 3
    assert lock["stages"]["fit"]["cmd"] == "call src.fit:main"


def test_a_list_command_runs_its_parts_in_order(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          both:
            cmd:
              - echo one > both.txt
              - echo two >> both.txt
            outs: [both.txt]
        """,
    )
    project.ok("run")
    assert (project.root / "both.txt").read_text() == "one\ntwo\n"


def test_no_pipeline_file_is_reported_with_a_hint(project: Project) -> None:
    result = project.cvy("run")
    assert result.code == 66
    line = one_error_line(result.err)
    assert "conveyor.yaml: no pipeline here" in line and "conveyor.yaml" in line


def test_an_empty_pipeline_has_nothing_to_run(project: Project) -> None:
    write_pipeline(project, "stages: {}\n")
    assert "up to date" in project.ok("run").lower()
    assert project.ok("dag") == "(no stages)\n"


# -- validation errors: one line, the right place, the field, a fix ------------------------------

ERRORS = [
    pytest.param(
        """
        stages:
          prepare:
            cmd: echo
          train:
            cmd: echo
            dep: [data.csv]
        """,
        (6, 5),
        ["stages.train.dep:", "unknown field 'dep'", "did you mean 'deps'?"],
        id="unknown-stage-field",
    ),
    pytest.param(
        """
        stage:
          a:
            cmd: echo
        """,
        (1, 1),
        ["stage:", "unknown field 'stage'", "did you mean 'stages'?"],
        id="unknown-top-field",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            outs:
              - x.txt:
                  persistent: true
        """,
        (6, 11),
        ["stages.a.outs.0.x.txt.persistent:", "unknown field 'persistent'", "did you mean 'persist'?"],
        id="unknown-out-option",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo a
            call: src.train:main
        """,
        (4, 5),
        ["stages.a.call:", "'cmd' and 'call' both given", "keep one of them"],
        id="cmd-and-call",
    ),
    pytest.param(
        """
        stages:
          a:
            deps: [x]
            outs: [y]
        """,
        (2, 3),
        ["stages.a:", "needs a 'cmd' or a 'call'", "add cmd:"],
        id="neither-cmd-nor-call",
    ),
    pytest.param(
        """
        stages:
          a:
            call: src/train.py
        """,
        (3, 11),
        ["stages.a.call:", "'src/train.py' is not 'module:function'", "call: src.train:main"],
        id="call-path-not-module",
    ),
    pytest.param(
        """
        stages:
          a:
            call: src.train.main
        """,
        (3, 11),
        ["stages.a.call:", "is not 'module:function'"],
        id="call-without-colon",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            kwargs: {lr: 1}
        """,
        (4, 5),
        ["stages.a.kwargs:", "'kwargs' only goes with 'call'"],
        id="kwargs-with-cmd",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            outs:
              - fine.txt
              - ../escape.txt
        """,
        (6, 9),
        ["stages.a.outs.1:", "'../escape.txt' is outside the workspace", "inside the workspace"],
        id="out-outside",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            outs: [/tmp/absolute.txt]
        """,
        (4, 12),
        ["stages.a.outs.0:", "'/tmp/absolute.txt' is outside the workspace"],
        id="out-absolute",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            outs: [.git/hooks/x]
        """,
        (4, 12),
        ["stages.a.outs.0:", "'.git/hooks/x'", "conveyor's or git's own folder"],
        id="out-in-git",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            metrics:
              - .conveyor/m.json
        """,
        (5, 9),
        ["stages.a.metrics.0:", "'.conveyor/m.json'", "conveyor's or git's own folder"],
        id="metric-in-conveyor",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            wdir: ..
        """,
        (4, 11),
        ["stages.a.wdir:", "'..' is outside the workspace"],
        id="wdir-outside",
    ),
    pytest.param(
        """
        vars:
          - learning_rate: 0.1
        stages:
          a:
            cmd: python train.py --lr ${learning_rat}
        """,
        (5, 10),
        ["stages.a.cmd:", "${learning_rat}", "did you mean 'learning_rate'?"],
        id="unknown-var",
    ),
    pytest.param(
        """
        vars:
          - train: {lr: 0.1, epochs: 3}
        stages:
          a:
            cmd: python train.py ${train.epoch}
        """,
        (5, 10),
        ["stages.a.cmd:", "${train.epoch}", "in 'train'", "did you mean 'epochs'?"],
        id="unknown-nested-var",
    ),
    pytest.param(
        """
        stages:
          a:
            foreach: [x, y]
            do:
              cmd: echo ${itme}
        """,
        (5, 12),
        ["stages.a.do.cmd:", "${itme}", "did you mean 'item'?"],
        id="unknown-var-in-foreach",
    ),
    pytest.param(
        """
        vars:
          - train: {lr: 0.1}
        stages:
          a:
            cmd: echo ${train}
        """,
        (5, 10),
        ["stages.a.cmd:", "${train} is a mapping, not a value"],
        id="var-is-a-mapping",
    ),
    pytest.param(
        """
        stages:
          a:
            foreach: [x, y]
        """,
        (2, 3),
        ["stages.a:", "'foreach' needs a 'do'", "add do:"],
        id="foreach-without-do",
    ),
    pytest.param(
        """
        stages:
          a:
            foreach: [x, y]
            cmd: echo
        """,
        (4, 5),
        ["stages.a.cmd:", "beside 'foreach', fields go under 'do'"],
        id="foreach-with-fields-beside",
    ),
    pytest.param(
        """
        stages:
          a:
            do:
              cmd: echo
        """,
        (3, 5),
        ["stages.a.do:", "'do' without 'foreach'"],
        id="do-without-foreach",
    ),
    pytest.param(
        """
        stages:
          a:
            foreach: 3
            do: {cmd: echo}
        """,
        (3, 14),
        ["stages.a.foreach:", "expected a list, a mapping or ${var}, got a number"],
        id="foreach-number",
    ),
    pytest.param(
        """
        stages:
          grid:
            matrix:
              model: rf
              seed: [1, 2]
            cmd: echo
        """,
        (4, 14),
        ["stages.grid.matrix.model:", "expected a non-empty list of values", "model: [value1, value2]"],
        id="matrix-axis-not-a-list",
    ),
    pytest.param(
        """
        stages:
          grid:
            matrix: [rf, lr]
            cmd: echo
        """,
        (3, 13),
        ["stages.grid.matrix:", "expected a mapping of axis: [values], got a list"],
        id="matrix-not-a-mapping",
    ),
    pytest.param(
        """
        stages:
          "my stage":
            cmd: echo
        """,
        (2, 3),
        ["bad stage name 'my stage'", "use letters, digits"],
        id="stage-name-with-space",
    ),
    pytest.param(
        """
        stages:
          train@1:
            cmd: echo
        """,
        (2, 3),
        ["bad stage name 'train@1'", "'@' is kept for foreach/matrix"],
        id="stage-name-with-at",
    ),
    pytest.param(
        """
        stages:
          a:
            foreach: [x, x]
            do: {cmd: echo}
        """,
        (2, 3),
        ["stages.a:", "stage 'a@x' is defined twice"],
        id="foreach-same-item-twice",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            retries: two
        """,
        (4, 14),
        ["stages.a.retries:", "expected a whole number, got a string", "retries: 2"],
        id="retries-string",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            retries: true
        """,
        (4, 14),
        ["stages.a.retries:", "expected a whole number, got true/false"],
        id="retries-bool",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            retries: 1.5
        """,
        (4, 14),
        ["stages.a.retries:", "expected a whole number, got a number"],
        id="retries-float",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            retries: -1
        """,
        (4, 14),
        ["stages.a.retries:", "must not be negative"],
        id="retries-negative",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            retry_delay: soon
        """,
        (4, 18),
        ["stages.a.retry_delay:", "expected seconds, got a string"],
        id="retry-delay-string",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            timeout: 10m
        """,
        (4, 14),
        ["stages.a.timeout:", "expected seconds, got a string", "timeout: 600"],
        id="timeout-string",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            timeout: 0
        """,
        (4, 14),
        ["stages.a.timeout:", "must be positive"],
        id="timeout-zero",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            env: [SEED=1]
        """,
        (4, 10),
        ["stages.a.env:", "expected a mapping of names to values, got a list"],
        id="env-list",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            env:
              SEED: [1]
        """,
        (5, 13),
        ["stages.a.env.SEED:", "expected a string, got a list"],
        id="env-value-list",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            always_run: "yes"
        """,
        (4, 17),
        ["stages.a.always_run:", "expected true or false, got a string", "always_run: true"],
        id="always-run-string",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            frozen: 1
        """,
        (4, 13),
        ["stages.a.frozen:", "expected true or false, got a number"],
        id="frozen-number",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            outs:
              - x.txt: {cache: "no"}
        """,
        (5, 24),
        ["stages.a.outs.0.x.txt.cache:", "expected true or false, got a string"],
        id="cache-string",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: echo
            deps: [1, 2]
        """,
        (4, 12),
        ["stages.a.deps.0:", "expected a path, got a number"],
        id="dep-number",
    ),
    pytest.param(
        """
        stages:
          a:
            cmd: "   "
        """,
        (3, 10),
        ["stages.a.cmd:", "empty command"],
        id="empty-cmd",
    ),
    pytest.param(
        """
        stages:
          a:
        """,
        (2, 5),
        ["stages.a:", "expected a mapping of stage fields, got nothing"],
        id="stage-with-no-body",
    ),
    pytest.param(
        """
        - a
        - b
        """,
        (1, 1),
        ["top level:", "expected a mapping with 'stages', got a list"],
        id="top-level-list",
    ),
    pytest.param(
        """
        schema: 2
        stages: {}
        """,
        (1, 9),
        ["schema:", "unsupported schema 2"],
        id="schema-2",
    ),
    pytest.param(
        """
        vars:
          - missing.yaml
        stages: {}
        """,
        (2, 5),
        ["vars.0:", "vars file 'missing.yaml' does not exist"],
        id="vars-file-missing",
    ),
]


@pytest.mark.parametrize(("text", "where", "fragments"), ERRORS)
def test_a_mistake_is_one_line_with_its_place_field_and_fix(
    project: Project, text: str, where: tuple[int, int], fragments: list[str]
) -> None:
    line = spec_error(project, text)
    prefix = f"error: conveyor.yaml:{where[0]}:{where[1]}: "
    assert line.startswith(prefix), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert "; " in line[len(prefix) :], f"no hint after the problem: {line}"  # the fix follows a ';'


def test_every_command_reports_the_same_mistake(project: Project) -> None:
    text = """
        stages:
          train:
            cmd: echo
            dep: [data.csv]
        """
    lines = {spec_error(project, text, *command) for command in (["dag"], ["run"], ["run", "-n"], ["status"])}
    assert lines == {"error: conveyor.yaml:4:5: stages.train.dep: unknown field 'dep'; did you mean 'deps'?"}


def test_the_real_executable_reports_it_too(project: Project) -> None:
    write_pipeline(project, "stages:\n  a:\n    cmd: echo\n    timeout: never\n")
    result = project.run("run")
    assert result.code == 2
    assert one_error_line(result.err).startswith("error: conveyor.yaml:4:14: stages.a.timeout: expected seconds")
    assert not (project.root / "conveyor.lock").exists()


@pytest.mark.parametrize(
    ("text", "where", "key"),
    [
        ("stages:\n  a:\n    cmd: echo 1\n    cmd: echo 2\n", (4, 5), "cmd"),
        ("stages:\n  a:\n    cmd: echo\n  b:\n    cmd: echo\n  a:\n    cmd: echo\n", (6, 3), "a"),
        ("vars:\n  - x: 1\n    x: 2\nstages: {}\n", (3, 5), "x"),
        ("stages: {}\nstages: {}\n", (2, 1), "stages"),
    ],
    ids=["in-a-stage", "stage-name", "in-vars", "top-level"],
)
def test_duplicate_keys_are_errors_not_silently_dropped(
    project: Project, text: str, where: tuple[int, int], key: str
) -> None:
    line = spec_error(project, text)
    assert line.startswith(f"error: conveyor.yaml:{where[0]}:{where[1]}: duplicate key {key!r}"), line
    assert "keep one of them" in line


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("stages:\n  a:\n   cmd: echo\n    outs: [x]\n", (4, 9), "mapping values are not allowed"),
        ("stages:\n\ta:\n\t\tcmd: echo\n", (2, 1), "found character that cannot start any token"),
        ("stages:\n  a:\n    cmd: echo\n    outs: [x\n", (5, 1), "expected ',' or ']'"),
    ],
    ids=["indentation", "tab", "unclosed-bracket"],
)
def test_bad_yaml_names_the_line(project: Project, text: str, where: tuple[int, int], problem: str) -> None:
    line = spec_error(project, text)
    assert line.startswith(f"error: conveyor.yaml:{where[0]}:{where[1]}: not valid YAML: "), line
    assert "fix the syntax" in line
    assert problem in line, line


def test_an_unclosed_quote_points_at_the_quote(project: Project) -> None:
    text = 'stages:\n  a:\n    cmd: "echo\n    outs: [x]\n  b:\n    cmd: echo\n'
    line = spec_error(project, text)
    assert line.startswith("error: conveyor.yaml:3:10: "), line


def test_merge_keys_let_a_stage_override_what_it_merges(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          a: &base
            cmd: echo base > $OUT
            env: {OUT: a.txt}
            outs: [a.txt]
          b:
            <<: *base
            env: {OUT: b.txt}
            outs: [b.txt]
        """,
    )
    project.ok("run")
    assert (project.root / "b.txt").read_text() == "base\n"


def test_templates_in_output_keys_with_options(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          sweep:
            foreach: [a, b]
            do:
              cmd: echo ${item} > out-${item}.txt
              outs:
                - out-${item}.txt:
                    cache: false
        """,
    )
    project.ok("run")
    assert (project.root / "out-b.txt").read_text() == "b\n"
    lock = (project.root / "conveyor.lock").read_text()
    assert "${" not in lock
    assert "path: out-a.txt" in lock and "cache: false" in lock
    assert not (project.root / ".gitignore").exists() or "out-a.txt" not in (project.root / ".gitignore").read_text()


def test_an_unknown_var_in_a_key_names_the_key(project: Project) -> None:
    line = spec_error(
        project, "stages:\n  a:\n    cmd: echo\n    outs:\n      - ${nope}/x.txt:\n          cache: false\n"
    )
    assert line.startswith("error: conveyor.yaml:5:9: stages.a.outs.0.${nope}/x.txt: ${nope}: no 'nope'"), line


def test_a_templated_key_that_is_a_number_is_a_path(project: Project) -> None:
    write_pipeline(
        project, "vars:\n  - n: 5\nstages:\n  a:\n    cmd: echo > 5\n    outs:\n      - ${n}:\n          cache: false\n"
    )
    result = project.run("run")
    assert result.code == 0, result.err
    assert yaml.safe_load((project.root / "conveyor.lock").read_text())["stages"]["a"]["outs"][0]["path"] == "5"


def test_keys_that_template_to_the_same_name_are_duplicates(project: Project) -> None:
    text = "vars:\n  - a: X\n    b: X\nstages:\n  s:\n    cmd: echo\n    env:\n      ${a}: one\n      ${b}: two\n"
    line = spec_error(project, text)
    assert line.startswith("error: conveyor.yaml:9:7: stages.s.env.${b}: duplicate key 'X' once templated"), line


@pytest.mark.parametrize("name", ["A=B", "1ST", "MY VAR", ""])
def test_an_impossible_env_name_is_a_spec_error(project: Project, name: str) -> None:
    line = spec_error(project, f'stages:\n  a:\n    cmd: echo\n    env:\n      "{name}": x\n', "run")
    assert line.startswith(f"error: conveyor.yaml:5:7: stages.a.env.{name}: {name!r} cannot be an environment"), line


def test_the_documented_example_loads(tmp_path: Path) -> None:
    block = re.search(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    assert block is not None
    (tmp_path / "params.yaml").write_text("prepare:\n  seed: 42\ntrain:\n  lr: 0.1\n")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "extra.yaml").write_text("section:\n  a: 1\n")
    pipeline = parse_pipeline(block.group(1), root=tmp_path)
    assert "grid@lr-2" in pipeline.stages


# -- properties ----------------------------------------------------------------------------------

_SEGMENT = st.from_regex(r"[a-z0-9_][a-z0-9_\-]{0,6}(\.[a-z]{1,3})?", fullmatch=True)
_PATH = st.lists(_SEGMENT, min_size=1, max_size=3).map("/".join)
_STAGE_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,10}", fullmatch=True)
_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="$"), min_size=1, max_size=30
).filter(lambda s: s.strip() != "")
_ENV_NAME = st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True)


@st.composite
def stage_mappings(draw: st.DrawFn) -> dict[str, Any]:
    stage: dict[str, Any] = {"cmd": draw(_TEXT)}
    if draw(st.booleans()):
        stage["deps"] = draw(st.lists(_PATH, max_size=3))
    if draw(st.booleans()):
        stage["outs"] = draw(st.lists(_PATH, max_size=3, unique=True))
    if draw(st.booleans()):
        stage["env"] = draw(st.dictionaries(_ENV_NAME, _TEXT, max_size=3))
    if draw(st.booleans()):
        stage["retries"] = draw(st.integers(0, 5))
    if draw(st.booleans()):
        stage["timeout"] = draw(st.floats(0.001, 1e6) | st.integers(1, 10**6))
    if draw(st.booleans()):
        stage["always_run"] = draw(st.booleans())
    if draw(st.booleans()):
        stage["frozen"] = draw(st.booleans())
    if draw(st.booleans()):
        stage["desc"] = draw(_TEXT)
    return stage


_ROOT = Path(tempfile.gettempdir()) / "conveyor-spec-property-root"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_STAGE_NAME, stage_mappings(), min_size=1, max_size=4))
def test_any_valid_stage_mapping_loads_as_written(stages: dict[str, dict[str, Any]]) -> None:
    text = yaml.safe_dump({"stages": stages}, allow_unicode=True, sort_keys=False)
    pipeline = parse_pipeline(text, root=_ROOT)
    assert list(pipeline.stages) == list(stages)
    for name, raw in stages.items():
        stage = pipeline.stages[name]
        assert stage.cmd == raw["cmd"]
        assert stage.deps == tuple(raw.get("deps", ()))
        assert [o.path for o in stage.outs] == raw.get("outs", [])
        assert all(o.cache and not o.persist for o in stage.outs)
        assert stage.env == raw.get("env", {})
        assert stage.retries == raw.get("retries", 0)
        assert stage.timeout == (None if "timeout" not in raw else float(raw["timeout"]))
        assert stage.always_run is raw.get("always_run", False)
        assert stage.frozen is raw.get("frozen", False)
        assert stage.desc == raw.get("desc")
        assert stage.wdir == "."
        assert stage.mark is not None and stage.mark.file == "conveyor.yaml"


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["yes", "no", "on", "null", "~", "1.0", "0x1f", "1_000", "2024-01-01", "=", "<<", "-", ""])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_HASH = st.binary(min_size=32, max_size=32).map(bytes.hex)


@st.composite
def facts(draw: st.DrawFn, *, out: bool) -> Fact:
    kind = draw(st.sampled_from(["file", "dir"]))
    return Fact(
        draw(_PATH),
        draw(_HASH),
        draw(st.integers(0, 2**40)),
        kind,
        draw(st.integers(0, 10**6)) if kind == "dir" else 1,
        draw(st.booleans()) if out else True,
    )


@st.composite
def lock_entries(draw: st.DrawFn) -> LockEntry:
    return LockEntry(
        cmd=draw(st.text(max_size=40)),
        kwargs=draw(st.none() | st.dictionaries(st.text(max_size=8), _VALUES, max_size=4)),
        env=draw(st.dictionaries(_ENV_NAME, st.text(max_size=10), max_size=3)),
        deps=tuple(draw(st.lists(facts(out=False), max_size=3, unique_by=lambda f: f.path))),
        params=draw(
            st.dictionaries(_PATH, st.dictionaries(st.text(min_size=1, max_size=10), _VALUES, max_size=4), max_size=2)
        ),
        outs=tuple(draw(st.lists(facts(out=True), max_size=3, unique_by=lambda f: f.path))),
    )


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 == 1.0 == True would hide a change of type)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_STAGE_NAME, lock_entries(), max_size=4))
def test_the_lock_round_trips_exactly(entries: dict[str, LockEntry]) -> None:
    path = _ROOT / "conveyor.lock"
    lock = Lock(path)
    for name in reversed(list(entries)):  # insertion order must not matter
        lock.set(name, entries[name])
    text = lock.text()
    parsed = Lock.parse(text, path)
    assert list(parsed.entries) == sorted(entries)
    for name, entry in entries.items():
        assert same(parsed.entries[name].to_dict(), entry.to_dict()), name
    assert parsed.text() == text
    data = yaml.safe_load(text)
    assert data["schema"] == 1
    assert list(data.get("stages", {})) == sorted(entries)
