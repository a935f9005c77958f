"""The model server's HTTP API (Starlette): the Open Inference Protocol v2 and MLflow's
scoring protocol over a :class:`~conveyor.serving._deployment.Deployment`, plus metrics, the
rollout's status and the admin actions.

Every request body is read under a size limit; every malformed request is a 4xx with
``{"error": "..."}`` naming the field; predictions run in a thread so the event loop keeps
answering health checks while a model computes. A canary request the candidate fails on is
answered again by the primary: the failure counts against the candidate, not the client.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.serving._protocol import (
    InferRequest,
    ProtocolError,
    decode_mlflow,
    decode_oip,
    encode_mlflow,
    encode_oip,
    parse_json,
)

if TYPE_CHECKING:
    import numpy as np
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from conveyor.serving._deployment import Deployment
    from conveyor.serving._metrics import Metrics
    from conveyor.serving._requestlog import RequestLog
    from conveyor.serving._slot import Loaded

DEFAULT_MAX_BODY = 10 * 2**20  # bytes
INLINE_ROWS = 256  # requests of at most this many rows are predicted on the event loop
ADMIN_TOKEN_ENV = "CONVEYOR_SERVE_ADMIN_TOKEN"
PREDICT_TOKEN_ENV = "CONVEYOR_SERVE_PREDICT_TOKEN"
_SETTINGS_ENV = "CONVEYOR_SERVE_SETTINGS"
_TYPES = {"double": "FP64", "long": "INT64", "boolean": "BOOL", "string": "BYTES", "datetime": "BYTES"}
access_log = logging.getLogger("conveyor.serve.access")


@dataclass(frozen=True)
class ServerSettings:
    """Everything a worker process needs to build its app (passed to workers as JSON)."""

    root: str
    ref: str  # NAME@ALIAS (followed) or NAME:N (pinned)
    max_body: int = DEFAULT_MAX_BODY
    poll: float = 0.5
    rollout: dict[str, Any] = field(default_factory=dict)
    log_dir: str | None = None  # sampled request logs (Parquet); None: off
    log_sample: float = 0.1
    access_log: str | None = "-"  # "-": stderr; a path: appended to; None: off
    environment: str = "refuse"  # a version trained with other package versions: refuse, warn, off

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServerSettings:
        return cls(**json.loads(os.environ[_SETTINGS_ENV]))


@dataclass
class _Answer:
    """What a prediction handler tells the wrapper around it (for metrics and the access log)."""

    loaded: Loaded | None = None
    role: str = ""
    rows: int = 0


def _token_ok(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def create_app(
    deployment: Deployment,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    metrics: Metrics | None = None,
    request_log: RequestLog | None = None,
    admin_token: str | None = None,
    predict_token: str | None = None,
    on_shutdown: Callable[[], None] | None = None,
) -> Starlette:
    """The ASGI application answering with what ``deployment`` serves."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from conveyor import __version__

    def error(message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def named(name: str) -> Loaded:
        loaded = deployment.route()[0]
        if name != deployment.name:
            raise ProtocolError(f"no model '{name}' here: this server serves '{deployment.name}'", 404)
        return loaded

    async def body_of(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise ProtocolError(f"the body is {int(declared):,} bytes, more than the {max_body:,} allowed", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise ProtocolError(f"the body is more than the {max_body:,} bytes allowed", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    def require(request: Request, token: str | None, what: str) -> None:
        if token is None:
            if what == "admin":
                raise ProtocolError(
                    f"admin endpoints are off: start the server with an admin token ({ADMIN_TOKEN_ENV} or "
                    "--admin-token-file)",
                    403,
                )
            return
        if not _token_ok(request, token):
            raise ProtocolError(f"this {what} endpoint needs a token: send 'Authorization: Bearer TOKEN'", 401)

    async def compute(loaded: Loaded, decoded: InferRequest, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """A few rows are predicted right here (a thread hand-off would cost more than the
        prediction); larger requests in a thread, so the loop keeps answering meanwhile."""
        if decoded.rows <= INLINE_ROWS:
            return loaded.predict_request(decoded, proba=proba)
        return await run_in_threadpool(loaded.predict_request, decoded, proba=proba)

    async def predict(
        answer: _Answer,
        loaded: Loaded,
        role: str,
        decode: Callable[[Loaded], InferRequest],
        proba: Callable[[InferRequest], bool],
    ) -> tuple[Loaded, InferRequest, np.ndarray, np.ndarray | None]:
        """Decode and predict with ``loaded``; a candidate that fails in the model is counted
        against its window and the request is answered by the primary instead."""
        started = time.perf_counter()
        try:
            decoded = decode(loaded)
            labels, probabilities = await compute(loaded, decoded, proba(decoded))
        except ProtocolError:
            # the candidate failed: the primary answers instead, and when it can, the failure
            # was the candidate's (counted against it), not the client's input
            primary = deployment.primary.current
            if role != "candidate" or primary is None:
                raise
            failed, failed_after = loaded, time.perf_counter() - started
            loaded, role = primary, "primary"
            decoded = decode(loaded)
            labels, probabilities = await compute(loaded, decoded, proba(decoded))
            deployment.observe(failed, ok=False, latency=failed_after)
        else:
            if role == "candidate":
                deployment.observe(loaded, ok=True, latency=time.perf_counter() - started)
            else:
                deployment.shadow(decoded, labels)
        answer.loaded, answer.role, answer.rows = loaded, role, len(labels)
        deployment.remember(decoded)
        if metrics is not None:
            metrics.predicted(loaded.name, str(loaded.number), role, labels)
        if request_log is not None:
            request_log.record(decoded, labels, loaded.number, role)
        return loaded, decoded, labels, probabilities

    async def live(request: Request, answer: _Answer) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request, answer: _Answer) -> Response:
        primary = deployment.primary.current
        body: dict[str, Any] = {"ready": primary is not None}
        if primary is None:
            body["error"] = deployment.primary.last_error
        if deployment.registry_error is not None:
            body["registry"] = f"unreachable: {deployment.registry_error}"
        return JSONResponse(body, status_code=200 if primary is not None else 503)

    async def metadata(request: Request, answer: _Answer) -> Response:
        loaded = named(request.path_params["name"])
        signature = loaded.signature
        inputs = [
            {"name": c.name, "datatype": _TYPES.get(c.type, "BYTES"), "shape": [-1]}
            for c in (signature.inputs if signature else ())
        ]
        predicted = signature.outputs[0].type if signature is not None and signature.outputs else "string"
        outputs = [{"name": "predict", "datatype": _TYPES.get(predicted, "BYTES"), "shape": [-1]}]
        if hasattr(loaded.model, "predict_proba"):
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, -1]})
        candidate = deployment.candidate.current
        versions = [str(loaded.number)] + ([str(candidate.number)] if candidate is not None else [])
        return JSONResponse(
            {
                "name": loaded.name,
                "versions": versions,
                "platform": f"{loaded.version.flavor}_{loaded.version.format}",
                "inputs": inputs,
                "outputs": outputs,
            }
        )

    async def model_ready(request: Request, answer: _Answer) -> Response:
        named(request.path_params["name"])
        return JSONResponse({"name": request.path_params["name"], "ready": True})

    async def infer(request: Request, answer: _Answer) -> Response:
        require(request, predict_token, "prediction")
        named(request.path_params["name"])
        wanted = request.path_params.get("version")
        if wanted is None:
            loaded, role = deployment.route()
        else:
            plain = wanted.isascii() and wanted.isdigit() and len(wanted) <= 18
            found = deployment.version(int(wanted)) if plain else None
            if found is None:
                served = deployment.primary.current
                raise ProtocolError(
                    f"version {wanted} of '{deployment.name}' is not served here"
                    + (f" ({served.number} is)" if served is not None else ""),
                    404,
                )
            loaded, role = found
        document = parse_json(await body_of(request))
        loaded, decoded, labels, probabilities = await predict(
            answer,
            loaded,
            role,
            lambda version: decode_oip(document, version.signature),
            lambda decoded: not decoded.outputs or "predict_proba" in decoded.outputs,
        )
        return JSONResponse(
            encode_oip(
                loaded.name, loaded.number, labels, probabilities, request_id=decoded.id, outputs=decoded.outputs
            )
        )

    async def invocations(request: Request, answer: _Answer) -> Response:
        require(request, predict_token, "prediction")
        loaded, role = deployment.route()
        body = await body_of(request)
        content_type = request.headers.get("content-type", "application/json")
        loaded, _decoded, labels, _ = await predict(
            answer,
            loaded,
            role,
            lambda version: decode_mlflow(body, content_type, version.signature),
            lambda decoded: False,
        )
        return JSONResponse(encode_mlflow(labels), headers={"x-conveyor-model-version": str(loaded.number)})

    async def ping(request: Request, answer: _Answer) -> Response:
        if deployment.primary.current is None:
            return JSONResponse({"status": "loading", "error": deployment.primary.last_error}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def version(request: Request, answer: _Answer) -> Response:
        loaded = deployment.primary.current
        return JSONResponse({"conveyor": __version__, "model": None if loaded is None else loaded.version.ref})

    async def openapi(request: Request, answer: _Answer) -> Response:
        return JSONResponse(openapi_document())

    async def prometheus(request: Request, answer: _Answer) -> Response:
        from starlette.responses import Response as Plain

        if metrics is None:
            raise ProtocolError("metrics are off on this server", 404)
        body, content_type = metrics.render()
        return Plain(body, media_type=content_type)

    async def status(request: Request, answer: _Answer) -> Response:
        return JSONResponse(deployment.status())

    async def admin_body(request: Request) -> dict[str, Any]:
        raw = await body_of(request)
        if not raw.strip():
            return {}
        document = parse_json(raw)
        if not isinstance(document, dict):
            raise ProtocolError('the body must be a JSON object, e.g. {"reason": "..."}')
        for key in ("reason", "actor"):
            if key in document and not isinstance(document[key], str):
                raise ProtocolError(f"'{key}' must be a string")
        return document

    async def reload(request: Request, answer: _Answer) -> Response:
        require(request, admin_token, "admin")
        deployment.forget_failures()
        await run_in_threadpool(deployment.sync)
        return JSONResponse(deployment.status())

    async def admin_action(request: Request, action: Callable[..., str]) -> Response:
        require(request, admin_token, "admin")
        document = await admin_body(request)
        actor = document.get("actor") or "admin API"
        from conveyor.errors import ConveyorError

        try:
            done = await run_in_threadpool(lambda: action(actor=actor, reason=document.get("reason", "")))
        except ConveyorError as exc:
            raise ProtocolError(exc.format_message(), 409) from None
        return JSONResponse({"done": done, "status": deployment.status()})

    async def promote(request: Request, answer: _Answer) -> Response:
        return await admin_action(request, deployment.promote_now)

    async def rollback(request: Request, answer: _Answer) -> Response:
        return await admin_action(request, deployment.rollback_now)

    def guarded(endpoint: str, handler: Callable[[Request, _Answer], Awaitable[Response]]) -> Any:
        async def run(request: Request) -> Response:
            started = time.perf_counter()
            answer = _Answer()
            try:
                response = await handler(request, answer)
            except ProtocolError as exc:
                headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
                response = error(exc.message, exc.status, headers)
            except Exception as exc:  # a bug: answered, logged, counted, never a dropped connection
                logging.getLogger("conveyor.serve").exception("%s %s failed", request.method, request.url.path)
                response = error(f"internal error: {type(exc).__name__}", 500)
            elapsed = time.perf_counter() - started
            loaded = answer.loaded
            version = "" if loaded is None else str(loaded.number)
            if metrics is not None:
                metrics.requests.labels(
                    deployment.name, version, answer.role, endpoint, str(response.status_code)
                ).inc()
                if loaded is not None:
                    metrics.latency.labels(deployment.name, version, answer.role).observe(elapsed)
            if access_log.handlers:
                access_log.info(
                    json.dumps(
                        {
                            "time": round(time.time(), 6),
                            "method": request.method,
                            "path": request.url.path,
                            "status": response.status_code,
                            "ms": round(elapsed * 1000, 3),
                            "model": deployment.name,
                            "version": loaded.number if loaded is not None else None,
                            "role": answer.role or None,
                            "rows": answer.rows,
                            "client": request.client.host if request.client else None,
                        }
                    )
                )
            return response

        return run

    routes = [
        Route("/v2/health/live", guarded("live", live)),
        Route("/v2/health/ready", guarded("ready", ready)),
        Route("/v2/models/{name}", guarded("metadata", metadata)),
        Route("/v2/models/{name}/ready", guarded("model_ready", model_ready)),
        Route("/v2/models/{name}/infer", guarded("infer", infer), methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", guarded("infer", infer), methods=["POST"]),
        Route("/invocations", guarded("invocations", invocations), methods=["POST"]),
        Route("/ping", guarded("ping", ping)),
        Route("/health", guarded("ping", ping)),
        Route("/version", guarded("version", version)),
        Route("/openapi.json", guarded("openapi", openapi)),
        Route("/metrics", guarded("metrics", prometheus)),
        Route("/admin/status", guarded("status", status)),
        Route("/admin/reload", guarded("reload", reload), methods=["POST"]),
        Route("/admin/promote", guarded("promote", promote), methods=["POST"]),
        Route("/admin/rollback", guarded("rollback", rollback), methods=["POST"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return error(f"{request.method} {request.url.path}: {getattr(exc, 'detail', 'not found')}", status)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        if on_shutdown is not None:
            await run_in_threadpool(on_shutdown)

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found}, lifespan=lifespan)


def openapi_document() -> dict[str, Any]:
    """The server's OpenAPI 3.1 document (what schemathesis fuzzes, what clients read)."""
    error = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {
                "type": "string",
                "enum": sorted(
                    [
                        "BOOL",
                        "BYTES",
                        "FP16",
                        "FP32",
                        "FP64",
                        "INT8",
                        "INT16",
                        "INT32",
                        "INT64",
                        "UINT8",
                        "UINT16",
                        "UINT32",
                        "UINT64",
                    ]
                ),
            },
            "data": {"type": "array"},
        },
    }
    json_error = {"description": "bad input", "content": {"application/json": {"schema": error}}}

    def get(summary: str) -> dict[str, Any]:
        return {"get": {"summary": summary, "responses": {"200": {"description": "OK"}, "503": json_error}}}

    def admin(summary: str) -> dict[str, Any]:
        reason = {"type": "object", "properties": {"reason": {"type": "string"}, "actor": {"type": "string"}}}
        return {
            "post": {
                "summary": summary + " (needs the admin token)",
                "security": [{"bearer": []}],
                "requestBody": {"required": False, "content": {"application/json": {"schema": reason}}},
                "responses": {
                    "200": {"description": "done"},
                    "400": json_error,
                    "401": json_error,
                    "403": json_error,
                    "409": json_error,
                    "413": json_error,
                },
            }
        }

    return {
        "openapi": "3.1.0",
        "info": {"title": "conveyor model server", "version": "1"},
        "paths": {
            "/v2/health/live": get("the server is up"),
            "/v2/health/ready": get("a model is loaded"),
            "/v2/models/{name}": {
                "get": {
                    "summary": "the model's metadata (Open Inference Protocol v2)",
                    "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "OK"}, "404": json_error, "503": json_error},
                }
            },
            "/v2/models/{name}/infer": {
                "post": {
                    "summary": "predict (Open Inference Protocol v2)",
                    "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["inputs"],
                                    "properties": {
                                        "id": {"type": "string"},
                                        "inputs": {"type": "array", "items": tensor},
                                        "outputs": {
                                            "type": "array",
                                            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "predictions"},
                        "400": json_error,
                        "401": json_error,
                        "404": json_error,
                        "413": json_error,
                        "422": json_error,
                        "503": json_error,
                    },
                }
            },
            "/invocations": {
                "post": {
                    "summary": "predict (MLflow scoring protocol)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "responses": {
                        "200": {"description": "predictions"},
                        "400": json_error,
                        "401": json_error,
                        "413": json_error,
                        "415": json_error,
                        "422": json_error,
                        "503": json_error,
                    },
                }
            },
            "/ping": get("a model is loaded (MLflow)"),
            "/health": get("a model is loaded (MLflow)"),
            "/version": get("conveyor's version and the model served"),
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of this process",
                    "responses": {"200": {"description": "text exposition format"}, "404": json_error},
                }
            },
            "/admin/status": get("what serves, the candidate on trial, its window, recent events"),
            "/admin/reload": admin("look at the registry now"),
            "/admin/promote": admin("promote the candidate on trial now"),
            "/admin/rollback": admin("take the candidate off trial, or move the alias back one version"),
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def create_app_from_environment() -> Starlette:
    """The app one uvicorn worker serves, from the settings :func:`conveyor.serving.serve` put in
    the environment; its version is loaded (and its follower started) before the first request."""
    from conveyor.registry import Registry, parse_ref
    from conveyor.serving._deployment import Deployment
    from conveyor.serving._metrics import Metrics
    from conveyor.serving._rollout import RolloutSettings
    from conveyor.workspace import Workspace

    settings = ServerSettings.from_env()
    _configure_logging(settings.access_log)
    ws = Workspace.find(settings.root)
    name, _number, alias = parse_ref(settings.ref)
    metrics = Metrics()
    deployment = Deployment(
        name,
        alias=alias,
        open_registry=lambda: Registry.open(ws, create=False),
        settings=RolloutSettings.from_json(settings.rollout) if settings.rollout else None,
        poll=settings.poll,
        metrics=metrics,
        environment=settings.environment,
    )
    deployment.start(first=None if alias else settings.ref)
    request_log = None
    if settings.log_dir and settings.log_sample > 0:
        from conveyor.serving._requestlog import RequestLog

        request_log = RequestLog(Path(settings.log_dir), sample=settings.log_sample)
        request_log.start()

    def shutdown() -> None:
        deployment.stop()
        if request_log is not None:
            request_log.stop()

    return create_app(
        deployment,
        max_body=settings.max_body,
        metrics=metrics,
        request_log=request_log,
        admin_token=os.environ.get(ADMIN_TOKEN_ENV) or None,
        predict_token=os.environ.get(PREDICT_TOKEN_ENV) or None,
        on_shutdown=shutdown,
    )


def _configure_logging(access: str | None) -> None:
    events = logging.getLogger("conveyor.serve")
    if not events.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s conveyor-serve %(levelname)s %(message)s"))
        events.addHandler(handler)
        events.setLevel(logging.INFO)
        events.propagate = False
    if access is None or access_log.handlers:
        return
    target: logging.Handler = (
        logging.StreamHandler(sys.stderr) if access == "-" else logging.FileHandler(access, encoding="utf-8")
    )
    target.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(target)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False
