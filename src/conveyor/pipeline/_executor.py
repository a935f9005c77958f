"""Running one stage's command as a child process: output, log, timeout, retries, cancellation.

Each attempt runs in its own session (process group), so a timeout or Ctrl-C kills the
command and everything it started, not just the shell. Output goes to the terminal (each
line prefixed with the stage name when stages run in parallel) and to the stage's log file.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from conveyor.pipeline._forkserver import ForkedChild, ForkServer
from conveyor.pipeline._lock import Fact
from conveyor.pipeline._spec import Stage

# The child side of a ``call`` stage: import the module from the stage's folder, call the function.
_BOOTSTRAP = (
    "import importlib, json, sys\n"
    "module, function, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])\n"
    "getattr(importlib.import_module(module), function)(**kwargs)\n"
)
KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL
_LOG_DIRS: set[Path] = set()  # log folders made by this process
_MAX_DELAY = 60.0


@dataclass(slots=True)
class Outcome:
    """How a stage's command ended, after all its attempts."""

    ok: bool
    attempts: int
    duration: float
    returncode: int | None = None
    timed_out: bool = False
    cancelled: bool = False
    error: str | None = None
    remote_outs: tuple[Fact, ...] | None = None  # on a cluster: the outputs the worker pushed to the remote
    worker: str | None = None  # on a cluster: which worker ran it
    log: bytes | None = None  # on a cluster: the stage's output, which the runner writes to its log here


class Terminal:
    """Serialises stage output lines onto the terminal (or whatever sys.stdout/stderr are)."""

    def __init__(self, *, prefix: bool, quiet: bool = False) -> None:
        self.prefix = prefix
        self.quiet = quiet
        self._lock = threading.Lock()

    def line(self, stage: str, text: str, *, err: bool) -> None:
        if self.quiet:
            return
        stream = sys.stderr if err else sys.stdout
        with self._lock:
            try:
                stream.write(f"[{stage}] {text}" if self.prefix else text)
                stream.flush()
            except (OSError, ValueError):
                # the reader went away (`conveyor run | head`): the stage's output still goes to its log
                self.quiet = True

    def note(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            try:
                sys.stderr.write(text + "\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                self.quiet = True


class Loop:
    """A selector and timers, driven by one thread: the runner's, which watches every local
    stage's process from it (a thread per stage cost more than a small stage itself, and their
    hand-offs through the GIL more again). Other threads may only :meth:`wake` it."""

    def __init__(self) -> None:
        import selectors

        self._selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._live: set[int] = set()  # timers neither called nor cancelled
        self._seq = itertools.count()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._drain_wake)

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        import selectors

        self._selector.register(fd, selectors.EVENT_READ, callback)

    def remove_reader(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def call_at(self, when: float, callback: Callable[[], None]) -> int:
        """Call ``callback`` at ``when`` (time.monotonic()); returns a handle for :meth:`cancel`."""
        handle = next(self._seq)
        heapq.heappush(self._timers, (when, handle, callback))
        self._live.add(handle)
        return handle

    def cancel(self, handle: int | None) -> None:
        if handle is not None:
            self._live.discard(handle)

    def wake(self) -> None:
        """Make the current (or next) :meth:`run_once` return; from any thread."""
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # already awake

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def run_once(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds for a descriptor or a timer, and call what is due."""
        while self._timers and self._timers[0][1] not in self._live:
            heapq.heappop(self._timers)
        if self._timers:
            until_timer = max(0.0, self._timers[0][0] - time.monotonic())
            timeout = until_timer if timeout is None else min(timeout, until_timer)
        for key, _mask in self._selector.select(timeout):
            key.data()
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _when, handle, callback = heapq.heappop(self._timers)
            if handle in self._live:
                self._live.discard(handle)
                callback()

    def close(self) -> None:
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


class StageProcess:
    """Runs ``stage`` (with its retries) in the workspace at ``root``; ``cancel`` stops it.

    :meth:`run` runs it to the end; :meth:`start` starts it on a :class:`Loop` and calls
    ``on_done`` with its :class:`Outcome` from that loop when it ended (:meth:`stop` ends it early).
    """

    def __init__(
        self,
        stage: Stage,
        root: Path,
        log_path: Path,
        terminal: Terminal,
        cancel: threading.Event,
        run_id: str | None = None,
        forkserver: ForkServer | None = None,
        base_env: dict[str, str] | None = None,
    ) -> None:
        self.stage = stage
        self.forkserver = forkserver
        self.base_env = base_env  # the environment stages start from (os.environ's, read now when None)
        self.run_id = run_id
        self.root = root
        self.log_path = log_path
        self.terminal = terminal
        self.cancel = cancel
        self._loop: Loop | None = None
        self._on_done: Callable[[Outcome], None] | None = None
        self._log: IO[bytes] | None = None
        self._started = 0.0
        self._attempts = 0
        # the attempt in progress
        self._child: _Child | None = None
        self._copier: _LineCopier | None = None
        self._exited = False
        self._stopping: str | None = None  # "cancelled" or "timed out": this attempt is being stopped
        self._timers: dict[str, int] = {}
        self._outcome: Outcome | None = None

    def argv(self) -> list[str]:
        stage = self.stage
        if stage.cmd is not None:
            return ["/bin/sh", "-c", stage.cmd]
        assert stage.call is not None
        module, function = stage.call.split(":", 1)
        return [sys.executable, "-c", _BOOTSTRAP, module, function, json.dumps(stage.kwargs)]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ if self.base_env is None else self.base_env)
        env.update(self.stage.env)
        env.setdefault("PYTHONUNBUFFERED", "1")  # so a Python stage's output streams as it comes
        env["CONVEYOR_STAGE"] = self.stage.name
        if self.run_id is not None:
            env["CONVEYOR_RUN_ID"] = self.run_id  # what a check stage records its result under
        return env

    # -- to the end, in this thread ----------------------------------------------------------

    def run(self) -> Outcome:
        loop = Loop()
        try:
            self.start(loop, lambda outcome: None)
            while self._outcome is None:
                loop.run_once(0.05)  # the 0.05 s only bounds how late a cancellation is noticed
                if self._outcome is None and self.cancel.is_set():
                    self.stop()
            return self._outcome
        except BaseException:
            self.kill_now()
            raise
        finally:
            loop.close()

    # -- on a loop -----------------------------------------------------------------------

    def start(self, loop: Loop, on_done: Callable[[Outcome], None]) -> None:
        self._loop = loop
        self._on_done = on_done
        self._started = time.monotonic()
        try:
            try:
                if self.log_path.parent not in _LOG_DIRS:
                    os.makedirs(self.log_path.parent, exist_ok=True)
                    _LOG_DIRS.add(self.log_path.parent)
                self._log = open(self.log_path, "wb")  # noqa: SIM115  (closed when the stage ends)
            except FileNotFoundError:  # its folder was removed since this process made it
                _LOG_DIRS.discard(self.log_path.parent)
                os.makedirs(self.log_path.parent, exist_ok=True)
                self._log = open(self.log_path, "wb")  # noqa: SIM115
        except OSError as exc:
            self._finish(Outcome(False, 0, 0.0, error=f"cannot write its log {self.log_path}: {exc.strerror}"))
            return
        self._start_attempt()

    def stop(self, *, timed_out: bool = False) -> None:
        """End the stage now: its process group gets SIGTERM, then SIGKILL after a grace period;
        it ends as cancelled (or timed out), with no more retries."""
        if self._outcome is not None:
            return
        if self._child is None:  # between attempts, waiting to retry
            self._finish(Outcome(False, self._attempts, 0.0, cancelled=True, error="interrupted"))
            return
        if self._stopping is not None or self._exited:
            return  # being stopped already, or it ended by itself (its output is still being read)
        self._stopping = "timed out" if timed_out else "cancelled"
        self._terminate()

    def kill_now(self) -> None:
        """Stop the stage's process at once and wait for it (Ctrl-C in the runner)."""
        child = self._child
        if self._outcome is not None or child is None:
            return
        if not self._exited:
            _kill(child)
        self._kill_group(child.pid)
        if self._copier is not None:
            self._copier.close()
        child.close()
        self._child = None
        if self._log is not None:
            self._log.close()

    def _start_attempt(self) -> None:
        assert self._loop is not None and self._log is not None
        loop = self._loop
        self._attempts += 1
        if self._attempts > 1:
            self._log.write(f"--- attempt {self._attempts} ---\n".encode())
        self._exited = False
        self._stopping = None
        child = self._spawn()
        if isinstance(child, Outcome):
            self._end_attempt(child)
            return
        self._child = child
        self._copier = copier = _LineCopier(self, child, self._log)
        for fd in copier.fds():
            loop.add_reader(fd, functools.partial(self._on_output, fd))
        exit_fd = child.exit_fd()
        if exit_fd is not None:
            loop.add_reader(exit_fd, self._on_exit)
        else:  # no descriptor to select on (no pidfd): polled
            self._timers["poll"] = loop.call_at(time.monotonic() + 0.005, self._poll)
        if self.stage.timeout is not None:
            self._timers["timeout"] = loop.call_at(time.monotonic() + self.stage.timeout, self._timed_out)

    def _spawn(self) -> _Child | Outcome:
        stage = self.stage
        cwd = self.root / stage.wdir
        env = self.environment()
        if stage.call is not None and self.forkserver is not None and not _needs_interpreter(stage):
            child = self._fork(cwd, env)
            if child is not None:
                return child
        try:
            return _Spawned(
                subprocess.Popen(
                    self.argv(),
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            )
        except OSError as exc:
            return Outcome(False, 1, 0.0, error=f"cannot start: {exc.strerror}")

    def _on_output(self, fd: int) -> None:
        assert self._copier is not None and self._loop is not None
        if not self._copier.read(fd):
            self._loop.remove_reader(fd)
            if self._exited and not self._copier.open:
                self._end_attempt()

    def _poll(self) -> None:
        assert self._child is not None and self._loop is not None
        self._timers.pop("poll", None)
        if self._child.wait(0):
            self._exited_now()
        else:
            self._timers["poll"] = self._loop.call_at(time.monotonic() + 0.005, self._poll)

    def _on_exit(self) -> None:
        assert self._child is not None and self._loop is not None
        exit_fd = self._child.exit_fd()
        if exit_fd is not None:
            self._loop.remove_reader(exit_fd)
        self._child.wait(0)
        self._exited_now()

    def _exited_now(self) -> None:
        """The command ended: whatever it left running in its group (a `cmd &` it did not wait
        for) goes too, since it could still write outputs after they are recorded, or hold the
        pipes open (not a shared process's group, which outlives the stage: it is the process
        itself). Its pipes then get five seconds to close (only a process that left the group
        can hold them longer)."""
        assert self._child is not None and self._loop is not None and self._copier is not None
        self._exited = True
        self._loop.cancel(self._timers.pop("kill", None))
        if not (self._child.shared and self._stopping is None):
            self._kill_group(self._child.pid)
        if not self._copier.open:
            self._end_attempt()
        else:
            self._timers["drain"] = self._loop.call_at(time.monotonic() + 5, self._end_attempt)

    def _timed_out(self) -> None:
        self._timers.pop("timeout", None)
        if self._child is not None and not self._exited and self._stopping is None:
            self._stopping = "timed out"
            self._terminate()

    def _terminate(self) -> None:
        """SIGTERM the whole process group, then SIGKILL it after a grace period."""
        assert self._child is not None and self._loop is not None
        try:
            os.killpg(self._child.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        pid = self._child.pid
        self._timers["kill"] = self._loop.call_at(time.monotonic() + KILL_GRACE, lambda: self._kill_group(pid))

    def _end_attempt(self, failed: Outcome | None = None) -> None:
        assert self._loop is not None
        for handle in self._timers.values():
            self._loop.cancel(handle)
        self._timers.clear()
        outcome = failed
        child = self._child
        if child is not None:
            assert self._copier is not None
            for fd in self._copier.fds():
                self._loop.remove_reader(fd)
            self._copier.close()
            child.close()
            self._child = None
            self._copier = None
            outcome = self._attempt_outcome(child)
        assert outcome is not None
        stage = self.stage
        if outcome.ok or outcome.cancelled or self._attempts > stage.retries:
            self._finish(outcome)
            return
        delay = min(stage.retry_delay * 2 ** (self._attempts - 1), _MAX_DELAY)
        self.terminal.note(
            f"stage {stage.name!r} failed ({outcome.error}); retry {self._attempts} of {stage.retries} in {delay:g} s"
        )
        self._timers["retry"] = self._loop.call_at(time.monotonic() + delay, self._retry)

    def _retry(self) -> None:
        self._timers.pop("retry", None)
        if self.cancel.is_set():
            self._finish(Outcome(False, self._attempts, 0.0, cancelled=True, error="interrupted"))
        else:
            self._start_attempt()

    def _attempt_outcome(self, child: _Child) -> Outcome:
        code = child.returncode
        stage = self.stage
        if self._stopping == "cancelled":
            return Outcome(False, 1, 0.0, code, cancelled=True, error="interrupted")
        if self._stopping == "timed out":
            return Outcome(False, 1, 0.0, code, timed_out=True, error=f"timed out after {stage.timeout:g} s")
        if child.error is not None:
            return Outcome(False, 1, 0.0, code, error=child.error)
        if code != 0:
            what = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            return Outcome(False, 1, 0.0, code, error=what)
        return Outcome(True, 1, 0.0, 0)

    def _finish(self, outcome: Outcome) -> None:
        assert self._loop is not None
        for handle in self._timers.values():
            self._loop.cancel(handle)
        self._timers.clear()
        if self._log is not None:
            self._log.close()
            self._log = None
        outcome.attempts = self._attempts
        outcome.duration = time.monotonic() - self._started
        self._outcome = outcome
        if self._on_done is not None:
            self._on_done(outcome)

    def _fork(self, cwd: Path, env: dict[str, str]) -> _Child | None:
        assert self.forkserver is not None and self.stage.call is not None
        module, function = self.stage.call.split(":", 1)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            forked = self.forkserver.spawn(
                module, function, self.stage.kwargs, str(cwd), env, out_w, err_w, shared=self.stage.shared
            )
        finally:
            os.close(out_w)
            os.close(err_w)
        if forked is None:
            os.close(out_r)
            os.close(err_r)
            return None
        return _Forked(forked, open(out_r, "rb"), open(err_r, "rb"))

    @staticmethod
    def _kill_group(pgid: int) -> None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _kill(child: _Child) -> None:
    """SIGTERM the whole process group, then SIGKILL whatever is left after a grace period (waiting)."""
    try:
        os.killpg(child.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    child.wait(KILL_GRACE)
    try:
        os.killpg(child.pid, signal.SIGKILL)  # also reaps grandchildren that ignored SIGTERM
    except ProcessLookupError:
        pass
    child.wait(None)


class _LineCopier:
    """Copies a child's stdout and stderr, line by line, to the stage's log and the terminal."""

    def __init__(self, owner: StageProcess, child: _Child, log: IO[bytes]) -> None:
        self.name = owner.stage.name
        self.terminal = owner.terminal
        self.log = log
        self.streams = {pipe.fileno(): (pipe, pipe is child.stderr) for pipe in (child.stdout, child.stderr) if pipe}
        self.pending = dict.fromkeys(self.streams, b"")

    @property
    def open(self) -> bool:
        return bool(self.streams)

    def fds(self) -> list[int]:
        return list(self.streams)

    def read(self, fd: int) -> bool:
        """Copy what the pipe ``fd`` has; False once it is closed (and closed here too)."""
        pipe, err = self.streams[fd]
        chunk = os.read(fd, 65536)
        if chunk:
            lines = (self.pending[fd] + chunk).split(b"\n")
            self.pending[fd] = lines.pop()  # the start of a line still being written
            complete = [line + b"\n" for line in lines]
        else:
            complete = [self.pending[fd]] if self.pending[fd] else []  # a last line without its newline
        for raw in complete:
            self.log.write(raw)
            self.log.flush()
            text = raw.decode("utf-8", errors="replace")
            self.terminal.line(self.name, text if text.endswith("\n") else text + "\n", err=err)
        if not chunk:
            del self.streams[fd]
            pipe.close()
        return bool(chunk)

    def pump(self) -> None:
        """Copy until both pipes close (in a reader thread)."""
        import selectors

        with selectors.DefaultSelector() as selector:
            for fd in self.streams:
                selector.register(fd, selectors.EVENT_READ)
            while self.streams:
                for key, _mask in selector.select():
                    if not self.read(key.fd):
                        selector.unregister(key.fd)

    def close(self) -> None:
        """Close what is still open (a pipe some grandchild outside the group still holds)."""
        for fd in list(self.streams):
            self.streams.pop(fd)[0].close()


def _needs_interpreter(stage: Stage) -> bool:
    """A stage whose environment sets what Python reads only at start-up (PYTHONPATH,
    PYTHONHASHSEED, ...) gets an interpreter of its own rather than a fork of the warm one."""
    return any(key.startswith("PYTHON") and key != "PYTHONUNBUFFERED" for key in stage.env)


class _Child(Protocol):
    pid: int
    shared: bool
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None

    @property
    def returncode(self) -> int | None: ...

    @property
    def error(self) -> str | None: ...

    def wait(self, timeout: float | None) -> bool: ...

    def exit_fd(self) -> int | None:
        """A descriptor that becomes readable when the child ends (None where there is none)."""

    def close(self) -> None: ...


class _Spawned:
    """A command started with Popen, waited on through a pidfd where the system has them (no polling)."""

    error = None
    shared = False

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self._pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            try:
                self._pidfd = os.pidfd_open(proc.pid)
            except OSError:
                pass

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def wait(self, timeout: float | None) -> bool:
        if self.proc.returncode is not None:
            return True
        if self._pidfd is not None:
            select.select([self._pidfd], [], [], timeout)
            return self.proc.poll() is not None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def exit_fd(self) -> int | None:
        return self._pidfd if self.proc.returncode is None else None

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class _Forked:
    """A ``call`` stage's child, forked by the run's :class:`ForkServer`."""

    def __init__(self, child: ForkedChild, stdout: IO[bytes], stderr: IO[bytes]) -> None:
        self.child = child
        self.pid = child.pid
        self.shared = child.shared
        self.stdout: IO[bytes] | None = stdout
        self.stderr: IO[bytes] | None = stderr

    @property
    def returncode(self) -> int | None:
        return self.child.returncode

    @property
    def error(self) -> str | None:
        return self.child.error

    def wait(self, timeout: float | None) -> bool:
        return self.child.wait(timeout)

    def exit_fd(self) -> int | None:
        return self.child.exit_fd()

    def close(self) -> None:
        pass  # the copier closes the pipes
