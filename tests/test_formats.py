"""Property tests for the formats conveyor writes: pointer files and directory manifests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.errors import CorruptFileError
from conveyor.versioning._manifest import Entry, Manifest
from conveyor.versioning._pointer import Pointer, parse

hashes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
# file names as a filesystem allows them: no NUL, no slash, not "." or ".."
names = st.text(
    alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1, max_size=40
).filter(lambda n: n not in (".", ".."))
sizes = st.integers(min_value=0, max_value=2**63 - 1)


@given(
    name=names, kind=st.sampled_from(["file", "dir"]), digest=hashes, size=sizes, files=sizes, executable=st.booleans()
)
def test_pointer_round_trips(name: str, kind: str, digest: str, size: int, files: int, executable: bool) -> None:
    executable = executable and kind == "file"
    pointer = Pointer(path=name, kind=kind, digest=digest, size=size, files=files, executable=executable)  # type: ignore[arg-type]
    text = pointer.dump()
    assert parse(text, f"{name}.cvy") == pointer
    assert pointer.dump() == text  # stable: the same pointer always writes the same bytes


@given(text=st.text(max_size=400))
def test_pointer_parser_fails_only_with_a_named_error(text: str) -> None:
    try:
        parse(text, "data.csv.cvy")
    except CorruptFileError as exc:
        assert exc.message.startswith("data.csv.cvy: ")
        assert exc.hint and "conveyor add" in exc.hint


@given(
    entries=st.dictionaries(
        keys=st.lists(names, min_size=1, max_size=3).map("/".join),
        values=st.tuples(hashes, sizes, st.sampled_from([0, 1])),
        max_size=30,
    )
)
def test_manifest_round_trips_and_is_canonical(entries: dict[str, tuple[str, int, int]]) -> None:
    manifest = Manifest.from_entries([Entry(p, d, s, x) for p, (d, s, x) in entries.items()])
    data = manifest.to_bytes()
    again = Manifest.from_bytes(data)
    assert again.entries == manifest.entries
    assert again.to_bytes() == data
    reordered = Manifest.from_entries(list(reversed(list(manifest.entries.values()))))
    assert reordered.to_bytes() == data  # order of insertion does not change the hash


@given(data=st.binary(max_size=300))
def test_manifest_parser_fails_only_with_a_named_error(data: bytes) -> None:
    try:
        Manifest.from_bytes(data, source="obj")
    except CorruptFileError as exc:
        assert exc.message.startswith("obj: not a valid directory manifest")


VALID = """\
schema: 1
path: data.csv
kind: file
hash: blake3:{h}
size: 10
files: 1
""".format(h="a" * 64)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("schema: 1", "schema: 7"), "unsupported schema 7"),
        (lambda t: t.replace("kind: file", "kind: folder"), "field 'kind' must be 'file' or 'dir'"),
        (lambda t: t.replace("blake3:" + "a" * 64, "md5:abc"), "field 'hash' must be 'blake3:'"),
        (lambda t: t.replace("size: 10", "size: -1"), "field 'size' must be a whole number"),
        (lambda t: t.replace("size: 10", "size: ten"), "field 'size' must be a whole number"),
        (lambda t: t.replace("path: data.csv", "path: other.csv"), "field 'path' must be 'data.csv'"),
        (lambda t: t + "owner: me\n", "unknown field 'owner'"),
        (lambda t: t + "executable: yes please\n", "field 'executable' must be true or false"),
        (lambda t: t.replace("kind: file", "kind: dir") + "executable: true\n", "field 'executable' is for a file"),
        (lambda t: t.replace("kind: file", "kind: [file"), "not valid YAML at line"),
        (lambda t: "- just\n- a list\n", "expected a mapping"),
    ],
)
def test_hand_edited_pointer_errors_name_the_field(edit: object, message: str) -> None:
    assert parse(VALID, "data.csv.cvy").size == 10
    with pytest.raises(CorruptFileError, match=message.replace("[", r"\[")):
        parse(edit(VALID), "data.csv.cvy")  # type: ignore[operator]


@given(
    name=names, kind=st.sampled_from(["file", "dir"]), digest=hashes, size=sizes, files=sizes, executable=st.booleans()
)
def test_the_fast_pointer_reader_agrees_with_yaml(
    name: str, kind: str, digest: str, size: int, files: int, executable: bool
) -> None:
    """Canonical pointers are read without YAML; the result must be what YAML reads."""
    import yaml

    executable = executable and kind == "file"
    pointer = Pointer(path=name, kind=kind, digest=digest, size=size, files=files, executable=executable)  # type: ignore[arg-type]
    text = pointer.dump()
    doc = yaml.safe_load(text)
    assert parse(text, f"{name}.cvy") == Pointer(
        doc["path"],
        doc["kind"],
        doc["hash"].removeprefix("blake3:"),
        doc["size"],
        doc["files"],
        doc.get("executable", False),
    )


# -- conveyor.lock: the fast emitter writes exactly what PyYAML writes ---------------------------------------

# strings biased towards the ones that decide plain or quoted: YAML's implicit types, indicators, spaces
tricky = st.sampled_from(
    [
        "yes",
        "No",
        "on",
        "OFF",
        "null",
        "~",
        "true",
        "1",
        "0x1f",
        "0o7",
        "07",
        "089",
        "1_000",
        "1:20",
        "1e5",
        "1.5",
        ".inf",
        ".NaN",
        "-.5",
        "...",
        "---x",
        "a: b",
        "a #b",
        "a#b",
        "a:",
        "a ",
        " a",
        "-a",
        "- a",
        "?x",
        ":x",
        "%x",
        "@x",
        "'x",
        '"x',
        "x'y",
        "x,y",
        "[x",
        "x]",
        "{x}",
        "a  b",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "=",
        "<<",
        "",
        "é",
        "a\tb",
        "a\nb",
        "0",
        "-0",
        "+1",
        "0b101",
        "190:20:30",
        "x" * 5000,
    ]
)
almost_plain = st.one_of(
    st.from_regex(r"[A-Za-z0-9_./][A-Za-z0-9_./: #'\",=()-]{0,16}", fullmatch=True),
    st.from_regex(r"[a-z_][a-z0-9_.]{0,10}", fullmatch=True),
)


def lock_entries(strings: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, object]]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), strings)
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(strings, inner, max_size=3)),
        max_leaves=4,
    )
    facts = st.fixed_dictionaries(
        {"path": strings, "hash": hashes, "size": sizes},
        optional={"kind": st.just("dir"), "files": sizes, "executable": st.just(True), "cache": st.just(False)},
    )
    return st.fixed_dictionaries(
        {"cmd": strings},
        optional={
            "kwargs": st.dictionaries(strings, st.one_of(scalars, scalars, values), max_size=4),
            "env": st.dictionaries(strings, strings, max_size=3),
            "wdir": strings,
            "deps": st.lists(facts, max_size=3),
            "params": st.dictionaries(strings, st.dictionaries(strings, values, max_size=3), max_size=2),
            "outs": st.lists(facts, max_size=3),
        },
    )


@settings(max_examples=300)
@given(name=st.one_of(tricky, almost_plain), data=lock_entries(st.one_of(tricky, almost_plain)))
def test_lock_entries_are_written_as_pyyaml_writes_them(name: str, data: dict[str, object]) -> None:
    from conveyor.pipeline._lock import _render, _render_by_pyyaml

    assert _render(name, data) == _render_by_pyyaml(name, data)


@settings(max_examples=300)
@given(name=almost_plain, data=lock_entries(almost_plain))
def test_plain_lock_entries_are_written_as_pyyaml_writes_them(name: str, data: dict[str, object]) -> None:
    from conveyor.pipeline._lock import _render, _render_by_pyyaml

    assert _render(name, data) == _render_by_pyyaml(name, data)
