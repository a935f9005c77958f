"""Parsed ``conveyor.yaml`` and ``conveyor.lock``, kept between commands while their files are unchanged.

Parsing 200 stages of YAML costs more than everything else a no-op ``status`` does, so the
parsed result is pickled under ``.conveyor/parsed/`` together with the stat data of every
file it was built from (and of files whose absence mattered). It is used only when all of
them are unchanged, and recorded only when they are settled: a file changed just before it was read
could change again within the same timestamp tick, unseen (git's "racy clean" problem). A
tick is at most a few milliseconds where timestamps carry nanoseconds, so 0.2 s is ample
there; a file whose timestamp is a whole second may live on a filesystem that counts in
seconds (or two, for FAT), and gets the state database's two seconds.
"""

from __future__ import annotations

import gc
import os
import pickle
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from conveyor import __version__, _fs

T = TypeVar("T")
PARSED_DIR = "parsed"
_SECOND = 1_000_000_000
_RACY_NS = 2 * _SECOND  # for whole-second timestamps
_RACY_FINE_NS = _SECOND // 5  # for timestamps with sub-second digits
_FORMAT = 2  # bump when what is pickled changes shape

Stamp = tuple[int, int, int, int] | None


def stamp(path: str | os.PathLike[str]) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def cached(conveyor_dir: Path, name: str, build: Callable[[], tuple[T, Iterable[str]]]) -> T:
    """``build()``'s value, from the pickle named ``name`` when every input it read is unchanged.

    ``build`` returns the value and the paths it depended on (read, or looked for).
    """
    folder = conveyor_dir / PARSED_DIR
    target = folder / f"{name}.pickle"
    try:
        with open(target, "rb") as handle:
            record: Any = pickle.load(handle)
        if record[0] == (_FORMAT, __version__) and all(stamp(p) == s for p, s in record[1]):
            return record[2]  # type: ignore[no-any-return]
    except Exception:  # absent, stale or unreadable: parse again
        pass
    started = time.time_ns()
    collecting = gc.isenabled()
    gc.disable()  # parsing makes 100,000s of objects and no cycles: full collections cost 0.1 ms a stage
    try:
        value, inputs = build()
    finally:
        if collecting:
            gc.enable()
    stamps = [(p, stamp(p)) for p in dict.fromkeys(inputs)]
    if all(_settled(s, started) for _p, s in stamps) and conveyor_dir.is_dir():
        try:
            if not folder.is_dir():
                from conveyor.workspace import private_dir

                private_dir(conveyor_dir, PARSED_DIR)
            data = pickle.dumps(((_FORMAT, __version__), stamps, value), protocol=pickle.HIGHEST_PROTOCOL)
            tmp = _fs.tmp_name(conveyor_dir / "tmp")
            with open(tmp, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)  # no fsync: a lost or torn pickle only costs a parse
        except OSError:
            pass
    return value


def _settled(st: Stamp, now_ns: int) -> bool:
    if st is None:
        return True
    mtime = max(st[2], st[3])  # ctime too: a rewrite that restores the mtime still moves the ctime
    window = _RACY_NS if mtime % _SECOND == 0 else _RACY_FINE_NS
    return now_ns - mtime > window
