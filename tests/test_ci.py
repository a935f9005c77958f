"""CI integration: `conveyor ci init` (workflow files, validated against the published schemas)
and `conveyor report` (the pull-request comment) on real pipelines in real git repositories."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from conftest import Project
from conveyor.ci import _markdown as md

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

PIPELINE = f"""\
stages:
  train:
    cmd: {sys.executable} train.py
    deps: [train.py]
    params: [train]
    outs: [data/features.csv]
    metrics: [metrics.json]
    plots:
      - loss.csv:
          x: epoch
          y: loss
          title: Training loss
      - confusion.png
  gate:
    check:
      suite:
        suite: data_integrity
        conditions:
          missing_values:
            max_missing_share: {{fail: 0.0}}
      data: data/features.csv
"""

# writes metrics, a loss curve, an image plot, and the data the gate checks; `holes` leaves
# values out (the gate fails), `crash` fails the stage itself
TRAIN = """\
import json, os, struct, sys, zlib
import yaml

p = yaml.safe_load(open("params.yaml"))["train"]
if p.get("crash"):
    sys.exit("training diverged")
lr, epochs = p["lr"], p["epochs"]
loss = [round(1.0 / (1 + lr * 10 * e), 4) for e in range(1, epochs + 1)]
with open("loss.csv", "w") as f:
    f.write("epoch,loss\\n" + "".join(f"{e},{v}\\n" for e, v in enumerate(loss, 1)))
json.dump({"accuracy": round(0.7 + lr, 4), "loss": loss[-1]}, open("metrics.json", "w"))

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

pixel = bytes([0, int(lr * 1000) % 256, 0, 0])
png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
open("confusion.png", "wb").write(png + chunk(b"IDAT", zlib.compress(pixel)) + chunk(b"IEND", b""))
os.makedirs("data", exist_ok=True)
rows = ["a,b"] + [f"{i},{'' if p.get('holes') and i % 7 == 0 else i * 2}" for i in range(50)]
open("data/features.csv", "w").write("\\n".join(rows) + "\\n")
"""


def params(lr: float = 0.1, *, holes: bool = False, crash: bool = False) -> str:
    return f"train:\n  lr: {lr}\n  epochs: 5\n  holes: {str(holes).lower()}\n  crash: {str(crash).lower()}\n"


def pipeline_on_main(project: Project) -> None:
    """The pipeline, run and committed on main."""
    project.write("conveyor.yaml", PIPELINE)
    project.write("train.py", TRAIN)
    project.write("params.yaml", params())
    ran = project.run("run")
    assert ran.code == 0, ran
    project.write(".gitignore", "/report.md\n/report_plots/\n")
    project.commit("the pipeline")


def change_on_a_branch(project: Project, text: str, *, run_ok: bool = True) -> str:
    """A pull request as CI sees it: the change committed, then run at that commit (the lock and
    outputs change in the checkout, uncommitted). Returns the run's output."""
    project.git("checkout", "-q", "-b", "feature")
    project.write("params.yaml", text)
    project.commit("change the params")
    ran = project.run("run")
    assert (ran.code == 0) == run_ok, ran
    return ran.out + ran.err


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def cells(row: str) -> list[str]:
    """A Markdown table row split into cells as GitHub's parser does (cmark-gfm): a backslash
    and the character after it are one unit, and every other pipe is a border."""
    found, current, i = [], "", 0
    while i < len(row):
        if row[i] == "\\":
            current += row[i : i + 2]
            i += 2
            continue
        if row[i] == "|":
            found.append(current.strip())
            current = ""
        else:
            current += row[i]
        i += 1
    return found[1:]  # the text before the leading pipe is not a cell


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


# -- conveyor report ---------------------------------------------------------------------------------


def test_report_shows_changed_metrics_params_plots_and_the_passed_gate(project: Project) -> None:
    pipeline_on_main(project)
    change_on_a_branch(project, params(0.2))
    run_id = json.loads(project.ok("runs", "list", "--json"))[0]["id"]

    out = project.ok("report", "--md", "-o", "report.md")
    assert out.splitlines() == ["✓ gate passed: gate", "wrote report.md; plots in report_plots"]
    text = (project.root / "report.md").read_text()
    lines = lines_of(text)
    assert lines[0] == "<!-- conveyor report -->"
    assert lines[1] == "## ✅ Gate passed: gate"
    assert f"run `{run_id}`" in lines[3] and ": succeeded (1 ran, 1 up-to-date, " in lines[3]
    assert "against `main`" in lines[3]

    # metrics: old, new, change, change in % of what changed; the unchanged folded away
    assert "| `metrics.json` | `accuracy` | 0.8 | 0.9 | +0.1 | +12.5% |" in lines
    assert "| `metrics.json` | `loss` | 0.1667 | 0.0909 | -0.0758 | -45.5% |" in lines
    metrics_section = text.split("### Metrics")[1].split("### Params")[0]
    assert "<details><summary>11 metrics unchanged</summary>" in metrics_section
    assert "`values.missing_values.max_share`" in metrics_section  # a gate's measures are metrics
    assert "`seconds`" not in metrics_section and "inputs." not in metrics_section  # its timing is not
    # params: only what changed
    params_section = text.split("### Params")[1].split("### Gates")[0]
    assert [row for row in params_section.splitlines() if row.startswith("| `")] == [
        "| `params.yaml` | `train.lr` | 0.1 | 0.2 |"
    ]
    # the gate, with its checks' tally
    assert "| ✅ | `gate` | 6 pass, 4 skipped |" in lines

    # plots: the loss curve of main and the branch in one PNG, the image side by side
    chart = project.root / "report_plots" / "loss.csv.png"
    assert "![Training loss: main vs workspace](report_plots/loss.csv.png)" in lines
    assert chart.read_bytes().startswith(PNG_SIGNATURE)
    image_row = next(row for row in lines if "confusion.png-main.png" in row)
    assert cells(image_row) == [
        "![confusion.png: main](report_plots/confusion.png-main.png)",
        "![confusion.png: workspace](report_plots/confusion.png-workspace.png)",
    ]
    main_png = subprocess.run(["git", "show", "main:confusion.png"], cwd=project.root, capture_output=True).stdout
    assert (project.root / "report_plots" / "confusion.png-main.png").read_bytes() == main_png
    workspace_png = (project.root / "report_plots" / "confusion.png-workspace.png").read_bytes()
    assert workspace_png == (project.root / "confusion.png").read_bytes() != main_png
    assert "[index.html](report_plots/index.html)" in text
    assert (project.root / "report_plots" / "index.html").is_file()

    # the same as JSON
    data = json.loads(project.ok("report", "--json", "--plots-dir", "json_plots"))
    assert data["verdict"] == {"status": "passed", "summary": "gate passed: gate", "failed": []}
    accuracy = next(m for m in data["metrics"] if m["metric"] == "accuracy")
    assert (accuracy["old"], accuracy["new"], accuracy["change"], accuracy["status"]) == (0.8, 0.9, 0.1, "modified")
    assert data["params"] == [
        {"path": "params.yaml", "param": "train.lr", "old": 0.1, "new": 0.2, "status": "modified"}
    ]
    assert data["run"]["id"] == run_id and data["run"]["stages"] == {"train": "ran", "gate": "up-to-date"}
    assert Path(data["plots"][0]["files"]["main vs workspace"]).parent.name == "json_plots"


def test_a_failing_check_stage_fails_the_verdict_and_says_which_check(project: Project) -> None:
    pipeline_on_main(project)
    change_on_a_branch(project, params(0.1, holes=True), run_ok=False)

    result = project.cvy("report", "--md", "-o", "report.md")
    assert result.code == 0, result  # the report is written; the job fails on the run itself
    assert result.out.splitlines()[0] == "✗ gate failed: gate"
    text = (project.root / "report.md").read_text()
    lines = lines_of(text)
    assert lines[1] == "## ❌ Gate failed: gate"
    assert ": failed (" in lines[3]
    gate_row = next(row for row in lines if row.startswith("| ❌ | `gate`"))
    assert cells(gate_row)[2].startswith("1 fail, ")
    details = text.split("<details><summary>❌ gate: 1 failed</summary>")[1].split("</details>")[0]
    assert "| ❌ | Missing values | 1 column(s) have missing values; most in 'b' (16.0%) |" in details
    assert "- ❌ `missing_values.max_missing_share`: share missing in any column" in details
    assert "(value 0.16)" in details
    assert "Full report: `reports/gate.html`" in details
    # the data the gate looked at changed, and the report says by how much
    assert "| `reports/gate.json` | `values.missing_values.max_share` | 0 | 0.16 | +0.16 | — |" in lines
    assert "| `params.yaml` | `train.holes` | false | true |" in lines

    data = json.loads(project.ok("report", "--json"))
    assert data["verdict"]["status"] == "failed" and data["verdict"]["failed"] == ["gate"]
    assert [c["check"] for c in data["gates"][0]["checks"]] == ["missing_values"]


def test_a_failing_stage_before_the_gates_fails_the_verdict(project: Project) -> None:
    pipeline_on_main(project)
    change_on_a_branch(project, params(0.1, crash=True), run_ok=False)
    report = project.ok("report", "--md")
    assert "## ❌ Stage failed: train; the gates did not run: gate" in report.splitlines()
    gate_row = next(row for row in report.splitlines() if "`gate`" in row and row.startswith("| "))
    assert cells(gate_row)[0] == "⏭️"
    assert "Missing values" not in report  # no check ran: nothing from an older report


def test_without_a_run_of_this_commit_the_lock_vouches_or_nothing_is_judged(project: Project) -> None:
    pipeline_on_main(project)  # ran, then committed: the run is of the commit before
    report = project.ok("report", "--md", "--base", "main")
    assert report.splitlines()[1] == "## ✅ Gate passed: gate (up to date with conveyor.lock)"
    assert "No param changed." in report
    assert "No metric changed (13 metrics)." in report

    project.write("params.yaml", params(0.3))  # changed, not run
    report = project.ok("report", "--md")
    assert (
        report.splitlines()[1]
        == "## ⚪ Not judged: no run of this commit is recorded, and stages are stale: train, gate"
    )
    assert "the latest recorded run (" in report and "not at HEAD" in report


def test_a_bad_base_revision_is_one_line_without_traceback(project: Project) -> None:
    pipeline_on_main(project)
    result = project.run("report", "--md", "--base", "no-such-branch")
    assert result.code == 2, result
    assert result.err.splitlines() == [
        "error: base revision 'no-such-branch' not found; name a branch, tag or commit with --base; "
        "in CI, fetch the whole history (fetch-depth: 0)"
    ]
    no_traceback(result.err)
    assert result.out == ""
    for args, message in (
        (["report"], "error: choose the report's format; pass --md (a pull-request comment) or --json"),
        (
            ["report", "--md", "--json"],
            "error: --md and --json both given; pass --md (a pull-request comment) or --json",
        ),
    ):
        result = project.run(*args)
        assert (result.code, result.err.splitlines()) == (2, [message]), result


def test_the_base_branch_of_a_ci_clone_is_found_under_origin(project: Project) -> None:
    pipeline_on_main(project)
    main = project.git("rev-parse", "HEAD").strip()
    project.git("update-ref", "refs/remotes/origin/release", main)  # as actions/checkout leaves it
    data = json.loads(project.ok("report", "--json", "--base", "release"))
    assert (data["base_ref"], data["base_commit"]) == ("origin/release", main)
    assert "'release' is not a local branch: compared with 'origin/release'" in data["notes"]


def test_plots_link_to_a_published_folder_or_to_the_ci_run(project: Project) -> None:
    pipeline_on_main(project)
    change_on_a_branch(project, params(0.2))
    url = "https://gitlab.example.com/g/p/-/jobs/7/artifacts/raw/report_plots"
    report = project.ok("report", "--md", "--plots-url", url + "/")
    assert f"![Training loss: main vs workspace]({url}/loss.csv.png)" in report
    assert f"({url}/confusion.png-main.png)" in report
    assert "index.html" not in report  # an offline page is for a local folder

    run = "https://github.com/o/r/actions/runs/42"
    report = project.ok("report", "--md", "--artifact-url", run)
    assert "![" not in report  # a comment cannot show the runner's files: no broken images
    assert f"download it from [the CI run]({run})" in report
    assert "- Training loss (`loss.csv`): `report_plots/loss.csv.png`" in report


def test_user_text_is_escaped_in_tables(project: Project) -> None:
    project.write("conveyor.yaml", f"stages:\n  s:\n    cmd: {sys.executable} -c pass\n    metrics: [m.json]\n")
    project.write("params.yaml", "a|b: '<b>x</b>'\n")
    project.write("m.json", json.dumps({"f1|macro": 0.5, "<img src=x>": 1, "*bold*": 2}))
    project.commit("metrics")
    project.write("params.yaml", "a|b: 'y | z'\n")
    project.write("m.json", json.dumps({"f1|macro": 0.75, "<img src=x>": 2, "*bold*": 3}))
    report = project.ok("report", "--md", "--base", "main")
    rows = [row for row in report.splitlines() if row.startswith("| `")]
    assert all(len(cells(row)) == 6 for row in rows if "m.json" in row), rows
    assert "| `m.json` | `f1\\|macro` | 0.5 | 0.75 | +0.25 | +50% |" in rows
    assert "<img" not in report.replace("`<img src=x>`", "")
    param_row = next(row for row in rows if "params.yaml" in row)
    assert cells(param_row) == ["`params.yaml`", "`a\\|b`", "\\<b\\>x\\</b\\>", "y \\| z"]


@given(st.text(), st.text())
def test_any_text_stays_in_its_table_cell(first: str, second: str) -> None:
    row = md.table(["a", "b"], [[md.text(first), md.code(second)]]).splitlines()[2]
    assert len(cells(row)) == 2, row
    assert "\n" not in row
    assert re.search(r"(?<!\\)<", md.text(first).replace("\\\\", "")) is None  # no HTML tag can start


def test_markdown_escaping() -> None:
    assert md.text("a|b <i>*x*</i> _y_ [l](u) `c` #1 & 2") == (
        "a\\|b \\<i\\>\\*x\\*\\</i\\> \\_y\\_ \\[l\\](u) \\`c\\` \\#1 \\& 2"
    )
    assert md.text("two\nlines") == "two lines"
    assert md.code("a|b") == "`a\\|b`"
    assert md.code("x`y") == "``x`y``"
    assert md.code("`x") == "`` `x ``"
    assert md.code("a\\|b") == "a\\\\\\|b"  # no code span: a backslash before a pipe would end the cell
    assert md.html_text("<b> & </b>") == "&lt;b&gt; &amp; &lt;/b&gt;"
    assert md.table(["a", "b"], [["1", ""]], right=(1,)) == "| a | b |\n| :--- | ---: |\n| 1 |   |"


# -- conveyor ci init ----------------------------------------------------------------------------------


def workflow(project: Project, provider: str) -> Path:
    return project.root / {"github": ".github/workflows/conveyor.yml", "gitlab": ".gitlab-ci.yml"}[provider]


def validate(provider: str, files: list[Path]) -> None:
    """Validate against the schema the schemastore publishes (vendored by check-jsonschema)."""
    schema = {"github": "vendor.github-workflows", "gitlab": "vendor.gitlab-ci"}[provider]
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def shell_ok(script: str) -> None:
    proc = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert proc.returncode == 0, f"{proc.stderr}\n{script}"


def github_steps(doc: dict[Any, Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = doc["jobs"]["conveyor"]["steps"]
    return steps


def step_running(steps: list[dict[str, Any]], command: str) -> dict[str, Any]:
    return next(s for s in steps if command in s.get("run", ""))


def with_remote_and_deploy(project: Project) -> None:
    project.write("conveyor.yaml", PIPELINE + "deploy:\n  model: demo\n  artifact: models/model.skops\n")
    project.write("train.py", TRAIN)
    project.write("requirements.txt", "pandas\n")
    project.ok("remote", "add", "storage", "s3://bucket/conveyor", "--default")


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_workflows_validate_against_the_published_schemas(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str], provider: str
) -> None:
    files = []
    out = project.ok("ci", "init", provider)
    assert out.splitlines()[0] == f"wrote {workflow(project, provider).relative_to(project.root)} (" + (
        "GitHub Actions)" if provider == "github" else "GitLab CI)"
    )
    files.append(workflow(project, provider))
    variants = {
        "s3-deploy": with_remote_and_deploy,
        "gs": lambda p: p.ok("remote", "add", "store", "gs://bucket/x", "--default"),
        "ssh": lambda p: p.ok("remote", "add", "box", "ssh://host/srv/data", "--default"),
        "azure": lambda p: p.ok("remote", "add", "blob", "az://container/x", "--default"),
    }
    for name, setup in variants.items():
        other = Project(tmp_path / name, capsys)
        other.root.mkdir()
        subprocess.run(["git", "init", "-q", "-b", "main", str(other.root)], check=True)
        other.ok("init")
        setup(other)
        other.ok("ci", "init", provider, "--branch", "trunk", "--python", "3.12")
        files.append(workflow(other, provider))
    validate(provider, files)


def test_github_workflow_structure(project: Project) -> None:
    with_remote_and_deploy(project)
    out = project.ok("ci", "init", "github")
    assert "set these in Settings > Secrets and variables > Actions" in out
    assert "CONVEYOR_DB, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY" in out
    text = workflow(project, "github").read_text()
    doc = yaml.safe_load(text)
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert on == {"push": {"branches": ["main"]}, "pull_request": None}
    assert doc["permissions"] == {"contents": "read", "pull-requests": "write"}
    job = doc["jobs"]["conveyor"]
    assert job["env"] == {
        "AWS_ACCESS_KEY_ID": "${{ secrets.AWS_ACCESS_KEY_ID }}",
        "AWS_SECRET_ACCESS_KEY": "${{ secrets.AWS_SECRET_ACCESS_KEY }}",
    }
    steps = github_steps(doc)
    uses = [s.get("uses") for s in steps]
    checkout = steps[uses.index("actions/checkout@v4")]
    assert checkout["with"]["fetch-depth"] == 0
    python = steps[uses.index("actions/setup-python@v5")]
    assert python["with"] == {"python-version": "3.11", "cache": "pip", "cache-dependency-path": "requirements.txt"}
    install = step_running(steps, "pip install")["run"]
    assert 'pip install "conveyor[checks,plots,postgres,s3,sklearn]==0.1.0"' in install
    assert "pip install -r requirements.txt" in install
    database = step_running(steps, "CONVEYOR_DB")
    assert database["env"] == {"DB": "${{ secrets.CONVEYOR_DB }}"}  # set only when not empty
    names = [s.get("run", s.get("uses")) for s in steps]
    run = step_running(steps, "conveyor run")
    assert run["run"] == "conveyor run --pull" and "if" not in run
    push = step_running(steps, "conveyor push")
    deliver = step_running(steps, "conveyor deliver")
    assert push["if"] == deliver["if"] == "github.event_name == 'push'"
    report = step_running(steps, "conveyor report")
    assert report["if"] == "${{ !cancelled() }}"  # also after a failed gate
    assert 'conveyor report --md --base "$BASE" -o report.md --artifact-url "$RUN_URL"' in report["run"]
    assert "format('origin/{0}', github.base_ref)" in report["env"]["BASE"]
    upload = steps[uses.index("actions/upload-artifact@v4")]
    assert upload["with"]["path"].split() == ["report.md", "report_plots/", "reports/gate.html"]
    comment = step_running(steps, "gh pr comment")
    assert comment["run"] == 'gh pr comment "$PR" --body-file report.md'
    assert comment["env"] == {
        "GH_TOKEN": "${{ secrets.GITHUB_TOKEN }}",
        "PR": "${{ github.event.pull_request.number }}",
    }
    assert "github.event_name == 'pull_request'" in comment["if"] and "!cancelled()" in comment["if"]
    order = [names.index(s.get("run", s.get("uses"))) for s in (checkout, python, run, push, deliver, report, comment)]
    assert order == sorted(order)
    for step in steps:
        if "run" in step:
            assert "${{" not in step["run"]  # expressions reach scripts through env, never spliced in
            shell_ok(step["run"])


def test_github_workflow_without_remote_or_deploy(project: Project) -> None:
    project.write("conveyor.yaml", "stages:\n  s:\n    cmd: echo\n")
    project.ok("ci", "init", "github", "--branch", "trunk")
    doc = yaml.safe_load(workflow(project, "github").read_text())
    assert doc.get("on", doc.get(True))["push"] == {"branches": ["trunk"]}
    steps = github_steps(doc)
    runs = [s["run"] for s in steps if "run" in s]
    assert "conveyor run" in runs
    assert not any("deliver" in r or "conveyor push" in r or "CONVEYOR_DB" in r for r in runs)
    assert "env" not in doc["jobs"]["conveyor"]
    assert "cache" not in steps[1]["with"]  # setup-python's pip cache needs a dependency file
    assert 'pip install "conveyor==0.1.0"' in step_running(steps, "pip install")["run"]


def test_gitlab_workflow_structure(project: Project) -> None:
    with_remote_and_deploy(project)
    out = project.ok("ci", "init", "gitlab")
    assert "set these in Settings > CI/CD > Variables" in out and "CONVEYOR_GITLAB_TOKEN" in out
    doc = yaml.safe_load(workflow(project, "gitlab").read_text())
    assert doc["workflow"]["rules"] == [
        {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'},
        {"if": '$CI_COMMIT_BRANCH == "main"'},
    ]
    job = doc["conveyor"]
    assert job["image"] == "python:3.11"
    assert job["variables"]["GIT_DEPTH"] == "0"
    paths = ["report.md", "report_plots/", "reports/gate.html"]  # the check stage's own report too
    assert job["artifacts"] == {"when": "always", "expire_in": "30 days", "paths": paths}
    script: list[str] = job["script"]
    assert script[0] == 'pip install "conveyor[checks,plots,postgres,s3,sklearn]==0.1.0"'
    assert script[1] == "pip install -r requirements.txt"
    assert "conveyor run --pull || status=$?" in script
    deliver = next(line for line in script if "conveyor deliver" in line)
    assert '[ "$status" -eq 0 ] && [ "$CI_COMMIT_BRANCH" = "main" ]' in deliver
    assert "conveyor push --run-cache && conveyor deliver" in deliver
    report = next(line for line in script if "conveyor report" in line)
    assert 'git fetch --quiet origin "+refs/heads/$target:refs/remotes/origin/$target"' in report
    assert '--plots-url "$CI_JOB_URL/artifacts/raw/report_plots"' in report
    note = next(line for line in script if "curl" in line)
    assert '--header "PRIVATE-TOKEN: $CONVEYOR_GITLAB_TOKEN"' in note and '--data-urlencode "body@report.md"' in note
    assert "/merge_requests/$CI_MERGE_REQUEST_IID/notes" in note
    assert script[-1] == 'exit "$status"'
    order = [
        next(i for i, line in enumerate(script) if word in line) for word in ("run --pull", "deliver", "report", "curl")
    ]
    assert order == sorted(order)
    shell_ok("\n".join(script))


def test_ci_init_refuses_to_overwrite_without_force(project: Project) -> None:
    project.ok("ci", "init", "github")
    path = workflow(project, "github")
    path.write_text("# mine\n")
    result = project.run("ci", "init", "github")
    assert result.code == 2, result
    assert result.err.splitlines() == [
        "error: .github/workflows/conveyor.yml already exists; edit it by hand, or replace it with "
        "'conveyor ci init github --force'"
    ]
    no_traceback(result.err)
    assert path.read_text() == "# mine\n"
    project.ok("ci", "init", "github", "--force")
    assert path.read_text().startswith("# Continuous delivery with conveyor")


def test_unknown_provider_lists_the_choices(project: Project) -> None:
    for name, message in (
        ("jenkins", "error: unknown CI provider 'jenkins'; choose github or gitlab"),
        ("githb", "error: unknown CI provider 'githb'; did you mean 'github'? choose github or gitlab"),
    ):
        result = project.run("ci", "init", name)
        assert (result.code, result.err.splitlines()) == (2, [message]), result
        no_traceback(result.err)
    assert not (project.root / ".github").exists()


def test_a_remote_ci_cannot_see_is_said_and_not_used(project: Project) -> None:
    project.ok("remote", "add", "laptop", "s3://bucket/x", "--default", "--local")
    out = project.ok("ci", "init", "gitlab")
    assert "note: the remotes are in .conveyor/config.local only, which CI never sees" in out
    script = yaml.safe_load(workflow(project, "gitlab").read_text())["conveyor"]["script"]
    assert "conveyor run || status=$?" in script
    assert not any("--pull" in line or "push" in line for line in script)

    other = project.root / "folder-remote"
    project.ok("remote", "add", "shared", str(other), "--default", "--force")
    out = project.ok("ci", "init", "github", "--force")
    assert f"note: the remote 'shared' is a folder ({other}), which a CI runner cannot reach" in out
