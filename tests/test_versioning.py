"""Data versioning through the real CLI in real git repositories: add, status, checkout, diff, gc, verify."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from blake3 import blake3

from conftest import Project
from conveyor.versioning import _hashing


def status_json(project: Project) -> dict[str, object]:
    return json.loads(project.ok("status", "--json"))  # type: ignore[no-any-return]


def changed(project: Project) -> dict[str, dict[str, object]]:
    return {entry["path"]: entry for entry in status_json(project)["changed"]}  # type: ignore[attr-defined]


# -- add -------------------------------------------------------------------------------


def test_add_file_writes_pointer_object_and_gitignore(project: Project) -> None:
    content = b"sepal,petal\n1,2\n"
    project.write("data/iris.csv", content)
    out = project.ok("add", "data/iris.csv")
    assert "added data/iris.csv" in out
    digest = blake3(content).hexdigest()
    pointer = (project.root / "data" / "iris.csv.cvy").read_text()
    assert pointer.splitlines()[1:] == [
        "schema: 1",
        "path: iris.csv",
        "kind: file",
        f"hash: blake3:{digest}",
        f"size: {len(content)}",
        "files: 1",
    ]
    obj = project.root / ".conveyor" / "cache" / digest[:2] / digest[2:]
    assert obj.read_bytes() == content
    assert stat.S_IMODE(obj.stat().st_mode) & 0o222 == 0, "cache objects are read-only"
    assert (project.root / "data" / ".gitignore").read_text() == "/iris.csv\n"
    assert project.git("status", "--porcelain", "--untracked-files=all").split("\n")[:2] == [
        "?? data/.gitignore",
        "?? data/iris.csv.cvy",
    ]


def test_add_directory_stores_a_sorted_manifest(project: Project) -> None:
    project.write("data/b.csv", "b")
    project.write("data/a.csv", "a")
    project.write("data/sub/c.csv", "c")
    script = project.write("data/run.sh", "#!/bin/sh\n")
    script.chmod(0o755)
    project.ok("add", "data")
    text = (project.root / "data.cvy").read_text()
    assert "kind: dir" in text and "files: 4" in text
    digest = text.split("hash: blake3:")[1].split()[0]
    lines = (project.root / ".conveyor" / "cache" / digest[:2] / digest[2:]).read_text().splitlines()
    assert lines[0] == "conveyor-manifest 1"
    rows = [line.split(" ", 3) for line in lines[1:]]
    assert [row[3] for row in rows] == ["a.csv", "b.csv", "run.sh", "sub/c.csv"]
    assert [row[2] for row in rows] == ["0", "0", "1", "0"]
    assert rows[0][:2] == [blake3(b"a").hexdigest(), "1"]
    assert len(project.cache_objects()) == 5  # four files and the manifest


def test_same_content_is_stored_once(project: Project) -> None:
    project.write("x/one.bin", b"same")
    project.write("x/two.bin", b"same")
    project.write("y.bin", b"same")
    project.ok("add", "x", "y.bin")
    assert len(project.cache_objects()) == 2  # the content once, plus x's manifest


def test_readd_records_only_the_change(project: Project) -> None:
    for i in range(20):
        project.write(f"data/f{i}.txt", f"row {i}")
    project.ok("add", "data")
    before = set(project.cache_objects())
    project.write("data/f3.txt", "changed")
    out = project.ok("add", "data")
    assert "2 new objects" in out  # the changed file and the new manifest
    assert len(set(project.cache_objects()) - before) == 2


def test_large_file_streams_through(project: Project) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # bigger than the in-memory threshold
    project.write("big.bin", data)
    project.ok("add", "big.bin")
    digest = blake3(data).hexdigest()
    assert f"hash: blake3:{digest}" in (project.root / "big.bin.cvy").read_text()
    assert _hashing.hash_file(project.root / "big.bin") == (digest, len(data))
    (project.root / "big.bin").unlink()
    project.ok("checkout")
    assert (project.root / "big.bin").read_bytes() == data


def test_adding_inside_a_tracked_folder_is_refused(project: Project) -> None:
    project.write("data/a.csv", "a")
    project.ok("add", "data")
    result = project.cvy("add", "data/a.csv")
    assert result.code == 2
    assert "inside the tracked folder data" in result.err and "conveyor add data" in result.err


def test_tracking_a_folder_that_holds_tracked_paths_is_refused(project: Project) -> None:
    project.write("data/a.csv", "a")
    project.ok("add", "data/a.csv")
    result = project.cvy("add", "data")
    assert result.code == 2
    assert "a tracked path inside the folder being tracked" in result.err
    assert not (project.root / "data.cvy").exists()


def test_add_via_pointer_name_means_the_data(project: Project) -> None:
    project.write("m.pkl", b"model")
    project.ok("add", "m.pkl")
    project.write("m.pkl", b"model v2")
    project.ok("add", "m.pkl.cvy")
    assert f"blake3:{blake3(b'model v2').hexdigest()}" in (project.root / "m.pkl.cvy").read_text()


# -- status ----------------------------------------------------------------------------


def test_status_reports_modified_missing_new_and_deleted(project: Project) -> None:
    project.write("data/a.csv", "a")
    project.write("data/b.csv", "b")
    project.write("model.bin", "m")
    project.ok("add", "data", "model.bin")
    assert status_json(project) == {"tracked": 2, "changed": []}
    project.write("data/a.csv", "a2")
    (project.root / "data" / "b.csv").unlink()
    project.write("data/c.csv", "c")
    (project.root / "model.bin").unlink()
    entries = changed(project)
    assert entries["data"]["state"] == "modified"
    assert entries["data"]["modified"] == ["a.csv"]
    assert entries["data"]["deleted"] == ["b.csv"]
    assert entries["data"]["added"] == ["c.csv"]
    assert entries["model.bin"]["state"] == "missing"
    text = project.ok("status")
    assert "    new: data/c.csv" in text and "missing: model.bin" in text


def test_status_quiet_exit_code(project: Project) -> None:
    project.write("a.txt", "a")
    project.ok("add", "a.txt")
    assert project.cvy("status", "-q").code == 0
    project.write("a.txt", "b")
    result = project.cvy("status", "-q")
    assert (result.code, result.out) == (1, "")


def test_status_sees_a_change_that_keeps_size_and_mtime(project: Project) -> None:
    """A file rewritten within the same timestamp tick keeps (inode, mtime, size): the state
    database must not trust an entry recorded that close to the file's mtime."""
    path = project.write("a.txt", "aaaa")
    project.ok("add", "a.txt")
    st = path.stat()
    with open(path, "r+b") as handle:  # same inode, same size
        handle.write(b"bbbb")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_ino == st.st_ino
    assert "modified: a.txt" in project.ok("status")


def test_status_of_a_folder_sees_a_same_size_same_mtime_change(project: Project) -> None:
    for i in range(5):
        project.write(f"d/f{i}", "xxxx")
    project.ok("add", "d")
    path = project.root / "d" / "f2"
    st = path.stat()
    with open(path, "r+b") as handle:
        handle.write(b"yyyy")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert changed(project)["d"]["modified"] == ["f2"]


def test_status_trusts_old_unchanged_files_without_reading_them(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(30):
        project.write(f"d/f{i}", f"{i}")
    project.write("one.bin", "1")
    old = 1_000_000_000  # 2001: far outside the racy window
    for path in [*(project.root / "d").iterdir(), project.root / "one.bin"]:
        os.utime(path, ns=(old, old))
    project.ok("add", "d", "one.bin")
    import conveyor.versioning._repo as repo_mod

    calls: list[str] = []
    monkeypatch.setattr(repo_mod, "hash_file", lambda p: calls.append(str(p)) or ("0" * 64, 0))
    assert "in sync" in project.ok("status")
    assert calls == []
    project.write("d/f7", "changed!")
    assert changed(project)["d"]["modified"] == ["f7"]
    assert [Path(c).name for c in calls] == ["f7"]


def test_status_reports_objects_missing_from_the_cache(project: Project) -> None:
    project.write("a.txt", "a")
    project.ok("add", "a.txt")
    for obj in project.cache_objects():
        obj.unlink()
    assert changed(project)["a.txt"]["state"] == "not in cache"


def test_status_for_named_targets_only(project: Project) -> None:
    project.write("a.txt", "a")
    project.write("b.txt", "b")
    project.ok("add", "a.txt", "b.txt")
    project.write("b.txt", "bb")
    assert json.loads(project.ok("status", "--json", "a.txt"))["changed"] == []
    result = project.cvy("status", "nothing-tracked-here")
    assert result.code == 2 and "not tracked by conveyor" in result.err


# -- checkout --------------------------------------------------------------------------


def test_checkout_follows_git_history(project: Project) -> None:
    project.write("data/train.csv", "v1")
    project.write("data/test.csv", "t1")
    project.ok("add", "data")
    project.commit("data v1")
    project.write("data/train.csv", "v2")
    project.write("data/extra.csv", "e2")
    (project.root / "data" / "test.csv").unlink()
    project.ok("add", "data")
    project.commit("data v2")

    project.git("checkout", "-q", "HEAD~1")
    assert changed(project)["data"]["state"] == "modified"
    out = project.ok("checkout")
    assert "2 placed, 1 removed" in out
    assert (project.root / "data" / "train.csv").read_text() == "v1"
    assert (project.root / "data" / "test.csv").read_text() == "t1"
    assert not (project.root / "data" / "extra.csv").exists()
    assert status_json(project)["changed"] == []

    project.git("checkout", "-q", "main")
    project.ok("checkout")
    assert sorted(p.name for p in (project.root / "data").iterdir()) == ["extra.csv", "train.csv"]
    assert status_json(project)["changed"] == []


def test_checkout_refuses_to_discard_uncached_changes(project: Project) -> None:
    project.write("a.txt", "saved")
    project.ok("add", "a.txt")
    project.write("a.txt", "precious unsaved work")
    result = project.cvy("checkout")
    assert result.code == 1
    assert "would discard changes not saved in the cache: a.txt" in result.err
    assert "--force" in result.err
    assert (project.root / "a.txt").read_text() == "precious unsaved work"
    project.ok("checkout", "--force")
    assert (project.root / "a.txt").read_text() == "saved"


def test_checkout_replaces_cached_changes_without_force(project: Project) -> None:
    project.write("a.txt", "v1")
    project.ok("add", "a.txt")
    project.commit("v1")
    project.write("a.txt", "v2")
    project.ok("add", "a.txt")  # v2 is in the cache, so nothing is lost
    project.git("checkout", "-q", "--", "a.txt.cvy")
    project.ok("checkout")
    assert (project.root / "a.txt").read_text() == "v1"


def test_checkout_never_places_a_corrupt_object(project: Project) -> None:
    project.write("a.txt", "good content")
    project.ok("add", "a.txt")
    (obj,) = project.cache_objects()
    obj.chmod(0o644)
    obj.write_text("rotten bits!")
    (project.root / "a.txt").unlink()
    result = project.cvy("checkout")
    assert result.code == 65
    assert "cache object is corrupt" in result.err
    assert not (project.root / "a.txt").exists()
    assert not list((project.root / ".conveyor" / "tmp").iterdir())


def test_checkout_reports_missing_objects_and_places_the_rest(project: Project) -> None:
    project.write("d/a.txt", "a")
    project.write("d/b.txt", "b")
    project.ok("add", "d")
    digest = blake3(b"a").hexdigest()
    (project.root / ".conveyor" / "cache" / digest[:2] / digest[2:]).unlink()
    _remove_tree(project.root / "d")
    result = project.cvy("checkout")
    assert result.code == 66
    assert "1 file(s) not checked out" in result.err and "d/a.txt" in result.err
    assert (project.root / "d" / "b.txt").read_text() == "b"


@pytest.mark.parametrize("link", ["hardlink", "symlink"])
def test_link_strategies_share_the_cache_and_protect_it(project: Project, link: str) -> None:
    project.ok("config", "cache.link", link)
    project.write("d/a.txt", "a")
    project.write("m.bin", "m")
    project.ok("add", "d", "m.bin")  # add relinks the workspace to the cache
    path = project.root / "m.bin"
    digest = blake3(b"m").hexdigest()
    obj = project.root / ".conveyor" / "cache" / digest[:2] / digest[2:]
    if link == "hardlink":
        assert path.stat().st_ino == obj.stat().st_ino
        assert stat.S_IMODE(path.stat().st_mode) & 0o222 == 0  # edits in place are refused
    else:
        assert path.is_symlink() and path.resolve() == obj
    assert "in sync" in project.ok("status")
    assert project.ok("unprotect", "m.bin").strip() == "unprotected m.bin"
    assert not path.is_symlink() and path.stat().st_ino != obj.stat().st_ino
    path.write_text("edited")  # now a private copy: the cache stays intact
    assert obj.read_text() == "m"
    assert "modified: m.bin" in project.ok("status")


def test_relink_after_changing_strategy(project: Project) -> None:
    project.write("a.txt", "a")
    project.ok("add", "a.txt")
    project.ok("config", "cache.link", "hardlink")
    out = project.ok("checkout", "--relink")
    assert "1 placed" in out
    assert (project.root / "a.txt").stat().st_nlink == 2


def test_checkout_restores_an_empty_folder(project: Project) -> None:
    (project.root / "empty").mkdir()
    project.ok("add", "empty")
    (project.root / "empty").rmdir()
    project.ok("checkout")
    assert (project.root / "empty").is_dir()


def test_checkout_restores_the_executable_bit(project: Project) -> None:
    script = project.write("tools/run.sh", "#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    project.ok("add", "tools")
    _remove_tree(project.root / "tools")
    project.ok("checkout")
    assert os.access(project.root / "tools" / "run.sh", os.X_OK)


# -- diff ------------------------------------------------------------------------------


def test_diff_between_revisions_and_against_the_workspace(project: Project) -> None:
    project.write("data/a.csv", "a1")
    project.write("data/b.csv", "b1")
    project.write("model.bin", "m1")
    project.ok("add", "data", "model.bin")
    project.commit("v1")
    project.write("data/a.csv", "a2")
    (project.root / "data" / "b.csv").unlink()
    project.write("data/c.csv", "c2")
    project.ok("add", "data")
    project.commit("v2")

    result = json.loads(project.ok("diff", "HEAD~1", "HEAD", "--json"))
    changes = {(c["change"], c["path"]) for c in result["changes"]}
    assert changes == {("modified", "data/a.csv"), ("deleted", "data/b.csv"), ("added", "data/c.csv")}

    assert "No data changes" in project.ok("diff")
    project.write("model.bin", "m2")  # not added: diff still sees the workspace
    out = project.ok("diff")
    assert out.split() == ["modified", "model.bin"]


def test_diff_unknown_revision_is_a_clear_error(project: Project) -> None:
    result = project.cvy("diff", "no-such-branch")
    assert result.code == 2
    assert "unknown git revision 'no-such-branch'" in result.err


def test_diff_shows_a_folder_whole_when_its_manifest_is_gone(project: Project) -> None:
    project.write("d/a", "a")
    project.ok("add", "d")
    project.commit("v1")
    project.write("d/a", "b")
    project.ok("add", "d")
    project.commit("v2")
    project.ok("gc")  # v1's manifest is no longer referenced by the workspace
    result = project.cvy("diff", "HEAD~1", "HEAD")
    assert result.code == 0
    assert "d/" in result.out and "manifest is not in the cache" in result.err


# -- gc and verify ---------------------------------------------------------------------


def test_gc_keeps_what_is_referenced(project: Project) -> None:
    project.write("a.txt", "v1")
    project.ok("add", "a.txt")
    project.commit("v1")
    project.write("a.txt", "v2")
    project.ok("add", "a.txt")
    project.commit("v2")
    project.write("a.txt", "v3 never committed")
    project.ok("add", "a.txt")
    project.git("checkout", "-q", "--", "a.txt.cvy")  # back to v2's pointer
    assert len(project.cache_objects()) == 3

    dry = project.ok("gc", "--dry-run")
    assert "would remove 2 objects" in dry
    assert len(project.cache_objects()) == 3  # a dry run removes nothing
    assert "removed 1 object " in project.ok("gc", "--all-commits")  # only the uncommitted v3
    assert len(project.cache_objects()) == 2
    project.git("checkout", "-q", "HEAD~1")
    project.ok("checkout", "--force")
    assert (project.root / "a.txt").read_text() == "v1"
    project.git("checkout", "-q", "main")
    project.ok("checkout", "--force")
    assert "removed 1 object " in project.ok("gc")
    assert [p.read_text() for p in project.cache_objects()] == ["v2"]


def test_gc_keeps_files_of_tracked_folders(project: Project) -> None:
    project.write("d/a", "a")
    project.write("d/b", "b")
    project.ok("add", "d")
    assert "removed 0 objects" in project.ok("gc")
    _remove_tree(project.root / "d")
    project.ok("checkout")
    assert (project.root / "d" / "b").read_text() == "b"


def test_verify_finds_corrupt_objects(project: Project) -> None:
    project.write("d/a", "a")
    project.write("d/b", "b")
    project.ok("add", "d")
    report = json.loads(project.ok("verify", "--json"))
    assert report["objects_checked"] == 3 and report["corrupt_objects"] == []
    digest = blake3(b"b").hexdigest()
    obj = project.root / ".conveyor" / "cache" / digest[:2] / digest[2:]
    obj.chmod(0o644)
    obj.write_text("x")
    result = project.cvy("verify")
    assert result.code == 1
    assert f"corrupt object: {obj}" in result.out
    assert "1 corrupt cache object(s)" in result.err


def test_verify_repairs_a_lying_state_database(project: Project) -> None:
    import sqlite3

    path = project.write("a.txt", "aaaa")
    old = 1_000_000_000
    os.utime(path, ns=(old, old))
    project.ok("add", "a.txt")
    assert "in sync" in project.ok("status")
    with sqlite3.connect(project.root / ".conveyor" / "state.db") as db:  # damage it on purpose
        db.execute("UPDATE files SET digest = ? WHERE path = ?", ("f" * 64, str(path)))
    assert "modified: a.txt" in project.ok("status")  # fooled by its own cache
    report = json.loads(project.ok("verify", "--json"))
    assert report["stale_state"] == ["a.txt"]
    assert report["modified"] == []
    assert "in sync" in project.ok("status")  # and status knows the truth again


def test_a_rewrite_that_restores_the_mtime_is_seen(project: Project) -> None:
    """cp -p, rsync -t and tar -x rewrite a file and set its old mtime back: the ctime tells."""
    old = 1_000_000_000
    path = project.write("d/a.txt", "aaaa")
    single = project.write("b.txt", "bbbb")
    for p in (path, single):
        os.utime(p, ns=(old, old))
    project.ok("add", "d", "b.txt")
    for p, content in ((path, b"AAAA"), (single, b"BBBB")):
        with open(p, "r+b") as handle:  # same inode, same size
            handle.write(content)
        os.utime(p, ns=(old, old))
    entries = changed(project)
    assert entries["d"]["modified"] == ["a.txt"]
    assert entries["b.txt"]["state"] == "modified"


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


def test_status_and_checkout_of_a_path_inside_a_tracked_folder(project: Project) -> None:
    project.write("data/train/a.csv", "a")
    project.write("data/train/b.csv", "b")
    project.write("data/test/c.csv", "c")
    project.ok("add", "data")
    project.write("data/train/a.csv", "a2")
    (project.root / "data" / "test" / "c.csv").unlink()
    only_test = json.loads(project.ok("status", "--json", "data/test"))["changed"]
    assert [(c["path"], c["deleted"], c["modified"]) for c in only_test] == [("data", ["test/c.csv"], [])]
    assert json.loads(project.ok("status", "--json", "data/train/b.csv"))["changed"] == []

    project.ok("checkout", "data/test/c.csv")  # restores c.csv, leaves the edit of a.csv alone
    assert (project.root / "data" / "test" / "c.csv").read_text() == "c"
    assert (project.root / "data" / "train" / "a.csv").read_text() == "a2"
    result = project.cvy("checkout", "data/nope.csv")
    assert result.code == 2 and "data/nope.csv: not in the tracked version of data" in result.err


def test_verify_reports_objects_a_pointer_needs_but_the_cache_lacks(project: Project) -> None:
    project.write("d/a", "a")
    project.write("d/b", "b")
    project.ok("add", "d")
    digest = blake3(b"b").hexdigest()
    (project.root / ".conveyor" / "cache" / digest[:2] / digest[2:]).unlink()
    result = project.cvy("verify")
    assert result.code == 1
    assert f"missing object: d/b: {digest}" in result.out
    assert "1 object(s) the pointers need are not in the cache" in result.err
    # and a re-add puts it back, even though the state database had vouched for the folder
    project.ok("add", "d")
    assert project.cvy("verify").code == 0


def test_gc_makes_the_next_add_check_the_cache_again(project: Project) -> None:
    project.write("d/a", "a")
    project.write("d/b", "b")
    project.ok("add", "d")
    project.commit("v1")
    (project.root / "d.cvy").unlink()  # untrack: gc may now remove the folder's objects
    project.ok("gc")
    assert project.cache_objects() == []
    project.ok("add", "d")  # the state database remembers the folder, but not as stored any more
    assert len(project.cache_objects()) == 3
    assert project.cvy("verify").code == 0


def test_add_names_exactly_what_to_commit(project: Project) -> None:
    project.write("data/a.csv", "a")
    project.write("model.bin", "m")
    out = project.ok("add", "data/a.csv", "model.bin")
    line = out.strip().splitlines()[-1]
    assert line == "Commit them with git: git add .gitignore data/.gitignore data/a.csv.cvy model.bin.cvy"
    project.git(*line.split(": ", 1)[1].split()[1:])  # the suggested command works as printed
    assert "??" not in project.git("status", "--porcelain")


@pytest.mark.parametrize("link", ["hardlink", "symlink"])
def test_executables_are_copied_even_with_links(project: Project, link: str) -> None:
    project.ok("config", "cache.link", link)
    script = project.write("tools/run.sh", "#!/bin/sh\n")
    script.chmod(0o755)
    project.write("tools/data.txt", "d")
    project.ok("add", "tools")
    assert os.access(project.root / "tools" / "run.sh", os.X_OK)
    assert not (project.root / "tools" / "run.sh").is_symlink()
    assert (project.root / "tools" / "run.sh").stat().st_nlink == 1
    assert project.cvy("status", "-q").code == 0


def test_unprotect_only_the_named_path(project: Project) -> None:
    project.ok("config", "cache.link", "hardlink")
    project.write("d/a.txt", "a")
    project.write("d/b.txt", "b")
    project.ok("add", "d")
    assert project.ok("unprotect", "d/a.txt").split() == ["unprotected", "d/a.txt"]
    assert (project.root / "d" / "b.txt").stat().st_nlink == 2


def test_debug_keeps_the_exit_code(project: Project) -> None:
    result = project.run("--debug", "diff", "no-such-rev")
    assert result.code == 2
    assert "Traceback" in result.err and "error: unknown git revision" in result.err


def test_unknown_key_in_a_config_file_names_the_file(project: Project) -> None:
    (project.root / ".conveyor" / "config.local").write_text("cache:\n  lnk: copy\n")
    result = project.cvy("status")
    assert result.code == 2
    assert "config.local: unknown config key 'cache.lnk'" in result.err and "did you mean 'cache.link'" in result.err


def test_objects_deleted_by_hand_come_back_with_verify_then_add(project: Project) -> None:
    old = 1_000_000_000
    for name in ("f1", "f2"):
        os.utime(project.write(f"data/{name}", name), ns=(old, old))
    project.ok("add", "data")
    for obj in project.cache_objects():
        obj.unlink()
    assert project.cvy("verify").code == 1  # reports them, and withdraws what the state vouched for
    project.ok("add", "data")
    assert len(project.cache_objects()) == 3
    assert project.cvy("verify").code == 0


def test_a_single_file_keeps_its_execute_bit(project: Project) -> None:
    """The pointer of an executable file says so: a change of mode is a change, checkout restores it."""
    script = project.root / "train.sh"
    script.write_text("#!/bin/sh\necho train\n")
    script.chmod(0o755)
    assert project.cvy("add", "train.sh").code == 0
    assert "executable: true" in (project.root / "train.sh.cvy").read_text()
    assert "modified" not in project.cvy("status").out
    script.chmod(0o644)
    assert "modified" in project.cvy("status").out
    result = project.cvy("checkout", "--force", "train.sh")
    assert result.code == 0, result
    assert script.stat().st_mode & 0o111, "checkout did not restore the execute bit"
    assert "modified" not in project.cvy("status").out
    script.unlink()
    assert project.cvy("checkout").code == 0
    assert script.stat().st_mode & 0o111


def test_the_state_database_records_only_rows_it_will_trust(tmp_path: Path) -> None:
    """A row for a file modified within RACY_NS of being recorded is never trusted (the file
    could change again unseen): it is not written at all, and a settled file's row is."""
    from conveyor.versioning._state import RACY_NS, Stat, StateDB

    fresh, settled = tmp_path / "fresh.txt", tmp_path / "settled.txt"
    fresh.write_text("new")
    settled.write_text("old")
    old = time.time_ns() - 2 * RACY_NS
    os.utime(settled, ns=(old, old))
    state = StateDB(tmp_path / "state.db")
    try:
        rows = [(str(p), Stat.of(os.stat(p)), f"digest-{p.name}") for p in (fresh, settled)]
        state.put_many(rows)
        recorded = state.conn.execute("SELECT path FROM files").fetchall()
        assert recorded == [(str(settled),)]
        assert state.get(str(settled), rows[1][1]) == "digest-settled.txt"
        assert state.get(str(fresh), rows[0][1]) is None
    finally:
        state.close()
