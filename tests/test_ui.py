"""``conveyor ui`` as a real server process on loopback, driven by a real HTTP client: every page
on a workspace with real delivery history, the live pipeline state, the actions and their
token, and escaping of hostile text. (tests/test_ui_browser.py drives it in Chromium.)"""

from __future__ import annotations

import html
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import CONVEYOR_BIN, Project
from conveyor.registry import Registry
from conveyor.workspace import Workspace
from test_delivery import delivery_project

TOKEN = "ui-test-token-0123456789abcdef"
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


@dataclass
class Dashboard:
    url: str
    project: Project
    proc: subprocess.Popen[str]

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return httpx.post(self.url + path, data=data, timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_ui(project: Project, host: str = "127.0.0.1") -> tuple[subprocess.Popen[str], str]:
    token_file = project.root.parent / "ui-token"
    token_file.write_text(TOKEN)
    port = free_port()
    with (project.root.parent / "ui.log").open("w") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            [CONVEYOR_BIN, "ui", "--host", host, "--port", str(port), "--token-file", str(token_file)],
            cwd=project.root,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"conveyor ui exited: {(project.root.parent / 'ui.log').read_text()}")
        try:
            httpx.get(url + "/static/app.css", timeout=2)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("conveyor ui did not answer within 60 s")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def delivered_workspace(project: Project) -> None:
    """The delivery test's iris project, delivered twice (two runs, versions 1 and 2 in
    production), with a hostile tag and param value to show."""
    delivery_project(project)
    project.ok("deliver")
    project.write("params.yaml", f"train:\n  c: 0.5\n  shuffle: false\n  note: '{HOSTILE}'\n")
    project.commit("smaller C")
    project.ok("deliver")
    with Registry.open(Workspace.find(project.root)) as registry:
        registry.set_tag("iris:2", "note", HOSTILE)


@pytest.fixture
def dashboard(project: Project) -> Iterator[Dashboard]:
    delivered_workspace(project)
    proc, url = start_ui(project)
    try:
        yield Dashboard(url, project, proc)
    finally:
        stop(proc)


def moves(project: Project) -> list[tuple[str, str, int | None]]:
    with Registry.open(Workspace.find(project.root)) as registry:
        return [(m.alias, m.action, m.to_version) for m in registry.history("iris")]


def test_every_page_answers_with_what_the_workspace_holds(dashboard: Dashboard) -> None:
    with Registry.open(Workspace.find(dashboard.project.root)) as registry:
        v2 = registry.get("iris:2")
        bundle = registry.bundles(v2)[0]  # deliver built it
    assert v2.run_id and v2.git_commit
    pages = {
        "/": ["prepare", "train", "evaluate", v2.run_id, "iris"],
        "/runs": [v2.run_id, "succeeded"],
        f"/runs/{v2.run_id}": ["train", 'href="/reports/evaluate"', "passed"],
        "/metrics": ["Metrics across runs"],
        "/checks": ["evaluate", "HTML report", "passed"],
        "/models": ["iris"],
        "/models/iris": ["production", "promote", "deliver"],
        "/models/iris/2": [v2.run_id, v2.git_commit, v2.artifact_hash, "data/train.csv", "evaluate", bundle.sha256],
        "/deployments": ["Promote", "Roll back", "production"],
        "/stats": ["Deployment frequency", "Lead time", "Change failure rate", "Time to restore"],
    }
    for path, expected in pages.items():
        answer = dashboard.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        for text in expected:
            assert text in answer.text, (path, text, answer.text[answer.text.find("<main>") :][:3000])
        assert "script-src 'self'" in answer.headers["content-security-policy"], path
    report = dashboard.get("/reports/evaluate")
    assert report.status_code == 200 and "<html" in report.text.lower()
    assert "sandbox" in report.headers["content-security-policy"]
    assert dashboard.get("/reports/train").status_code == 404  # only check stages' reports are served
    assert dashboard.get("/runs/nonexistent").status_code == 404
    assert dashboard.get("/static/app.js").status_code == 200


def test_the_pipeline_state_follows_the_workspace(dashboard: Dashboard) -> None:
    states = dashboard.get("/api/pipeline").json()["states"]
    assert states == {"prepare": "up-to-date", "train": "up-to-date", "evaluate": "up-to-date"}
    dashboard.project.write("params.yaml", "train:\n  c: 0.25\n  shuffle: false\n")
    state = dashboard.get("/api/pipeline").json()
    assert state["states"] == {"prepare": "up-to-date", "train": "stale", "evaluate": "stale"}
    assert state["running_run"] is None
    page = dashboard.get("/").text
    assert re.search(r'class="node state-stale" data-stage="train"', page)
    assert "param train.c changed" in html.unescape(page)


def test_runs_filter_sort_page_and_compare(dashboard: Dashboard) -> None:
    with Registry.open(Workspace.find(dashboard.project.root)) as registry:
        first, second = registry.get("iris:1").run_id, registry.get("iris:2").run_id
    assert first and second
    listing = dashboard.get("/runs").text
    assert listing.index(second) < listing.index(first)  # newest first
    oldest_first = dashboard.get("/runs", params={"sort": "started", "dir": "asc"}).text
    assert oldest_first.index(first) < oldest_first.index(second)
    assert first not in dashboard.get("/runs", params={"q": second[:20]}).text
    assert "No runs match." in dashboard.get("/runs", params={"status": "failed"}).text
    assert dashboard.get("/runs", params={"sort": "nonsense"}).status_code == 400
    compared = dashboard.get("/runs/compare", params=[("run", first), ("run", second)])
    assert compared.status_code == 200
    row = re.search(r'<tr class="(\w+)" data-key="train.c">(.*?)</tr>', compared.text, re.S)
    assert row is not None, compared.text[compared.text.find("<main>") :][:3000]
    assert row.group(1) == "differs"
    assert "<td>1</td><td>0.5</td>" in row.group(2)
    assert dashboard.get("/runs/compare", params={"run": first}).status_code == 400


def test_promote_and_roll_back_need_the_token_and_go_through_the_policy(dashboard: Dashboard) -> None:
    before = moves(dashboard.project)
    refused = dashboard.post("/actions/rollback", {"model": "iris", "reason": "no token"})
    assert refused.status_code == 403
    refused = dashboard.post("/actions/rollback", {"model": "iris", "reason": "bad", "token": "x" * 30})
    assert refused.status_code == 403
    assert moves(dashboard.project) == before  # nothing moved
    done = dashboard.post("/actions/rollback", {"model": "iris", "reason": "from the UI", "token": TOKEN})
    assert done.status_code == 303
    assert moves(dashboard.project)[-1] == ("production", "rollback", 1)
    page = httpx.get(dashboard.url + done.headers["location"], timeout=30).text
    assert "moved back from iris:2 to iris:1" in html.unescape(page)
    done = dashboard.post("/actions/promote", {"model": "iris", "version": "2", "alias": "", "token": TOKEN})
    assert done.status_code == 303 and "problem" not in done.headers["location"]
    assert moves(dashboard.project)[-1] == ("production", "promote", 2)
    with Registry.open(Workspace.find(dashboard.project.root)) as registry:
        assert registry.history("iris")[-1].actor == "dashboard"


def test_the_policy_refuses_a_version_without_its_checks_from_the_ui_too(dashboard: Dashboard) -> None:
    import skops.io
    from sklearn.tree import DecisionTreeClassifier

    from test_delivery import IRIS

    project = dashboard.project
    model = DecisionTreeClassifier(max_depth=1).fit(IRIS.drop(columns="target"), IRIS["target"])
    skops.io.dump(model, project.root / "unchecked.skops")
    with Registry.open(Workspace.find(project.root)) as registry:
        unchecked = registry.register("iris", project.root / "unchecked.skops", description="never checked")
    before = moves(project)
    form = {"model": "iris", "version": str(unchecked.version), "alias": "production", "token": TOKEN}
    answer = dashboard.post("/actions/promote", form)
    assert answer.status_code == 303 and "problem" in answer.headers["location"]
    shown = html.unescape(httpx.get(dashboard.url + answer.headers["location"], timeout=30).text)
    assert f"iris:{unchecked.version} cannot become 'production'" in shown
    assert moves(project) == before  # refused: nothing moved
    answer = dashboard.post("/actions/promote", {**form, "force": "on", "reason": "hotfix, checked by hand"})
    assert answer.status_code == 303 and "problem" not in answer.headers["location"]
    with Registry.open(Workspace.find(project.root)) as registry:
        last = registry.history("iris")[-1]
    assert (last.to_version, last.forced, last.reason) == (unchecked.version, True, "hotfix, checked by hand")


def test_hostile_text_is_shown_as_text(dashboard: Dashboard) -> None:
    with Registry.open(Workspace.find(dashboard.project.root)) as registry:
        run_id = registry.get("iris:2").run_id
    for path in ("/models/iris/2", "/models/iris", f"/runs/{run_id}", "/runs"):
        page = dashboard.get(path).text
        assert "<script>window.pwned" not in page, path
        assert "onerror=" not in page.replace("onerror=&#34;", "").replace("onerror=&quot;", ""), path
        assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page, path


def test_away_from_loopback_every_page_needs_the_token(project: Project) -> None:
    delivery_project(project)
    proc, url = start_ui(project, host="0.0.0.0")
    try:
        assert httpx.get(url + "/runs", timeout=30).status_code == 401
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/runs", params={"token": "wrong-token-wrong-token"}).status_code == 401
            assert client.get("/runs", params={"token": TOKEN}).status_code == 200
            assert client.get("/models").status_code == 200  # the cookie now
    finally:
        stop(proc)


def test_the_runs_page_pages_through_thousands_of_runs(project: Project) -> None:
    from conveyor.store import RunStore
    from conveyor.store._records import RunRecord

    count, t0 = 2500, 1_700_000_000.0
    with RunStore.open(Workspace.find(project.root)) as store:
        for i in range(count):
            run_id = f"20231114-{i:06d}-{i % 997:06x}"
            store.start_run(RunRecord(id=run_id, started_at=t0 + i, params={"lr": i % 7}, command="conveyor run"))
            store.finish_run(run_id, status="succeeded", ended_at=t0 + i + 1, metrics={"acc": (i * 37 % 1000) / 1000})
    proc, url = start_ui(project)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            first = client.get("/runs").text
            assert f"<small>{count}</small>" in first and "Page 1 of 50" in first
            assert len(re.findall(r'<tr data-run="', first)) == 50
            assert f"20231114-{count - 1:06d}" in first  # newest first
            last = client.get("/runs", params={"page": 50}).text
            assert len(re.findall(r'<tr data-run="', last)) == 50 and "20231114-000000-" in last
            best = client.get("/runs", params={"sort": "metric:acc", "dir": "desc"}).text
            values = [float(v) for v in re.findall(r'<td class="num">([0-9.]+)</td>', best)]
            assert values == sorted(values, reverse=True) and values[0] == 0.999
            one = client.get("/runs", params={"q": "20231114-001234"}).text
            assert len(re.findall(r'<tr data-run="', one)) == 1
            chart = client.get("/metrics", params={"key": "acc"}).text
            assert chart.count("<circle") == 2000  # the latest 2,000 points, one indexed query
    finally:
        stop(proc)


def test_the_deployments_page_shows_the_canary_window_of_a_real_server(tmp_path: Path) -> None:
    from test_serving_rollout import FEATURES, GOOD, OTHER, register, start, workspace

    root = workspace(tmp_path)
    register(root, GOOD, promote="production")
    server = start(root, "--window", "40", "--canary-share", "0.5")
    try:
        (root / "conveyor.yaml").write_text(
            f"deploy:\n  model: iris\n  artifact: model.skops\n  server: {server.url}\n", encoding="utf-8"
        )
        register(root, OTHER, promote="canary")
        deadline = time.monotonic() + 30
        while server.status().get("candidate") != "iris:2" and time.monotonic() < deadline:
            time.sleep(0.1)
        rows = FEATURES.head(3).to_dict(orient="records")
        for _ in range(10):
            httpx.post(f"{server.url}/invocations", json={"dataframe_records": rows}, timeout=10).raise_for_status()
        judged = int(server.status()["window"]["requests"])  # type: ignore[index]
        assert judged > 0
        project = Project(root, None)  # type: ignore[arg-type]
        proc, url = start_ui(project)
        try:
            page = httpx.get(url + "/deployments", timeout=30).text
        finally:
            stop(proc)
        assert '<strong class="server-primary">iris:1</strong>' in page
        assert '<strong class="canary-version">iris:2</strong>' in page
        window = re.search(r'<span class="canary-window">(\d+) of 40 requests judged, (\d+) errors', page)
        assert window is not None and int(window.group(1)) >= judged and window.group(2) == "0"
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)


def test_a_bad_token_file_is_one_line_and_starts_nothing(project: Project, tmp_path: Path) -> None:
    missing = project.cvy("ui", "--token-file", str(tmp_path / "nope"))
    assert missing.code != 0 and "Traceback" not in missing.err
    assert "token file" in missing.err and "nope" in missing.err and len(missing.err.strip().splitlines()) <= 2
    short = tmp_path / "short"
    short.write_text("abc")
    result = project.cvy("ui", "--token-file", str(short))
    assert result.code != 0 and "Traceback" not in result.err
    assert "shorter than 16 characters" in result.err
