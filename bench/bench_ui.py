"""Time conveyor's dashboard and MLflow's tracking UI side by side on thousands of runs.

For each size N (1,000 and 10,000 runs; ``--quick``: 500), both tools record the same N runs through their Python
API into their default SQLite store (``ui_runner.py fill``: five params, five metrics, one run in ten failed;
conveyor with three stages each, MLflow with the tags its fluent API sets), then serve them:

* conveyor: ``conveyor ui --port P`` in the workspace (Starlette on uvicorn, one process);
* MLflow: ``mlflow server --backend-store-uri sqlite:///mlflow.db --workers 1`` (MLflow's tracking server with its
  UI, from the full ``mlflow`` package in its own venv, ``bench/.venv-mlflow-ui``, created with
  ``MLFLOW_UI_REQUIREMENTS`` when missing).

Measured, each tool's result checked every time (the right first run, the right number of rows):

* **Server side** (an HTTP client on loopback, keep-alive, --requests rounds after 3 untimed, the tools taking
  turns): conveyor's whole server-rendered page against the one request MLflow's UI makes for the same view, its
  ``runs/search`` (or ``runs/get``) JSON, which the browser still has to render. The views: the newest runs; the
  runs sorted by a metric; the failed runs sorted by a metric; a page in the middle (MLflow: its page token for
  that offset, fetched untimed); one run; one metric across the latest 2,000 runs (conveyor's chart page; MLflow's
  search returning those runs). 50 rows a page on both sides (MLflow's UI asks for 100 on its runs page).
* **In a browser** (Debian's headless chromium through Playwright, one browser context per tool, so its cache is
  warm after the first visit as for a returning user): from navigation to the first row of the runs table showing
  the right run (conveyor: the first ``tr[data-run]``; MLflow: the first row of its grid). A first visit with an
  empty cache (and how many bytes it loaded), then --loads visits of the newest runs and of the failed runs
  sorted by a metric (MLflow's own URL state: ``searchFilter``, ``orderByKey``, ``orderByAsc``), the tools taking
  turns. Each tool's page is what a user sees: 50 rows for conveyor, 100 for MLflow.
* Server start to the first answer of the newest-runs view, and the resident memory of each server's process tree
  at the end; how long recording the N runs took through each tool's API (ms a run).

Medians (p95 in brackets); ratios are MLflow's ÷ conveyor's.

    .venv/bin/python bench/bench_ui.py [--quick] [--runs 1000,10000] [--requests 30] [--loads 10]
        [--mlflow-venv bench/.venv-mlflow-ui] [--workdir bench/.work] [--keep] [--markdown FILE]

The raw numbers go to ``bench/results/ui-YYYYMMDD-HHMMSS.json`` (with MLflow's venv's ``pip freeze``); the
Markdown tables to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_pipeline as bp
import bench_serving as bs
import bench_versioning as bv
import httpx
import ui_runner as ur

MLFLOW_VERSION = "3.17.2"
MLFLOW_UI_REQUIREMENTS = [f"mlflow=={MLFLOW_VERSION}"]
DEFAULT_MLFLOW_VENV = bv.BENCH_DIR / ".venv-mlflow-ui"
RUNNER = bv.BENCH_DIR / "ui_runner.py"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE = 50
CHART_POINTS = 2000
TOOLS = ("conveyor", "mlflow")
# Installed in the page before its own scripts: notes performance.now() (ms since the navigation started) when the
# first row of the runs table is the expected run. A row names its run in data-run (conveyor) or in its text.
WATCH_FIRST_ROW = """(() => {
  const selector = %s, want = %s;
  window.__benchShownAt = null;
  const check = () => {
    const row = document.querySelector(selector);
    if (row && (row.getAttribute("data-run") === want || row.textContent.includes(want))) {
      window.__benchShownAt = performance.now();
      observer.disconnect();
    }
  };
  const observer = new MutationObserver(check);
  observer.observe(document, {childList: true, subtree: true, characterData: true, attributes: true});
})();"""
SEARCH = "/ajax-api/2.0/mlflow/runs/search"


def progress(message: str) -> None:
    bv.progress(message)


# ------------------------------------------------------------------------------------------- the runs


@dataclass
class Truth:
    """What each view must show first, from the runs both tools recorded."""

    count: int

    def __post_init__(self) -> None:
        self.values = [ur.run_values(i, self.count) for i in range(self.count)]

    def newest(self, offset: int = 0) -> int:
        return self.count - 1 - offset

    def best(self, metric: str, failed_only: bool = False) -> int:
        chosen = [i for i, v in enumerate(self.values) if not failed_only or v[0] == "failed"]
        return max(chosen, key=lambda i: self.values[i][2][metric])

    def failed(self) -> int:
        return sum(1 for v in self.values if v[0] == "failed")


# ------------------------------------------------------------------------------------------- the servers


def rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def settle(servers: list[Server], quiet: float = 0.02, window: float = 0.2, limit: float = 15.0) -> None:
    """Wait until the servers have finished what the last visit started (requests a page makes after its table
    shows go on in the background): less than ``quiet`` CPU seconds over ``window``."""
    deadline = time.monotonic() + limit

    def cpu() -> float:
        return sum(bs.tree_cpu(server.proc.pid) for server in servers)

    before = cpu()
    while time.monotonic() < deadline:
        time.sleep(window)
        now = cpu()
        if now - before < quiet:
            return
        before = now


@dataclass
class Server:
    tool: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    start_seconds: float = 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_server(tool: str, argv: list[str], cwd: Path, env: dict[str, str], ready: Callable[[str], bool]) -> Server:
    port = bs.free_port()
    argv = [a.replace("{port}", str(port)) for a in argv]
    log = cwd.parent / f"{tool}-server.log"
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=out, start_new_session=True)
    server = Server(tool, proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise bv.BenchError(f"{tool}'s server exited: {log.read_text()[-2000:]}")
        try:
            if ready(server.url):
                server.start_seconds = time.perf_counter() - started
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    server.stop()
    raise bv.BenchError(f"{tool}'s server did not answer within 120 s: {log.read_text()[-2000:]}")


# ------------------------------------------------------------------------------------------- the views


@dataclass
class View:
    """One view of the runs on both tools: how to ask each, and how to check the answer."""

    name: str
    label: str
    conveyor: Callable[[httpx.Client], httpx.Response]
    mlflow: Callable[[httpx.Client], httpx.Response]
    check_conveyor: Callable[[str], str | None]
    check_mlflow: Callable[[dict[str, Any]], str | None]


def rows_check(first: int, rows: int) -> tuple[Callable[[str], str | None], Callable[[dict[str, Any]], str | None]]:
    want_id, want_name = ur.conveyor_run_id(first), ur.mlflow_run_name(first)

    def conveyor(html: str) -> str | None:
        found = html.count('<tr data-run="')
        start = html.find('<tr data-run="')
        if found != rows or html[start + 14 : start + 14 + len(want_id)] != want_id:
            return f"expected {rows} rows starting with {want_id}; got {found} rows"
        return None

    def mlflow(body: dict[str, Any]) -> str | None:
        runs = body.get("runs", [])
        name = runs[0]["info"].get("run_name") if runs else None
        if len(runs) != rows or name != want_name:
            return f"expected {rows} runs starting with {want_name}; got {len(runs)} starting with {name}"
        return None

    return conveyor, mlflow


def search(experiment: str, **fields: Any) -> Callable[[httpx.Client], httpx.Response]:
    body = {"experiment_ids": [experiment], "run_view_type": "ACTIVE_ONLY", "max_results": PAGE, **fields}
    return lambda client: client.post(SEARCH, json=body)


def views(truth: Truth, experiment: str, deep_token: str, middle_run: str) -> list[View]:
    n = truth.count
    best = truth.best("m0")
    best_failed = truth.best("m0", failed_only=True)
    offset = (n // 2 // PAGE) * PAGE
    middle = n // 2
    points = min(CHART_POINTS, n)
    by_metric = ["metrics.`m0` DESC"]
    newest = ["attributes.start_time DESC"]
    result = [
        View(
            "newest",
            "newest runs (page 1)",
            lambda c: c.get("/runs"),
            search(experiment, order_by=newest),
            *rows_check(truth.newest(), PAGE),
        ),
        View(
            "by-metric",
            "sorted by a metric",
            lambda c: c.get("/runs", params={"sort": "metric:m0", "dir": "desc"}),
            search(experiment, order_by=by_metric),
            *rows_check(best, PAGE),
        ),
        View(
            "failed-by-metric",
            "failed runs, sorted by a metric",
            lambda c: c.get("/runs", params={"status": "failed", "sort": "metric:m0", "dir": "desc"}),
            search(experiment, order_by=by_metric, filter="attributes.status = 'FAILED'"),
            *rows_check(best_failed, min(PAGE, truth.failed())),
        ),
        View(
            "middle-page",
            f"a page in the middle (runs {offset + 1:,}–{offset + PAGE:,})",
            lambda c: c.get("/runs", params={"page": offset // PAGE + 1}),
            search(experiment, order_by=newest, page_token=deep_token),
            *rows_check(truth.newest(offset), PAGE),
        ),
    ]

    def one_conveyor(html: str) -> str | None:
        want = ur.conveyor_run_id(middle)
        return None if want in html and "m0" in html else f"the page of run {want} lacks it or its metrics"

    def one_mlflow(body: dict[str, Any]) -> str | None:
        run = body.get("run", {})
        ok = run.get("info", {}).get("run_name") == ur.mlflow_run_name(middle) and run.get("data", {}).get("metrics")
        return None if ok else "runs/get did not return the run with its metrics"

    result.append(
        View(
            "one-run",
            "one run",
            lambda c: c.get(f"/runs/{ur.conveyor_run_id(middle)}"),
            lambda c: c.get("/ajax-api/2.0/mlflow/runs/get", params={"run_id": middle_run}),
            one_conveyor,
            one_mlflow,
        )
    )

    def chart_conveyor(html: str) -> str | None:
        found = html.count("<circle")
        return None if found == points else f"expected {points} points in the chart, got {found}"

    def chart_mlflow(body: dict[str, Any]) -> str | None:
        runs = body.get("runs", [])
        with_metric = sum(1 for r in runs if any(m["key"] == "m0" for m in r.get("data", {}).get("metrics", [])))
        return None if with_metric == points else f"expected {points} runs with m0, got {with_metric}"

    result.append(
        View(
            "metric-chart",
            f"one metric over the latest {points:,} runs",
            lambda c: c.get("/metrics", params={"key": "m0"}),
            search(experiment, order_by=newest, max_results=points),
            chart_conveyor,
            chart_mlflow,
        )
    )
    return result


# ------------------------------------------------------------------------------------------- measuring


@dataclass
class Figure:
    size: int
    kind: str  # "server", "browser", "first-visit", "start", "rss", "record"
    view: str
    tool: str
    seconds: list[float] = field(default_factory=list)
    value: float | None = None  # rss MiB, bytes, ms a run
    error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float(self.value or 0.0)

    @property
    def p95(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] if ordered else float("nan")

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "size": self.size,
            "kind": self.kind,
            "view": self.view,
            "tool": self.tool,
            "seconds": self.seconds,
            "value": self.value,
            "error": self.error,
        }
        if self.seconds:
            record["median_seconds"], record["p95_seconds"] = self.median, self.p95
        return record


class UIBench:
    def __init__(self, args: argparse.Namespace, run_dir: Path, conveyor: bv.Tool, mlflow_python: Path) -> None:
        self.args = args
        self.run_dir = run_dir
        self.conveyor = conveyor
        self.mlflow_python = mlflow_python
        self.figures: list[Figure] = []
        self.failures: list[str] = []
        self.mlflow_env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1")
        self.mlflow_env.pop("MLFLOW_TRACKING_URI", None)
        self.servers: list[Server] = []

    def figure(self, size: int, kind: str, view: str, tool: str) -> Figure:
        found = Figure(size, kind, view, tool)
        self.figures.append(found)
        return found

    def find(self, size: int, kind: str, view: str, tool: str) -> Figure | None:
        for f in self.figures:
            if (f.size, f.kind, f.view, f.tool) == (size, kind, view, tool):
                return f
        return None

    def fail(self, figure: Figure, problem: str) -> None:
        if figure.error is None:
            figure.error = problem
            self.failures.append(f"{figure.tool} {figure.kind} {figure.view} at {figure.size}: {problem}")
            progress(f"!!!!! {self.failures[-1]}")

    # -- setup

    def fill(self, size: int) -> tuple[Path, Path]:
        home = self.run_dir / f"runs-{size}"
        workspace, folder = home / "conveyor", home / "mlflow"
        workspace.mkdir(parents=True)
        folder.mkdir()
        bv.run_checked(["git", "init", "-q"], cwd=workspace)
        bv.run_checked([*self.conveyor.exe, "init"], cwd=workspace, env=self.conveyor.env)
        for tool, python, root, env in (
            ("conveyor", sys.executable, workspace, self.conveyor.env),
            ("mlflow", str(self.mlflow_python), folder, self.mlflow_env),
        ):
            progress(f"[{size}] recording {size:,} runs with {tool} ...")
            argv = [python, str(RUNNER), "fill", "--tool", tool, "--root", str(root), "--count", str(size)]
            result = json.loads(bv.run_checked(argv, cwd=root, env=env).strip().splitlines()[-1])
            self.figure(size, "record", "record a run", tool).value = result["seconds"] / size * 1000
        return workspace, folder

    def start(self, size: int, workspace: Path, folder: Path) -> tuple[Server, Server]:
        token = workspace.parent / "ui-token"
        token.write_text("bench-token-0123456789abcdef")
        conveyor = start_server(
            "conveyor",
            [*self.conveyor.exe, "ui", "--port", "{port}", "--token-file", str(token)],
            workspace,
            self.conveyor.env,
            lambda url: httpx.get(url + "/runs", timeout=30).status_code == 200,
        )
        experiment = "1"
        body = {"experiment_ids": [experiment], "max_results": PAGE, "order_by": ["attributes.start_time DESC"]}
        mlflow = start_server(
            "mlflow",
            [
                str(self.mlflow_python.parent / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{folder / 'mlflow.db'}",
                "--default-artifact-root",
                str(folder / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--workers",
                "1",
            ],
            folder,
            self.mlflow_env,
            lambda url: httpx.post(url + SEARCH, json=body, timeout=30).status_code == 200,
        )
        for server in (conveyor, mlflow):
            self.figure(size, "start", "start to first page", server.tool).seconds.append(server.start_seconds)
        return conveyor, mlflow

    # -- server side

    def serve_side(self, size: int, truth: Truth, conveyor: Server, mlflow: Server) -> None:
        with httpx.Client(base_url=conveyor.url, timeout=120) as c, httpx.Client(base_url=mlflow.url, timeout=120) as m:
            found = m.post(
                SEARCH,
                json={"experiment_ids": ["1"], "filter": f"attributes.run_name = '{ur.mlflow_run_name(size // 2)}'"},
            )
            middle_run = found.json()["runs"][0]["info"]["run_id"]
            offset = (size // 2 // PAGE) * PAGE
            page = m.post(
                SEARCH,
                json={"experiment_ids": ["1"], "max_results": offset, "order_by": ["attributes.start_time DESC"]},
            )
            deep_token = page.json()["next_page_token"]
            for view in views(truth, "1", deep_token, middle_run):
                progress(f"[{size}] server side: {view.label}")
                self.time_view(size, view, c, m)

    def time_view(self, size: int, view: View, conveyor: httpx.Client, mlflow: httpx.Client) -> None:
        figures = {t: self.figure(size, "server", view.name, t) for t in TOOLS}

        def call(tool: str) -> None:
            if tool == "conveyor":
                self.ask(figures[tool], lambda: view.conveyor(conveyor), view.check_conveyor, html=True)
            else:
                self.ask(figures[tool], lambda: view.mlflow(mlflow), view.check_mlflow, html=False)

        for _ in range(3):  # untimed
            for tool in TOOLS:
                call(tool)
        for figure in figures.values():
            figure.seconds.clear()
        for round_ in range(self.args.requests):
            for tool in TOOLS if round_ % 2 == 0 else TOOLS[::-1]:
                call(tool)

    def ask(
        self,
        figure: Figure,
        request: Callable[[], httpx.Response],
        check: Callable[[Any], str | None],
        html: bool,
    ) -> None:
        if figure.error:
            return
        started = time.perf_counter()
        response = request()
        body = response.content
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            self.fail(figure, f"HTTP {response.status_code}: {response.text[:300]}")
            return
        problem = check(body.decode()) if html else check(json.loads(body))
        if problem:
            self.fail(figure, problem)
            return
        figure.seconds.append(elapsed)

    # -- in a browser

    def browser_side(self, size: int, truth: Truth, conveyor: Server, mlflow: Server) -> None:
        from playwright.sync_api import sync_playwright

        self.servers = [conveyor, mlflow]
        best_failed = truth.best("m0", failed_only=True)
        pages = {
            "newest": {
                "conveyor": (conveyor.url + "/runs", ur.conveyor_run_id(truth.newest())),
                "mlflow": (mlflow.url + "/#/experiments/1/runs", ur.mlflow_run_name(truth.newest())),
            },
            "failed-by-metric": {
                "conveyor": (
                    conveyor.url + "/runs?status=failed&sort=metric%3Am0&dir=desc",
                    ur.conveyor_run_id(best_failed),
                ),
                "mlflow": (
                    mlflow.url + "/#/experiments/1/runs?orderByKey=metrics.%60m0%60&orderByAsc=false"
                    "&searchFilter=attributes.status%20%3D%20%27FAILED%27",
                    ur.mlflow_run_name(best_failed),
                ),
            },
        }
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                contexts = {t: browser.new_context(viewport={"width": 1400, "height": 900}) for t in TOOLS}
                progress(f"[{size}] browser: first visit")
                for tool in TOOLS:
                    figure = self.figure(size, "first-visit", "newest", tool)
                    url, want = pages["newest"][tool]
                    loaded = self.visit(figure, contexts[tool], tool, url, want, weigh=True)
                    if loaded is not None:
                        self.figure(size, "first-visit-bytes", "newest", tool).value = loaded
                for name in pages:
                    progress(f"[{size}] browser: {name}")
                    figures = {t: self.figure(size, "browser", name, t) for t in TOOLS}
                    for tool in TOOLS:  # untimed: the route's own code and data in the cache
                        self.visit(figures[tool], contexts[tool], tool, *pages[name][tool])
                        figures[tool].seconds.clear()
                    for round_ in range(self.args.loads):
                        for tool in TOOLS if round_ % 2 == 0 else TOOLS[::-1]:
                            self.visit(figures[tool], contexts[tool], tool, *pages[name][tool])
            finally:
                browser.close()

    def visit(self, figure: Figure, context: Any, tool: str, url: str, want: str, weigh: bool = False) -> float | None:
        """Open ``url`` in a new tab; time from the start of the navigation until the runs table's first row, in
        the DOM, is ``want`` (the page's own clock, read by a MutationObserver installed before any of its
        scripts). Returns the bytes loaded when ``weigh``."""
        if figure.error:
            return None
        selector = "tr[data-run]" if tool == "conveyor" else '.ag-pinned-left-cols-container [row-index="0"]'
        settle(self.servers)
        page = context.new_page()
        page.add_init_script(WATCH_FIRST_ROW % (json.dumps(selector), json.dumps(want)))
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            page.goto(url, wait_until="commit")
            page.wait_for_function("() => window.__benchShownAt != null", timeout=60_000)
            elapsed = page.evaluate("() => window.__benchShownAt") / 1000
            loaded = None
            if weigh:
                loaded = page.evaluate(
                    "() => performance.getEntries().filter(e => e.entryType === 'navigation' || "
                    "e.entryType === 'resource').reduce((sum, e) => sum + (e.encodedBodySize || 0), 0)"
                )
        except Exception as error:  # a timeout or a crash: this tool gets no figure here
            self.fail(figure, f"{url}: the first row never showed {want}: {str(error).splitlines()[0]}")
            return None
        finally:
            page.close()
        if tool == "conveyor" and errors:
            self.fail(figure, f"script errors on {url}: {errors[:3]}")
            return None
        figure.seconds.append(elapsed)
        return loaded

    # -- all

    def run_size(self, size: int) -> None:
        truth = Truth(size)
        workspace, folder = self.fill(size)
        conveyor, mlflow = self.start(size, workspace, folder)
        try:
            self.serve_side(size, truth, conveyor, mlflow)
            self.browser_side(size, truth, conveyor, mlflow)
            for server in (conveyor, mlflow):
                tree = bs.tree(server.proc.pid)
                self.figure(size, "rss", "server memory", server.tool).value = bs.tree_rss_mib(server.proc.pid)
                self.figure(size, "processes", "server processes", server.tool).value = len(tree)
                web = [pid for pid in tree if b"uvicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()] or [tree[0]]
                self.figure(size, "rss-web", "web process memory", server.tool).value = rss_mib(web[-1])
        finally:
            conveyor.stop()
            mlflow.stop()


# ------------------------------------------------------------------------------------------- report


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def ratio(ours: Figure | None, theirs: Figure | None) -> str:
    if not ours or not theirs or ours.error or theirs.error or not ours.median:
        return "—"
    return f"{theirs.median / ours.median:,.1f}×"


def cell(figure: Figure | None, unit: str = "time") -> str:
    if figure is None:
        return "not measured"
    if figure.error:
        return "**failed**"
    if unit == "time":
        text = ms(figure.median)
        return text + (f" ({ms(figure.p95)})" if len(figure.seconds) > 2 else "")
    if unit == "mib":
        return f"{figure.value:,.0f} MiB"
    if unit == "count":
        return f"{figure.value:.0f}"
    if unit == "kib":
        return f"{(figure.value or 0) / 1024:,.0f} KiB"
    return f"{figure.value:,.2f} ms"


def size_table(bench: UIBench, size: int, labels: dict[str, str]) -> list[str]:
    lines = [
        f"**{size:,} runs**",
        "",
        "| view | conveyor | MLflow | MLflow ÷ conveyor |",
        "|---|---:|---:|---:|",
    ]

    def row(label: str, kind: str, view: str, unit: str = "time") -> None:
        ours, theirs = bench.find(size, kind, view, "conveyor"), bench.find(size, kind, view, "mlflow")
        if unit in ("mib", "kib", "ms-a-run", "count") and ours and theirs and ours.value and theirs.value:
            factor = f"{theirs.value / ours.value:,.1f}×"
        else:
            factor = ratio(ours, theirs)
        lines.append(f"| {label} | {cell(ours, unit)} | {cell(theirs, unit)} | {factor} |")

    for name, label in labels.items():
        row(f"server: {label}", "server", name)
    row("browser, first visit (empty cache): newest runs", "first-visit", "newest")
    row("browser, first visit: bytes loaded", "first-visit-bytes", "newest", "kib")
    row("browser: newest runs", "browser", "newest")
    row("browser: failed runs, sorted by a metric", "browser", "failed-by-metric")
    row("server start to the first page", "start", "start to first page")
    row("server memory (RSS of every process) at the end", "rss", "server memory", "mib")
    row("… of the process answering HTTP", "rss-web", "web process memory", "mib")
    row("server processes", "processes", "server processes", "count")
    row("recording a run through the API", "record", "record a run", "ms-a-run")
    return lines


def markdown(bench: UIBench, meta: dict[str, Any]) -> str:
    machine = meta["machine"]
    versions = meta["versions"]
    lines = [
        f"Measured {meta['date_utc']} on {machine['cpu']} ({machine['cores']} cores, {machine['ram_gib']} GiB RAM,"
        f" {machine['kernel']}, {machine['filesystem']}); conveyor {versions['conveyor']} (Python"
        f" {versions['python']}), MLflow {versions['mlflow']} (Python {versions['mlflow_python']}), chromium"
        f" {versions.get('chromium', '?')}. Server side: median ({bench.args.requests} requests; p95 in brackets);"
        f" browser: median of {bench.args.loads} visits. Load average {meta['loadavg_start']} at the start,"
        f" {meta['loadavg_end']} at the end. `{meta['command']}`",
        "",
    ]
    for size in meta["sizes"]:
        labels = {f.view: f.view for f in bench.figures if f.size == size and f.kind == "server"}
        truth = Truth(size)
        named = {v.name: v.label for v in views(truth, "1", "", "")}
        lines += size_table(bench, size, {name: named.get(name, name) for name in labels})
        lines.append("")
    if bench.failures:
        lines += ["Failures (no figure given):", ""] + [f"- {f}" for f in bench.failures] + [""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- main


def mlflow_python(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        interpreter = shutil.which("python3.11") or sys.executable
        progress(f"[setup] creating the MLflow venv {venv} with {' '.join(MLFLOW_UI_REQUIREMENTS)} ...")
        bv.run_checked([interpreter, "-m", "venv", str(venv)])
        bv.run_checked([str(python), "-m", "pip", "install", "--quiet", *MLFLOW_UI_REQUIREMENTS])
    version = bv.run_checked([str(python), "-c", "import mlflow; print(mlflow.__version__)"]).strip()
    if version != MLFLOW_VERSION:
        raise bv.BenchError(f"{venv} has MLflow {version}; this benchmark compares against {MLFLOW_VERSION}")
    if not (venv / "lib" / "python3.11" / "site-packages" / "mlflow" / "server" / "js" / "build").is_dir():
        raise bv.BenchError(f"{venv} has no MLflow UI (mlflow-skinny?); install the full {MLFLOW_UI_REQUIREMENTS}")
    return python


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 runs, 5 requests, 3 visits")
    parser.add_argument("--runs", type=bv.parse_sizes, help="run counts (default 1000,10000)")
    parser.add_argument("--requests", type=bv.positive_int, help="timed requests per view and tool (30)")
    parser.add_argument("--loads", type=bv.positive_int, help="timed browser visits per view and tool (10)")
    parser.add_argument("--mlflow-venv", type=Path, default=DEFAULT_MLFLOW_VENV)
    parser.add_argument("--workdir", type=Path, default=bv.BENCH_DIR / ".work")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--markdown", type=Path, help="also write the Markdown tables to this file")
    args = parser.parse_args(argv)
    args.runs = args.runs or ([500] if args.quick else [1000, 10000])
    args.requests = args.requests or (5 if args.quick else 30)
    args.loads = args.loads or (3 if args.quick else 10)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    wall_start = time.perf_counter()
    bv.RESULTS_DIR.mkdir(exist_ok=True)
    with bv.RunDir(args.workdir.resolve() / f"ui-{stamp}", args.keep) as run_dir:
        try:
            conveyor = bv.conveyor_tool()
            conveyor.env.pop("CONVEYOR_DB", None)
            conveyor.env.pop("CONVEYOR_UI_TOKEN", None)
            python = mlflow_python(args.mlflow_venv.absolute())
        except bv.BenchError as error:
            progress(f"!!!!! SETUP FAILURE !!!!!\n{error}")
            return 2
        versions: dict[str, Any] = {
            "python": platform.python_version(),
            "conveyor": conveyor.version,
            "mlflow": MLFLOW_VERSION,
            "mlflow_python": bv.run_checked(
                [str(python), "-c", "import platform; print(platform.python_version())"]
            ).strip(),
            "chromium": bv.run_checked([CHROMIUM, "--version"]).strip(),
        }
        progress("[setup] " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        bench = UIBench(args, run_dir, conveyor, python)
        meta: dict[str, Any] = {
            "date_utc": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": shlex.join(sys.orig_argv),
            "machine": bv.machine_info(run_dir),
            "versions": versions,
            "sizes": args.runs,
            "loadavg_start": bp.loadavg(),
        }
        for size in args.runs:
            try:
                bench.run_size(size)
            except bv.BenchError as error:
                bench.failures.append(f"{size} runs: {error}")
                progress(f"!!!!! {bench.failures[-1]}")
        meta["loadavg_end"] = bp.loadavg()
        meta["wall_seconds"] = time.perf_counter() - wall_start
    report = markdown(bench, meta)
    print(report, end="")
    if args.markdown:
        args.markdown.write_text(report)
    record = {
        **meta,
        "ok": not bench.failures,
        "failures": bench.failures,
        "mlflow_venv": bv.run_checked([str(python), "-m", "pip", "freeze", "--all"]).splitlines(),
        "figures": [f.to_json() for f in bench.figures],
    }
    results_file = bv.RESULTS_DIR / f"ui-{stamp}.json"
    results_file.write_text(json.dumps(record, indent=2) + "\n")
    progress(f"[setup] raw numbers in {results_file}; {meta['wall_seconds']:.0f} s in all")
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
