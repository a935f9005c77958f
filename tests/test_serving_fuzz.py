"""Fuzz a real ``conveyor serve`` process through its own OpenAPI document, then throw
hand-written hostile requests at it that a generator is unlikely to produce.

Whatever a client sends, the server answers: never a 5xx, never a dropped connection, and
every 4xx that says it is JSON is ``{"error": "..."}``. The fuzzing reads the document from
the running server (``GET /openapi.json``) and sends, for every operation in it, schemathesis'
coverage cases (boundaries, missing and wrong-typed values, unexpected methods) and
Hypothesis-generated positive and negative cases; path parameters are generated and also
pinned to the served model so request bodies get past the name check; the admin actions are
fuzzed without a token and with the real one (promote and rollback then really move aliases:
the workspace has two production versions and a canary on trial, so they succeed or give a
clean 409). The two routes the document leaves out are fuzzed the same way. Because the
document says little about bodies, a second fuzzer sends requests shaped like real ones (matching
shapes, every MLflow layout, CSV) with values of every JSON kind and size, through to the model.

A request that gets a 5xx is reported with its method, URL, headers, body and the server's
traceback from its stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Err
from sklearn import datasets  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

from conftest import CONVEYOR_BIN
from conveyor.registry import Registry, Signature
from conveyor.workspace import Workspace
from remote_fixtures import port_outside_ephemeral_range

IRIS = datasets.load_iris(as_frame=True).frame
FEATURES = IRIS.drop(columns="target")
COLUMNS: list[str] = list(FEATURES.columns)
INFER = "/v2/models/iris/infer"
MLFLOW = "/invocations"
CSV = "text/csv"
TOKEN = "fuzz-admin-token-0123456789abcdef"
MAX_BODY = 1_000_000  # bytes: room for 100,000 nested lists (200 kB) and objects (600 kB)

# Hypothesis examples per (operation, generation mode, variant): together with the coverage
# phase about 1,800 requests, 20-30 s on a shared 2-core machine
FUZZ_EXAMPLES = 40
BODY_FUZZ_EXAMPLES = 80  # infer and invocations with the model's name: the decoders' input space
NAME_FUZZ_EXAMPLES = 20  # a generated model name: a 404 before the body is read
MIN_REQUESTS = 1_500  # the fuzzing must have sent at least this many, or it proved nothing
MIN_REQUESTS_PER_OPERATION = 8  # even GET /ping: coverage sends it every unexpected method too
FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run
    database=None,  # nothing written to .hypothesis/
    phases=[Phase.generate],  # problems are collected, never raised: nothing to shrink
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def dumps(document: object) -> bytes:
    return json.dumps(document).encode()  # NaN and Infinity as the literals Python's json reads


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    stderr: Path

    def log_size(self) -> int:
        return self.stderr.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.stderr.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", errors="replace")


@pytest.fixture(name="server", scope="module")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: iris:1 then iris:2 on production (so rollback has somewhere to
    go), iris:3 on canary (a candidate on trial, so promote and the canary path are live),
    admin endpoints on with a token, a 1 MB body limit."""
    base = tmp_path_factory.mktemp("fuzzed")
    root = base / "workspace"
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run([CONVEYOR_BIN, "init"], cwd=root, check=True, env=env, capture_output=True)
    signature = Signature.infer(IRIS, label="target")
    with Registry.open(Workspace.find(root)) as registry:
        for c, alias in ((1.0, "production"), (0.05, "production"), (0.5, "canary")):
            model = LogisticRegression(max_iter=1000, C=c).fit(FEATURES, IRIS["target"])
            version = registry.register("iris", model=model, signature=signature)
            registry.promote(version.ref, to=alias)
    token_file = base / "admin.token"
    token_file.write_text(TOKEN, encoding="utf-8")
    port = port_outside_ephemeral_range()
    stderr = base / "server.stderr"
    with stderr.open("wb") as sink:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [
                CONVEYOR_BIN,
                "serve",
                "iris@production",
                "--port",
                str(port),
                "--max-body",
                str(MAX_BODY),
                "--poll",
                "0.2",
                "--admin-token-file",
                str(token_file),
                "--access-log",
                str(base / "access.log"),  # exercised, but kept out of the stderr searched for tracebacks
            ],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    server = Server(f"http://127.0.0.1:{port}", process, stderr)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server exited with {process.returncode}: {server.log_since(0)}")
            try:
                status = httpx.get(f"{server.url}/admin/status", timeout=1).json()
                if status["primary"] == "iris:2" and status["candidate"] == "iris:3":
                    break
            except (httpx.TransportError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the server did not serve iris:2 with iris:3 on trial in 60 s: {server.log_since(0)}"
                )
            time.sleep(0.1)
        yield server
    finally:
        process.kill()
        process.wait()


# -- what every answer must be -------------------------------------------------------------------


@dataclass
class Exchange:
    """One request as it went on the wire and what came back (status 0: no answer)."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    content_type: str = ""
    content: bytes = b""
    failure: str = ""  # no answer: the transport error
    server_log: str = ""  # what the server wrote to stderr while answering

    def problem(self) -> str | None:
        """Why this answer breaks the server's contract, or None."""
        if self.failure:
            return f"no answer: {self.failure}"
        if self.status >= 500:
            return f"answered {self.status}"
        if self.method == "HEAD" or not self.content_type.startswith("application/json"):
            return None  # a non-JSON 4xx (uvicorn's own 400 for a malformed request line) is not ours
        try:
            document = json.loads(self.content)
        except ValueError as exc:
            return f"answered {self.status} with a body that is not the JSON it claims: {exc}"
        if 400 <= self.status < 500 and not (isinstance(document, dict) and isinstance(document.get("error"), str)):
            return f'answered {self.status} without {{"error": "..."}}'
        return None

    def describe(self) -> str:
        body = self.body if len(self.body) <= 800 else self.body[:800] + b"... (%d bytes)" % len(self.body)
        lines = [
            f"{self.method} {self.url}",
            f"headers: {self.headers}",
            f"body: {body!r}",
            f"-> {self.status or self.failure} {self.content[:400]!r}",
        ]
        traceback = self.server_log.strip()
        if traceback:
            lines.append("server stderr:\n" + (traceback if len(traceback) < 6000 else "..." + traceback[-6000:]))
        return "\n".join(lines)


def exchanged(request: Any) -> tuple[str, str, dict[str, str], bytes]:
    """What a requests.PreparedRequest sent."""
    body = request.body or b""
    return request.method, request.url, dict(request.headers), body.encode() if isinstance(body, str) else body


@dataclass
class Fuzzer:
    """Sends schemathesis cases one at a time and keeps count and every problem."""

    server: Server
    session: requests.Session = field(default_factory=requests.Session)
    sent: Counter[str] = field(default_factory=Counter)  # per operation label
    statuses: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, int]] = field(default_factory=Counter)  # (operation label, status)
    unsendable: Counter[str] = field(default_factory=Counter)  # cases the HTTP client refused to send
    problems: list[Exchange] = field(default_factory=list)
    gone: bool = False  # the server stopped answering: stop sending

    def send(self, label: str, case: Case[Any], headers: dict[str, str] | None = None) -> None:
        if self.gone:
            return
        before = self.server.log_size()
        try:
            response = case.call(base_url=self.server.url, session=self.session, headers=headers, timeout=30)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            self.gone = self.server.process.poll() is not None
            request = exc.request
            if request is None:
                exchange = Exchange(case.method, case.formatted_path, dict(case.headers or {}), b"")
            else:
                exchange = Exchange(*exchanged(request))
            exchange.failure = f"{type(exc).__name__}: {exc}"
            exchange.server_log = self.server.log_since(before)
            self.sent[label] += 1
            self.problems.append(exchange)
            return
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError) as exc:
            self.unsendable[type(exc).__name__] += 1  # never reached the server
            return
        self.sent[label] += 1
        self.statuses[response.status_code] += 1
        self.outcomes[label + (" with the token" if headers else ""), response.status_code] += 1
        exchange = Exchange(
            *exchanged(response.request),
            status=response.status_code,
            content_type=(response.headers.get("content-type") or [""])[0],
            content=response.content,
        )
        if exchange.problem() is not None:
            exchange.server_log = self.server.log_since(before)
            self.problems.append(exchange)

    def coverage(self, operation: Any, variants: Iterable[Variant]) -> None:
        """schemathesis' coverage phase: deterministic boundary, missing-value, wrong-type and
        unexpected-method cases, each sent once per variant."""
        schema = operation.schema
        config = schema.config.generation_for(operation=operation)
        modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
        cases = list(schema.iter_coverage_cases(operation, generation_modes=modes, generation_config=config))
        for variant in variants:
            for case in cases:
                if variant.path_parameters and case.path_parameters:
                    case.path_parameters.update(variant.path_parameters)
                self.send(operation.label, case, variant.headers)

    def fuzz(self, operation: Any, mode: GenerationMode, variant: Variant) -> None:
        """Hypothesis-generated cases of one generation mode."""
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=variant.path_parameters or None)

        @settings(FUZZ_SETTINGS, max_examples=variant.examples)
        @given(case=strategy)
        def send(case: Case[Any]) -> None:
            self.send(operation.label, case, variant.headers)

        try:
            send()
        except Unsatisfiable:
            # nothing can be wrong in a request without parameters or body (GET /ping), or in a
            # string path parameter: schemathesis finds no negative case there
            if mode is not GenerationMode.NEGATIVE:
                raise


@dataclass(frozen=True)
class Variant:
    """How an operation's cases are sent: with pinned path parameters, with extra headers."""

    path_parameters: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] | None = None
    examples: int = FUZZ_EXAMPLES


def variants_of(operation: Any, served: str) -> list[Variant]:
    """How to send an operation's cases; ``served``: the version number the server answers with."""
    parameters = {p.name for p in operation.path_parameters}
    body = operation.method.upper() == "POST" and "/admin/" not in operation.path
    examples = BODY_FUZZ_EXAMPLES if body else FUZZ_EXAMPLES
    variants = [Variant(examples=NAME_FUZZ_EXAMPLES if "name" in parameters else FUZZ_EXAMPLES)]
    if "name" in parameters:  # the generated name is almost never 'iris': pin it so the body is read
        pinned = {"name": "iris"} | ({"version": served} if "version" in parameters else {})
        variants.append(Variant(pinned, examples=examples))
    elif body:
        variants = [Variant(examples=examples)]
    if operation.path.startswith("/admin/") and operation.method.upper() == "POST":
        variants.append(Variant(headers={"Authorization": f"Bearer {TOKEN}"}))
    return variants


def undocumented_routes(document: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI document of the routes the server has but its own document leaves out."""
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    extra = {
        "/v2/models/{name}/ready": {
            "get": {"parameters": [name], "responses": {"200": {"description": "OK"}, "404": {"description": "-"}}}
        },
        "/v2/models/{name}/versions/{version}/infer": {"post": {**infer, "parameters": [name, version]}},
    }
    paths = {path: item for path, item in extra.items() if path not in document["paths"]}
    return {**document, "paths": paths}


def operations_of(schema: Any) -> list[Any]:
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise AssertionError(f"schemathesis cannot read an operation of the document: {result.err()}")
        operations.append(result.ok())
    return operations


def test_fuzzing_every_operation_of_the_openapi_document_gets_no_5xx(server: Server) -> None:
    started = time.monotonic()
    document = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    documented = operations_of(schemathesis.openapi.from_url(f"{server.url}/openapi.json"))
    extra = operations_of(schemathesis.openapi.from_dict(undocumented_routes(document)))
    labels = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    assert {o.label for o in documented} == labels and len(labels) >= 13, labels
    assert {"POST /admin/reload", "POST /admin/promote", "POST /admin/rollback"} <= labels

    fuzzer = Fuzzer(server)
    try:
        for operation in documented + extra:
            served = httpx.get(f"{server.url}/admin/status", timeout=10).json()["primary"].partition(":")[2]
            variants = variants_of(operation, served)
            fuzzer.coverage(operation, variants)
            for variant in variants:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    fuzzer.fuzz(operation, mode, variant)
    finally:
        fuzzer.session.close()
    elapsed = time.monotonic() - started

    total = sum(fuzzer.sent.values())
    print(
        f"\nfuzzed {len(documented)} documented operations and {len(extra)} undocumented routes with "
        f"{total} requests in {elapsed:.1f} s; statuses {dict(sorted(fuzzer.statuses.items()))}; "
        f"per operation {dict(fuzzer.sent)}; admin actions with the token "
        f"{ {k: n for k, n in fuzzer.outcomes.items() if k[0].endswith('with the token')} }; "
        f"not sendable by the client {dict(fuzzer.unsendable)}"
    )
    problems = fuzzer.problems
    assert not problems, f"{len(problems)} of {total} requests broke the contract; the first ones:\n\n" + "\n\n".join(
        f"{p.problem()}:\n{p.describe()}" for p in problems[:5]
    )
    assert server.process.poll() is None, "the server died"
    assert httpx.get(f"{server.url}/v2/health/live", timeout=10).status_code == 200
    assert total >= MIN_REQUESTS, f"only {total} requests: the fuzzing did not run"
    thin = {
        o.label: fuzzer.sent[o.label] for o in documented + extra if fuzzer.sent[o.label] < MIN_REQUESTS_PER_OPERATION
    }
    assert not thin, f"operations barely fuzzed: {thin}"
    assert any(200 <= s < 300 for s in fuzzer.statuses) and any(400 <= s < 500 for s in fuzzer.statuses)
    for action in ("reload", "promote", "rollback"):  # the token was taken: the actions themselves ran
        label = f"POST /admin/{action} with the token"
        assert any(o == label and s not in (401, 403) for o, s in fuzzer.outcomes), (label, fuzzer.outcomes)


# -- well-formed bodies, through to the model ---------------------------------------------------

# The document only says "an object" for MLflow bodies and "an array" for tensor data, so the
# requests generated from it rarely get past the decoders' first checks. These are shaped like
# real requests (a tensor per column, shape matching data, every MLflow layout, CSV): half of
# them with values of the datatype asked for, half with values of every JSON kind and size
# mixed in.
EXTREME = st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**30, 10**400, -(10**400), 1e308, 5e-324, -0.0])
ANY_VALUE = st.one_of(
    st.floats(),  # NaN and Infinity included: Python's json writes and reads them
    st.integers(),
    EXTREME,  # beyond int64 and float64
    st.booleans(),
    st.none(),
    st.text(max_size=6),
    st.sampled_from(["1.5", "-0", "nan", "inf", "1e400", " 3 ", "0x10"]),
)
PLAIN_FLOAT = st.floats(-100, 100)
TYPED = {
    "BOOL": st.booleans(),
    "BYTES": st.one_of(st.text(max_size=6), st.sampled_from(["1.5", "nan", "1e400"])),
    **dict.fromkeys(["FP16", "FP32", "FP64"], st.one_of(PLAIN_FLOAT, PLAIN_FLOAT, st.floats(), st.integers(-100, 100))),
    **dict.fromkeys(
        ["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"],
        st.one_of(st.integers(0, 100), st.integers(0, 100), st.integers()),
    ),
}
DATATYPES = st.one_of(st.just("FP64"), st.just("FP64"), st.sampled_from(sorted(TYPED)))
NAMES = st.one_of(st.sampled_from(COLUMNS), st.text(min_size=1, max_size=6))
ROWS = st.one_of(st.integers(1, 4), st.integers(0, 4))


@st.composite
def oip_request(draw: st.DrawFn) -> tuple[str, str, bytes]:
    rows = draw(ROWS)
    datatype = draw(DATATYPES)
    values = draw(st.sampled_from([TYPED[datatype], st.one_of(*[TYPED[datatype]] * 4, ANY_VALUE)]))
    if draw(st.booleans()):  # one [N, F] tensor of every feature
        width = draw(st.sampled_from([len(COLUMNS), len(COLUMNS), 1, 3]))
        data = draw(st.lists(values, min_size=rows * width, max_size=rows * width))
        nested = [data[i * width : (i + 1) * width] for i in range(rows)]
        tensors = [
            {"name": "x", "shape": [rows, width], "datatype": datatype, "data": draw(st.sampled_from([data, nested]))}
        ]
    else:  # one tensor per column
        names = draw(
            st.one_of(st.just(COLUMNS), st.just(COLUMNS), st.lists(NAMES, min_size=1, max_size=5, unique=True))
        )
        tensors = [
            {
                "name": name,
                "shape": draw(st.sampled_from([[rows], [rows, 1]])),
                "datatype": datatype,
                "data": draw(st.lists(values, min_size=rows, max_size=rows)),
            }
            for name in names
        ]
    document: dict[str, Any] = {"inputs": tensors}
    if draw(st.booleans()):
        outputs = st.sampled_from(["predict", "predict_proba", "x"]).map(lambda name: {"name": name})
        document["outputs"] = draw(st.lists(outputs, max_size=2))
    if draw(st.booleans()):
        document["id"] = draw(ANY_VALUE)
    versioned = [f"/v2/models/iris/versions/{n}/infer" for n in (1, 2, 3)]  # whichever is served now
    path = draw(st.sampled_from([INFER, INFER, INFER, *versioned]))
    return path, "application/json", dumps(document)


@st.composite
def mlflow_request(draw: st.DrawFn) -> tuple[str, str, bytes]:
    names = draw(
        st.one_of(st.just(COLUMNS), st.permutations(COLUMNS), st.lists(NAMES, min_size=1, max_size=5, unique=True))
    )
    values = draw(st.sampled_from([TYPED["FP64"], st.one_of(*[TYPED["FP64"]] * 4, ANY_VALUE)]))
    one_row = st.lists(values, min_size=len(names), max_size=len(names))
    rows = draw(st.one_of(st.lists(one_row, min_size=1, max_size=4), st.lists(one_row, max_size=4)))
    layout = draw(st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs", "columns", "csv"]))
    if layout == "csv":
        lines = [",".join(names)] + [",".join("" if v is None else str(v) for v in row) for row in rows]
        return MLFLOW, draw(st.sampled_from([CSV, "text/csv; charset=utf-8"])), "\n".join(lines).encode()
    document: dict[str, Any]
    if layout == "dataframe_split":
        document = {layout: {"columns": names, "data": rows}}
    elif layout == "dataframe_records":
        document = {layout: [dict(zip(names, row, strict=True)) for row in rows]}
    elif layout == "columns":  # instances as an object of columns
        document = {"instances": {name: [row[i] for row in rows] for i, name in enumerate(names)}}
    else:
        document = {layout: rows}
    return MLFLOW, draw(st.sampled_from(["application/json", "application/json; charset=utf-8", ""])), dumps(document)


STRUCTURED_EXAMPLES = 300
MIN_STRUCTURED_REQUESTS = 250


def test_fuzzing_well_formed_bodies_through_to_the_model_gets_no_5xx(server: Server) -> None:
    started = time.monotonic()
    statuses: Counter[int] = Counter()
    problems: list[Exchange] = []
    with httpx.Client(base_url=server.url, timeout=30) as client:

        @settings(FUZZ_SETTINGS, max_examples=STRUCTURED_EXAMPLES)
        @given(request=st.one_of(oip_request(), mlflow_request()))
        def send(request: tuple[str, str, bytes]) -> None:
            path, content_type, body = request
            headers = {"content-type": content_type} if content_type else {}
            exchange = Exchange("POST", server.url + path, headers, body)
            before = server.log_size()
            try:
                response = client.post(path, content=body, headers=headers)
            except httpx.TransportError as exc:
                exchange.failure = f"{type(exc).__name__}: {exc}"
            else:
                exchange.status = response.status_code
                exchange.content_type = response.headers.get("content-type", "")
                exchange.content = response.content
                statuses[response.status_code] += 1
            if exchange.problem() is not None:
                exchange.server_log = server.log_since(before)
                problems.append(exchange)

        send()
    total = sum(statuses.values()) + sum(1 for p in problems if p.failure)
    print(
        f"\nsent {total} well-formed bodies in {time.monotonic() - started:.1f} s; "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    assert not problems, f"{len(problems)} of {total} requests broke the contract; the first ones:\n\n" + "\n\n".join(
        f"{p.problem()}:\n{p.describe()}" for p in problems[:5]
    )
    assert total >= MIN_STRUCTURED_REQUESTS, f"only {total} requests: the fuzzing did not run"
    assert statuses[200] >= total // 20, f"the model answered too few of them: {dict(statuses)}"
    assert server.process.poll() is None, "the server died"


# -- hand-written hostile requests ---------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    path: str
    body: bytes | Callable[[], Iterator[bytes]] = b""
    content_type: str | None = "application/json"
    status: int | None = None  # the exact 4xx expected; None: any 4xx
    admin: bool = False  # send the valid admin token
    method: str = "POST"


def columns(datatype: str, *values: object) -> bytes:
    """One OIP tensor per feature, each of the given values."""
    return dumps(
        {"inputs": [{"name": c, "shape": [len(values)], "datatype": datatype, "data": list(values)} for c in COLUMNS]}
    )


def tensor(shape: list[int], data: list[Any], datatype: str = "FP64", name: str = "x") -> bytes:
    return dumps({"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]})


def row(value: object) -> list[object]:
    return [value] * len(COLUMNS)


def over_max_body_chunked() -> Iterator[bytes]:  # no content-length: the limit is enforced while reading
    for _ in range(MAX_BODY // 50_000):
        yield b" " * 50_000
    yield b" "


DIGITS_5000 = b"9" * 5000  # more digits than Python turns into an int by default (4300)
BIG = 10**400  # a JSON integer no float or int64 holds
HOSTILE = {
    # bodies that are not UTF-8
    "invalid-utf8-oip": Hostile(INFER, b'{"inputs": "\xff\xfe"}', status=400),
    "invalid-utf8-mlflow-json": Hostile(MLFLOW, b'{"instances": [["\xc3\x28"]]}', status=400),
    "invalid-utf8-csv": Hostile(MLFLOW, b"a,b\n\xff,1\n", CSV, status=400),
    "invalid-utf8-admin-body": Hostile("/admin/rollback", b'{"reason": "\xff"}', status=400, admin=True),
    "utf16-json": Hostile(MLFLOW, '{"instances": [[1, 2, 3, 4]]}'.encode("utf-16"), "application/json; charset=utf-16"),
    # nesting deeper than any parser recursion
    "nested-100000-lists-mlflow": Hostile(MLFLOW, b"[" * 100_000 + b"]" * 100_000, status=400),
    "nested-100000-lists-oip": Hostile(INFER, b"[" * 100_000 + b"]" * 100_000, status=400),
    "nested-100000-objects-mlflow": Hostile(MLFLOW, b'{"a":' * 100_000 + b"}" * 100_000, status=400),
    "nested-100000-lists-in-instances": Hostile(
        MLFLOW, b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", status=400
    ),
    "nested-100000-lists-admin-body": Hostile(
        "/admin/promote", b"[" * 100_000 + b"]" * 100_000, status=400, admin=True
    ),
    "nested-500-lists-in-tensor-data": Hostile(INFER, tensor([1], json.loads("[" * 500 + "1" + "]" * 500)), status=400),
    # numbers no float64 or int64 holds, and the literals JSON does not have
    "1e400-oip-fp64": Hostile(INFER, columns("FP64", 1.0).replace(b"1.0", b"1e400", 1)),
    "1e400-mlflow-split": Hostile(
        MLFLOW, dumps({"dataframe_split": {"columns": COLUMNS, "data": [row(1.0)]}}).replace(b"1.0", b"1e400")
    ),
    "int-10**400-oip-fp64": Hostile(INFER, columns("FP64", BIG)),
    "int-10**400-oip-int64": Hostile(INFER, columns("INT64", BIG)),
    "int-2**63-oip-int64": Hostile(INFER, columns("INT64", 2**63)),
    "int-2**64-1-oip-uint64": Hostile(INFER, columns("UINT64", 2**64 - 1)),
    "int-10**400-mlflow-split": Hostile(MLFLOW, dumps({"dataframe_split": {"columns": COLUMNS, "data": [row(BIG)]}})),
    "int-10**400-mlflow-records": Hostile(MLFLOW, dumps({"dataframe_records": [dict.fromkeys(COLUMNS, BIG)]})),
    "int-10**400-mlflow-instances": Hostile(MLFLOW, dumps({"instances": [row(BIG)]})),
    "int-10**400-mlflow-inputs-columns": Hostile(MLFLOW, dumps({"inputs": {c: [BIG] for c in COLUMNS}})),
    "int-400-digits-csv": Hostile(MLFLOW, (",".join(COLUMNS) + "\n" + ",".join(["9" * 400] * 4) + "\n").encode(), CSV),
    "int-5000-digits-mlflow": Hostile(MLFLOW, b'{"instances": [[' + DIGITS_5000 + b", 1, 2, 3]]}", status=400),
    "int-5000-digits-oip": Hostile(INFER, tensor([1], [0]).replace(b"[0]", b"[" + DIGITS_5000 + b"]"), status=400),
    "int-5000-digits-admin-body": Hostile("/admin/rollback", b'{"n": ' + DIGITS_5000 + b"}", status=400, admin=True),
    "nan-infinity-oip": Hostile(INFER, columns("FP64", float("nan"), float("inf"), float("-inf"))),
    "nan-infinity-mlflow-split": Hostile(
        MLFLOW,
        dumps({"dataframe_split": {"columns": COLUMNS, "data": [[float("nan"), float("inf"), float("-inf"), 1.0]]}}),
    ),
    "nan-mlflow-records": Hostile(MLFLOW, dumps({"dataframe_records": [dict.fromkeys(COLUMNS, float("nan"))]})),
    "nan-infinity-csv": Hostile(MLFLOW, (",".join(COLUMNS) + "\nnan,inf,-inf,1\n").encode(), CSV),
    "nan-admin-reason": Hostile("/admin/rollback", b'{"reason": NaN}', status=400, admin=True),
    # content types the endpoint does not take
    "xml-to-invocations": Hostile(MLFLOW, b"<a/>", "application/xml", status=415),
    "multipart-to-invocations": Hostile(MLFLOW, b"--x\r\n\r\n--x--\r\n", "multipart/form-data; boundary=x", status=415),
    "form-to-invocations": Hostile(MLFLOW, b"a=1&b=2", "application/x-www-form-urlencoded", status=415),
    "garbage-content-type": Hostile(MLFLOW, b"a,b\n1,2\n", ";;;", status=400),
    "no-content-type-csv-body": Hostile(MLFLOW, b"a,b\n1,2\n", None, status=400),
    "csv-to-oip": Hostile(INFER, b"a,b\n1,2\n", CSV, status=400),
    # the body limit, at and over it
    "body-exactly-max-body": Hostile(MLFLOW, b" " * MAX_BODY, status=400),
    "body-one-byte-over-max-body": Hostile(MLFLOW, b" " * (MAX_BODY + 1), status=413),
    "body-one-byte-over-max-body-chunked": Hostile(MLFLOW, over_max_body_chunked, status=413),
    "body-one-byte-over-max-body-admin": Hostile("/admin/promote", b" " * (MAX_BODY + 1), status=413, admin=True),
    # OIP tensors that do not add up
    "oip-shape-3-data-1": Hostile(INFER, tensor([3], [1.0]), status=400),
    "oip-shape-2x4-data-7": Hostile(INFER, tensor([2, 4], [1.0] * 7), status=400),
    "oip-columns-of-different-rows": Hostile(
        INFER,
        dumps(
            {
                "inputs": [
                    {"name": c, "shape": [1 + i % 2], "datatype": "FP64", "data": [1.0] * (1 + i % 2)}
                    for i, c in enumerate(COLUMNS)
                ]
            }
        ),
        status=400,
    ),
    "oip-negative-shape": Hostile(INFER, tensor([-1], [1.0]), status=400),
    "oip-negative-second-dimension": Hostile(INFER, tensor([2, -2], [1.0] * 4), status=400),
    "oip-shape-product-overflow": Hostile(INFER, tensor([2**62, 2**62], [1.0])),
    "oip-shape-2**64-columns": Hostile(INFER, tensor([1, 2**64], [1.0]), status=400),
    "oip-shape-0x2**64": Hostile(INFER, tensor([0, 2**64], [])),
    "oip-shape-2**64-rows": Hostile(INFER, tensor([2**64], []), status=413),
    "oip-shape-empty": Hostile(INFER, tensor([], []), status=400),
    "oip-shape-of-booleans": Hostile(INFER, tensor([True], [1.0]), status=400),
    "oip-unknown-datatype": Hostile(INFER, tensor([1], [1.0], "FP128"), status=400),
    "oip-lowercase-datatype": Hostile(INFER, tensor([1], [1.0], "fp64"), status=400),
    "oip-null-datatype": Hostile(
        INFER, dumps({"inputs": [{"name": "x", "shape": [1], "datatype": None, "data": [1]}]}), status=400
    ),
    "oip-bytes-of-numbers-and-null": Hostile(INFER, tensor([2], [1, None], "BYTES"), status=400),
    "oip-bytes-of-objects": Hostile(INFER, tensor([1], [{"a": 1}], "BYTES"), status=400),
    "oip-bool-of-numbers": Hostile(INFER, tensor([1], [1], "BOOL"), status=400),
    "oip-empty-inputs": Hostile(INFER, dumps({"inputs": []}), status=400),
    "oip-inputs-object": Hostile(INFER, dumps({"inputs": {}}), status=400),
    "oip-no-inputs": Hostile(INFER, dumps({}), status=400),
    "oip-inputs-of-empty-object": Hostile(INFER, dumps({"inputs": [{}]}), status=400),
    "oip-zero-rows": Hostile(INFER, columns("FP64")),
    "oip-unknown-output": Hostile(
        INFER, dumps({**json.loads(columns("FP64", 1.0)), "outputs": [{"name": "nope"}]}), status=400
    ),
    "oip-body-not-an-object": Hostile(INFER, b"[1, 2]", status=400),
    # MLflow frames that do not add up
    "split-columns-longer-than-rows": Hostile(
        MLFLOW, dumps({"dataframe_split": {"columns": COLUMNS, "data": [[1.0, 2.0]]}}), status=400
    ),
    "split-rows-longer-than-columns": Hostile(
        MLFLOW, dumps({"dataframe_split": {"columns": COLUMNS[:2], "data": [row(1.0)]}}), status=400
    ),
    "split-no-columns-ragged-rows": Hostile(
        MLFLOW, dumps({"dataframe_split": {"data": [[1.0, 2.0], row(1.0)]}}), status=400
    ),
    "split-columns-of-numbers": Hostile(
        MLFLOW, dumps({"dataframe_split": {"columns": [1, 2, 3, 4], "data": [row(1.0)]}}), status=400
    ),
    "split-data-not-rows": Hostile(
        MLFLOW, dumps({"dataframe_split": {"columns": COLUMNS, "data": row(1.0)}}), status=400
    ),
    "split-empty": Hostile(MLFLOW, dumps({"dataframe_split": {"columns": [], "data": []}})),
    "records-empty": Hostile(MLFLOW, dumps({"dataframe_records": []})),
    "instances-empty": Hostile(MLFLOW, dumps({"instances": []})),
    "instances-ragged": Hostile(MLFLOW, dumps({"instances": [[1.0], row(1.0)]}), status=400),
    "two-mlflow-keys": Hostile(MLFLOW, dumps({"instances": [row(1.0)], "inputs": [row(1.0)]}), status=400),
    "mlflow-body-null": Hostile(MLFLOW, b"null", status=400),
    # CSV that does not add up
    "csv-ragged-rows": Hostile(MLFLOW, (",".join(COLUMNS) + "\n1,2,3,4\n1,2\n1,2,3,4,5,6\n").encode(), CSV, status=400),
    "csv-only-header": Hostile(MLFLOW, (",".join(COLUMNS) + "\n").encode(), CSV),
    "csv-empty": Hostile(MLFLOW, b"", CSV, status=400),
    "csv-carriage-return-in-header": Hostile(MLFLOW, b"a\rb,c\n1,2\n", CSV),
    "csv-repeated-column": Hostile(MLFLOW, b"a,a\n1,2\n", CSV, status=400),
    "csv-unterminated-quote": Hostile(MLFLOW, b'a,b\n"1,2\n', CSV, status=400),
    # paths and methods
    "version-superscript-digit": Hostile("/v2/models/iris/versions/%C2%B2/infer", columns("FP64", 1.0), status=404),
    "version-5000-digits": Hostile(
        "/v2/models/iris/versions/" + "9" * 5000 + "/infer", columns("FP64", 1.0), status=404
    ),
    "version-negative": Hostile("/v2/models/iris/versions/-1/infer", columns("FP64", 1.0), status=404),
    "model-name-invalid-utf8": Hostile("/v2/models/%FF/infer", columns("FP64", 1.0), status=404),
    "model-name-nul": Hostile("/v2/models/%00", method="GET", status=404),
    "get-invocations": Hostile(MLFLOW, method="GET", status=405),
    # admin bodies that are not what the document says
    "admin-body-a-list": Hostile("/admin/rollback", b"[]", status=400, admin=True),
    "admin-actor-a-number": Hostile("/admin/promote", b'{"actor": 5}', status=400, admin=True),
    "admin-without-token": Hostile("/admin/rollback", b'{"reason": "x"}', status=401),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_request_is_a_4xx_naming_the_problem(server: Server, name: str) -> None:
    case = HOSTILE[name]
    headers = {} if case.content_type is None else {"content-type": case.content_type}
    if case.admin:
        headers["authorization"] = f"Bearer {TOKEN}"
    body = case.body if isinstance(case.body, bytes) else b"".join(case.body())
    exchange = Exchange(case.method, server.url + case.path, headers, body)
    before = server.log_size()
    try:
        response = httpx.request(
            case.method,
            server.url + case.path,
            content=case.body if isinstance(case.body, bytes) else case.body(),
            headers=headers,
            timeout=60,
        )
    except httpx.TransportError as exc:
        exchange.failure = f"{type(exc).__name__}: {exc}"
    else:
        exchange.status = response.status_code
        exchange.content_type = response.headers.get("content-type", "")
        exchange.content = response.content
    exchange.server_log = server.log_since(before)
    problem = exchange.problem()
    assert problem is None, f"{problem}:\n{exchange.describe()}"
    assert 400 <= exchange.status < 500, exchange.describe()
    assert exchange.content_type.startswith("application/json"), exchange.describe()
    if case.status is not None:
        assert exchange.status == case.status, exchange.describe()
    assert server.process.poll() is None, f"the server died:\n{exchange.describe()}"
