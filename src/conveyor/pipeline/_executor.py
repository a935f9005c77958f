"""Running one stage's command as a child process: output, log, timeout, retries, cancellation.

Each attempt runs in its own session (process group), so a timeout or Ctrl-C kills the
command and everything it started, not just the shell. Output goes to the terminal (each
line prefixed with the stage name when stages run in parallel) and to the stage's log file.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
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


class StageProcess:
    """Runs ``stage`` (with its retries) in the workspace at ``root``; ``cancel`` stops it."""

    def __init__(
        self,
        stage: Stage,
        root: Path,
        log_path: Path,
        terminal: Terminal,
        cancel: threading.Event,
        run_id: str | None = None,
        forkserver: ForkServer | None = None,
    ) -> None:
        self.stage = stage
        self.forkserver = forkserver
        self.run_id = run_id
        self.root = root
        self.log_path = log_path
        self.terminal = terminal
        self.cancel = cancel
        self._child: _Child | None = None

    def argv(self) -> list[str]:
        stage = self.stage
        if stage.cmd is not None:
            return ["/bin/sh", "-c", stage.cmd]
        assert stage.call is not None
        module, function = stage.call.split(":", 1)
        return [sys.executable, "-c", _BOOTSTRAP, module, function, json.dumps(stage.kwargs)]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.stage.env)
        env.setdefault("PYTHONUNBUFFERED", "1")  # so a Python stage's output streams as it comes
        env["CONVEYOR_STAGE"] = self.stage.name
        if self.run_id is not None:
            env["CONVEYOR_RUN_ID"] = self.run_id  # what a check stage records its result under
        return env

    def run(self) -> Outcome:
        stage = self.stage
        started = time.monotonic()
        attempts = 0
        os.makedirs(self.log_path.parent, exist_ok=True)
        with open(self.log_path, "wb") as log:
            while True:
                attempts += 1
                if attempts > 1:
                    log.write(f"--- attempt {attempts} ---\n".encode())
                outcome = self._attempt(log)
                outcome.attempts = attempts
                if outcome.ok or outcome.cancelled or attempts > stage.retries:
                    outcome.duration = time.monotonic() - started
                    return outcome
                delay = min(stage.retry_delay * 2 ** (attempts - 1), _MAX_DELAY)
                self.terminal.note(
                    f"stage {stage.name!r} failed ({outcome.error}); retry {attempts} of {stage.retries} in {delay:g} s"
                )
                if self.cancel.wait(delay):
                    outcome.cancelled = True
                    outcome.duration = time.monotonic() - started
                    return outcome

    def _attempt(self, log: IO[bytes]) -> Outcome:
        stage = self.stage
        cwd = self.root / stage.wdir
        env = self.environment()
        child: _Child | None = None
        if stage.call is not None and self.forkserver is not None and not _needs_interpreter(stage):
            child = self._fork(cwd, env)
        if child is None:
            try:
                child = _Spawned(
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
        self._child = child
        readers = [threading.Thread(target=self._pump, args=(child.stdout, child.stderr, log), daemon=True)]
        for reader in readers:
            reader.start()
        deadline = None if stage.timeout is None else time.monotonic() + stage.timeout
        timed_out = cancelled = False
        # the wait returns as soon as the process ends; the 0.05 s only bounds how late a
        # cancellation or a timeout is noticed
        while not child.wait(0.05):
            if self.cancel.is_set():
                cancelled = True
                self._kill(child)
                break
            if deadline is not None and time.monotonic() > deadline:
                timed_out = True
                self._kill(child)
                break
        # whatever the command left running in its group (a `cmd &` it did not wait for) goes
        # with it: it could still write outputs after they are recorded, or hold the pipes open
        # (not a shared process's group, which outlives the stage: it is the process itself)
        if not (child.shared and not cancelled and not timed_out):
            self._kill_group(child.pid)
        for reader in readers:
            reader.join(timeout=5)  # only a process that left the group (setsid) can hold a pipe longer
        child.close()
        self._child = None
        code = child.returncode
        if cancelled:
            return Outcome(False, 1, 0.0, code, cancelled=True, error="interrupted")
        if timed_out:
            return Outcome(False, 1, 0.0, code, timed_out=True, error=f"timed out after {stage.timeout:g} s")
        if child.error is not None:
            return Outcome(False, 1, 0.0, code, error=child.error)
        if code != 0:
            what = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            return Outcome(False, 1, 0.0, code, error=what)
        return Outcome(True, 1, 0.0, 0)

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

    def _pump(self, stdout: IO[bytes] | None, stderr: IO[bytes] | None, log: IO[bytes]) -> None:
        """Copy the command's output, line by line, to its log and the terminal, until both
        pipes close (one thread for both: a thread less to start per stage)."""
        import selectors

        streams = {pipe.fileno(): (pipe, pipe is stderr) for pipe in (stdout, stderr) if pipe is not None}
        pending = dict.fromkeys(streams, b"")
        with selectors.DefaultSelector() as selector:
            for fd in streams:
                selector.register(fd, selectors.EVENT_READ)
            while streams:
                for key, _mask in selector.select():
                    fd = key.fd
                    pipe, err = streams[fd]
                    chunk = os.read(fd, 65536)
                    if chunk:
                        lines = (pending[fd] + chunk).split(b"\n")
                        pending[fd] = lines.pop()  # the start of a line still being written
                        complete = [line + b"\n" for line in lines]
                    else:
                        complete = [pending[fd]] if pending[fd] else []  # a last line without its newline
                    for raw in complete:
                        log.write(raw)
                        log.flush()
                        text = raw.decode("utf-8", errors="replace")
                        self.terminal.line(self.stage.name, text if text.endswith("\n") else text + "\n", err=err)
                    if not chunk:
                        selector.unregister(fd)
                        del streams[fd]
                        pipe.close()

    @staticmethod
    def _kill_group(pgid: int) -> None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    @staticmethod
    def _kill(child: _Child) -> None:
        """SIGTERM the whole process group, then SIGKILL whatever is left after a grace period."""
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

    def close(self) -> None:
        pass  # the readers close the pipes
