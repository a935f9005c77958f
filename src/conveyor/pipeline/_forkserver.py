"""A warm Python process that forks a fresh child for each ``call`` stage.

Starting an interpreter costs 20 to 30 ms; a pipeline of thousands of small Python stages
spent most of its time there. The fork server is started once per run (``python -c``, so its
children see the same ``sys.path`` rule as before: the stage's folder first), imports only the
standard library, and for each stage forks a child that is as fresh as a new interpreter: its
own session (so timeouts and Ctrl-C kill its whole process group), the stage's folder, the
stage's environment, its stdout and stderr on pipes the runner reads. The child imports the
stage's module and calls the function, then exits the normal way (atexit handlers and
non-daemon threads run, streams are flushed).

Each runner thread has a ``SOCK_SEQPACKET`` connection of its own to the server (one message
per request, with the two pipe ends attached by ``SCM_RIGHTS``); the server answers with the
child's pid, then with its exit code, from a ``SIGCHLD``-driven reap loop.

Only the runner's side (:class:`ForkServer`) is imported by conveyor; :func:`main` is the
server, and must stay importable with the standard library alone.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
from typing import Any

MAX_REQUEST = 60_000  # bytes; larger kwargs go through a fresh interpreter instead
_SERVER = "from conveyor.pipeline._forkserver import main; main()"


class ForkedChild:
    """A stage's process, forked by the server: its pid and, once it ended, its exit code.

    It owns a connection to the server until it ended: the server writes its exit code there,
    so the thread running the stage waits on its own socket, with no hand-off between threads."""

    def __init__(self, server: ForkServer, conn: socket.socket, pid: int, *, shared: bool = False) -> None:
        self.server = server
        self.pid = pid
        self.shared = shared  # a shared process: it lives on after the stage
        self.returncode: int | None = None
        self.error: str | None = None  # the server died before telling how the child ended
        self._conn: socket.socket | None = conn

    def exit_fd(self) -> int | None:
        """The connection the server writes the exit code to: readable when the child ended."""
        return None if self._conn is None else self._conn.fileno()

    def wait(self, timeout: float | None) -> bool:
        """True once the child ended (or its fate cannot be known any more)."""
        conn = self._conn
        if conn is None:
            return True
        ready, _, _ = select.select([conn], [], [], timeout)
        if not ready:
            return False
        message = _receive(conn)
        if message is None or "code" not in message:
            self.error = (
                "its shared process died (killed, or it called os._exit)"
                if self.shared
                else "the fork server that started the stage died"
            )
            if self.shared:
                self.server._forget_shared(conn)
            else:
                conn.close()
        else:
            self.returncode = int(message["code"])
            self.server._release(conn, self.shared)
        self._conn = None
        return True


class ForkServer:
    """The runner's handle on one fork server process, shared by the stage threads of a run.

    Each stage thread borrows a connection of its own (made on first need and passed to the
    server over the control socket), sends its request there and reads its child's pid and
    exit code from it."""

    def __init__(self, cwd: str, env: dict[str, str]) -> None:
        self._lock = threading.Lock()
        self._idle: list[socket.socket] = []  # connections to the server itself
        self._shared: list[socket.socket] = []  # connections to a shared process, idle between stages
        self._shared_pids: dict[socket.socket, int] = {}
        self._base_env = dict(env)  # the server's environment: a request carries only what differs
        self._all: list[socket.socket] = []
        self.broken: str | None = None
        control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._control = control
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _SERVER, str(theirs.fileno())],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # Ctrl-C reaches the runner, which stops the stages itself
            )
        finally:
            theirs.close()

    def spawn(
        self,
        module: str,
        function: str,
        kwargs: dict[str, object],
        cwd: str,
        env: dict[str, str],
        out: int,
        err: int,
        *,
        shared: bool = False,
    ) -> ForkedChild | None:
        """Fork a child running ``module.function(**kwargs)``; None if the server cannot take it
        (then the caller starts an interpreter itself). ``out`` and ``err`` are pipe ends the
        child writes to; the caller keeps (and closes) its own copies. ``shared``: run it in a
        process kept for the next shared stage of the same runner thread (made on first need)."""
        base = self._base_env
        request: dict[str, object] = {
            "module": module,
            "function": function,
            "kwargs": kwargs,
            "cwd": cwd,
            "env_set": {k: v for k, v in env.items() if base.get(k) != v},
            "env_unset": [k for k in base if k not in env],
        }
        if shared:
            request["shared"] = True
        data = json.dumps(request).encode()
        if len(data) > MAX_REQUEST:
            return None
        while shared:
            conn = self._borrow_shared()
            if conn is None:
                break
            try:
                # a shared process answers only with the exit code: its pid is known, and a process
                # that died between stages has closed its end, so the send fails
                socket.send_fds(conn, [data], [out, err])
            except OSError:
                self._forget_shared(conn)  # that shared process is gone (killed between stages): start another
                continue
            return ForkedChild(self, conn, self._shared_pids[conn], shared=True)
        conn = self._borrow()
        if conn is None:
            return None
        message = self._send(conn, data, out, err)
        if message is None or "pid" not in message:
            conn.close()
            if message is None:
                self.broken = "the fork server is gone"
            return None  # nothing ran: the caller starts the stage itself
        if shared:
            with self._lock:
                self._shared_pids[conn] = int(message["pid"])
        return ForkedChild(self, conn, int(message["pid"]), shared=shared)

    def _forget_shared(self, conn: socket.socket) -> None:
        with self._lock:
            self._shared_pids.pop(conn, None)
        conn.close()

    @staticmethod
    def _send(conn: socket.socket, data: bytes, out: int, err: int) -> dict[str, Any] | None:
        try:
            socket.send_fds(conn, [data], [out, err])
        except OSError:
            return None
        return _receive(conn)

    def _borrow_shared(self) -> socket.socket | None:
        with self._lock:
            return self._shared.pop() if self._shared and self.broken is None else None

    def _borrow(self) -> socket.socket | None:
        with self._lock:
            if self.broken is not None:
                return None
            if self._idle:
                return self._idle.pop()
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                socket.send_fds(self._control, [b"connect"], [theirs.fileno()])
            except OSError as exc:
                mine.close()
                self.broken = f"the fork server is gone ({exc.strerror})"
                return None
            finally:
                theirs.close()
            self._all.append(mine)
            return mine

    def _release(self, conn: socket.socket, shared: bool) -> None:
        with self._lock:
            (self._shared if shared else self._idle).append(conn)

    def close(self) -> None:
        """Stop the server (children still running are the caller's to stop first)."""
        with self._lock:
            self.broken = self.broken or "closed"
            for conn in self._all:
                conn.close()
            self._all.clear()
            self._idle.clear()
            self._shared.clear()
        self._control.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def _receive(conn: socket.socket) -> dict[str, Any] | None:
    try:
        data = conn.recv(4096)
    except OSError:
        return None
    if not data:
        return None
    message: dict[str, Any] = json.loads(data)
    return message


# ----------------------------------------------------------------------------- the server process


def main() -> None:
    """The server: fork a child per request until the runner closes its control socket."""
    import atexit  # noqa: F401  (what every child needs, imported once here rather than in each)
    import importlib  # noqa: F401
    import io  # noqa: F401
    import selectors
    import signal
    import traceback  # noqa: F401

    control = socket.socket(fileno=int(sys.argv[1]))
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that SIGCHLD writes to the wakeup fd
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    children: dict[int, socket.socket | None] = {}  # pid -> the connection to answer (None: a shared process)
    preloaded = set(sys.modules)
    import gc

    gc.freeze()  # a child's collections then leave the server's objects alone (no copy-on-write faults)
    closing = False

    def send(conn: socket.socket, message: dict[str, object]) -> None:
        try:
            conn.send(json.dumps(message).encode())
        except OSError:
            pass  # that runner thread is gone; the child goes on as a subprocess would

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            answer = children.pop(pid, None)
            if answer is not None:
                send(answer, {"code": os.waitstatus_to_exitcode(status)})

    while not closing or children:
        for key, _mask in selector.select(timeout=None if not closing else 0.5):
            if key.fileobj is control:
                try:
                    _data, fds, _flags, _addr = socket.recv_fds(control, 64, 1)
                except OSError:
                    fds = []
                if not fds:
                    closing = True  # the runner is done (or gone): finish with the children it has
                    selector.unregister(control)
                    continue
                selector.register(socket.socket(fileno=fds[0]), selectors.EVENT_READ)
            elif key.fileobj is wake_r:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            else:
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                try:
                    data, fds, _flags, _addr = socket.recv_fds(conn, MAX_REQUEST + 1024, 2)
                except OSError:
                    data, fds = b"", []
                if not data:
                    selector.unregister(conn)
                    conn.close()
                    continue
                request = json.loads(data)
                selector_keys = list(selector.get_map().values())
                try:
                    pid = os.fork()
                except OSError as exc:
                    for fd in fds:
                        os.close(fd)
                    send(conn, {"error": f"cannot fork: {exc.strerror}"})
                    continue
                shared = bool(request.get("shared"))
                if pid == 0:
                    selector.close()
                    # every socket of the server but this request's connection: a child must not hold
                    # the others open (their runner threads would never see them close)
                    others = [control, *(c for c in children.values() if c is not None)]
                    others += [k.fileobj for k in selector_keys if isinstance(k.fileobj, socket.socket)]
                    others = [sock for sock in others if sock is not conn]
                    if shared:  # the connection is the shared process's from now on
                        _serve(request, fds, conn, [wake_r, wake_w], others, preloaded)
                    _exit(_child(request, fds, [wake_r, wake_w], [*others, conn]), preloaded)
                for fd in fds:
                    os.close(fd)
                send(conn, {"pid": pid})
                if shared:
                    children[pid] = None  # it answers its runner thread itself; reaped here
                    selector.unregister(conn)
                    conn.close()
                else:
                    children[pid] = conn
        reap()


def _exit(code: int, preloaded: set[str]) -> None:
    """End the child as an interpreter's exit would (non-daemon threads joined, atexit handlers
    run, files flushed) but without tearing down every module, which took 5 to 20 ms.

    Module teardown is also what closes a file a stage's module keeps in a global: those of the
    modules the stage imported (not ``preloaded`` by the server) are flushed and closed here."""
    import atexit
    import io

    if "threading" in sys.modules:
        import threading

        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()
    atexit._run_exitfuncs()
    for name, module in list(sys.modules.items()):
        if name in preloaded:
            continue
        for value in list(getattr(module, "__dict__", {}).values()):
            if isinstance(value, io.IOBase) and value not in (sys.stdout, sys.stderr):
                try:
                    value.close()
                except Exception:  # a file that cannot be closed is the stage's own problem
                    pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _child(request: dict[str, object], fds: list[int], pipes: list[int], sockets: list[socket.socket]) -> int:
    """In the forked child: become the stage's process, run the function, give its exit code."""
    _become_stage_process(pipes, sockets)
    return _run_stage(request, fds)


def _serve(
    request: dict[str, object],
    fds: list[int],
    conn: socket.socket,
    pipes: list[int],
    sockets: list[socket.socket],
    preloaded: set[str],
) -> None:
    """In a forked child for ``process: shared`` stages: run this stage, then every next one its
    runner thread sends on ``conn``, until that connection closes or a stage kills the process.

    Between stages the folder, the environment, ``sys.argv`` and ``sys.path`` go back to what
    they were, the output goes back to /dev/null (so the runner's readers see the stage end),
    and threads the stage started are joined; modules stay imported (that is the point), and a
    stage module whose file changed is reloaded."""
    import threading

    _become_stage_process(pipes, sockets)
    base_cwd, base_env, base_path = os.getcwd(), dict(os.environ), list(sys.path)
    while True:
        before = set(threading.enumerate())
        code = _run_stage(request, fds)
        for thread in set(threading.enumerate()) - before:
            if not thread.daemon:
                thread.join()  # what the end of a process would wait for
        _flush_standard_streams()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
        os.chdir(base_cwd)
        _set_environment(base_env)
        sys.path[:] = base_path
        try:
            conn.send(json.dumps({"code": code}).encode())
            data, fds, _flags, _addr = socket.recv_fds(conn, MAX_REQUEST + 1024, 2)
        except OSError:
            data = b""
        if not data:
            _exit(0, preloaded)
        request = json.loads(data)  # no answer: the runner knows this process's pid


def _become_stage_process(pipes: list[int], sockets: list[socket.socket]) -> None:
    """The forked child's first steps: signals as a new interpreter has them, none of the
    server's sockets and pipes, a session of its own, stdin from /dev/null, text streams on
    the file descriptors 1 and 2 (which each stage points at its own pipes)."""
    import io
    import signal

    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL if sig == signal.SIGCHLD else signal.default_int_handler)
    for sock in sockets:
        sock.close()
    for fd in pipes:
        os.close(fd)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True, errors="backslashreplace")
    sys.__stdout__, sys.__stderr__ = sys.stdout, sys.stderr  # type: ignore[misc]  # as a new interpreter has


def _set_environment(env: dict[str, str]) -> None:
    for key in [key for key in os.environ if key not in env]:
        del os.environ[key]
    for key, value in env.items():  # only what differs: setting all of them took half a millisecond
        if os.environ.get(key) != value:
            os.environ[key] = value


def _flush_standard_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


_loaded: dict[str, tuple[int, int] | None] = {}  # stage module -> (mtime, size) of its file when imported


def _stage_module(name: str) -> object:
    """The stage's module: imported, or (in a shared process) reloaded when its file changed."""
    import importlib

    module = sys.modules.get(name)
    if module is not None and name in _loaded:
        if _file_stamp(module) != _loaded[name]:
            module = importlib.reload(module)
            _loaded[name] = _file_stamp(module)
        return module
    module = importlib.import_module(name)
    _loaded[name] = _file_stamp(module)
    return module


def _file_stamp(module: object) -> tuple[int, int] | None:
    path = getattr(module, "__file__", None)
    try:
        st = os.stat(path) if path else None
    except OSError:
        return None
    return None if st is None else (st.st_mtime_ns, st.st_size)


def _run_stage(request: dict[str, object], fds: list[int]) -> int:
    """Point the standard streams at the stage's pipes, run the function, give its exit code."""
    import traceback

    out, err = fds
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.close(out)
    os.close(err)
    module, function = str(request["module"]), str(request["function"])
    kwargs = request["kwargs"]
    assert isinstance(kwargs, dict)
    try:
        os.chdir(str(request["cwd"]))
        # the environment is the server's here (a shared process restores it after each stage);
        # the request says what differs
        unset, changed = request["env_unset"], request["env_set"]
        assert isinstance(unset, list) and isinstance(changed, dict)
        for key in unset:
            os.environ.pop(key, None)
        for key, value in changed.items():
            os.environ[key] = value
        sys.argv = ["-c", module, function, json.dumps(kwargs)]
        if not sys.path or sys.path[0] != "":
            sys.path.insert(0, "")  # the stage's folder first, as `python -c` has it
        getattr(_stage_module(module), function)(**kwargs)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException as exc:
        # from the stage's own frames on, as the traceback of `python -c` would be
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        traceback.print_exception(type(exc), exc, tb)
        return 1
    return 0
