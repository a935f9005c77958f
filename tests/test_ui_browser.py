"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): every page loads
without a script error, the DAG shows the right states and follows a run in progress, two runs
are compared, a promotion and a rollback are made through the forms with and without the
token, and hostile text never runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CONVEYOR_BIN, Project
from conveyor.registry import Registry
from conveyor.workspace import Workspace
from test_ui import TOKEN, delivered_workspace, start_ui, stop

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # make test installs Debian's
# as root in a container: no sandbox; no background connections (the network is closed)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "images"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    tab = context.new_page()
    tab.problems = []  # script errors and console errors, checked by each test
    tab.on("pageerror", lambda error: tab.problems.append(f"page error: {error}"))
    tab.on("console", lambda m: tab.problems.append(f"console: {m.text}") if m.type == "error" else None)
    tab.on("dialog", lambda d: (tab.problems.append(f"dialog: {d.message}"), d.dismiss()))
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def delivered(project: Project) -> Iterator[tuple[Project, str]]:
    delivered_workspace(project)
    proc, url = start_ui(project)
    try:
        yield project, url
    finally:
        stop(proc)


def test_every_page_loads_and_the_dag_shows_each_stage_state(delivered: tuple[Project, str], page: object) -> None:
    project, url = delivered
    p = page
    for path in ("/runs", "/metrics", "/checks", "/models", "/models/iris", "/models/iris/2", "/deployments", "/stats"):
        answer = p.goto(url + path)  # type: ignore[attr-defined]
        assert answer.status == 200, path
        assert p.locator("main h1").count() == 1, path  # type: ignore[attr-defined]
    p.goto(url + "/")  # type: ignore[attr-defined]
    for stage in ("prepare", "train", "evaluate"):
        node = p.locator(f'svg#dag g.node[data-stage="{stage}"]')  # type: ignore[attr-defined]
        assert node.get_attribute("class") == "node state-up-to-date"
        assert node.is_visible()
    # prepare -> train, prepare -> evaluate (the data), train -> evaluate (the model)
    assert p.locator("svg#dag path.edge").count() == 3  # type: ignore[attr-defined]
    project.write("params.yaml", "train:\n  c: 0.25\n  shuffle: false\n")
    # the page follows the workspace without a reload
    p.wait_for_selector('svg#dag g.node.state-stale[data-stage="train"]', timeout=10_000)  # type: ignore[attr-defined]
    assert p.locator('svg#dag g.node[data-stage="prepare"]').get_attribute("class") == "node state-up-to-date"  # type: ignore[attr-defined]
    assert p.problems == []  # type: ignore[attr-defined]


SLOW_PIPELINE = f"""\
stages:
  first:
    cmd: {sys.executable} -c "open('a.txt', 'w').write('a')"
    outs: [a.txt]
  slow:
    cmd: {sys.executable} -c "import time; time.sleep(4); open('b.txt', 'w').write(open('a.txt').read() + 'b')"
    deps: [a.txt]
    outs: [b.txt]
  last:
    cmd: {sys.executable} -c "open('c.txt', 'w').write(open('b.txt').read() + 'c')"
    deps: [b.txt]
    outs: [c.txt]
"""


def test_the_dag_follows_a_run_in_progress(project: Project, page: object) -> None:
    project.write("conveyor.yaml", SLOW_PIPELINE)
    project.commit("a slow pipeline")
    proc, url = start_ui(project)
    run = None
    try:
        p = page
        p.goto(url + "/")  # type: ignore[attr-defined]
        assert p.locator('g.node[data-stage="slow"]').get_attribute("class") == "node state-stale"  # type: ignore[attr-defined]
        run = subprocess.Popen(
            [CONVEYOR_BIN, "run"], cwd=project.root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        p.wait_for_selector('g.node.state-running[data-stage="slow"]', timeout=15_000)  # type: ignore[attr-defined]
        assert p.locator('g.node[data-stage="first"]').get_attribute("class") == "node state-up-to-date"  # type: ignore[attr-defined]
        assert p.locator('g.node[data-stage="last"]').get_attribute("class") == "node state-queued"  # type: ignore[attr-defined]
        assert "in progress" in p.locator("#run-message").inner_text()  # type: ignore[attr-defined]
        if os.environ.get("UPDATE_SCREENSHOTS"):  # the README's picture
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            p.screenshot(path=str(SCREENSHOTS / "dashboard.png"))  # type: ignore[attr-defined]
        p.wait_for_selector('g.node.state-up-to-date[data-stage="last"]', timeout=30_000)  # type: ignore[attr-defined]
        assert p.locator('g.node[data-stage="slow"]').get_attribute("class") == "node state-up-to-date"  # type: ignore[attr-defined]
        p.wait_for_function("document.getElementById('run-message').textContent.startsWith('No run')")  # type: ignore[attr-defined]
        _out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        assert p.problems == []  # type: ignore[attr-defined]
    finally:
        if run is not None and run.poll() is None:
            run.kill()
            run.communicate()
        stop(proc)


def test_two_runs_are_compared_from_the_runs_page(delivered: tuple[Project, str], page: object) -> None:
    _project, url = delivered
    p = page
    p.goto(url + "/runs")  # type: ignore[attr-defined]
    button = p.locator("#compare")  # type: ignore[attr-defined]
    assert button.is_disabled()
    boxes = p.locator('#runs input[name="run"]')  # type: ignore[attr-defined]
    assert boxes.count() == 2
    boxes.nth(0).check()
    assert button.is_disabled()  # one is not enough
    boxes.nth(1).check()
    button.click()
    p.wait_for_url("**/runs/compare?**")  # type: ignore[attr-defined]
    row = p.locator('#compare-table tr[data-key="train.c"]')  # type: ignore[attr-defined]
    assert row.get_attribute("class") == "differs"
    assert row.locator("td").all_inner_texts() == ["1", "0.5"]
    assert p.problems == []  # type: ignore[attr-defined]


def _moves(project: Project) -> list[tuple[str, str, int | None]]:
    with Registry.open(Workspace.find(project.root)) as registry:
        return [(m.alias, m.action, m.to_version) for m in registry.history("iris")]


def test_rollback_and_promotion_through_the_forms_need_the_token(delivered: tuple[Project, str], page: object) -> None:
    project, url = delivered
    p = page
    before = _moves(project)
    p.goto(url + "/deployments")  # type: ignore[attr-defined]
    assert p.locator(".serving-version").inner_text() == "2"  # type: ignore[attr-defined]
    rollback = p.locator("form.rollback")  # type: ignore[attr-defined]
    rollback.locator('input[name="reason"]').fill("no token")
    rollback.locator("button").click()
    assert "needs the dashboard's token" in p.locator("#error").inner_text()  # type: ignore[attr-defined]
    assert _moves(project) == before
    p.goto(url + "/deployments")  # type: ignore[attr-defined]
    rollback = p.locator("form.rollback")  # type: ignore[attr-defined]
    rollback.locator('input[name="reason"]').fill("worse in production")
    rollback.locator('input[name="token"]').fill(TOKEN)
    rollback.locator("button").click()
    p.wait_for_selector("#message")  # type: ignore[attr-defined]
    assert "moved back from iris:2 to iris:1" in p.locator("#message").inner_text()  # type: ignore[attr-defined]
    assert p.locator(".serving-version").inner_text() == "1"  # type: ignore[attr-defined]
    assert _moves(project)[-1] == ("production", "rollback", 1)
    promote = p.locator("form.promote")  # type: ignore[attr-defined]
    promote.locator('select[name="version"]').select_option("2")
    # the token typed for the rollback is remembered for this tab
    assert promote.locator('input[name="token"]').input_value() == TOKEN
    promote.locator("button").click()
    p.wait_for_selector("#message")  # type: ignore[attr-defined]
    assert p.locator(".serving-version").inner_text() == "2"  # type: ignore[attr-defined]
    assert _moves(project)[-1] == ("production", "promote", 2)
    # the refused action's 403 is the one resource that failed to load
    assert [x for x in p.problems if "403" not in x and "Forbidden" not in x] == []  # type: ignore[attr-defined]


def test_hostile_names_and_values_never_run(delivered: tuple[Project, str], page: object) -> None:
    project, url = delivered
    with Registry.open(Workspace.find(project.root)) as registry:
        run_id = registry.get("iris:2").run_id
    p = page
    for path in ("/models/iris/2", "/models/iris", f"/runs/{run_id}", "/runs"):
        p.goto(url + path)  # type: ignore[attr-defined]
        assert p.evaluate("window.pwned === undefined"), path  # type: ignore[attr-defined]
        assert p.locator("img[src=x]").count() == 0, path  # type: ignore[attr-defined]
    p.goto(url + "/models/iris/2")  # type: ignore[attr-defined]
    assert "<script>window.pwned=1</script>" in p.locator("#tags").inner_text()  # type: ignore[attr-defined]
    assert [x for x in p.problems if "dialog" in x] == []  # type: ignore[attr-defined]
