"""The model server's HTTP API (Starlette): the Open Inference Protocol v2 and MLflow's
scoring protocol over one :class:`~conveyor.serving._slot.ModelSlot`.

Every request body is read under a size limit; every malformed request is a 4xx with
``{"error": "..."}`` naming the field; predictions run in a thread so the event loop keeps
answering health checks while a model computes.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from conveyor.serving._protocol import ProtocolError, decode_mlflow, decode_oip, encode_mlflow, encode_oip, parse_json

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from conveyor.serving._slot import ModelSlot

DEFAULT_MAX_BODY = 10 * 2**20  # bytes
_TYPES = {"double": "FP64", "long": "INT64", "boolean": "BOOL", "string": "BYTES", "datetime": "BYTES"}


def create_app(slot: ModelSlot, *, max_body: int = DEFAULT_MAX_BODY) -> Starlette:
    """The ASGI application serving whatever ``slot`` holds."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from conveyor import __version__

    def error(message: str, status: int) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def loaded_or_503() -> Any:
        loaded = slot.current
        if loaded is None:
            raise ProtocolError("no model is loaded yet" + (f": {slot.last_error}" if slot.last_error else ""), 503)
        return loaded

    def named(name: str) -> Any:
        loaded = loaded_or_503()
        if name != loaded.name:
            raise ProtocolError(f"no model '{name}' here: this server serves '{loaded.name}'", 404)
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

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        loaded = slot.current
        if loaded is None:
            return JSONResponse({"ready": False, "error": slot.last_error}, status_code=503)
        return JSONResponse({"ready": True})

    async def metadata(request: Request) -> Response:
        loaded = named(request.path_params["name"])
        signature = loaded.signature
        inputs = [
            {"name": c.name, "datatype": _TYPES.get(c.type, "BYTES"), "shape": [-1]}
            for c in (signature.inputs if signature else ())
        ]
        outputs = [{"name": "predict", "datatype": "BYTES", "shape": [-1]}]
        if hasattr(loaded.model, "predict_proba"):
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, -1]})
        return JSONResponse(
            {
                "name": loaded.name,
                "versions": [str(loaded.number)],
                "platform": f"{loaded.version.flavor}_{loaded.version.format}",
                "inputs": inputs,
                "outputs": outputs,
            }
        )

    async def model_ready(request: Request) -> Response:
        named(request.path_params["name"])
        return JSONResponse({"name": request.path_params["name"], "ready": True})

    async def infer(request: Request) -> Response:
        loaded = named(request.path_params["name"])
        wanted_version = request.path_params.get("version")
        if wanted_version is not None and wanted_version != str(loaded.number):
            raise ProtocolError(
                f"version {wanted_version} of '{loaded.name}' is not served here ({loaded.number} is)", 404
            )
        decoded = decode_oip(parse_json(await body_of(request)), loaded.signature)
        proba = not decoded.outputs or "predict_proba" in decoded.outputs
        labels, probabilities = await run_in_threadpool(loaded.predict, decoded.frame, proba=proba)
        return JSONResponse(
            encode_oip(
                loaded.name, loaded.number, labels, probabilities, request_id=decoded.id, outputs=decoded.outputs
            )
        )

    async def invocations(request: Request) -> Response:
        loaded = loaded_or_503()
        body = await body_of(request)
        decoded = decode_mlflow(body, request.headers.get("content-type", "application/json"), loaded.signature)
        labels, _ = await run_in_threadpool(loaded.predict, decoded.frame)
        return JSONResponse(encode_mlflow(labels))

    async def ping(request: Request) -> Response:
        if slot.current is None:
            return JSONResponse({"status": "loading", "error": slot.last_error}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def version(request: Request) -> Response:
        loaded = slot.current
        return JSONResponse({"conveyor": __version__, "model": None if loaded is None else loaded.version.ref})

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    def guarded(handler: Any) -> Any:
        async def run(request: Request) -> Response:
            try:
                response: Response = await handler(request)
                return response
            except ProtocolError as exc:
                return error(exc.message, exc.status)

        return run

    routes = [
        Route("/v2/health/live", guarded(live)),
        Route("/v2/health/ready", guarded(ready)),
        Route("/v2/models/{name}", guarded(metadata)),
        Route("/v2/models/{name}/ready", guarded(model_ready)),
        Route("/v2/models/{name}/infer", guarded(infer), methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", guarded(infer), methods=["POST"]),
        Route("/invocations", guarded(invocations), methods=["POST"]),
        Route("/ping", guarded(ping)),
        Route("/health", guarded(ping)),
        Route("/version", guarded(version)),
        Route("/openapi.json", guarded(openapi)),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return error(f"{request.method} {request.url.path}: {getattr(exc, 'detail', 'not found')}", status)

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


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
        },
    }


def create_app_from_environment() -> Starlette:
    """The app one uvicorn worker serves: the model ``CONVEYOR_SERVE_REF`` of the workspace at
    ``CONVEYOR_SERVE_ROOT``, loaded before the first request (each worker process loads its own)."""
    from conveyor.registry import Registry
    from conveyor.serving._slot import ModelSlot
    from conveyor.workspace import Workspace

    slot = ModelSlot()
    with Registry.open(Workspace.find(os.environ["CONVEYOR_SERVE_ROOT"])) as registry:
        slot.swap(slot.load(registry, os.environ["CONVEYOR_SERVE_REF"]))
    return create_app(slot, max_body=int(os.environ.get("CONVEYOR_SERVE_MAX_BODY", DEFAULT_MAX_BODY)))
