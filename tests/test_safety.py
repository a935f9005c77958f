"""Conveyor's safety promises, tested for real: real subprocesses, real signals, a real full disk.

* A ``conveyor add`` or ``conveyor checkout`` killed with SIGKILL at any moment leaves no
  partial object under a final name, no unreadable pointer, and a workspace that the next
  run of the same command completes.
* The workspace lock keeps two writers apart, says who holds it, and never goes stale.
* A full disk fails with one clear line and exit code 74, changes nothing, and the same
  command succeeds once there is space again.
* A file that cannot be read is refused by name, even though the tests run as root.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import pytest
import yaml

from conftest import CONVEYOR_BIN, Project, Result, git, has_tool

KiB = 1024
MiB = 1024 * KiB

ADD_TARGETS = ("data", "big.bin")
ADD_TRIALS = 12
CHECKOUT_TRIALS = 8
SMALL_FILES = 1500
BIG_SIZE = 24 * MiB
WAITING = "waiting for another conveyor process"


# -- running conveyor ------------------------------------------------------------------------


def cvy(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    user: str | None = None,
    via: tuple[str, ...] = (),
    timeout: float = 120,
) -> Result:
    """Run the real ``conveyor`` executable in ``cwd`` and capture its output.

    ``user`` runs it as that user, ``via`` through a wrapper command (``setpriv ...``).
    """
    proc = subprocess.run(
        [*via, CONVEYOR_BIN, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        user=user,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def ok(cwd: Path, *args: str) -> str:
    """Run conveyor and insist that it succeeds; return what it printed on stdout."""
    result = cvy(cwd, *args)
    assert result.code == 0, f"conveyor {' '.join(args)} failed ({result.code}): {result.err}"
    assert "Traceback" not in result.err, result.err
    return result.out


def timed_ok(cwd: Path, *args: str) -> float:
    """How long an uninterrupted, successful run of conveyor ``args`` takes, in seconds."""
    start = time.monotonic()
    ok(cwd, *args)
    return time.monotonic() - start


def kill_moments(rng: random.Random, count: int) -> list[float]:
    """``count`` random fractions of a run, one in each of ``count`` equal slices, in random order.

    Drawn this way rather than independently, the kills land all over the run, so the short
    windows (publishing objects, writing a pointer) are not left to luck.
    """
    fractions = [(i + rng.random()) / count for i in range(count)]
    rng.shuffle(fractions)
    return fractions


def run_and_kill(cwd: Path, args: tuple[str, ...], delay: float) -> bool:
    """Start conveyor ``args``, SIGKILL it after ``delay`` seconds; True if it was still running then."""
    with subprocess.Popen(
        [CONVEYOR_BIN, *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        time.sleep(delay)
        proc.kill()
        _out, err = proc.communicate()
    assert proc.returncode in (0, -signal.SIGKILL), f"conveyor {' '.join(args)} failed on its own: {err}"
    return proc.returncode == -signal.SIGKILL


def the_error_line(result: Result, *, also_allowed: tuple[str, ...] = ()) -> str:
    """The one ``error:`` line on stderr; nothing else there but lines starting with ``also_allowed``."""
    assert "Traceback" not in result.err, result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    others = [line for line in lines if not line.startswith(("error:", *also_allowed))]
    assert len(errors) == 1, f"expected exactly one 'error:' line on stderr, got: {result.err!r}"
    assert not others, f"unexpected lines on stderr: {others!r}"
    return errors[0]


def init_workspace(root: Path) -> None:
    """A fresh git repository at ``root`` with ``conveyor init`` done."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    ok(root, "init")


# -- inspecting a workspace ------------------------------------------------------------------


def cache_objects(root: Path) -> list[Path]:
    return sorted((root / ".conveyor" / "cache").glob("*/*"))


def tmp_leftovers(root: Path) -> list[str]:
    tmp = root / ".conveyor" / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


def assert_cache_sound(root: Path) -> None:
    """Every object in the cache has exactly the content its name promises: nothing partial."""
    for path in cache_objects(root):
        assert path.is_file(), f"{path}: not a regular file in the cache"
        digest = path.parent.name + path.name
        actual = blake3.blake3(path.read_bytes()).hexdigest()
        assert actual == digest, f"{path}: content hashes to {actual}, not to its name (a partial object?)"


def assert_verify_clean(root: Path) -> None:
    """``conveyor verify`` re-hashes the cache and finds nothing corrupt."""
    result = cvy(root, "verify", "--json")
    assert result.code == 0, f"verify failed ({result.code}): {result.out}{result.err}"
    assert "Traceback" not in result.err, result.err
    report: dict[str, Any] = json.loads(result.out)
    assert report["corrupt_objects"] == [], report
    assert report["stale_state"] == [], report  # the state database never claimed a hash a file did not have


def assert_pointers_readable(root: Path) -> None:
    """Every pointer file present parses: ``status`` reads them all and neither rejects one nor crashes."""
    result = cvy(root, "status")
    assert result.code != 65, f"a pointer file is damaged: {result.err}"
    assert "Traceback" not in result.err, result.err
    assert result.code == 0, f"status failed ({result.code}): {result.err}"


def pointed_files(root: Path) -> dict[str, str]:
    """Every file the pointers at ``root`` track, as workspace path -> content hash.

    Read from the pointer files and the cache alone (not the state database), insisting that
    every object a pointer needs is in the cache: pointers are written after their objects.
    """
    cache = root / ".conveyor" / "cache"

    def cached(digest: str) -> Path:
        path = cache / digest[:2] / digest[2:]
        assert path.is_file(), f"a pointer refers to {digest}, which is not in the cache"
        return path

    tracked: dict[str, str] = {}
    for pointer_file in sorted(root.glob("*.cvy")):
        pointer: dict[str, Any] = yaml.safe_load(pointer_file.read_text())
        name = pointer_file.name.removesuffix(".cvy")
        digest = str(pointer["hash"]).removeprefix("blake3:")
        if pointer["kind"] == "dir":
            header, *lines = cached(digest).read_text().splitlines()
            assert header == "conveyor-manifest 1"
            for line in lines:  # "<hash> <size> <exec> <path>"; these test paths need no unescaping
                entry_digest, _size, _executable, rel = line.split(" ", 3)
                cached(entry_digest)
                tracked[f"{name}/{rel}"] = entry_digest
        else:
            cached(digest)
            tracked[name] = digest
    return tracked


def assert_status_clean(root: Path, *, tracked: int) -> None:
    result = cvy(root, "status", "--json")
    assert result.code == 0, f"status failed ({result.code}): {result.err}"
    report: dict[str, Any] = json.loads(result.out)
    assert report == {"tracked": tracked, "changed": []}, report


def check_after_kill(root: Path) -> None:
    """What must hold however a writer died: a sound cache, a clean verify, readable and complete pointers."""
    assert_verify_clean(root)
    assert_cache_sound(root)
    assert_pointers_readable(root)
    pointed_files(root)


# -- the data under test ---------------------------------------------------------------------


class Dataset:
    """The files a test wrote into a workspace (``data/`` and ``big.bin``) and what each must contain."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.contents: dict[str, bytes] = {}
        self._serial = 0

    def _small(self) -> bytes:
        return self.rng.randbytes(self.rng.randint(64, 4 * KiB))

    def _new_name(self) -> str:
        self._serial += 1
        return f"data/part{self._serial % 15:02d}/rec{self._serial:05d}.bin"

    def write(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.contents[rel] = data

    def build(self) -> None:
        for _ in range(SMALL_FILES):
            self.write(self._new_name(), self._small())
        self.write("big.bin", self.rng.randbytes(BIG_SIZE))

    def change_a_few(self, *, big: bool) -> None:
        """Rewrite a few small files, delete one, create one; patch ``big.bin`` in place if ``big``."""
        small = sorted(rel for rel in self.contents if rel.startswith("data/"))
        for rel in self.rng.sample(small, 5):
            self.write(rel, self._small())
        gone = self.rng.choice(sorted(rel for rel in self.contents if rel.startswith("data/")))
        (self.root / gone).unlink()
        del self.contents[gone]
        self.write(self._new_name(), self._small())
        if big:
            offset = self.rng.randrange(BIG_SIZE - 4 * KiB)
            patch = self.rng.randbytes(4 * KiB)
            with open(self.root / "big.bin", "r+b") as handle:
                handle.seek(offset)
                handle.write(patch)
            old = self.contents["big.bin"]
            self.contents["big.bin"] = old[:offset] + patch + old[offset + len(patch) :]

    def assert_recorded(self) -> None:
        """The pointers describe exactly the files written, by their real content hashes."""
        expected = {rel: blake3.blake3(data).hexdigest() for rel, data in self.contents.items()}
        recorded = pointed_files(self.root)
        wrong = sorted(rel for rel in expected.keys() | recorded.keys() if expected.get(rel) != recorded.get(rel))
        assert not wrong, f"{len(wrong)} file(s) recorded wrongly by the pointers, e.g. {wrong[:3]}"

    def remove(self, *, big: bool) -> None:
        shutil.rmtree(self.root / "data")
        if big:
            (self.root / "big.bin").unlink()

    def on_disk(self) -> dict[str, Path]:
        found = {"big.bin": self.root / "big.bin"} if (self.root / "big.bin").exists() else {}
        for folder, _dirs, files in os.walk(self.root / "data"):
            for name in files:
                path = Path(folder) / name
                found[path.relative_to(self.root).as_posix()] = path
        return found

    def assert_no_partial_files(self) -> None:
        """Each file present has its full, right content; files not yet placed are simply absent."""
        for rel, path in self.on_disk().items():
            assert rel in self.contents, f"{rel}: unexpected file in the workspace"
            assert path.read_bytes() == self.contents[rel], f"{rel}: wrong or partial content"

    def assert_complete(self) -> None:
        self.assert_no_partial_files()
        missing = sorted(set(self.contents) - set(self.on_disk()))
        assert not missing, f"not restored: {missing[:5]}"


def start_afresh(root: Path) -> None:
    """Forget what conveyor knows (cache, state database, pointers): the next add writes every object."""
    conveyor_dir = root / ".conveyor"
    shutil.rmtree(conveyor_dir / "cache")
    (conveyor_dir / "cache").mkdir()
    for path in [*conveyor_dir.glob("state.db*"), *root.glob("*.cvy")]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


# -- 1. SIGKILL at random moments --------------------------------------------------------------


@pytest.mark.slow
def test_add_killed_at_random_moments_leaves_a_sound_workspace(project: Project) -> None:
    root = project.root
    rng = random.Random(0x5AFE_ADD)
    data = Dataset(root, rng)
    data.build()
    cold = timed_ok(root, "add", *ADD_TARGETS)  # every object new
    data.change_a_few(big=True)
    warm = timed_ok(root, "add", *ADD_TARGETS)  # a few objects new, everything re-hashed
    assert_status_clean(root, tracked=2)

    # Two adds in three start from an empty cache and write every object: their publishing
    # window is the widest. The others re-add over existing pointers, after a few changes.
    afresh_trials = [trial % 3 != 2 for trial in range(ADD_TRIALS)]
    moments = {kind: kill_moments(rng, afresh_trials.count(kind)) for kind in (True, False)}
    interrupted = 0
    for trial, afresh in enumerate(afresh_trials):
        if afresh:
            start_afresh(root)
        else:
            data.change_a_few(big=trial % 6 == 2)
        delay = moments[afresh].pop() * (cold if afresh else warm)
        interrupted += run_and_kill(root, ("add", *ADD_TARGETS), delay)

        check_after_kill(root)
        ok(root, "add", *ADD_TARGETS)
        assert_status_clean(root, tracked=2)
        data.assert_recorded()
        assert tmp_leftovers(root) == [], "the next add should have swept what the killed one left"
    assert interrupted >= ADD_TRIALS // 4, f"only {interrupted} of {ADD_TRIALS} kills hit a running add"


@pytest.mark.slow
def test_checkout_killed_at_random_moments_leaves_a_sound_workspace(project: Project) -> None:
    root = project.root
    rng = random.Random(0x5AFE_C0)
    data = Dataset(root, rng)
    data.build()
    ok(root, "add", *ADD_TARGETS)
    data.remove(big=True)
    duration = timed_ok(root, "checkout")
    data.assert_complete()

    moments = kill_moments(rng, CHECKOUT_TRIALS)
    interrupted = 0
    for trial in range(CHECKOUT_TRIALS):
        data.remove(big=trial % 2 == 0)
        interrupted += run_and_kill(root, ("checkout",), moments.pop() * duration)

        check_after_kill(root)
        data.assert_no_partial_files()
        ok(root, "checkout")
        assert_status_clean(root, tracked=2)
        data.assert_complete()
        assert tmp_leftovers(root) == [], "the next checkout should have swept what the killed one left"
    assert interrupted >= CHECKOUT_TRIALS // 4, f"only {interrupted} of {CHECKOUT_TRIALS} kills hit a running checkout"


# -- 2. the workspace lock ---------------------------------------------------------------------

_HOLDER = """
import sys
from pathlib import Path
from conveyor.workspace import Workspace

with Workspace(Path(sys.argv[1])).lock(timeout=0):
    print("locked", flush=True)
    sys.stdin.readline()  # hold the lock until the test writes a line or closes the pipe
"""


def release(holder: subprocess.Popen[str]) -> None:
    """Let a lock holder finish (closing its stdin ends its wait)."""
    assert holder.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        holder.stdin.close()
    try:
        holder.wait(timeout=10)
    except subprocess.TimeoutExpired:
        holder.kill()
        holder.wait()


@contextlib.contextmanager
def lock_holder(root: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the workspace lock of ``root`` until released (or the block ends)."""
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked", "the helper could not take the lock"
            yield holder
        finally:
            release(holder)


@contextlib.contextmanager
def started(root: Path, *args: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """Conveyor ``args`` running in the background; killed if still running when the block ends."""
    with subprocess.Popen(
        [CONVEYOR_BIN, *args],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    ) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_busy_workspace_fails_clearly_naming_the_holder(project: Project) -> None:
    root = project.root
    project.write("x.bin", os.urandom(4 * KiB))
    with lock_holder(root) as holder:
        start = time.monotonic()
        result = cvy(root, "add", "x.bin", env={"CONVEYOR_CORE_LOCK_TIMEOUT": "0.5"})
        waited = time.monotonic() - start
        assert holder.poll() is None, "the holder died while the add waited"
    assert result.code == 75, result.err
    line = the_error_line(result, also_allowed=(WAITING,))
    assert "another conveyor process" in line, line
    assert f"pid {holder.pid}" in line, line
    assert waited >= 0.5, f"gave up after {waited:.2f} s, before its 0.5 s timeout"
    assert not (root / "x.bin.cvy").exists()
    assert cache_objects(root) == []


def test_busy_workspace_waits_then_proceeds(project: Project) -> None:
    root = project.root
    project.write("x.bin", os.urandom(4 * KiB))
    with (
        lock_holder(root) as holder,
        started(root, "add", "x.bin", env={"CONVEYOR_CORE_LOCK_TIMEOUT": "20"}) as adder,
    ):
        assert adder.stderr is not None
        notice = adder.stderr.readline()
        assert notice.startswith(WAITING), notice
        assert f"pid {holder.pid}" in notice, notice
        time.sleep(1.0)
        assert adder.poll() is None, "the add went ahead while the lock was held"
        assert not (root / "x.bin.cvy").exists()
        release(holder)
        _out, err = adder.communicate(timeout=60)
    assert adder.returncode == 0, err
    assert "Traceback" not in err, err
    assert (root / "x.bin.cvy").is_file()
    assert_status_clean(root, tracked=1)


def test_killed_holder_leaves_no_stale_lock(project: Project) -> None:
    root = project.root
    project.write("x.bin", os.urandom(4 * KiB))
    lock_file = root / ".conveyor" / "lock"
    with lock_holder(root) as holder:
        holder.kill()
        holder.wait()
        assert lock_file.read_text() == str(holder.pid)  # the dead holder's pid is still written there

        fd = os.open(lock_file, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free at once: raises BlockingIOError if not
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

        result = cvy(root, "add", "x.bin", env={"CONVEYOR_CORE_LOCK_TIMEOUT": "0"})
    assert result.code == 0, result.err
    assert WAITING not in result.err
    assert (root / "x.bin.cvy").is_file()


# -- 3. a full disk -----------------------------------------------------------------------------


def unmount(mountpoint: Path) -> None:
    if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True, capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, mounted for the test and unmounted after it."""
    if not has_tool("mount"):
        pytest.skip("no mount command")
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mountpoint)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a 4 MiB tmpfs was refused: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield mountpoint
    finally:
        unmount(mountpoint)


@pytest.mark.parametrize("shape", ["one file", "folder of small files"])
def test_full_disk_fails_cleanly_and_the_same_add_succeeds_later(small_disk: Path, shape: str) -> None:
    root = small_disk / "project"
    init_workspace(root)
    rng = random.Random(74)
    if shape == "one file":
        target = "big.bin"
        (root / target).write_bytes(rng.randbytes(5 * MiB // 2))
    else:
        target = "data"
        (root / target).mkdir()
        for i in range(40):
            (root / target / f"part{i:02d}.bin").write_bytes(rng.randbytes(64 * KiB))

    result = cvy(root, "add", target)  # 2.5 MiB of data and 2.5 MiB of cache do not fit in 4 MiB
    assert result.code == 74, f"{result.code}: {result.err}"
    line = the_error_line(result)
    assert "no space left" in line.lower(), line
    named = line.removeprefix("error: ").split(": ", 1)[0]
    assert named == str(root / target) or named.startswith(f"{root / target}/"), line  # the data, by name
    assert not (root / f"{target}.cvy").exists()
    assert cache_objects(root) == [], "a failed add left objects in the cache"

    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True, capture_output=True)
    ok(root, "add", target)
    assert tmp_leftovers(root) == []
    assert (root / f"{target}.cvy").is_file()
    assert cache_objects(root)
    assert_verify_clean(root)
    assert_cache_sound(root)
    assert_status_clean(root, tracked=1)


# -- 4. an unreadable file, for real despite root -------------------------------------------------

# Root bypasses permission bits through two capabilities; without them, uid 0 obeys the owner bits.
_NO_DAC_BYPASS = ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--")


@dataclass(frozen=True)
class Unprivileged:
    """How to run conveyor so that file permission bits bind it."""

    user: str | None = None  # run as this user (who must own the project)...
    via: tuple[str, ...] = ()  # ...or through this wrapper command
    how: str = "as the current user"

    def run(self, cwd: Path, *args: str, home: Path) -> Result:
        return cvy(cwd, *args, env={"HOME": str(home)}, user=self.user, via=self.via)


def _runs_conveyor(cwd: Path, *, user: str | None = None, via: tuple[str, ...] = ()) -> bool:
    try:
        return cvy(cwd, "--version", env={"HOME": str(cwd)}, user=user, via=via, timeout=60).code == 0
    except OSError:  # the interpreter, or ``cwd``, is out of reach for that user
        return False


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A fresh folder in the system temp folder that other users can reach.

    pytest's own temp folders are private to the user running the tests.
    """
    base = Path(tempfile.mkdtemp(prefix="conveyor-safety-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def unprivileged(shared_dir: Path) -> Unprivileged:
    """Prefer the user ``nobody``; if it cannot even start the interpreter, drop root's bypass instead."""
    if os.geteuid() != 0:
        return Unprivileged()
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        has_nobody = False
    else:
        has_nobody = True
        if _runs_conveyor(shared_dir, user="nobody"):
            return Unprivileged(user="nobody", how="as the user nobody")
    if has_tool("setpriv") and _runs_conveyor(shared_dir, via=_NO_DAC_BYPASS):
        return Unprivileged(via=_NO_DAC_BYPASS, how="as root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH")
    if not has_nobody:
        pytest.skip("no user 'nobody' on this machine, and no setpriv to drop root's permission bypass")
    pytest.skip(f"the user nobody cannot run {CONVEYOR_BIN} (its interpreter is out of reach), and no setpriv")


def chown_tree(top: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for folder, dirs, files in os.walk(top):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in [*dirs, *files]:
            os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


@pytest.mark.parametrize("inside_folder", [False, True], ids=["file", "file in folder"])
def test_unreadable_file_is_refused_by_name(unprivileged: Unprivileged, shared_dir: Path, inside_folder: bool) -> None:
    root = shared_dir / "project"
    home = shared_dir / "home"
    home.mkdir()
    init_workspace(root)
    if inside_folder:
        target = "data"
        secret = root / "data" / "secret.bin"
        secret.parent.mkdir()
        (root / "data" / "readable.bin").write_bytes(os.urandom(4 * KiB))
    else:
        target = "secret.bin"
        secret = root / "secret.bin"
    if unprivileged.user is not None:
        chown_tree(shared_dir, unprivileged.user)
    secret.write_bytes(os.urandom(4 * KiB))  # owned by whoever runs the tests: root
    secret.chmod(0o000)

    result = unprivileged.run(root, "add", target, home=home)
    assert result.code == 66, f"{unprivileged.how}: {result.code}: {result.err}"
    line = the_error_line(result)
    assert "secret.bin" in line, line
    assert "permission denied" in line.lower() or "cannot read" in line.lower(), line
    assert not (root / f"{target}.cvy").exists()
    assert cache_objects(root) == []

    secret.chmod(0o644)  # the control: the same add, run the same way, works once the file is readable
    control = unprivileged.run(root, "add", target, home=home)
    assert control.code == 0, f"{unprivileged.how}: {control.err}"
    assert (root / f"{target}.cvy").is_file()


def test_a_cache_on_another_filesystem(project: Project, tmp_path: Path) -> None:
    """cache.dir on a different mount: objects are staged on the cache's own filesystem."""
    mount = tmp_path / "other-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        root = project.root
        ok(root, "config", "cache.dir", str(mount / "cache"))
        (root / "data").mkdir()
        for i in range(20):
            (root / "data" / f"f{i}.bin").write_bytes(os.urandom(1000))
        ok(root, "add", "data")
        assert len([p for p in (mount / "cache").glob("??/*")]) == 21
        shutil.rmtree(root / "data")
        ok(root, "checkout")
        assert len(list((root / "data").iterdir())) == 20
        assert cvy(root, "verify").code == 0
    finally:
        subprocess.run(["umount", str(mount)], check=False)
