"""The stage graph: producers, overlaps, cycles, ``conveyor dag`` output and target selection."""

from __future__ import annotations

import itertools
import json
import re
import textwrap
from typing import Any

import pytest

from conftest import Project

DIAMOND = """
stages:
  prepare:
    cmd: echo prepared > data.txt
    outs: [data.txt]
  left:
    cmd: cat data.txt > left.txt
    deps: [data.txt]
    outs: [left.txt]
  right:
    cmd: cat data.txt > right.txt
    deps: [data.txt]
    outs: [right.txt]
  report:
    cmd: cat left.txt right.txt > report.txt
    deps: [left.txt, right.txt]
    outs: [report.txt]
  lonely:
    cmd: echo alone > lonely.txt
    outs: [lonely.txt]
"""
DIAMOND_EDGES = {("prepare", "left"), ("prepare", "right"), ("left", "report"), ("right", "report")}


def write_pipeline(project: Project, text: str) -> None:
    project.write("conveyor.yaml", textwrap.dedent(text).lstrip("\n"))


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {err!r}"
    assert "Traceback" not in err
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def graph_error(project: Project, text: str) -> str:
    """``conveyor dag``, ``run`` and ``status`` all refuse the graph with the same single line."""
    write_pipeline(project, text)
    lines = set()
    for command in (["dag"], ["run"], ["status"]):
        result = project.cvy(*command)
        assert result.code == 2, (command, result.code, result.err)
        lines.add(one_error_line(result.err))
    assert len(lines) == 1, lines
    assert not (project.root / "conveyor.lock").exists()
    return lines.pop()


def mermaid_graph(text: str) -> tuple[list[str], set[tuple[str, str]]]:
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    ids: dict[str, str] = {}
    edges: set[tuple[str, str]] = set()
    for line in lines[1:]:
        node = re.fullmatch(r'  (\w+)\["(.*)"\]', line)
        edge = re.fullmatch(r"  (\w+) --> (\w+)", line)
        assert node or edge, line
        if node:
            ids[node.group(1)] = node.group(2)
        elif edge:
            edges.add((ids[edge.group(1)], ids[edge.group(2)]))
    return list(ids.values()), edges


def dot_graph(text: str) -> tuple[list[str], set[tuple[str, str]]]:
    lines = text.splitlines()
    assert lines[0] == "digraph pipeline {" and lines[-1] == "}"
    nodes: list[str] = []
    edges: set[tuple[str, str]] = set()
    for line in lines[1:-1]:
        node = re.fullmatch(r'  "(.*)";', line)
        edge = re.fullmatch(r'  "(.*)" -> "(.*)";', line)
        if edge:
            edges.add((edge.group(1), edge.group(2)))
        elif node:
            nodes.append(node.group(1))
        else:
            assert line.strip() in ("rankdir=TB;", "node [shape=box];"), line
    return nodes, edges


def boxed(text: str) -> list[list[str]]:
    """The stage names of each row of boxes of ``conveyor dag``, top to bottom."""
    return [re.findall(r"│ (\S+) │", line) for line in text.splitlines() if "│ " in line and " │" in line]


def run_json(project: Project, *args: str) -> dict[str, str]:
    result = project.cvy("run", "--json", *args)
    assert result.code == 0, result.err
    return {s["name"]: s["status"] for s in json.loads(result.out)["stages"]}


# -- graph errors ---------------------------------------------------------------------------------


def test_two_producers_of_one_output(project: Project) -> None:
    line = graph_error(
        project,
        """
        stages:
          first:
            cmd: echo 1 > model.pkl
            outs: [model.pkl]
          second:
            cmd: echo 2 > model.pkl
            outs: [./sub/../model.pkl]
        """,
    )
    assert "model.pkl" in line and "'first'" in line and "'second'" in line, line
    assert "exactly one producer" in line


def test_one_stage_naming_an_output_twice(project: Project) -> None:
    line = graph_error(project, "stages:\n  a:\n    cmd: echo\n    outs: [x.txt]\n    metrics: [x.txt]\n")
    assert "x.txt" in line and "'a'" in line, line


def test_a_folder_output_and_a_file_inside_it_overlap(project: Project) -> None:
    line = graph_error(
        project,
        """
        stages:
          split:
            cmd: mkdir -p data && echo > data/train.csv
            outs: [data]
          fix:
            cmd: echo > data/train.csv
            outs: [data/train.csv]
        """,
    )
    assert "data/train.csv" in line and "'fix'" in line and "'split'" in line, line
    assert "must not overlap" in line


def test_a_cycle_names_its_stages_in_order(project: Project) -> None:
    line = graph_error(
        project,
        """
        stages:
          a:
            cmd: cat c.txt > a.txt
            deps: [c.txt]
            outs: [a.txt]
          b:
            cmd: cat a.txt > b.txt
            deps: [a.txt]
            outs: [b.txt]
          c:
            cmd: cat b.txt > c.txt
            deps: [b.txt]
            outs: [c.txt]
          bystander:
            cmd: echo > d.txt
            outs: [d.txt]
        """,
    )
    assert "cycle" in line, line
    chain = re.search(r"stages ([\w ->]+?) depend on each other", line)
    assert chain is not None, line
    names = chain.group(1).split(" -> ")
    assert names[0] == names[-1] and sorted(names[:-1]) == ["a", "b", "c"], names
    feeds = {("a", "b"), ("b", "c"), ("c", "a")}  # the data flows a -> b -> c -> a
    steps = set(itertools.pairwise(names))
    assert steps == feeds or steps == {(y, x) for x, y in feeds}, names
    assert "bystander" not in line


def test_a_stage_reading_its_own_output(project: Project) -> None:
    line = graph_error(
        project,
        """
        stages:
          grow:
            cmd: echo more >> log.txt
            deps: [log.txt]
            outs: [log.txt]
        """,
    )
    assert "log.txt" in line and "'grow'" in line and "its own output" in line, line
    assert "persist: true" in line


def test_a_stage_reading_a_folder_holding_its_own_output(project: Project) -> None:
    line = graph_error(
        project,
        "stages:\n  a:\n    cmd: echo > out/x.txt\n    deps: [out]\n    outs: [out/x.txt]\n",
    )
    assert "'a'" in line and "its own output" in line, line


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("stages:\n  a:\n    cmd: echo\n    outs: [x]\n  b:\n    cmd: echo\n    outs: [x]\n", "conveyor.yaml:7:"),
        ("stages:\n  a:\n    cmd: echo\n    outs: [d]\n  b:\n    cmd: echo\n    outs: [d/x]\n", "conveyor.yaml:7:"),
        ("stages:\n  a:\n    cmd: echo\n    deps: [x]\n    outs: [x]\n", "conveyor.yaml:4:"),
    ],
    ids=["two-producers", "overlap", "own-output"],
)
def test_graph_errors_point_into_the_file(project: Project, text: str, where: str) -> None:
    line = graph_error(project, text)
    assert line.startswith(f"error: {where}"), line


def test_folder_deps_connect_to_outputs_inside_and_around_them(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          make_dir:
            cmd: mkdir -p data && echo a > data/a.txt
            outs: [data]
          read_file_inside:
            cmd: cat data/a.txt > copy.txt
            deps: [data/a.txt]
            outs: [copy.txt]
          make_file:
            cmd: mkdir -p models && echo m > models/m.bin
            outs: [models/m.bin]
          read_folder_around:
            cmd: ls models > listing.txt
            deps: [models]
            outs: [listing.txt]
        """,
    )
    _nodes, edges = mermaid_graph(project.ok("dag", "--mermaid"))
    assert edges == {("make_dir", "read_file_inside"), ("make_file", "read_folder_around")}
    assert run_json(project, "-j", "1") == dict.fromkeys(
        ["make_dir", "make_file", "read_file_inside", "read_folder_around"], "ran"
    )


# -- conveyor dag ---------------------------------------------------------------------------------


def test_dag_text_draws_layers_of_boxes(project: Project) -> None:
    write_pipeline(project, DIAMOND)
    text = project.ok("dag")
    assert boxed(text) == [["prepare", "lonely"], ["left", "right"], ["report"]]
    assert "  prepare ──▶ left, right" in text.splitlines()
    assert "  left ──▶ report" in text.splitlines() and "  right ──▶ report" in text.splitlines()
    for name in ("prepare", "left", "right", "report", "lonely"):
        width = len(name) + 2
        assert "┌" + "─" * width + "┐" in text and "└" + "─" * width + "┘" in text


def test_dag_text_joins_a_chain_with_arrows(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          one:
            cmd: echo > 1.txt
            outs: [1.txt]
          two:
            cmd: cat 1.txt > 2.txt
            deps: [1.txt]
            outs: [2.txt]
        """,
    )
    text = project.ok("dag")
    assert boxed(text) == [["one"], ["two"]]
    lines = text.splitlines()
    arrow = lines.index(next(line for line in lines if line.strip() == "│"))
    assert lines[arrow + 1].strip() == "▼"
    assert lines[arrow - 1].startswith("└") and lines[arrow + 2].startswith("┌")


def test_dag_mermaid_and_dot_have_every_stage_and_edge(project: Project) -> None:
    write_pipeline(project, DIAMOND)
    nodes, edges = mermaid_graph(project.ok("dag", "--mermaid"))
    assert sorted(nodes) == ["left", "lonely", "prepare", "report", "right"]
    assert nodes.index("prepare") < nodes.index("left") < nodes.index("report")
    assert edges == DIAMOND_EDGES
    nodes, edges = dot_graph(project.ok("dag", "--dot"))
    assert sorted(nodes) == ["left", "lonely", "prepare", "report", "right"]
    assert edges == DIAMOND_EDGES


def test_dag_escapes_names_for_mermaid_and_dot(project: Project) -> None:
    write_pipeline(project, 'stages:\n  sweep:\n    foreach: [a.b, c-d]\n    do:\n      cmd: echo "${item}"\n')
    nodes, _ = mermaid_graph(project.ok("dag", "--mermaid"))
    assert nodes == ["sweep@a.b", "sweep@c-d"]
    nodes, _ = dot_graph(project.ok("dag", "--dot"))
    assert nodes == ["sweep@a.b", "sweep@c-d"]


# -- choosing stages: a name, an output path, a foreach group -------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("left", ["prepare", "left"]),
        ("left.txt", ["prepare", "left"]),
        ("./left.txt", ["prepare", "left"]),
        ("report", ["prepare", "left", "right", "report"]),
        ("lonely", ["lonely"]),
    ],
)
def test_dag_of_a_target_is_it_and_its_upstream(project: Project, target: str, expected: list[str]) -> None:
    write_pipeline(project, DIAMOND)
    nodes, edges = mermaid_graph(project.ok("dag", "--mermaid", target))
    assert nodes == expected
    assert edges == {(a, b) for a, b in DIAMOND_EDGES if a in expected and b in expected}


def test_run_of_an_output_path_runs_its_producer_and_upstream(project: Project) -> None:
    write_pipeline(project, DIAMOND)
    assert run_json(project, "right.txt") == {"prepare": "ran", "right": "ran"}
    assert not (project.root / "left.txt").exists()
    assert run_json(project, "report") == {
        "prepare": "up-to-date",
        "right": "up-to-date",
        "left": "ran",
        "report": "ran",
    }


def test_a_folder_output_is_a_target_with_or_without_its_slash(project: Project) -> None:
    write_pipeline(
        project,
        "stages:\n  split:\n    cmd: mkdir -p data && echo x > data/x\n    outs: [data]\n"
        "  other:\n    cmd: echo > o.txt\n    outs: [o.txt]\n",
    )
    for target in ("data", "data/", "./data"):
        nodes, _ = mermaid_graph(project.ok("dag", "--mermaid", target))
        assert nodes == ["split"], target
    assert run_json(project, "data/") == {"split": "ran"}


def test_a_foreach_group_name_selects_every_item(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          prepare:
            cmd: echo base > base.txt
            outs: [base.txt]
          sweep:
            foreach: [small, large]
            do:
              cmd: cat base.txt > ${item}.txt
              deps: [base.txt]
              outs:
                - ${item}.txt
          grid:
            matrix:
              a: [1, 2]
            cmd: echo ${item.a} > grid-${item.a}.txt
            outs:
              - grid-${item.a}.txt
          unrelated:
            cmd: echo > u.txt
            outs: [u.txt]
        """,
    )
    nodes, edges = mermaid_graph(project.ok("dag", "--mermaid", "sweep"))
    assert nodes == ["prepare", "sweep@small", "sweep@large"]
    assert edges == {("prepare", "sweep@small"), ("prepare", "sweep@large")}
    assert run_json(project, "grid") == {"grid@1": "ran", "grid@2": "ran"}
    assert run_json(project, "sweep@large") == {"prepare": "ran", "sweep@large": "ran"}
    assert run_json(project, "sweep") == {"prepare": "up-to-date", "sweep@large": "up-to-date", "sweep@small": "ran"}
    assert not (project.root / "u.txt").exists()


def test_status_of_a_target_shows_only_its_part(project: Project) -> None:
    write_pipeline(project, DIAMOND)
    data: dict[str, Any] = json.loads(project.ok("status", "--json", "left.txt"))
    assert [s["name"] for s in data["stages"]] == ["prepare", "left"]
    assert {s["state"] for s in data["stages"]} == {"stale"}


@pytest.mark.parametrize("command", ["dag", "run"])
def test_an_unknown_target_suggests_a_stage(project: Project, command: str) -> None:
    write_pipeline(project, DIAMOND)
    result = project.cvy(command, "rigth")
    assert result.code == 2
    line = one_error_line(result.err)
    assert line.startswith("error: rigth: no such stage or stage output"), line
    assert "did you mean 'right'?" in line


def test_status_of_a_misspelled_stage_suggests_the_stage(project: Project) -> None:
    write_pipeline(project, DIAMOND)
    result = project.cvy("status", "rigth")
    assert result.code == 2
    assert "did you mean 'right'?" in one_error_line(result.err)


SUBFOLDER = (
    "stages:\n  a:\n    cmd: echo a > sub/out.txt\n    outs: [sub/out.txt]\n"
    "  b:\n    cmd: echo > b.txt\n    outs: [b.txt]\n"
)


def test_status_takes_an_output_path_relative_to_the_current_folder(project: Project) -> None:
    write_pipeline(project, SUBFOLDER)
    (project.root / "sub").mkdir()
    data = json.loads(project.ok("-C", "sub", "status", "--json", "out.txt"))
    assert [s["name"] for s in data["stages"]] == ["a"]


@pytest.mark.parametrize("command", ["run", "dag"])
def test_run_and_dag_take_an_output_path_relative_to_the_current_folder(project: Project, command: str) -> None:
    write_pipeline(project, SUBFOLDER)
    (project.root / "sub").mkdir()
    project.ok("-C", "sub", command, "out.txt")
