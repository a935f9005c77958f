"""Remotes when things go wrong: bad names and URLs, a missing bucket, an unreachable server,
objects damaged or tampered with on the remote, hostile run-cache bundles, and a push that dies
half-way (SIGKILL, or the S3 server going away mid-transfer).

Every failure must be one ``error:`` line with an exit code that says what kind of failure it
was, never a traceback; nothing partial may be left under a final name on the remote, and
nothing corrupt may enter the local cache.
"""

from __future__ import annotations

import gc
import json
import os
import random
import signal
import subprocess
import time
import warnings
from pathlib import Path

import pytest
from blake3 import blake3

from conftest import CONVEYOR_BIN, Project, Result
from remote_fixtures import (  # noqa: F401 (fixtures)
    KiB,
    Remote,
    S3Server,
    assert_cache_sound,
    cache_digests,
    clone,
    files_under,
    fixture_aws_env,
    fixture_flaky_s3_server,
    fixture_remote,
    fixture_s3_server,
    free_port,
    make_dataset,
    manifest_hashes,
    no_traceback,
    pointer_hash,
    s3_remote_on,
    the_error_line,
)

FAST_FAIL = {"AWS_MAX_ATTEMPTS": "1"}  # botocore gives up on the first connection error

local_only = pytest.mark.parametrize("remote", ["local"], indirect=True)
s3_only = pytest.mark.parametrize("remote", ["s3"], indirect=True)


def ok(project: Project, *args: str) -> str:
    result = project.cvy(*args)
    no_traceback(result)
    assert result.code == 0, f"conveyor {' '.join(args)} failed ({result.code}): {result.err}"
    return result.out


def pushed_project(project: Project, remote: Remote, *, small: int = 30, big: int = 400 * KiB) -> dict[str, bytes]:
    """Data tracked, committed and pushed to ``origin``."""
    remote.configure(project)
    written = make_dataset(project, small=small, big=big)
    ok(project, "add", "data", "big.bin")
    project.commit("data")
    ok(project, "push")
    return written


def assert_nothing_corrupt_fetched(project: Project) -> None:
    """The local cache holds only intact objects, and ``verify`` reports none corrupt."""
    assert_cache_sound(project)
    result = project.cvy("verify", "--json")
    no_traceback(result)
    report = json.loads(result.out)
    assert report["corrupt_objects"] == [], report


# -- names and URLs ----------------------------------------------------------------------------------

UNKNOWN_NAME_COMMANDS = [
    ("push", "-r", "nope"),
    ("fetch", "-r", "nope"),
    ("pull", "-r", "nope"),
    ("status", "--remote", "-r", "nope"),
    ("gc", "--remote", "-r", "nope", "--yes"),
    ("run", "--pull", "-r", "nope"),
    ("remote", "modify", "nope", "region", "eu-west-1"),
    ("remote", "remove", "nope"),
]


@local_only
@pytest.mark.parametrize("args", UNKNOWN_NAME_COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_an_unknown_remote_name_is_refused_naming_the_known_ones(
    project: Project, remote: Remote, args: tuple[str, ...]
) -> None:
    remote.configure(project)
    project.write("conveyor.yaml", "stages:\n  s:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n")
    result = project.cvy(*args)
    assert result.code == 2, result
    line = the_error_line(result)
    assert "'nope'" in line and "origin" in line, line
    assert not (project.root / "out.txt").exists(), "run --pull ran a stage although its remote is unknown"


@local_only
def test_without_a_remote_push_says_how_to_add_one(project: Project, remote: Remote) -> None:
    for args in (("push",), ("fetch",), ("pull",), ("status", "--remote")):
        result = project.cvy(*args)
        assert result.code == 2, result
        assert "remote add" in the_error_line(result)


@local_only
def test_two_remotes_and_no_default_need_a_name(project: Project, remote: Remote) -> None:
    ok(project, "remote", "add", "one", remote.url)
    ok(project, "remote", "add", "two", remote.sibling("two").url)
    result = project.cvy("push")
    assert result.code == 2
    line = the_error_line(result)
    assert "one" in line and "two" in line and "-r" in line, line


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "foo://x", "", "gs://"])
def test_a_malformed_url_is_refused_when_added(project: Project, url: str) -> None:
    config = (project.root / ".conveyor" / "config").read_text()
    result = project.cvy("remote", "add", "bad", url)
    assert result.code == 2, result
    the_error_line(result)
    assert (project.root / ".conveyor" / "config").read_text() == config
    assert "bad" not in ok(project, "remote", "list")


@local_only
def test_a_malformed_url_is_refused_by_modify_and_a_bad_name_by_add(project: Project, remote: Remote) -> None:
    remote.configure(project)
    result = project.cvy("remote", "modify", "origin", "url", "s3://")
    assert result.code == 2
    the_error_line(result)
    assert remote.url in ok(project, "remote", "list")
    for name in ("bad name", "../x", "-x"):
        refused = project.cvy("remote", "add", name, remote.url)
        assert refused.code == 2, (name, refused)
    make_dataset(project, small=2, big=0)
    ok(project, "add", "data")
    ok(project, "push")  # the folder exists from now on
    for command in ("push", "fetch", "pull"):
        refused = project.cvy(command, "-j", "0")
        assert refused.code == 2, refused
        the_error_line(refused)


# -- the far side is not there -------------------------------------------------------------------------


@s3_only
@pytest.mark.parametrize(
    "command",
    [("push",), ("fetch",), ("pull",), ("status", "--remote")],
    ids=lambda c: "-".join(c),
)
def test_a_missing_bucket_fails_in_one_line_naming_it(
    project: Project, remote: Remote, command: tuple[str, ...]
) -> None:
    make_dataset(project, small=3, big=300 * KiB)
    ok(project, "add", "data", "big.bin")
    project.commit("data")
    bucket = "no-such-bucket-" + os.urandom(4).hex()
    ok(project, "remote", "add", "origin", f"s3://{bucket}/prefix", "--default")
    remote.configure_endpoint(project)
    if command[0] != "push":  # a clone that has nothing yet: everything is to be fetched
        project.commit("remote")
        project = clone(project)
    result = project.cvy(*command)
    assert result.code in (2, 74), result
    line = the_error_line(result)
    assert bucket in line and "origin" in line, line


@local_only
def test_a_local_remote_that_cannot_be_a_folder_fails_in_one_line(project: Project, remote: Remote) -> None:
    blocker = project.root.parent / "a-file"
    blocker.write_text("not a folder\n")
    ok(project, "remote", "add", "origin", str(blocker / "store"), "--default")
    make_dataset(project, small=3, big=300 * KiB)
    ok(project, "add", "data", "big.bin")
    result = project.run("push")  # a subprocess: see the test below for what it leaks in-process
    assert result.code == 74, result
    line = the_error_line(result)
    assert "origin" in line, line


@local_only
def test_a_failed_push_closes_and_removes_its_temp_files(project: Project, remote: Remote) -> None:
    blocker = project.root.parent / "a-file"
    blocker.write_text("not a folder\n")
    ok(project, "remote", "add", "origin", str(blocker / "store"), "--default")
    make_dataset(project, small=3, big=300 * KiB)
    ok(project, "add", "data", "big.bin")
    leaks: list[str] = []
    for _trial in range(5):  # the leak depends on thread timing: a few tries make it show
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = project.cvy("push")
            gc.collect()
        assert result.code == 74, result
        leaks += [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        leftovers = list((project.root / ".conveyor" / "tmp").glob("*pack*"))
        assert not leftovers, leftovers
    assert not leaks, leaks


@s3_only
def test_an_unreachable_endpoint_fails_in_one_line_naming_the_remote(project: Project, remote: Remote) -> None:
    remote.configure(project)
    ok(project, "remote", "modify", "origin", "endpoint_url", f"http://127.0.0.1:{free_port()}")
    make_dataset(project, small=3, big=0)
    ok(project, "add", "data")
    # push with the client's own retries (botocore: 5 attempts, about 5-7 s on a closed port);
    # the others with one attempt, to keep the suite fast
    for command, env in ((("push",), {}), (("fetch",), FAST_FAIL), (("status", "--remote"), FAST_FAIL)):
        started = time.monotonic()
        result = project.run(*command, env=env)
        elapsed = time.monotonic() - started
        assert result.code == 74, result
        line = the_error_line(result)
        assert "'origin'" in line, line
        assert elapsed < 30, f"{command}: {elapsed:.1f} s to give up on a closed port"


# -- damaged and tampered remotes --------------------------------------------------------------------


def test_a_tampered_loose_object_is_refused_and_never_enters_the_cache(project: Project, remote: Remote) -> None:
    written = pushed_project(project, remote)
    big = pointer_hash(project, "big.bin")
    key = remote.tamper(big)
    assert key.startswith("objects/")

    other = clone(project)
    result = other.cvy("pull")
    assert result.code == 65, result
    line = the_error_line(result)
    assert big in line and "origin" in line, line
    assert big not in cache_digests(other)
    assert not (other.root / "big.bin").exists()
    assert_nothing_corrupt_fetched(other)
    # the rest of the data is not hostage to the one damaged object
    assert other.cvy("pull", "data").code == 0
    assert files_under(other.root, "data") == {k: v for k, v in written.items() if k.startswith("data/")}


def test_a_tampered_packed_object_is_refused_and_never_enters_the_cache(project: Project, remote: Remote) -> None:
    pushed_project(project, remote)
    data = pointer_hash(project, "data")
    victim = sorted(manifest_hashes(project, data))[3]
    key = remote.tamper(victim)
    assert key.startswith("packs/") and key.endswith(".pack"), key

    other = clone(project)
    result = other.cvy("fetch")
    assert result.code == 65, result
    line = the_error_line(result)
    assert victim in line and "origin" in line, line
    assert victim not in cache_digests(other)
    assert_nothing_corrupt_fetched(other)


def test_a_damaged_pack_index_is_refused(project: Project, remote: Remote) -> None:
    pushed_project(project, remote)
    (idx,) = [k for k in remote.keys("packs") if k.endswith(".idx")]
    remote.write(idx, b"garbage\n")
    other = clone(project)
    result = other.cvy("fetch")
    assert result.code == 65, result
    assert "origin" in the_error_line(result) or ".idx" in the_error_line(result)
    assert_nothing_corrupt_fetched(other)


def test_an_index_lying_about_an_object_is_caught_by_its_hash(project: Project, remote: Remote) -> None:
    """An index entry pointing at the wrong bytes of the pack (offsets shifted)."""
    pushed_project(project, remote)
    (idx,) = [k for k in remote.keys("packs") if k.endswith(".idx")]
    header, *lines = remote.read(idx).decode().splitlines()
    shifted = [f"{d} {int(o) + 1} {s}" for d, o, s in (line.split() for line in lines)]
    remote.write(idx, ("\n".join([header, *shifted]) + "\n").encode())
    other = clone(project)
    result = other.cvy("fetch")
    assert result.code == 65, result
    the_error_line(result)
    assert_nothing_corrupt_fetched(other)


def test_an_object_missing_on_the_remote_is_named(project: Project, remote: Remote) -> None:
    pushed_project(project, remote)
    big = pointer_hash(project, "big.bin")
    remote.delete(remote.where(big)[0])
    other = clone(project)
    result = other.cvy("fetch")
    assert result.code == 66, result
    line = the_error_line(result)
    assert "origin" in line and big[:12] in line, line
    # everything else arrived
    data = pointer_hash(project, "data")
    assert {data} | manifest_hashes(project, data) <= cache_digests(other)


def test_a_tampered_run_cache_bundle_is_refused(project: Project, remote: Remote) -> None:
    remote.configure(project)
    project.write("words.txt", "abc\n")
    project.write("conveyor.yaml", "stages:\n  up:\n    cmd: tr a-z A-Z < words.txt > up.txt\n    deps: [words.txt]\n"
                  "    outs: [up.txt]\n")  # fmt: skip
    ok(project, "run")
    project.commit("pipeline")
    ok(project, "push", "--run-cache")
    (bundle,) = remote.run_entries()
    data = json.loads(remote.read(bundle))
    for entry in data["entries"].values():
        for out in entry["outs"]:
            out["hash"] = "0" * 64
    remote.write(bundle, json.dumps(data, sort_keys=True).encode())

    other = clone(project)
    result = other.cvy("fetch", "--run-cache")
    assert result.code == 65, result
    assert "origin" in the_error_line(result)
    assert not list((other.root / ".conveyor" / "cache" / "runs").glob("*/*.json"))


def test_a_hostile_run_cache_bundle_writes_nothing_outside_the_run_cache(project: Project, remote: Remote) -> None:
    """A bundle is named by its own hash, so anyone who can write the remote can make a valid one:
    its keys must be checked before they become file names."""
    remote.configure(project)
    other = clone(project)
    runs = other.root / ".conveyor" / "cache" / "runs"
    # cache/runs/<key[:2]>/<key[2:]>.json: climb out of the workspace, into its parent folder
    climb = "x/../../../../../escaped-"
    key = ".." + climb + "a" * (62 - len(climb))
    assert len(key) == 64
    target = Path(os.path.normpath(runs / key[:2] / f"{key[2:]}.json"))
    assert not target.is_relative_to(other.root)
    entry = {"schema": 1, "outs": []}
    payload = json.dumps({"schema": 1, "entries": {key: entry}}, sort_keys=True).encode()
    remote.write(f"runs/{blake3(payload).hexdigest()}.json", payload)

    result = other.cvy("fetch", "--run-cache")
    no_traceback(result)
    assert not target.exists(), f"a run-cache key from the remote wrote {target}"
    assert result.code in (0, 65), result


def test_two_pushes_at_once_leave_a_sound_remote(project: Project, remote: Remote, tmp_path: Path) -> None:
    """Two clones pushing the same objects at the same moment (no shared workspace lock)."""
    remote.configure(project)
    twin = clone(project, "twin")
    written = make_dataset(project, small=150, big=600 * KiB)
    make_dataset(twin, small=150, big=600 * KiB)  # the same seed: the same objects
    for side in (project, twin):
        ok(side, "add", "data", "big.bin")
    project.commit("data")
    procs = [
        subprocess.Popen([CONVEYOR_BIN, "push", "-j", "2"], cwd=side.root, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for side in (project, twin)
    ]  # fmt: skip
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    remote.assert_sound()
    assert cache_digests(project) <= remote.hashes()
    other = clone(project, "other")
    ok(other, "pull")
    assert files_under(other.root, "data", "big.bin") == written


# -- a push that dies half-way --------------------------------------------------------------------------


def wide_dataset(project: Project) -> dict[str, bytes]:
    """Many transfers: 8 loose objects (over the 256 KiB pack limit) and ~300 small files in packs."""
    rng = random.Random(7)
    written = make_dataset(project, small=300, big=0)
    for i in range(8):
        rel = f"big/blob{i}.bin"
        written[rel] = rng.randbytes(300 * KiB)
        project.write(rel, written[rel])
    ok(project, "add", "data", "big")
    project.commit("wide data")
    return written


def check_recovery(project: Project, remote: Remote, written: dict[str, bytes]) -> None:
    """After an interrupted push: nothing partial on the remote; a re-run completes; a clone pulls it all."""
    remote.assert_sound()
    result = project.run("push", timeout=120)
    assert result.code == 0, result
    no_traceback(result)
    remote.assert_sound()
    assert cache_digests(project) <= remote.hashes()
    other = clone(project, f"clone-{time.monotonic_ns()}")
    pulled = other.run("pull")
    assert pulled.code == 0, pulled
    assert files_under(other.root, "data", "big") == written
    verified = other.run("verify")
    assert verified.code == 0, verified


def test_a_push_killed_at_random_moments_leaves_nothing_partial(project: Project, remote: Remote) -> None:
    remote.configure(project)
    written = wide_dataset(project)
    # how long a whole push takes, measured on a twin remote of the same kind
    twin = remote.sibling("twin")
    ok(project, "remote", "add", "twin", twin.url)
    twin.configure_endpoint(project, "twin")
    started = time.monotonic()
    assert project.run("push", "-r", "twin").code == 0
    duration = time.monotonic() - started

    rng = random.Random(11)
    killed = 0
    for trial in range(4):
        delay = (trial + rng.random()) / 4 * duration
        with subprocess.Popen(
            [CONVEYOR_BIN, "push", "-j", "2"],
            cwd=project.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc:
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
        killed += proc.returncode == -signal.SIGKILL
        remote.assert_sound()
    assert killed >= 1, "no kill landed while the push was running"
    check_recovery(project, remote, written)


def flaky_remote(project: Project, server: S3Server) -> Remote:
    remote = s3_remote_on(server.endpoint)
    remote.configure(project)
    return remote


def test_the_flaky_server_dies_mid_transfer_and_comes_back(
    flaky_s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault injection itself: requests after the Nth see their connection reset, then no server."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    server = flaky_s3_server
    remote = s3_remote_on(server.endpoint)
    remote.write("k0", b"before")
    server.die_after_requests(1)
    remote.write("k1", b"x")
    with pytest.raises(Exception):  # noqa: B017 - botocore raises one of many connection errors
        remote.write("k2", b"y" * 100_000)
    assert server.died.wait(5)
    server.restart()
    assert remote.read("k0") == b"before"
    assert remote.read("k1") == b"x"


@pytest.mark.parametrize("share", [0.3, 0.7])
def test_the_s3_server_going_away_mid_push_leaves_nothing_partial(
    project: Project, flaky_s3_server: S3Server, share: float
) -> None:
    server = flaky_s3_server
    written = wide_dataset(project)
    # count the requests of a whole push to a twin bucket, then cut the real one part-way
    twin = s3_remote_on(server.endpoint)
    ok(project, "remote", "add", "twin", twin.url)
    twin.configure_endpoint(project, "twin")
    before = server.requests
    assert project.run("push", "-r", "twin").code == 0
    total = server.requests - before
    remote = flaky_remote(project, server)

    server.die_after_requests(max(1, int(total * share)))
    result = project.run("push", "-j", "2", env=FAST_FAIL)
    assert server.died.is_set(), f"the push made fewer than {int(total * share)} requests"
    assert result.code == 74, result
    line = the_error_line(result)
    assert "'origin'" in line, line

    server.restart()
    check_recovery(project, remote, written)


def test_the_s3_server_going_away_mid_fetch_leaves_the_cache_sound(project: Project, flaky_s3_server: S3Server) -> None:
    server = flaky_s3_server
    remote = flaky_remote(project, server)
    written = wide_dataset(project)
    ok(project, "push")
    other = clone(project)
    before = server.requests
    twin = clone(project, "twin")
    assert twin.run("fetch").code == 0
    total = server.requests - before

    server.die_after_requests(max(2, total // 2))
    result = other.run("pull", "-j", "2", env=FAST_FAIL)
    assert result.code == 74, result
    assert "'origin'" in the_error_line(result)
    assert_nothing_corrupt_fetched(other)

    server.restart()
    remote.assert_sound()
    again = other.run("pull")
    assert again.code == 0, again
    assert files_under(other.root, "data", "big") == written
    assert other.run("verify").code == 0


# -- what push does with what it does not have -------------------------------------------------------------


def test_push_says_which_objects_it_does_not_have(project: Project, remote: Remote) -> None:
    remote.configure(project)
    make_dataset(project, small=5, big=300 * KiB)
    ok(project, "add", "data", "big.bin")
    big = pointer_hash(project, "big.bin")
    cached = project.root / ".conveyor" / "cache" / big[:2] / big[2:]
    os.chmod(cached.parent, 0o755)
    cached.unlink()
    result: Result = project.cvy("push")
    no_traceback(result)
    assert result.code == 66, result  # the rest was pushed, but a CI job must not pass
    assert "not in the local cache" in result.err, result
    assert big not in remote.hashes()
    assert pointer_hash(project, "data") in remote.hashes()


def test_a_corrupt_local_object_never_reaches_the_remote(project: Project, remote: Remote) -> None:
    """An object damaged in the local cache (an edit through a hard link, a bad disk) must not be
    published under its name: every clone would then fetch it and fail."""
    remote.configure(project)
    make_dataset(project, small=5, big=300 * KiB)
    ok(project, "add", "data", "big.bin")
    big = pointer_hash(project, "big.bin")
    small = sorted(manifest_hashes(project, pointer_hash(project, "data")))[0]
    for digest in (big, small):
        cached = project.root / ".conveyor" / "cache" / digest[:2] / digest[2:]
        os.chmod(cached, 0o644)
        with open(cached, "r+b") as handle:
            handle.seek(10)
            handle.write(b"\x00garbage\x00")
    result = project.cvy("push")
    no_traceback(result)
    remote.assert_sound()
    assert result.code != 0, result
    assert "cache object is corrupt" in result.err, result
    assert big not in remote.hashes() and small not in remote.hashes()
    assert not remote.leftovers(), "a refused upload left a temp file on the remote"
