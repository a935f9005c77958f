"""Remotes, one suite for every backend: a folder, and S3 (moto over real HTTP).

Each test runs once per backend through the ``remote`` fixture (tests/remote_fixtures.py):
conveyor is configured with ``conveyor remote add``, and what it stored is then inspected
directly on the remote (every loose object hashes to its name, every pack index is right).
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap

import pytest
from blake3 import blake3

from conftest import CONVEYOR_BIN, Project, Result
from remote_fixtures import (  # noqa: F401 (fixtures)
    KiB,
    MiB,
    Remote,
    assert_cache_sound,
    cache_digests,
    clone,
    files_under,
    fixture_aws_env,
    fixture_remote,
    fixture_s3_server,
    make_dataset,
    manifest_hashes,
    no_traceback,
    pointer_hash,
    remove_data,
    the_error_line,
)

PIPELINE = """
stages:
  shout:
    cmd: echo shout >> calls.log && mkdir loud && tr a-z A-Z < words.txt > loud/words.txt && cp words.txt loud/c.txt
    deps: [words.txt]
    outs: [loud]
  train:
    cmd: echo train >> calls.log && cat loud/words.txt > model.txt && grep lr params.yaml >> model.txt
    deps: [loud]
    params: [train.lr]
    outs: [model.txt]
"""


# -- helpers ---------------------------------------------------------------------------------------


def ok(project: Project, *args: str) -> str:
    """Run conveyor in-process; it must succeed without a traceback."""
    result = project.cvy(*args)
    no_traceback(result)
    assert result.code == 0, f"conveyor {' '.join(args)} failed ({result.code}): {result.err}"
    return result.out


def moved(out: str, verb: str) -> int:
    """The object count of a ``pushed N objects`` / ``fetched N objects`` summary line; 0 when up to date."""
    match = re.search(rf"\b{verb} (\d+) objects?\b", out)
    if match:
        return int(match.group(1))
    assert "up to date" in out.lower(), f"neither '{verb} N objects' nor 'up to date' in: {out!r}"
    return 0


def transfers(out: str) -> int:
    match = re.search(r"\bin (\d+) transfers?\b", out)
    assert match, f"no 'in N transfers' in: {out!r}"
    return int(match.group(1))


def track(project: Project, remote: Remote, *, small: int = 200, big: int = 3 * MiB) -> dict[str, bytes]:
    """The dataset added and committed, the remote configured as ``origin`` (the default)."""
    remote.configure(project)
    written = make_dataset(project, small=small, big=big)
    ok(project, "add", "data", *(["big.bin"] if big else []))
    project.commit("data v1")
    return written


def write_pipeline(project: Project, lr: float = 0.1) -> None:
    project.write("conveyor.yaml", textwrap.dedent(PIPELINE).lstrip("\n"))
    project.write("words.txt", "alpha beta\ngamma\n")
    project.write("params.yaml", f"train:\n  lr: {lr}\n")
    ignore = project.root / ".gitignore"
    ignore.write_text((ignore.read_text() if ignore.exists() else "") + "/calls.log\n")


def calls(project: Project) -> list[str]:
    """The stages whose command ran since the last call (they append to calls.log, not an output)."""
    log = project.root / "calls.log"
    if not log.exists():
        return []
    names = log.read_text().split()
    log.unlink()
    return names


def assert_git_clean(project: Project) -> None:
    """Nothing conveyor wrote for a remote (index caches, ...) shows up for git to commit."""
    status = project.git("status", "--porcelain", "--untracked-files=all")
    assert status == "", f"git sees new or changed files: {status}"


def status_lines(project: Project, *args: str) -> list[str]:
    out = ok(project, "status", "--remote", *args)
    return out.splitlines()


# -- round trips -----------------------------------------------------------------------------------


def test_a_folder_of_small_files_and_a_big_file_make_the_round_trip(project: Project, remote: Remote) -> None:
    written = track(project, remote)
    big = pointer_hash(project, "big.bin")
    local = cache_digests(project)
    assert len(local) == 202  # 200 files, the folder's manifest, big.bin

    out = ok(project, "push", "-j", "3")
    assert moved(out, "pushed") == 202
    assert transfers(out) <= 8, f"200 small files should travel in a few packs: {out}"
    remote.assert_sound()
    assert remote.hashes() == local
    assert big in remote.loose(), "a 3 MiB object travels as it is, not in a pack"
    assert_git_clean(project)

    keys_before = remote.keys()
    again = ok(project, "push")
    assert moved(again, "pushed") == 0, again
    assert remote.keys() == keys_before
    report = json.loads(ok(project, "push", "--json"))
    assert (report["objects"], report["present"], report["missing"]) == (0, 202, [])

    remove_data(project, "data", "big.bin")
    out = ok(project, "pull")
    assert moved(out, "fetched") == 202
    assert files_under(project.root, "data", "big.bin") == written
    assert cache_digests(project) == local
    ok(project, "verify")
    assert ok(project, "status", "-q") == ""
    assert moved(ok(project, "fetch"), "fetched") == 0
    assert remote.keys() == keys_before, "fetching changed the remote"


def test_a_fresh_clone_pulls_the_data_and_the_pipeline_outputs(project: Project, remote: Remote) -> None:
    written = track(project, remote, small=30, big=600 * KiB)
    write_pipeline(project)
    ok(project, "run")
    assert calls(project) == ["shout", "train"]
    outputs = files_under(project.root, "loud", "model.txt")
    project.commit("pipeline")
    out = ok(project, "push")
    assert moved(out, "pushed") == 32 + 4  # data: 30 files, manifest, big.bin; outputs: 2 files, manifest, model
    assert_git_clean(project)

    other = clone(project)  # no 'conveyor init': the committed .conveyor/config names the remote
    assert not (other.root / "big.bin").exists()
    out = ok(other, "pull")
    assert moved(out, "fetched") == 36
    assert files_under(other.root, "data", "big.bin") == written
    assert files_under(other.root, "loud", "model.txt") == outputs
    ok(other, "verify")
    assert other.cvy("status", "-q").code == 0
    assert "up to date" in ok(other, "run").lower()
    assert calls(other) == []
    assert_git_clean(other)


def test_named_targets_move_only_their_objects(project: Project, remote: Remote) -> None:
    track(project, remote, small=20, big=400 * KiB)
    project.write("notes.txt", "kept here\n")
    ok(project, "add", "notes.txt")
    write_pipeline(project)
    ok(project, "run")
    calls(project)
    project.commit("more")
    big, notes, data = (pointer_hash(project, p) for p in ("big.bin", "notes.txt", "data"))
    data_objects = {data} | manifest_hashes(project, data)

    assert moved(ok(project, "push", "big.bin"), "pushed") == 1
    assert remote.hashes() == {big}
    assert moved(ok(project, "push", "data"), "pushed") == 21
    assert remote.hashes() == {big} | data_objects
    assert moved(ok(project, "push", "shout"), "pushed") == 3  # a stage's outputs: loud/ (2 files + manifest)
    assert notes not in remote.hashes()
    remote.assert_sound()
    assert moved(ok(project, "push", "model.txt"), "pushed") == 1  # an output, by path

    other = clone(project)
    ok(other, "fetch", "big.bin")
    assert cache_digests(other) == {big}
    ok(other, "pull", "data")
    assert (other.root / "data").is_dir() and not (other.root / "big.bin").exists()
    assert files_under(other.root, "data") == files_under(project.root, "data")
    assert not (other.root / "notes.txt").exists()


def test_all_commits_sends_and_brings_the_older_versions(project: Project, remote: Remote) -> None:
    written = track(project, remote, small=10, big=300 * KiB)
    v1 = pointer_hash(project, "big.bin")
    project.write("big.bin", b"version two" * 40_000)
    ok(project, "add", "big.bin")
    project.commit("data v2")
    v2 = pointer_hash(project, "big.bin")

    ok(project, "push")
    assert v2 in remote.hashes() and v1 not in remote.hashes()
    assert moved(ok(project, "push", "-a"), "pushed") == 1
    assert v1 in remote.hashes()
    assert moved(ok(project, "push", "--all-commits"), "pushed") == 0

    other = clone(project)
    ok(other, "fetch", "-a")
    assert {v1, v2} <= cache_digests(other)
    other.git("checkout", "-q", "HEAD~1")
    ok(other, "checkout")
    assert (other.root / "big.bin").read_bytes() == written["big.bin"]

    third = clone(project, "third")
    third.git("checkout", "-q", "HEAD~1")
    ok(third, "pull")
    assert files_under(third.root, "data", "big.bin") == written


def test_the_run_cache_travels_and_run_pull_restores_a_stage_instead_of_running_it(
    project: Project, remote: Remote
) -> None:
    remote.configure(project)
    write_pipeline(project, lr=0.1)
    ok(project, "run")
    model_01 = (project.root / "model.txt").read_bytes()
    project.write("params.yaml", "train:\n  lr: 0.2\n")
    ok(project, "run")
    assert calls(project) == ["shout", "train", "train"]
    project.commit("pipeline at lr 0.2")

    out = ok(project, "push", "--run-cache")
    assert "run-cache entr" in out, out
    assert remote.run_entries(), "no run-cache bundle on the remote"
    remote.assert_sound()
    again = ok(project, "push", "--run-cache")
    assert moved(again, "pushed") == 0 and "run-cache entr" not in again, again

    # a fresh clone going back to lr 0.1: that result exists only in the run cache
    other = clone(project)
    other.write("params.yaml", "train:\n  lr: 0.1\n")
    out = ok(other, "run", "--pull")
    assert "restored" in out.lower(), out
    assert calls(other) == [], "a stage ran although the run cache had its result"
    assert (other.root / "model.txt").read_bytes() == model_01

    # pull --run-cache, then a plain run restores from the run cache too
    third = clone(project, "third")
    ok(third, "pull", "--run-cache")
    third.write("params.yaml", "train:\n  lr: 0.1\n")
    out = ok(third, "run")
    assert "restored" in out.lower() and calls(third) == [], out
    assert (third.root / "model.txt").read_bytes() == model_01


def test_run_pull_in_a_fresh_clone_runs_nothing_that_was_computed(project: Project, remote: Remote) -> None:
    remote.configure(project)
    write_pipeline(project)
    ok(project, "run")
    calls(project)
    outputs = files_under(project.root, "loud", "model.txt")
    project.commit("pipeline")
    ok(project, "push", "--run-cache")

    other = clone(project)
    ok(other, "run", "--pull")
    assert calls(other) == []
    assert files_under(other.root, "loud", "model.txt") == outputs
    assert other.cvy("status", "-q").code == 0


@pytest.mark.parametrize("remote", ["local"], indirect=True)
@pytest.mark.parametrize("command", ["push", "fetch", "pull", "status --remote"])
def test_an_untracked_target_is_refused_by_name(project: Project, remote: Remote, command: str) -> None:
    track(project, remote, small=3, big=0)
    ok(project, "push")
    keys = remote.keys()
    project.write("loose.txt", "not tracked\n")
    for target in ("loose.txt", "no-such-file"):
        result = project.cvy(*command.split(), target)
        assert result.code == 2, result
        assert target in the_error_line(result)
    assert remote.keys() == keys


def test_the_python_api_pushes_and_fetches(project: Project, remote: Remote) -> None:
    from conveyor import remote as api
    from conveyor.workspace import Workspace

    written = track(project, remote, small=10, big=300 * KiB)
    pushed = api.push(workspace=Workspace(project.root))
    assert (pushed.direction, pushed.remote, pushed.objects, pushed.missing) == ("push", "origin", 12, [])
    assert api.push(workspace=Workspace(project.root)).objects == 0
    assert [r.name for r in api.remote_list(workspace=Workspace(project.root))] == ["origin"]
    status = api.remote_status(workspace=Workspace(project.root))
    assert status.clean and status.remote_objects == 12

    other = clone(project)
    fetched = api.fetch(["big.bin"], workspace=Workspace(other.root))
    assert (fetched.direction, fetched.objects) == ("fetch", 1)
    pulled = api.pull(workspace=Workspace(other.root))
    assert pulled.objects == 11 and pulled.checkout is not None
    assert files_under(other.root, "data", "big.bin") == written


# -- status --remote ---------------------------------------------------------------------------------


def test_status_remote_says_what_is_not_pushed_and_not_fetched(project: Project, remote: Remote) -> None:
    track(project, remote, small=10, big=300 * KiB)
    lines = status_lines(project)
    assert any("not pushed" in line and "data" in line for line in lines), lines
    assert any("not pushed" in line and "big.bin" in line for line in lines), lines
    report = json.loads(ok(project, "status", "--remote", "--json"))
    assert report["remote"] == "origin"
    assert {(e["path"], e["state"]) for e in report["entries"]} == {("data", "not pushed"), ("big.bin", "not pushed")}

    ok(project, "push", "big.bin")
    lines = status_lines(project)
    assert not any("big.bin" in line for line in lines), lines
    assert any("not pushed" in line and "data" in line for line in lines), lines

    ok(project, "push")
    lines = status_lines(project)
    assert not any("not pushed" in line for line in lines), lines
    assert json.loads(ok(project, "status", "--remote", "--json"))["entries"] == []

    other = clone(project)
    lines = status_lines(other)
    assert any("not fetched" in line and "data" in line for line in lines), lines
    assert any("not fetched" in line and "big.bin" in line for line in lines), lines
    assert other.cvy("status", "--remote", "-q").code == 1
    ok(other, "fetch")
    assert not any("not fetched" in line for line in status_lines(other))
    assert other.cvy("status", "--remote", "-q").code == 0


# -- gc --remote -------------------------------------------------------------------------------------


def test_gc_remote_asks_first_and_deletes_only_what_nothing_refers_to(project: Project, remote: Remote) -> None:
    track(project, remote, small=20, big=300 * KiB)
    v1 = pointer_hash(project, "big.bin")
    ok(project, "push")
    project.write("big.bin", b"second version" * 30_000)
    project.write("data/part0/rec0000.bin", b"changed")
    ok(project, "add", "big.bin", "data")
    project.commit("data v2")
    ok(project, "push")
    keys = remote.keys()
    assert v1 in remote.hashes()

    out = ok(project, "gc", "--remote", "--dry-run")
    assert re.search(r"\b[1-9]\d* objects?\b", out), out
    assert remote.keys() == keys

    refused = project.cvy("gc", "--remote")
    assert refused.code != 0
    assert "--yes" in the_error_line(refused)
    assert remote.keys() == keys
    real = subprocess.run(
        [CONVEYOR_BIN, "gc", "--remote"], cwd=project.root, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    assert real.returncode != 0 and "--yes" in the_error_line(Result(real.returncode, real.stdout, real.stderr))
    assert remote.keys() == keys

    ok(project, "gc", "--remote", "--all-commits", "--yes")
    assert v1 in remote.hashes(), "gc -a deleted an object an older commit refers to"

    ok(project, "gc", "--remote", "--yes")
    assert v1 not in remote.hashes()
    remote.assert_sound()
    # what the workspace refers to is all still there: a fresh clone pulls it
    data = pointer_hash(project, "data")
    v2_objects = {pointer_hash(project, "big.bin"), data} | manifest_hashes(project, data)
    assert v2_objects <= remote.hashes()
    other = clone(project)
    ok(other, "pull")
    assert files_under(other.root, "data", "big.bin") == files_under(project.root, "data", "big.bin")
    assert "nothing to remove" in ok(project, "gc", "--remote", "--yes")


# -- configuring remotes -----------------------------------------------------------------------------


def test_remote_add_list_modify_remove(project: Project, remote: Remote) -> None:
    out = ok(project, "remote", "add", "origin", remote.url, "--default")
    assert "origin" in out
    remote.configure_endpoint(project)
    backup = remote.sibling("backup")
    ok(project, "remote", "add", "backup", backup.url)
    listing = ok(project, "remote", "list").splitlines()
    assert any("origin" in line and remote.url in line and "*" in line for line in listing), listing
    assert any("backup" in line and backup.url in line and "*" not in line for line in listing), listing
    shown = {r["name"]: r for r in json.loads(ok(project, "remote", "list", "--json"))}
    assert shown["origin"]["default"] is True and shown["backup"]["default"] is False
    assert shown["origin"]["url"] == remote.url

    duplicate = project.cvy("remote", "add", "origin", backup.url)
    assert duplicate.code == 2 and "origin" in the_error_line(duplicate)

    ok(project, "remote", "modify", "backup", "region", "eu-west-3")
    assert "eu-west-3" in (project.root / ".conveyor" / "config").read_text()
    ok(project, "remote", "modify", "backup", "region", "--unset")
    assert "eu-west-3" not in (project.root / ".conveyor" / "config").read_text()
    unknown = project.cvy("remote", "modify", "backup", "colour", "red")
    assert unknown.code == 2 and "colour" in the_error_line(unknown)

    # a second remote works on its own, by name
    make_dataset(project, small=3, big=0)
    ok(project, "add", "data")
    backup.configure_endpoint(project, "backup")
    ok(project, "push", "-r", "backup")
    assert backup.hashes() == cache_digests(project)
    assert remote.hashes() == set()

    ok(project, "remote", "remove", "backup")
    assert "backup" not in ok(project, "remote", "list")
    assert "backup" not in (project.root / ".conveyor" / "config").read_text()
    gone = project.cvy("push", "-r", "backup")
    assert gone.code == 2 and "backup" in the_error_line(gone)


def test_secrets_go_only_to_config_local(project: Project, remote: Remote) -> None:
    remote.configure(project)
    config = project.root / ".conveyor" / "config"
    local = project.root / ".conveyor" / "config.local"
    for option in ("secret_access_key", "access_key_id"):
        refused = project.cvy("remote", "modify", "origin", option, "hunter2-secret")
        assert refused.code == 2, refused
        assert "--local" in the_error_line(refused)
        assert "hunter2" not in config.read_text()
    ok(project, "remote", "modify", "origin", "secret_access_key", "hunter2-secret", "--local")
    assert "hunter2-secret" in local.read_text()
    assert "hunter2" not in config.read_text()
    assert "hunter2" not in ok(project, "remote", "list"), "remote list shows a secret"
    assert "hunter2" not in ok(project, "remote", "list", "--json")
    project.git("check-ignore", "-q", ".conveyor/config.local")  # git never sees it
    assert_git_clean(project)
    # the remote still works: for S3 the key in config.local is the one moto accepts
    if remote.kind == "s3":
        from remote_fixtures import ACCESS_KEY_ID, SECRET_ACCESS_KEY

        ok(project, "remote", "modify", "origin", "access_key_id", ACCESS_KEY_ID, "--local")
        ok(project, "remote", "modify", "origin", "secret_access_key", SECRET_ACCESS_KEY, "--local")
    make_dataset(project, small=3, big=0)
    ok(project, "add", "data")
    ok(project, "push")
    assert remote.hashes() == cache_digests(project)


# -- pull and the workspace --------------------------------------------------------------------------


def test_pull_keeps_local_changes_unless_forced(project: Project, remote: Remote) -> None:
    written = track(project, remote, small=5, big=0)
    ok(project, "push")
    remove_data(project, "data")
    make_dataset(project, small=5, big=0)
    edited = project.write("data/part0/rec0000.bin", b"my unsaved work")

    refused = project.cvy("pull")
    assert refused.code == 1, refused
    assert "data/part0/rec0000.bin" in the_error_line(refused)
    assert edited.read_bytes() == b"my unsaved work"
    assert_cache_sound(project)

    ok(project, "pull", "--force")
    assert files_under(project.root, "data") == written


# -- the run cache and gc, across clones --------------------------------------------------------------


def run_cache_entries(project: Project) -> list[str]:
    return sorted(p.name for p in (project.root / ".conveyor" / "cache" / "runs").glob("*/*.json"))


def test_the_run_cache_comes_back_after_the_local_cache_is_lost(project: Project, remote: Remote) -> None:
    remote.configure(project)
    write_pipeline(project)
    ok(project, "run")
    project.commit("pipeline")
    ok(project, "push", "--run-cache")
    expected = run_cache_entries(project)
    assert expected

    other = clone(project)
    ok(other, "pull", "--run-cache")
    assert run_cache_entries(other) == expected
    remove_data(other, "loud", "model.txt")  # the whole local cache, run cache included
    ok(other, "pull", "--run-cache")
    assert run_cache_entries(other) == expected, "fetch --run-cache skipped bundles it had fetched before"


def test_gc_remote_in_a_fresh_clone_keeps_what_the_remote_run_cache_needs(project: Project, remote: Remote) -> None:
    remote.configure(project)
    write_pipeline(project, lr=0.1)
    ok(project, "run")
    model_01 = (project.root / "model.txt").read_bytes()
    project.write("params.yaml", "train:\n  lr: 0.2\n")
    ok(project, "run")
    project.commit("pipeline at lr 0.2")
    ok(project, "push", "--run-cache")
    model_01_hash = blake3(model_01).hexdigest()
    assert model_01_hash in remote.hashes()

    janitor = clone(project)  # has fetched nothing: no manifests, no run cache
    ok(janitor, "gc", "--remote", "--yes")
    assert model_01_hash in remote.hashes(), "gc --remote deleted an output the remote's run cache names"
    remote.assert_sound()

    user = clone(project, "user")
    ok(user, "pull")
    assert files_under(user.root, "loud", "model.txt") == files_under(project.root, "loud", "model.txt")
    user.write("params.yaml", "train:\n  lr: 0.1\n")
    out = ok(user, "run", "--pull")
    assert "restored" in out.lower() and calls(user) == [], out
    assert (user.root / "model.txt").read_bytes() == model_01


# -- where a remote is -----------------------------------------------------------------------------------


@pytest.mark.parametrize("remote", ["local"], indirect=True)
@pytest.mark.parametrize("form", ["relative", "file-url"])
def test_a_folder_remote_as_a_relative_path_or_a_file_url(project: Project, remote: Remote, form: str) -> None:
    """A relative folder is relative to the workspace root (wherever conveyor runs from)."""
    store = project.root.parent / "store"
    url = "../store" if form == "relative" else f"file://{store}"
    ok(project, "remote", "add", "origin", url, "--default")
    files = make_dataset(project, small=5, big=0)
    ok(project, "add", "data")
    project.commit("data")
    assert moved(ok(project, "-C", "data", "push"), "pushed") == 6
    seen = Remote("local", str(store), remote.fs, str(store))
    assert seen.hashes() == cache_digests(project)
    seen.assert_sound()
    remove_data(project, "data")
    (project.root / "elsewhere").mkdir()
    ok(project, "-C", "elsewhere", "pull")
    assert files_under(project.root, "data") == files


@pytest.mark.parametrize("remote", ["s3"], indirect=True)
def test_a_whole_bucket_as_the_remote(project: Project, remote: Remote) -> None:
    whole = Remote("s3", f"s3://{remote.bucket}", remote.fs, str(remote.bucket), remote.endpoint, remote.bucket)
    written = track(project, whole, small=5, big=300 * KiB)
    assert moved(ok(project, "push"), "pushed") == 7
    assert whole.hashes() == cache_digests(project)
    whole.assert_sound()
    remove_data(project, "data", "big.bin")
    ok(project, "pull")
    assert files_under(project.root, "data", "big.bin") == written


OLD_CONVEYOR_GITIGNORE = """\
# Written by conveyor init: local state that never belongs in git.
/cache/
/tmp/
/state.db
/state.db-*
/state.db.trees/
/lock
/config.local
/logs/
/parsed/
/runs.db
/runs.db-*
"""


def test_a_workspace_made_before_remotes_keeps_their_state_out_of_git(project: Project, remote: Remote) -> None:
    """``.conveyor/.gitignore`` as conveyor 0.1.0's ``init`` wrote it: nothing about remotes."""
    (project.root / ".conveyor" / ".gitignore").write_text(OLD_CONVEYOR_GITIGNORE)
    project.git("add", ".conveyor/.gitignore")
    project.git("commit", "-q", "--allow-empty", "-m", "a workspace from conveyor 0.1.0")
    track(project, remote, small=5, big=0)
    ok(project, "push")
    ok(project, "status", "--remote")
    assert_git_clean(project)
