"""The wire formats the model server speaks, as pure functions from a request body to a
DataFrame of features and from predictions to a response body.

Two protocols, so that existing clients work unchanged:

* the Open Inference Protocol v2 (KServe, Triton, Seldon): ``{"inputs": [{"name", "shape",
  "datatype", "data"}, ...]}``, one tensor per column (shape ``[N]`` or ``[N, 1]``) or one
  2-D tensor of every feature (shape ``[N, F]``, columns in the signature's order);
* MLflow's scoring protocol (``POST /invocations``): JSON with one of ``dataframe_split``,
  ``dataframe_records``, ``instances`` or ``inputs``, or CSV with a header row.

Every malformed body raises :class:`ProtocolError` with the HTTP status to answer and a
message naming the field, never anything a server would turn into a 5xx.
"""

from __future__ import annotations

import io
import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from conveyor.registry import Signature

# OIP v2 datatypes and what their values must be
_INTEGER = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_FLOAT = {"FP16", "FP32", "FP64"}
DATATYPES = frozenset({"BOOL", "BYTES", *_INTEGER, *_FLOAT})
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
MAX_ROWS = 1_000_000  # a request of more rows is refused (413) before it is turned into a frame


class ProtocolError(Exception):
    """A request the server cannot use: ``status`` is the HTTP status to answer (4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class InferRequest:
    """A decoded request: the features, the request id (OIP), which outputs were asked for.

    Plain numbers arrive as one float ``matrix`` with its ``columns`` and become a DataFrame
    only if something asks for :attr:`frame` (a model that needs one, the request log), so the
    common request never pays for pandas."""

    __slots__ = ("_frame", "columns", "id", "matrix", "outputs")

    def __init__(
        self,
        frame: pd.DataFrame | None = None,
        id: str | None = None,
        outputs: tuple[str, ...] = (),
        *,
        matrix: np.ndarray | None = None,
        columns: tuple[str, ...] | None = None,
    ) -> None:
        if frame is None and (matrix is None or columns is None):
            raise ValueError("a request needs a frame, or a matrix and its columns")
        self._frame = frame
        self.matrix = matrix
        self.columns = columns
        self.id = id
        self.outputs = outputs  # OIP: the outputs asked for; empty: all

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            import pandas as pd

            self._frame = pd.DataFrame(self.matrix, columns=list(self.columns or ()))
        return self._frame

    @property
    def rows(self) -> int:
        return len(self.matrix) if self.matrix is not None else len(self.frame)


# -- decoding ----------------------------------------------------------------------------------


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``; a 400 naming where it breaks otherwise."""
    try:
        text = body.decode("utf-8")  # not json.loads(bytes), which would also guess UTF-16 and -32
    except UnicodeDecodeError:
        raise ProtocolError("the body is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ProtocolError("the body's JSON is nested too deeply") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise ProtocolError(f"the body's JSON has a value that cannot be read: {exc}") from None


def decode_oip(document: Any, signature: Signature | None = None) -> InferRequest:
    """An Open Inference Protocol v2 infer request as a DataFrame."""
    import pandas as pd

    if not isinstance(document, dict):
        raise ProtocolError("the request must be a JSON object with 'inputs'")
    tensors = document.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    columns: dict[str, Any] = {}
    rows: int | None = None
    for i, tensor in enumerate(tensors):
        where = f"inputs[{i}]"
        if not isinstance(tensor, dict):
            raise ProtocolError(f"{where} must be an object with name, shape, datatype and data")
        name = tensor.get("name")
        if not isinstance(name, str) or not name:
            raise ProtocolError(f"{where}: 'name' must be a non-empty string")
        where = f"{where} ('{name}')"
        values = _tensor_values(tensor, where)
        shape = _shape(tensor, where)
        if len(shape) == 2 and shape[1] > 1 and len(tensors) == 1:
            # one tensor of every feature: [N, F], columns in the signature's order
            names = _feature_names(signature, shape[1], where)
            array = values.reshape(shape)
            for j, column in enumerate(names):
                columns[column] = array[:, j]
            rows = shape[0]
            continue
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise ProtocolError(f"{where}: shape {shape} is not one value per row ([N] or [N, 1])")
        if rows is not None and shape[0] != rows:
            raise ProtocolError(f"{where}: {shape[0]} rows, but the tensors before have {rows}")
        rows = shape[0]
        if name in columns:
            raise ProtocolError(f"{where}: the column is given twice")
        columns[name] = values.reshape(shape[0])
    frame = pd.DataFrame(columns)
    request_id = document.get("id")
    wanted = document.get("outputs") or []
    if not isinstance(wanted, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in wanted):
        raise ProtocolError("'outputs' must be a list of objects with a 'name'")
    return InferRequest(frame, None if request_id is None else str(request_id), tuple(o["name"] for o in wanted))


def _shape(tensor: dict[str, Any], where: str) -> list[int]:
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
    ):
        raise ProtocolError(f"{where}: 'shape' must be a list of integers, such as [2] or [2, 4]")
    if any(d < 0 for d in shape):
        raise ProtocolError(f"{where}: 'shape' {shape} has a negative dimension")
    if shape[0] > MAX_ROWS:
        raise ProtocolError(f"{where}: {shape[0]:,} rows is more than the {MAX_ROWS:,} a request may hold", 413)
    return shape


def _tensor_values(tensor: dict[str, Any], where: str) -> np.ndarray:
    """The tensor's data, flattened (row-major, nested lists allowed), checked against its
    datatype and shape."""
    import numpy as np

    datatype = tensor.get("datatype")
    if datatype not in DATATYPES:
        raise ProtocolError(f"{where}: 'datatype' must be one of {', '.join(sorted(DATATYPES))}, not {datatype!r}")
    if "data" not in tensor:
        raise ProtocolError(f"{where}: 'data' is missing")
    flat = _flatten(tensor["data"], where)
    shape = _shape(tensor, where)
    expected = math.prod(shape)
    if len(flat) != expected:
        raise ProtocolError(f"{where}: shape {shape} needs {expected} values, 'data' has {len(flat)}")
    for k, value in enumerate(flat):
        problem = _datatype_problem(value, datatype)
        if problem:
            raise ProtocolError(f"{where}: data[{k}] is {value!r}, {problem}")
    try:
        if datatype in _FLOAT:
            return np.array([np.nan if v is None else v for v in flat], dtype=np.float64)
        if datatype in _INTEGER:
            return np.array(flat, dtype=np.int64)
    except OverflowError:
        raise ProtocolError(f"{where}: a value is out of range for {datatype}") from None
    if datatype == "BOOL":
        return np.array(flat, dtype=bool)
    return np.array(flat, dtype=object)


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise ProtocolError(f"{where}: 'data' must be a list")
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
            continue
        if isinstance(item, list):
            if len(stack) > 32:
                raise ProtocolError(f"{where}: 'data' is nested too deep")
            stack.append(iter(item))
        else:
            out.append(item)
    return out


_END = object()


def _datatype_problem(value: Any, datatype: str) -> str | None:
    if datatype in _FLOAT:
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return None
        return f"not a number ({datatype})"
    if datatype in _INTEGER:
        if isinstance(value, int) and not isinstance(value, bool):
            if datatype.startswith("UINT") and value < 0:
                return f"negative for {datatype}"
            return None
        return f"not an integer ({datatype})"
    if datatype == "BOOL":
        return None if isinstance(value, bool) else "not true or false (BOOL)"
    return None if isinstance(value, str) else "not a string (BYTES)"


def _feature_names(signature: Signature | None, count: int, where: str) -> list[str]:
    if signature is None or not signature.inputs:
        raise ProtocolError(
            f"{where}: a [N, {count}] tensor needs the model's signature to name its columns; "
            "send one tensor per column instead",
            422,
        )
    if len(signature.inputs) != count:
        raise ProtocolError(
            f"{where}: {count} values a row, but the model takes {len(signature.inputs)} "
            f"({', '.join(c.name for c in signature.inputs[:6])}{', ...' if len(signature.inputs) > 6 else ''})",
            422,
        )
    return [c.name for c in signature.inputs]


def decode_mlflow(body: bytes, content_type: str, signature: Signature | None = None) -> InferRequest:
    """An MLflow scoring request (``/invocations``) as a DataFrame."""
    import pandas as pd

    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "text/csv":
        import csv

        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("the body is not UTF-8 text") from None
        try:
            header = next(csv.reader(io.StringIO(text)), [])
        except csv.Error as exc:
            raise ProtocolError(f"the body is not valid CSV: {exc}") from None
        repeated = [name for i, name in enumerate(header) if name in header[:i]]
        if repeated:  # pandas would rename the second one 'a.1'; a model would never see it
            raise ProtocolError(f"column '{repeated[0]}' is given twice")
        try:
            frame = pd.read_csv(io.StringIO(text))
        except (ValueError, pd.errors.ParserError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ProtocolError(f"the body is not valid CSV: {first}") from None
        return InferRequest(_limited(frame))
    if kind not in ("application/json", ""):
        raise ProtocolError(f"content type '{kind}' is not supported: send application/json or text/csv", 415)
    document = parse_json(body)
    if not isinstance(document, dict):
        raise ProtocolError(f"the request must be a JSON object with one of {', '.join(MLFLOW_KEYS)}")
    given = [k for k in MLFLOW_KEYS if k in document]
    if len(given) != 1:
        found = ", ".join(given) if given else "none"
        raise ProtocolError(f"the request must have exactly one of {', '.join(MLFLOW_KEYS)} (found {found})")
    key = given[0]
    value = document[key]
    try:
        if key == "dataframe_split":
            split = _from_split(value)
            if not isinstance(split, tuple):
                return InferRequest(_limited(split))
            matrix, columns = split
            if len(matrix) > MAX_ROWS:
                raise ProtocolError(f"{len(matrix):,} rows is more than the {MAX_ROWS:,} a request may hold", 413)
            return InferRequest(matrix=matrix, columns=columns)
        elif key == "dataframe_records":
            frame = _from_records(value)
        else:
            frame = _from_instances(value, signature)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"'{key}': {str(exc).strip().splitlines()[0]}") from None
    return InferRequest(_limited(frame))


def _limited(frame: pd.DataFrame) -> pd.DataFrame:
    if len(frame) > MAX_ROWS:
        raise ProtocolError(f"{len(frame):,} rows is more than the {MAX_ROWS:,} a request may hold", 413)
    if frame.columns.has_duplicates:
        duplicate = frame.columns[frame.columns.duplicated()][0]
        raise ProtocolError(f"column '{duplicate}' is given twice")
    return frame


def _from_split(value: Any) -> pd.DataFrame | tuple[np.ndarray, tuple[str, ...]]:
    import pandas as pd

    if not isinstance(value, dict) or "data" not in value:
        raise ValueError("must be an object with 'columns' and 'data'")
    columns, data = value.get("columns"), value["data"]
    if not isinstance(data, list) or not all(isinstance(row, list) for row in data):
        raise ValueError("'data' must be a list of rows (lists)")
    if columns is not None:
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise ValueError("'columns' must be a list of names")
        for i, row in enumerate(data):
            if len(row) != len(columns):
                raise ValueError(f"row {i} has {len(row)} values for {len(columns)} columns")
        if data and len(set(columns)) == len(columns) and _all_numbers(data):
            import numpy as np  # the common case: one float block, no DataFrame unless needed

            return np.array(data, dtype=np.float64), tuple(columns)
    return pd.DataFrame(data, columns=columns)


_EXACT = 2**53  # integers a float64 holds exactly


def _all_numbers(rows: list[list[Any]]) -> bool:
    """Every value a JSON number a float64 holds exactly (no bools, nulls, text or huge integers)."""
    for row in rows:
        for value in row:
            kind = type(value)
            if kind is float:
                continue
            if kind is not int or not -_EXACT <= value <= _EXACT:
                return False
    return True


def _from_records(value: Any) -> pd.DataFrame:
    import pandas as pd

    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise ValueError("must be a list of objects, one per row")
    return pd.DataFrame.from_records(value)


def _from_instances(value: Any, signature: Signature | None) -> pd.DataFrame:
    """``instances`` / ``inputs``: a list of rows (objects, lists or scalars), or an object of columns."""
    import pandas as pd

    if isinstance(value, dict):
        lengths = {k: len(v) if isinstance(v, list) else None for k, v in value.items()}
        if any(n is None for n in lengths.values()):
            bad = next(k for k, n in lengths.items() if n is None)
            raise ValueError(f"column '{bad}' must be a list of values")
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns have different lengths: {lengths}")
        return pd.DataFrame(value)
    if not isinstance(value, list):
        raise ValueError("must be a list of rows or an object of columns")
    if all(isinstance(row, dict) for row in value):
        return pd.DataFrame.from_records(value)
    if all(isinstance(row, list) for row in value):
        width = {len(row) for row in value}
        if len(width) > 1:
            raise ValueError(f"rows have different lengths: {sorted(width)}")
        names = None
        if signature is not None and signature.inputs and width == {len(signature.inputs)}:
            names = [c.name for c in signature.inputs]
        return pd.DataFrame(value, columns=names)
    if all(not isinstance(row, (list, dict)) for row in value):
        names = [signature.inputs[0].name] if signature is not None and len(signature.inputs) == 1 else None
        return pd.DataFrame({names[0] if names else 0: value})
    raise ValueError("mixes rows of different kinds (objects, lists, values)")


# -- encoding ----------------------------------------------------------------------------------


def _datatype_of(array: np.ndarray) -> str:
    kind = array.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return "INT64"
    if kind == "f":
        return "FP64"
    return "BYTES"


def _plain(array: np.ndarray) -> list[Any]:
    """JSON-able values (NaN as null: JSON has no NaN)."""
    values = array.tolist()
    if array.dtype.kind == "f":
        return [None if isinstance(v, float) and math.isnan(v) else v for v in _flatten(values, "output")]
    if array.dtype.kind not in "biuf":
        return [str(v) for v in _flatten(values, "output")]
    return _flatten(values, "output")


def encode_oip(
    model: str,
    version: int,
    labels: np.ndarray,
    proba: np.ndarray | None,
    *,
    request_id: str | None = None,
    outputs: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An OIP v2 infer response: ``predict`` (one value a row) and, when the model gives them,
    ``predict_proba`` ([N, classes])."""
    available: dict[str, np.ndarray] = {"predict": labels}
    if proba is not None:
        available["predict_proba"] = proba
    unknown = [o for o in outputs if o not in available]
    if unknown:
        raise ProtocolError(f"output '{unknown[0]}' is not one this model gives ({', '.join(available)})", 400)
    chosen = outputs or tuple(available)
    response: dict[str, Any] = {
        "model_name": model,
        "model_version": str(version),
        "outputs": [
            {
                "name": name,
                "shape": list(available[name].shape),
                "datatype": _datatype_of(available[name]),
                "data": _plain(available[name]),
            }
            for name in chosen
        ],
    }
    if request_id is not None:
        response["id"] = request_id
    return response


def encode_mlflow(labels: np.ndarray) -> dict[str, Any]:
    """MLflow's scoring response: ``{"predictions": [...]}``."""
    return {"predictions": _plain(labels)}
