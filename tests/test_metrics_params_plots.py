"""params diff, metrics show/diff, plots show/diff: real git history, the cache, the CLI."""

from __future__ import annotations

import base64
import json
import re
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import Project
from conveyor.errors import ConveyorError
from conveyor.pipeline._metrics import diff_metrics, format_value, read_metrics, show_metrics
from conveyor.pipeline._params import ParamsError, diff_params, flatten, lookup, read_params
from conveyor.workspace import Workspace

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

PIPELINE = """\
stages:
  train:
    cmd: python train.py
    params:
      - train
      - config/model.yaml:
          - model.depth
    metrics:
      - metrics.json
      - eval/scores.yaml
    plots:
      - loss.csv:
          x: epoch
          y: loss
          title: Training loss
"""


def tiny_png() -> bytes:
    """A valid 1x1 PNG, built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0\xff\0\0")) + chunk(b"IEND", b"")


def rows(out: str) -> list[list[str]]:
    """A plain table printed by the CLI, as cells split on runs of two or more spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines()]


def embedded_pngs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]


# -- params files: read, lookup, flatten ---------------------------------------------------------

_keys = st.text(alphabet="abcxyz_-0123456789", min_size=1, max_size=6)
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=3),
)
_nested = st.recursive(_leaves, lambda children: st.dictionaries(_keys, children, max_size=4), max_leaves=20)
_mappings = st.dictionaries(_keys, _nested, max_size=5)


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, last = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested


@given(_mappings)
def test_every_flattened_key_looks_up_its_value(data: dict[str, Any]) -> None:
    flat = flatten(data)
    for key, value in flat.items():
        assert lookup(data, key) == value
    assert _unflatten(flat) == data  # nothing is lost, empty sections included


@given(_mappings, _keys)
def test_a_missing_key_names_the_file_and_the_key(data: dict[str, Any], key: str) -> None:
    missing = f"{key}.no_such_key"
    with pytest.raises(ParamsError) as err:
        lookup(data, missing, source="params.yaml")
    assert err.value.message == f"params.yaml: no param '{missing}'"
    assert err.value.hint
    assert err.value.exit_code == 2


def test_lookup_finds_dotted_names_and_list_items() -> None:
    data = {"a.b": 1, "a": {"c": 2}, "layers": [{"units": 64}, {"units": 32}]}
    assert lookup(data, "a.b") == 1
    assert lookup(data, "a.c") == 2
    assert lookup(data, "layers.1.units") == 32
    with pytest.raises(ParamsError) as err:
        lookup(data, "a.cc", source="p.yaml")
    assert err.value.format_message() == "p.yaml: no param 'a.cc'; did you mean 'a.c'?"


def test_read_params_by_suffix(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("train:\n  lr: 0.1\n")
    (tmp_path / "p.json").write_text('{"train": {"lr": 0.2}}')
    (tmp_path / "p.toml").write_text("[train]\nlr = 0.3\n")
    (tmp_path / "empty.yaml").write_text("")
    assert [lookup(read_params(tmp_path / f"p.{s}"), "train.lr") for s in ("yaml", "json", "toml")] == [0.1, 0.2, 0.3]
    assert read_params(tmp_path / "empty.yaml") == {}


def test_read_params_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=r"nope\.yaml: params file not found"):
        read_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(ParamsError, match=r"bad\.yaml:\d+:\d+: invalid YAML"):
        read_params(tmp_path / "bad.yaml")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ParamsError, match=r"list\.json: holds a list"):
        read_params(tmp_path / "list.json")


def test_format_value() -> None:
    assert format_value(0.123456789) == "0.12346"
    assert format_value(123456789.0) == "1.2346e+08"
    assert format_value(7) == "7"
    assert format_value(None) == "—"
    assert format_value(True) == "true"
    assert format_value([1, 2.5]) == "[1, 2.5]"
    assert format_value(0.1 + 0.2, None) == "0.30000000000000004"


# -- metrics -----------------------------------------------------------------------------------------


def test_metrics_show_explicit_paths(project: Project) -> None:
    project.write("m.json", json.dumps({"acc": 0.912345678, "nested": {"f1": 0.5}, "name": "rf", "curve": [1, 2]}))
    project.write("s.yaml", "loss: 0.25\n")
    assert rows(project.ok("metrics", "show", "m.json", "s.yaml")) == [
        ["Path", "Metric", "Value"],
        ["m.json", "acc", "0.91235"],
        ["m.json", "nested.f1", "0.5"],
        ["m.json", "name", "rf"],
        ["m.json", "curve", "[1, 2]"],
        ["s.yaml", "loss", "0.25"],
    ]
    assert json.loads(project.ok("metrics", "show", "s.yaml", "--json")) == {"s.yaml": {"loss": 0.25}}
    md = project.ok("metrics", "show", "s.yaml", "--md").splitlines()
    assert md == ["| Path | Metric | Value |", "| :--- | :--- | ---: |", "| s.yaml | loss | 0.25 |"]
    assert (
        project.ok("metrics", "show", "s.yaml", "--precision", "1") == "Path    Metric  Value\ns.yaml  loss      0.2\n"
    )


def test_metrics_show_missing_file_and_no_pipeline(project: Project) -> None:
    result = project.cvy("metrics", "show", "nope.json")
    assert result.code == 66
    assert result.err == "error: nope.json: no such metrics file; check the path\n"
    result = project.cvy("metrics", "show")
    assert result.code == 66
    assert "no conveyor.yaml" in result.err
    assert "conveyor metrics show PATH" in result.err


def test_metrics_show_bad_file_is_an_error(project: Project) -> None:
    project.write("m.json", "{not json")
    result = project.cvy("metrics", "show", "m.json")
    assert result.code == 65
    assert result.err.startswith("error: m.json:1:2: invalid JSON")


def test_metrics_diff_across_commits(project: Project) -> None:
    project.write("m.json", json.dumps({"acc": 0.8, "loss": 0.5, "n": 100, "same": 1, "zero": 0}))
    project.commit("first")
    project.write("m.json", json.dumps({"acc": 0.9, "loss": 0.4, "n": 150, "same": 1, "zero": 2, "new": 3}))
    project.commit("second")
    project.write("m.json", json.dumps({"acc": 0.99, "loss": 0.4, "n": 150, "same": 1, "zero": 2, "new": 3}))

    # no REV: HEAD against the workspace, changed metrics only
    assert rows(project.ok("metrics", "diff", "--targets", "m.json")) == [
        ["Path", "Metric", "HEAD", "workspace", "Change", "Change %"],
        ["m.json", "acc", "0.9", "0.99", "+0.09", "+10%"],
    ]
    # two REVs: relative change, a metric added, a change from zero (no %)
    table = rows(project.ok("metrics", "diff", "HEAD~1", "HEAD", "--targets", "m.json"))
    assert table[0] == ["Path", "Metric", "HEAD~1", "HEAD", "Change", "Change %"]
    assert table[1:] == [
        ["m.json", "acc", "0.8", "0.9", "+0.1", "+12.5%"],
        ["m.json", "loss", "0.5", "0.4", "-0.1", "-20%"],
        ["m.json", "n", "100", "150", "+50", "+50%"],
        ["m.json", "zero", "0", "2", "+2", "—"],
        ["m.json", "new", "—", "3", "—", "—"],
    ]
    # --all adds unchanged ones; one REV compares it with the workspace
    table = rows(project.ok("metrics", "diff", "HEAD~1", "--all", "--targets", "m.json"))
    assert ["m.json", "same", "1", "1", "0", "0%"] in table
    assert table[0][2:4] == ["HEAD~1", "workspace"]

    data = json.loads(project.ok("metrics", "diff", "HEAD~1", "HEAD", "--targets", "m.json", "--json"))
    assert data["old"] == "HEAD~1" and data["new"] == "HEAD"
    acc = data["metrics"][0]
    assert acc == {
        "path": "m.json",
        "metric": "acc",
        "old": 0.8,
        "new": 0.9,
        "status": "modified",
        "change": 0.1,
        "change_pct": 12.5,
    }
    assert data["metrics"][-1]["status"] == "added"

    md = project.ok("metrics", "diff", "HEAD~1", "HEAD", "--targets", "m.json", "--md").splitlines()
    assert md[0] == "| Path | Metric | HEAD~1 | HEAD | Change | Change % |"
    assert md[2] == "| m.json | acc | 0.8 | 0.9 | +0.1 | +12.5% |"


def test_metrics_diff_api(project: Project) -> None:
    project.write("m.yaml", "a: 2.0\nb: text\n")
    project.commit("m")
    project.write("m.yaml", "a: 3.0\nb: other\n")
    ws = Workspace(project.root)
    result = diff_metrics(paths=["m.yaml"], workspace=ws)
    assert (result.old, result.new) == ("HEAD", "workspace")
    a, b = result.rows
    assert (a.key, a.old, a.new, a.change, a.change_pct, a.status) == ("a", 2.0, 3.0, 1.0, 50.0, "modified")
    assert (b.key, b.change, b.change_pct, b.status) == ("b", None, None, "modified")
    assert diff_metrics(paths=["m.yaml"], show_unchanged=True, workspace=ws).rows == result.rows


def test_metrics_file_missing_at_a_revision_shows_a_dash(project: Project) -> None:
    project.write("m.json", '{"acc": 0.5}')
    assert rows(project.ok("metrics", "diff", "--targets", "m.json")) == [
        ["Path", "Metric", "HEAD", "workspace", "Change", "Change %"],
        ["m.json", "acc", "—", "0.5", "—", "—"],
    ]
    project.commit("m")
    project.write("other.txt", "x")
    (project.root / "m.json").unlink()
    data = json.loads(project.ok("metrics", "diff", "--targets", "m.json", "--json"))
    assert data["metrics"] == [
        {
            "path": "m.json",
            "metric": "acc",
            "old": 0.5,
            "new": None,
            "status": "deleted",
            "change": None,
            "change_pct": None,
        }
    ]


def test_bad_revision_is_one_line_without_traceback(project: Project) -> None:
    project.write("m.json", '{"acc": 0.5}')
    for args in (
        ["metrics", "diff", "no-such-rev", "--targets", "m.json"],
        ["params", "diff", "no-such-rev"],
        ["plots", "diff", "no-such-rev", "--targets", "m.json"],
    ):
        result = project.run(*args)
        assert result.code == 2, result.err
        assert result.err.strip().splitlines() == [
            "error: unknown git revision 'no-such-rev'; name a commit, branch or tag ('git log' lists them)"
        ]
        assert "Traceback" not in result.err


def _store(project: Project, data: bytes) -> str:
    from conveyor.versioning._odb import ObjectStore

    ws = Workspace(project.root)
    return ObjectStore(ws.cache_dir, ws.cache_tmp_dir).add_bytes(data)


def test_cached_metrics_are_read_through_the_lock_and_the_cache(project: Project) -> None:
    project.write(
        "conveyor.yaml",
        "stages:\n  train:\n    cmd: python train.py\n    metrics:\n      - metrics.json:\n          cache: true\n",
    )
    project.write(".gitignore", "/metrics.json\n")
    old = b'{"acc": 0.5, "loss": 1.0}'
    digest = _store(project, old)
    lock = (
        "schema: 1\nstages:\n  train:\n    cmd: python train.py\n    outs:\n"
        f"      - path: metrics.json\n        hash: {digest}\n        size: {len(old)}\n"
    )
    project.write("conveyor.lock", lock)
    project.write("metrics.json", old)
    project.commit("run 1")
    assert "metrics.json" not in project.git("ls-files")
    project.write("metrics.json", '{"acc": 0.75, "loss": 1.0}')

    assert rows(project.ok("metrics", "diff")) == [
        ["Path", "Metric", "HEAD", "workspace", "Change", "Change %"],
        ["metrics.json", "acc", "0.5", "0.75", "+0.25", "+50%"],
    ]
    assert read_metrics(Workspace(project.root)) == {"metrics.json:acc": 0.75, "metrics.json:loss": 1.0}

    # the object gone from the cache: a warning and a dash, not a failure
    from conveyor.versioning._odb import ObjectStore

    ws = Workspace(project.root)
    ObjectStore(ws.cache_dir, ws.cache_tmp_dir).remove(digest)
    result = project.cvy("metrics", "diff")
    assert result.code == 0
    assert "warning: HEAD:metrics.json: its content" in result.err
    assert "not in the cache" in result.err
    assert rows(result.out)[1] == ["metrics.json", "acc", "—", "0.75", "—", "—"]


def test_metrics_declared_in_conveyor_yaml(project: Project) -> None:
    project.write("conveyor.yaml", PIPELINE)
    project.write("params.yaml", "train:\n  lr: 0.1\n")
    project.write("config/model.yaml", "model:\n  depth: 3\n")
    project.write("metrics.json", '{"acc": 0.5}')
    project.write("eval/scores.yaml", "auc: 0.7\n")
    project.commit("pipeline")
    project.write("metrics.json", '{"acc": 0.6}')
    assert rows(project.ok("metrics", "show")) == [
        ["Path", "Metric", "Value"],
        ["metrics.json", "acc", "0.6"],
        ["eval/scores.yaml", "auc", "0.7"],
    ]
    assert rows(project.ok("metrics", "diff"))[1:] == [["metrics.json", "acc", "0.5", "0.6", "+0.1", "+20%"]]
    assert read_metrics(Workspace(project.root)) == {"metrics.json:acc": 0.6, "eval/scores.yaml:auc": 0.7}
    # a declared file not written yet: a warning, the rest shown
    (project.root / "eval" / "scores.yaml").unlink()
    result = project.cvy("metrics", "show")
    assert result.code == 0
    assert "warning: eval/scores.yaml: not found in the workspace" in result.err


def test_metrics_declared_only_at_an_older_revision_are_compared(project: Project) -> None:
    project.write("conveyor.yaml", "stages:\n  s:\n    cmd: 'true'\n    metrics: [old.json]\n")
    project.write("old.json", '{"x": 1}')
    project.commit("old metrics")
    project.write("conveyor.yaml", "stages:\n  s:\n    cmd: 'true'\n    metrics: [new.json]\n")
    (project.root / "old.json").unlink()
    project.write("new.json", '{"x": 2}')
    assert rows(project.ok("metrics", "diff"))[1:] == [
        ["new.json", "x", "—", "2", "—", "—"],
        ["old.json", "x", "1", "—", "—", "—"],
    ]


def test_pipeline_without_metrics_says_so(project: Project) -> None:
    project.write("conveyor.yaml", "stages:\n  s:\n    cmd: 'true'\n")
    result = project.cvy("metrics", "show")
    assert result.code == 2
    assert result.err.startswith("error: conveyor.yaml declares no metrics files; add them under 'metrics:'")


def test_metrics_diff_without_git(plain_dir: Project) -> None:
    plain_dir.ok("init", "--no-scm")
    plain_dir.write("m.json", '{"a": 1}')
    with pytest.raises(ConveyorError, match="has no git"):
        diff_metrics(paths=["m.json"], workspace=Workspace(plain_dir.root))
    assert show_metrics(["m.json"], workspace=Workspace(plain_dir.root)).by_path() == {"m.json": {"a": 1}}


# -- params diff -------------------------------------------------------------------------------------


def test_params_diff_nested_keys_and_a_second_file(project: Project) -> None:
    project.write("conveyor.yaml", PIPELINE)
    project.write(
        "params.yaml", "train:\n  lr: 0.1\n  optimizer:\n    name: adam\n    beta: 0.9\n  layers: [64, 32]\nseed: 1\n"
    )
    project.write("config/model.yaml", "model:\n  depth: 3\n  width: 8\nunused: 1\n")
    project.commit("params")
    project.write(
        "params.yaml",
        "train:\n  lr: 0.05\n  optimizer:\n    name: sgd\n    beta: 0.9\n  layers: [64, 32, 16]\nseed: 1\n",
    )
    project.write("config/model.yaml", "model:\n  depth: 4\n  width: 9\nunused: 2\n")

    # only the keys the stages read from config/model.yaml; all of params.yaml
    assert rows(project.ok("params", "diff")) == [
        ["Path", "Param", "HEAD", "workspace"],
        ["params.yaml", "train.lr", "0.1", "0.05"],
        ["params.yaml", "train.optimizer.name", "adam", "sgd"],
        ["params.yaml", "train.layers", "[64, 32]", "[64, 32, 16]"],
        ["config/model.yaml", "model.depth", "3", "4"],
    ]
    table = rows(project.ok("params", "diff", "--all"))
    assert ["params.yaml", "train.optimizer.beta", "0.9", "0.9"] in table
    assert ["params.yaml", "seed", "1", "1"] in table
    assert not any(row[1] in ("model.width", "unused") for row in table)

    data = json.loads(project.ok("params", "diff", "--json"))
    assert data["params"][0] == {
        "path": "params.yaml",
        "param": "train.lr",
        "old": 0.1,
        "new": 0.05,
        "status": "modified",
    }
    md = project.ok("params", "diff", "--md").splitlines()
    assert md[:3] == [
        "| Path | Param | HEAD | workspace |",
        "| :--- | :--- | :--- | :--- |",
        "| params.yaml | train.lr | 0.1 | 0.05 |",
    ]
    # --targets: every key of the named file
    table = rows(project.ok("params", "diff", "--targets", "config/model.yaml"))
    assert [row[1] for row in table[1:]] == ["model.depth", "model.width", "unused"]


def test_params_diff_without_pipeline_uses_params_yaml(project: Project) -> None:
    project.write("params.yaml", "a:\n  b: 1\n")
    project.commit("params")
    project.write("params.yaml", "a:\n  b: 2\n  c: x\n")
    assert rows(project.ok("params", "diff")) == [
        ["Path", "Param", "HEAD", "workspace"],
        ["params.yaml", "a.b", "1", "2"],
        ["params.yaml", "a.c", "—", "x"],
    ]
    project.commit("more")
    assert project.ok("params", "diff") == "No params changed between HEAD and workspace.\n"
    result = diff_params("HEAD~1", "HEAD", workspace=Workspace(project.root))
    assert [(r.param, r.old, r.new, r.status) for r in result.rows] == [
        ("a.b", 1, 2, "modified"),
        ("a.c", None, "x", "added"),
    ]


def test_params_diff_when_the_file_is_missing_at_a_revision(project: Project) -> None:
    project.write("params.yaml", "lr: 0.1\nopt: null\n")
    result = project.cvy("params", "diff")
    assert result.code == 0
    assert rows(result.out)[1:] == [["params.yaml", "lr", "—", "0.1"], ["params.yaml", "opt", "—", "null"]]


def test_params_diff_broken_file_in_history_is_a_warning(project: Project) -> None:
    project.write("params.yaml", "a: [1\n")
    project.commit("broken")
    project.write("params.yaml", "a: 1\n")
    result = project.cvy("params", "diff")
    assert result.code == 0
    assert result.err.startswith("warning: HEAD:params.yaml:")
    assert rows(result.out)[1:] == [["params.yaml", "a", "—", "1"]]
    project.commit("fixed")
    project.write("params.yaml", "a: [1\n")
    result = project.cvy("params", "diff")  # the workspace's own file: an error to fix
    assert result.code == 2
    assert result.err.startswith("error: params.yaml:")


# -- plots -----------------------------------------------------------------------------------------


def test_plots_show_writes_html_and_png(project: Project) -> None:
    project.write("loss.csv", "epoch,loss,acc\n1,0.9,0.5\n2,0.6,0.6\n3,0.4,0.7\n")
    project.write("curve.json", json.dumps([{"fpr": 0, "tpr": 0}, {"fpr": 0.5, "tpr": 0.8}, {"fpr": 1, "tpr": 1}]))
    project.write(
        "logs.yaml", "train:\n  - {step: 0, loss: 1.0}\n  - {step: 1, loss: 0.5}\nval:\n  - {step: 0, loss: 1.2}\n"
    )
    project.write("scores.tsv", "value\n3\n1\n2\n")
    project.write("confusion.png", tiny_png())
    project.write("diagram.svg", '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')
    files = ["loss.csv", "curve.json", "logs.yaml", "scores.tsv", "confusion.png", "diagram.svg"]
    out = project.ok("plots", "show", *files, "-o", "report")
    assert out == "report/index.html\n"
    html = (project.root / "report" / "index.html").read_text()
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for name in files:
        assert f'<p class="path">{name}</p>' in html
    charts = embedded_pngs(html)
    assert len(charts) == 5  # four series, and the PNG image embedded as is
    assert tiny_png() in charts
    for chart in charts:
        assert chart.startswith(PNG_SIGNATURE)
    assert all(len(c) > 5000 for c in charts if c != tiny_png())
    assert "data:image/svg+xml;base64," in html
    assert "<th>epoch</th><th>loss</th><th>acc</th>" in html  # the data table under the chart
    written = sorted(p.name for p in (project.root / "report").glob("*.png"))
    assert written == ["curve.json.png", "logs.yaml.png", "loss.csv.png", "scores.tsv.png"]
    assert (project.root / "report" / "loss.csv.png").read_bytes() in charts


def test_plots_show_is_deterministic_and_uses_the_options(project: Project) -> None:
    project.write("loss.csv", "epoch,loss,acc\n1,0.9,0.5\n2,0.6,0.6\n")
    first = json.loads(project.ok("plots", "show", "loss.csv", "--json"))
    png = Path(first["plots"][0]["png"]).read_bytes()
    project.ok("plots", "show", "loss.csv")
    assert Path(first["plots"][0]["png"]).read_bytes() == png
    assert first["index"] == str(project.root / "conveyor_plots" / "index.html")
    project.ok("plots", "show", "loss.csv", "-y", "loss", "-y", "acc", "--title", "Both curves")
    html = (project.root / "conveyor_plots" / "index.html").read_text()
    assert "<h2>Both curves</h2>" in html
    assert embedded_pngs(html)[0] != png


def test_plots_from_conveyor_yaml_and_diff_across_revisions(project: Project) -> None:
    project.write("conveyor.yaml", PIPELINE)
    project.write("params.yaml", "train:\n  lr: 0.1\n")
    project.write("config/model.yaml", "model:\n  depth: 3\n")
    project.write("loss.csv", "epoch,loss\n1,0.9\n2,0.6\n")
    project.commit("one")
    project.write("loss.csv", "epoch,loss\n1,0.8\n2,0.5\n3,0.3\n")
    project.commit("two")
    project.write("loss.csv", "epoch,loss\n1,0.7\n2,0.4\n3,0.2\n4,0.1\n")

    report = json.loads(project.ok("plots", "show", "--json"))
    assert report["revs"] == ["workspace"]
    assert [p["title"] for p in report["plots"]] == ["Training loss"]

    report = json.loads(project.ok("plots", "diff", "--json"))
    assert report["revs"] == ["HEAD", "workspace"]
    report = json.loads(project.ok("plots", "diff", "HEAD~1", "HEAD", "--json", "-o", "cmp"))
    assert report["revs"] == ["HEAD~1", "HEAD"]
    assert report["plots"][0]["revs"] == ["HEAD~1", "HEAD"]
    html = (project.root / "cmp" / "index.html").read_text()
    assert "<h1>Plots: HEAD~1 vs HEAD</h1>" in html
    assert "<caption>HEAD~1</caption>" in html and "<caption>HEAD</caption>" in html
    assert len(embedded_pngs(html)) == 1  # one chart per file, the versions overlaid
    three = json.loads(project.ok("plots", "diff", "HEAD~1", "HEAD", "HEAD~1", "--json"))
    assert three["revs"] == ["HEAD~1", "HEAD", "HEAD~1"]


def test_plots_diff_images_side_by_side_and_missing_versions(project: Project) -> None:
    project.write("confusion.png", tiny_png())
    project.commit("image")
    project.write("confusion.png", tiny_png() + b"\0")  # another version
    project.write("new.csv", "x,y\n1,2\n")
    result = project.cvy("plots", "diff", "--targets", "confusion.png", "--targets", "new.csv")
    assert result.code == 0, result.err
    html = (project.root / "conveyor_plots" / "index.html").read_text()
    assert html.count("<figure>") == 2
    assert "<figcaption>HEAD</figcaption>" in html and "<figcaption>workspace</figcaption>" in html
    assert '<p class="note">not in HEAD</p>' in html  # new.csv


def test_plots_bad_inputs(project: Project) -> None:
    result = project.cvy("plots", "show", "nope.csv")
    assert result.code == 66
    project.write("words.csv", "a,b\nx,y\n")
    result = project.cvy("plots", "show", "words.csv")
    assert result.code == 0
    assert "warning: words.csv: no numeric column to plot" in result.err
    project.write("odd.json", '{"a": 1}')
    result = project.cvy("plots", "show", "odd.json")
    assert result.code == 65
    assert "odd.json: holds no data series" in result.err
    project.write("loss.csv", "epoch,loss\n1,2\n")
    result = project.cvy("plots", "show", "loss.csv", "-y", "nope")
    assert "warning: loss.csv in workspace: no column 'nope' (columns: epoch, loss)" in result.err


def test_plots_without_matplotlib_say_how_to_install_it(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.write("loss.csv", "epoch,loss\n1,2\n2,1\n")
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    result = project.cvy("plots", "show", "loss.csv")
    assert result.code == 69
    assert result.err == (
        "error: drawing plots needs matplotlib, which is not installed; pip install 'conveyor[plots]'\n"
    )
    project.write("image.png", tiny_png())
    assert project.cvy("plots", "show", "image.png").code == 0  # images need no matplotlib
