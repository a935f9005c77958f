"""The kernel copy behind large transfers: exact bytes, any size, across filesystems, and a fallback
where ``copy_file_range`` is refused; the hash taken alongside names the bytes copied."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import blake3
import pytest

from conveyor import _fs
from conveyor.versioning._hashing import copy_and_hash

STEP = 32 * 1024 * 1024


def write_random(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("size", [0, 1, 4096, STEP, STEP + 12345])
def test_copy_file_copies_every_byte(tmp_path: Path, size: int) -> None:
    data = write_random(tmp_path / "src", size)
    copied = _fs.copy_file(str(tmp_path / "src"), str(tmp_path / "dst"), mode=0o600)
    assert copied == size
    assert (tmp_path / "dst").read_bytes() == data
    assert (tmp_path / "dst").stat().st_mode & 0o777 == 0o600


def test_copy_file_never_overwrites(tmp_path: Path) -> None:
    write_random(tmp_path / "src", 10)
    (tmp_path / "dst").write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        _fs.copy_file(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert (tmp_path / "dst").read_bytes() == b"keep"


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs a tmpfs at /dev/shm")
def test_copy_file_across_filesystems(tmp_path: Path) -> None:
    shm = Path("/dev/shm") / f"conveyor-test-{os.getpid()}"
    try:
        data = write_random(shm, STEP // 4 + 7)
        assert _fs.copy_file(str(shm), str(tmp_path / "dst")) == len(data)
        assert (tmp_path / "dst").read_bytes() == data
    finally:
        shm.unlink(missing_ok=True)


def test_copy_file_falls_back_when_the_kernel_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refuse)
    data = write_random(tmp_path / "src", STEP + 3)
    assert _fs.copy_file(str(tmp_path / "src"), str(tmp_path / "dst"), durable=False) == len(data)
    assert (tmp_path / "dst").read_bytes() == data


def test_copy_file_reports_other_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _fs.copy_file(str(tmp_path / "absent"), str(tmp_path / "dst"))
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize("size", [0, 100, 2 * 1024 * 1024 + 1])
def test_copy_and_hash_names_the_bytes_copied(tmp_path: Path, size: int) -> None:
    data = write_random(tmp_path / "src", size)
    digest, copied = copy_and_hash(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert copied == size
    assert digest == blake3.blake3(data).hexdigest()
    assert (tmp_path / "dst").read_bytes() == data


def test_upload_memory_budget_holds_back_what_does_not_fit() -> None:
    """Two uploads that together exceed the budget run one after the other; one larger than the
    whole budget still runs alone."""
    import threading

    from conveyor.remote._backend import _MemoryBudget

    budget = _MemoryBudget(10)
    order: list[str] = []
    first_in = threading.Event()
    release_first = threading.Event()

    def first() -> None:
        with budget.hold(6):
            order.append("first in")
            first_in.set()
            release_first.wait(5)
            order.append("first out")

    def second() -> None:
        first_in.wait(5)
        with budget.hold(6):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    first_in.wait(5)
    threading.Event().wait(0.2)  # give the second a chance to get in, which it must not
    assert order == ["first in"]
    release_first.set()
    for thread in threads:
        thread.join(5)
    assert order == ["first in", "first out", "second in"]
    with budget.hold(50):  # larger than the budget, alone: runs
        assert budget.used == 50
    assert budget.used == 0
