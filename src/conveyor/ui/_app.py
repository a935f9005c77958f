"""The dashboard's HTTP side (Starlette, as the model server): server-rendered pages, one JSON
endpoint the DAG page polls, and two actions (promote, roll back) that need the token.

Every page is rendered by Jinja2 with autoescaping, under a Content-Security-Policy that
allows no inline script: a stage name, a param or a tag holding markup is shown as text and
can never run. Read-only pages are open on loopback; bound to another address, every page
needs the token too (once, as ``?token=``; a cookie keeps it).
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from conveyor.errors import ConveyorError
from conveyor.ui import _views as views
from conveyor.workspace import Workspace

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

TOKEN_ENV = "CONVEYOR_UI_TOKEN"
_COOKIE = "conveyor_ui_token"
_HERE = Path(__file__).parent
_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
SORTS = ("started", "duration", "status")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(workspace: Workspace, *, token: str, open_reads: bool = True) -> Starlette:
    """The dashboard of ``workspace``. ``token`` guards the actions (and, unless ``open_reads``,
    every page)."""
    import jinja2
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from conveyor import __version__

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = _when
    env.filters["dur"] = _duration
    env.filters["short"] = lambda text, n=10: "" if text is None else str(text)[:n]
    env.filters["value"] = _value
    env.globals["version"] = __version__
    env.globals["workspace"] = workspace.root.name

    def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("message", request.query_params.get("done"))
        context.setdefault("problem", request.query_params.get("problem"))
        context["path"] = request.url.path
        html = env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": _PAGE_CSP})

    def failed(request: Request, exc: ConveyorError, status: int = 404) -> HTMLResponse:
        return render(request, "error.html", status, error=exc.format_message())

    def authorised(given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode(), token.encode())

    # -- pages ---------------------------------------------------------------------------

    def overview(request: Request) -> Response:
        pipeline = views.pipeline_view(workspace)
        page = views.runs_page(workspace, status=None, search=None, sort="started", descending=True, page=1)
        return render(request, "overview.html", pipeline=pipeline, runs=page.runs[:8], models=views.models(workspace))

    def pipeline_state(request: Request) -> Response:
        pipeline = views.pipeline_view(workspace)
        reasons = {s.name: "; ".join(s.reasons) for s in pipeline.stages}
        return JSONResponse(
            {
                "running_run": pipeline.running_run,
                "states": pipeline.states(),
                "reasons": reasons,
                "error": pipeline.error,
            }
        )

    def runs(request: Request) -> Response:
        q = request.query_params
        sort = q.get("sort") or "started"
        try:
            page = max(1, int(q.get("page") or 1))
        except ValueError:
            page = 1
        try:
            listing = views.runs_page(
                workspace,
                status=q.get("status") or None,
                search=(q.get("q") or "").strip() or None,
                sort=sort,
                descending=q.get("dir", "desc") != "asc",
                page=page,
            )
        except ConveyorError as exc:
            return failed(request, exc, 400)

        def link(**changes: Any) -> str:
            params = {k: v for k, v in q.items() if v}
            params.update({k: str(v) for k, v in changes.items()})
            return "/runs?" + urlencode(params)

        return render(request, "runs.html", listing=listing, query=dict(q), sort=sort, link=link)

    def run_page(request: Request) -> Response:
        try:
            run, checks = views.run_detail(workspace, request.path_params["run_id"])
        except ConveyorError as exc:
            return failed(request, exc)
        return render(request, "run.html", run=run, checks=checks)

    def compare_page(request: Request) -> Response:
        chosen = [r for r in request.query_params.getlist("run") if r]
        if len(chosen) != 2:
            return render(request, "error.html", 400, error="compare: choose exactly two runs (tick two boxes)")
        try:
            left, right, params, metrics, stages = views.compare(workspace, chosen[0], chosen[1])
        except ConveyorError as exc:
            return failed(request, exc)
        return render(request, "compare.html", left=left, right=right, params=params, metrics=metrics, stages=stages)

    def metrics_page(request: Request) -> Response:
        keys, key, chart = views.metric_chart(workspace, request.query_params.get("key"))
        return render(request, "metrics.html", keys=keys, key=key, plot=chart)

    def checks_page(request: Request) -> Response:
        pipeline = views.pipeline_view(workspace)
        reports = [s for s in pipeline.stages if s.kind == "check"]
        return render(request, "checks.html", checks=views.checks_page(workspace, 1), reports=reports)

    def report(request: Request) -> Response:
        path = views.report_path(workspace, request.path_params["stage"])
        if path is None:
            return render(request, "error.html", 404, error=f"no report for stage {request.path_params['stage']!r}")
        return FileResponse(path, media_type="text/html", headers={"Content-Security-Policy": _REPORT_CSP})

    def models_page(request: Request) -> Response:
        return render(request, "models.html", models=views.models(workspace))

    def model_page(request: Request) -> Response:
        try:
            info, versions, history = views.model_detail(workspace, request.path_params["name"])
        except ConveyorError as exc:
            return failed(request, exc)
        return render(request, "model.html", info=info, versions=versions, history=history)

    def version_page(request: Request) -> Response:
        try:
            version, bundles = views.version_detail(
                workspace, request.path_params["name"], request.path_params["version"]
            )
        except ConveyorError as exc:
            return failed(request, exc)
        return render(request, "version.html", v=version, bundles=bundles)

    def deployments_page(request: Request) -> Response:
        return render(request, "deployments.html", deployments=views.deployments(workspace), needs_token=True)

    def stats_page(request: Request) -> Response:
        bucket = request.query_params.get("bucket") or "week"
        try:
            stats, charts = views.delivery_stats(workspace, bucket)
        except ConveyorError as exc:
            return failed(request, exc, 400)
        return render(request, "stats.html", stats=stats, charts=charts, bucket=bucket)

    # -- actions -------------------------------------------------------------------------

    async def promote(request: Request) -> Response:
        form = await request.form()
        if not authorised(str(form.get("token") or "")):
            return render(request, "error.html", 403, error="promote: this action needs the dashboard's token")
        model = str(form.get("model") or "")
        try:
            from starlette.concurrency import run_in_threadpool

            move = await run_in_threadpool(
                _promote,
                workspace,
                model,
                str(form.get("version") or ""),
                str(form.get("alias") or ""),
                str(form.get("reason") or ""),
                form.get("force") == "on",
            )
        except ConveyorError as exc:
            return RedirectResponse("/deployments?" + urlencode({"problem": exc.format_message()}), 303)
        return RedirectResponse("/deployments?" + urlencode({"done": move}), 303)

    async def rollback(request: Request) -> Response:
        form = await request.form()
        if not authorised(str(form.get("token") or "")):
            return render(request, "error.html", 403, error="roll back: this action needs the dashboard's token")
        try:
            from starlette.concurrency import run_in_threadpool

            from conveyor.delivery._deploy import deploy_rollback

            done = await run_in_threadpool(
                lambda: deploy_rollback(
                    str(form.get("model") or ""),
                    reason=str(form.get("reason") or "") or "rolled back from the dashboard",
                    workspace=workspace,
                )
            )
        except ConveyorError as exc:
            return RedirectResponse("/deployments?" + urlencode({"problem": exc.format_message()}), 303)
        return RedirectResponse("/deployments?" + urlencode({"done": done}), 303)

    routes = [
        Route("/", overview),
        Route("/api/pipeline", pipeline_state),
        Route("/runs", runs),
        Route("/runs/compare", compare_page),
        Route("/runs/{run_id}", run_page),
        Route("/metrics", metrics_page),
        Route("/checks", checks_page),
        Route("/reports/{stage}", report),
        Route("/models", models_page),
        Route("/models/{name}", model_page),
        Route("/models/{name}/{version:int}", version_page),
        Route("/deployments", deployments_page),
        Route("/stats", stats_page),
        Route("/favicon.ico", lambda request: RedirectResponse("/static/favicon.svg", 301)),
        Route("/actions/promote", promote, methods=["POST"]),
        Route("/actions/rollback", rollback, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static"),
    ]

    async def guard(request: Request, call_next: Any) -> Response:
        given = request.query_params.get("token")
        if not open_reads and not authorised(request.cookies.get(_COOKIE)) and not authorised(given):
            return HTMLResponse(
                "<!doctype html><title>conveyor</title><p>This dashboard needs its token: open it with ?token=…</p>",
                status_code=401,
            )
        response: Response = await call_next(request)
        if given and authorised(given):
            response.set_cookie(_COOKIE, token, httponly=True, samesite="strict")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)])


def _promote(ws: Workspace, model: str, version: str, alias: str, reason: str, force: bool) -> str:
    """The CLI's ``conveyor model promote``: the registry's policy decides (or ``force``, with a reason)."""
    from conveyor.delivery._config import load_deploy_config
    from conveyor.registry import Registry

    alias = alias or load_deploy_config(ws.root).alias
    with Registry.open(ws, create=False) as registry:
        move = registry.promote(f"{model}:{version}", to=alias, reason=reason, force=force, actor="dashboard")
    return f"{model}:{move.to_version} is now '{alias}'"


def _when(at: float | None) -> str:
    if at is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
