"""The model server's wire formats: Open Inference Protocol v2 and MLflow's scoring protocol,
decoded into DataFrames and encoded back; every malformed body is a 4xx naming the field."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.registry import Signature
from conveyor.serving._protocol import (
    ProtocolError,
    decode_mlflow,
    decode_oip,
    encode_mlflow,
    encode_oip,
    parse_json,
)

FRAME = pd.DataFrame({"x": [1.5, 2.5, -3.0], "n": [1, 2, 3], "city": ["Oslo", "Rome", "Lima"]})
SIGNATURE = Signature.infer(FRAME)


def oip_tensors(frame: pd.DataFrame) -> dict[str, Any]:
    types = {"f": "FP64", "i": "INT64", "O": "BYTES", "b": "BOOL"}
    return {
        "inputs": [
            {
                "name": name,
                "shape": [len(frame)],
                "datatype": types[frame[name].dtype.kind if frame[name].dtype.kind in "fib" else "O"],
                "data": frame[name].tolist(),
            }
            for name in frame.columns
        ]
    }


def test_oip_one_tensor_per_column_becomes_the_frame() -> None:
    request = decode_oip({"id": "7", **oip_tensors(FRAME)})
    pd.testing.assert_frame_equal(request.frame, FRAME, check_dtype=False)
    assert request.id == "7" and request.outputs == ()


def test_oip_a_single_matrix_tensor_takes_its_column_names_from_the_signature() -> None:
    numeric = FRAME[["x", "n"]].astype(float)
    document = {
        "inputs": [{"name": "input-0", "shape": [3, 2], "datatype": "FP64", "data": numeric.to_numpy().tolist()}]
    }
    request = decode_oip(document, Signature.infer(numeric))
    pd.testing.assert_frame_equal(request.frame, numeric)
    with pytest.raises(ProtocolError, match="needs the model's signature") as no_signature:
        decode_oip(document)
    assert no_signature.value.status == 422
    with pytest.raises(ProtocolError, match="2 values a row, but the model takes 3"):
        decode_oip(document, SIGNATURE)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([1, 2], "must be a JSON object with 'inputs'"),
        ({"inputs": []}, "'inputs' must be a non-empty list"),
        ({"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]}, "inputs\\[0\\]: 'name' must be"),
        ({"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1.0]}]}, "shape \\[2\\] needs 2 values"),
        ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP99", "data": [1.0]}]}, "'datatype' must be one of"),
        (
            {"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1.5]}]},
            "data\\[0\\] is 1.5, not an integer",
        ),
        ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": ["a"]}]}, "not a number"),
        ({"inputs": [{"name": "x", "shape": [1], "datatype": "UINT8", "data": [-1]}]}, "negative for UINT8"),
        ({"inputs": [{"name": "x", "shape": "2", "datatype": "FP64", "data": [1]}]}, "'shape' must be a list"),
        ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64"}]}, "'data' is missing"),
        ({"inputs": [{"name": "x", "shape": [1, 1, 1], "datatype": "FP64", "data": [1]}]}, "not one value per row"),
        (
            {
                "inputs": [
                    {"name": "x", "shape": [1], "datatype": "FP64", "data": [1]},
                    {"name": "y", "shape": [2], "datatype": "FP64", "data": [1, 2]},
                ]
            },
            "2 rows, but the tensors before have 1",
        ),
        (
            {
                "inputs": [
                    {"name": "x", "shape": [1], "datatype": "FP64", "data": [1]},
                    {"name": "x", "shape": [1], "datatype": "FP64", "data": [2]},
                ]
            },
            "the column is given twice",
        ),
        ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}], "outputs": ["p"]}, "'outputs'"),
    ],
)
def test_a_malformed_oip_request_names_the_field(document: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as refused:
        decode_oip(document)
    assert 400 <= refused.value.status < 500


def test_too_many_rows_are_refused_before_any_frame_is_built() -> None:
    document = {"inputs": [{"name": "x", "shape": [10**9], "datatype": "FP64", "data": []}]}
    with pytest.raises(ProtocolError, match="more than the") as refused:
        decode_oip(document)
    assert refused.value.status == 413


@pytest.mark.parametrize(
    "document",
    [
        {"dataframe_split": {"columns": list(FRAME.columns), "data": FRAME.to_numpy().tolist()}},
        {"dataframe_records": FRAME.to_dict(orient="records")},
        {"instances": FRAME.to_dict(orient="records")},
        {"inputs": FRAME.to_dict(orient="list")},
        {"instances": FRAME.to_numpy().tolist()},  # rows as lists: names from the signature
    ],
)
def test_every_mlflow_json_layout_becomes_the_same_frame(document: dict[str, Any]) -> None:
    request = decode_mlflow(json.dumps(document).encode(), "application/json", SIGNATURE)
    pd.testing.assert_frame_equal(request.frame, FRAME, check_dtype=False)


def test_mlflow_csv_becomes_the_frame() -> None:
    request = decode_mlflow(FRAME.to_csv(index=False).encode(), "text/csv; charset=utf-8")
    pd.testing.assert_frame_equal(request.frame, FRAME)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"{", "application/json", 400, "not valid JSON: Expecting property name"),
        (b"\xff\xfe", "application/json", 400, "not UTF-8"),
        (b"[1]", "application/json", 400, "must be a JSON object"),
        (b"{}", "application/json", 400, "exactly one of dataframe_split, dataframe_records, instances, inputs"),
        (b'{"instances": [], "inputs": []}', "application/json", 400, "found instances, inputs"),
        (b'{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}', "application/json", 400, "row 0 has 2 values"),
        (b'{"dataframe_records": [1, 2]}', "application/json", 400, "list of objects"),
        (b'{"inputs": {"a": [1], "b": [1, 2]}}', "application/json", 400, "different lengths"),
        (b'{"instances": [[1], [1, 2]]}', "application/json", 400, "rows have different lengths"),
        (b'{"instances": [{"a": 1}, [1]]}', "application/json", 400, "mixes rows"),
        (b"a,b\n1,2", "application/xml", 415, "'application/xml' is not supported"),
        (b"a,a\n1,2", "text/csv", 400, "column 'a' is given twice"),
    ],
)
def test_a_malformed_mlflow_request_is_a_4xx_naming_the_problem(
    body: bytes, content_type: str, status: int, message: str
) -> None:
    with pytest.raises(ProtocolError, match=message) as refused:
        decode_mlflow(body, content_type)
    assert refused.value.status == status


def test_responses_are_plain_json_in_each_protocol() -> None:
    labels = np.array([0, 2, 1])
    proba = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]])
    response = encode_oip("iris", 3, labels, proba, request_id="7")
    assert response["model_name"] == "iris" and response["model_version"] == "3" and response["id"] == "7"
    predict, probabilities = response["outputs"]
    assert predict == {"name": "predict", "shape": [3], "datatype": "INT64", "data": [0, 2, 1]}
    assert probabilities["shape"] == [3, 3] and probabilities["data"][:3] == [0.9, 0.05, 0.05]
    assert [o["name"] for o in encode_oip("iris", 3, labels, proba, outputs=("predict",))["outputs"]] == ["predict"]
    with pytest.raises(ProtocolError, match="output 'scores' is not one this model gives"):
        encode_oip("iris", 3, labels, proba, outputs=("scores",))
    assert encode_mlflow(np.array([1.5, np.nan])) == {"predictions": [1.5, None]}  # JSON has no NaN
    assert encode_mlflow(np.array(["a", "b"], dtype=object)) == {"predictions": ["a", "b"]}
    json.dumps(response, allow_nan=False)


columns = st.lists(
    st.tuples(
        st.text(alphabet="abcdefghij_", min_size=1, max_size=8),
        st.sampled_from(["FP64", "INT64", "BOOL", "BYTES"]),
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda c: c[0],
)


@settings(max_examples=80, deadline=None)
@given(spec=columns, rows=st.integers(min_value=0, max_value=6), data=st.data())
def test_any_well_formed_oip_request_round_trips(spec: list[tuple[str, str]], rows: int, data: st.DataObject) -> None:
    values = {
        "FP64": st.floats(allow_nan=False, allow_infinity=False, width=64),
        "INT64": st.integers(min_value=-(2**63), max_value=2**63 - 1),
        "BOOL": st.booleans(),
        "BYTES": st.text(max_size=5),
    }
    tensors = []
    expected = {}
    for name, datatype in spec:
        column = data.draw(st.lists(values[datatype], min_size=rows, max_size=rows))
        nested = data.draw(st.booleans())
        tensors.append(
            {
                "name": name,
                "shape": [rows, 1] if nested else [rows],
                "datatype": datatype,
                "data": [[v] for v in column] if nested else column,
            }
        )
        expected[name] = column
    frame = decode_oip(parse_json(json.dumps({"inputs": tensors}).encode())).frame
    assert list(frame.columns) == [name for name, _ in spec] and len(frame) == rows
    for name, column in expected.items():
        assert frame[name].tolist() == column


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["application/json", "text/csv"]))
def test_no_body_whatever_it_holds_raises_anything_but_a_protocol_error(body: bytes, content_type: str) -> None:
    try:
        decode_mlflow(body, content_type)
    except ProtocolError as refused:
        assert 400 <= refused.status < 500
