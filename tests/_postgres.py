"""A local PostgreSQL server for the tests: :func:`ensure_server` returns an admin URL to it.

Debian's packaging is used as it is (``postgresql`` installs ``pg_lsclusters``, ``pg_ctlcluster``
and a ``psql`` that understands ``--cluster``): the package is installed if missing, the cluster
found with ``pg_lsclusters``, started if it is down, and a login role ``conveyor_test`` (password
``conveyor_test``, CREATEDB) created through ``psql`` run as the cluster's owner (peer
authentication on the Unix socket). Tests connect over TCP to 127.0.0.1 with that password.

When the server already answers, :func:`ensure_server` costs one ``pg_lsclusters`` and one
connection. Otherwise the work is done under an exclusive lock on a file in /tmp, so that
several processes (pytest-xdist workers, ``make test``) can call it at the same time.

``python tests/_postgres.py`` prints the URL (the Makefile exports it as ``CONVEYOR_TEST_PG_URL``
so that the test workers skip all of this); on failure, it prints one message and exits with 1.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROLE = "conveyor_test"
PASSWORD = "conveyor_test"
HOST = "127.0.0.1"
LOCK_FILE = Path("/tmp/conveyor-test-postgres.lock")

_COMMANDS = ("pg_lsclusters", "pg_ctlcluster", "psql")

# Creates the role, or puts back what the tests rely on if it exists (e.g. with another password).
_ROLE_SQL = f"""\
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{ROLE}') THEN
    CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}';
  ELSE
    ALTER ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}';
  END IF;
END
$$;
-- DROP DATABASE ... WITH (FORCE) ends every session on the throw-away database, including an
-- autovacuum worker the server started there; ending another role's backend needs this.
GRANT pg_signal_backend TO {ROLE};
"""


class PostgresSetupError(RuntimeError):
    """PostgreSQL could not be made ready; the message says which step failed and why."""


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str
    port: int
    online: bool
    owner: str

    @property
    def label(self) -> str:
        return f"{self.version}/{self.name}"


def admin_url(port: int) -> str:
    """The SQLAlchemy URL of the ``postgres`` database as the test role."""
    return f"postgresql+psycopg://{ROLE}:{PASSWORD}@{HOST}:{port}/postgres"


def ensure_server(*, verbose: bool = False) -> str:
    """Make the local PostgreSQL server usable by the tests and return an admin SQLAlchemy URL.

    Idempotent and safe to call from several processes at once. ``verbose`` reports the slow
    steps (installing, starting, creating the role) on stderr. Raises :class:`PostgresSetupError`.
    """
    # Fast path, no lock: the server is up and the role can log in.
    if all(shutil.which(command) for command in _COMMANDS):
        cluster = _pick_cluster(_clusters())
        if cluster is not None and cluster.online and _can_connect(cluster.port) is None:
            return admin_url(cluster.port)
    with _locked(LOCK_FILE):
        return _ensure_locked(verbose)


def _ensure_locked(verbose: bool) -> str:
    def say(message: str) -> None:
        if verbose:
            print(f"_postgres: {message}", file=sys.stderr, flush=True)

    if not all(shutil.which(command) for command in _COMMANDS):
        say("installing the postgresql package")
        _install()
    cluster = _pick_cluster(_clusters())
    if cluster is None:
        version = _newest_installed_version()
        say(f"creating cluster {version}/main")
        _run(["pg_createcluster", version, "main"], what=f"creating PostgreSQL cluster {version}/main", timeout=300)
        cluster = _pick_cluster(_clusters())
        if cluster is None:
            raise PostgresSetupError(f"pg_lsclusters lists no cluster after creating {version}/main")
    if not cluster.online:
        say(f"starting cluster {cluster.label} (port {cluster.port})")
        _run(
            ["pg_ctlcluster", cluster.version, cluster.name, "start"],
            what=f"starting PostgreSQL cluster {cluster.label}",
            timeout=120,
        )
    if _can_connect(cluster.port) is None:
        return admin_url(cluster.port)
    say(f"creating role {ROLE} in cluster {cluster.label}")
    psql = ["psql", "--cluster", cluster.label, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f", "-"]
    _run(
        _as_user(cluster.owner, psql),
        what=f"creating role {ROLE} with psql as {cluster.owner} in cluster {cluster.label}",
        stdin=_ROLE_SQL,
        timeout=60,
    )
    error = _can_connect(cluster.port)
    if error is not None:
        raise PostgresSetupError(
            f"cannot connect to PostgreSQL {cluster.label} as {ROLE} at {HOST}:{cluster.port} "
            f"even after setting it up: {error}"
        )
    return admin_url(cluster.port)


# -- steps ----------------------------------------------------------------------------------------


def _install() -> None:
    """``apt-get install -y postgresql``; ``apt-get update`` first only if that fails."""
    if shutil.which("apt-get") is None:
        raise PostgresSetupError(
            "PostgreSQL is not installed (no pg_lsclusters/pg_ctlcluster/psql) and there is no apt-get to install it"
        )
    if os.geteuid() != 0:
        raise PostgresSetupError(
            "PostgreSQL is not installed (no pg_lsclusters/pg_ctlcluster/psql); run "
            "`apt-get install -y postgresql` as root, or run the tests as root"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "postgresql"]
    if _try(install, env=env, timeout=900).returncode == 0:
        return
    _run(["apt-get", "update", "-q"], what="apt-get update (before installing postgresql)", env=env, timeout=600)
    _run(install, what="apt-get install -y postgresql", env=env, timeout=900)
    missing = [command for command in _COMMANDS if shutil.which(command) is None]
    if missing:
        raise PostgresSetupError(f"apt-get installed postgresql but {', '.join(missing)} is still missing")


def _clusters() -> list[Cluster]:
    """The clusters ``pg_lsclusters`` knows (``Ver Cluster Port Status Owner Datadir Logfile``)."""
    out = _run(["pg_lsclusters", "--no-header"], what="listing PostgreSQL clusters (pg_lsclusters)", timeout=60)
    clusters = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[2].isdigit():
            continue
        version, name, port, status, owner = fields[:5]
        clusters.append(Cluster(version, name, int(port), status.startswith("online"), owner))
    return clusters


def _pick_cluster(clusters: Sequence[Cluster]) -> Cluster | None:
    """A running cluster if there is one, then the newest version, then the one called ``main``."""

    def key(cluster: Cluster) -> tuple[bool, tuple[int, ...], bool]:
        version = tuple(int(part) for part in re.findall(r"\d+", cluster.version))
        return (cluster.online, version, cluster.name == "main")

    return max(clusters, key=key, default=None)


def _newest_installed_version() -> str:
    root = Path("/usr/lib/postgresql")
    versions = [path.parent.parent.name for path in root.glob("*/bin/postgres")]
    if not versions:
        raise PostgresSetupError(f"pg_lsclusters lists no cluster and no PostgreSQL server is installed in {root}")
    return max(versions, key=lambda version: tuple(int(part) for part in re.findall(r"\d+", version)))


def _can_connect(port: int) -> str | None:
    """None if the test role can log in over TCP with what the tests need, else why not."""
    import psycopg

    try:
        with psycopg.connect(
            host=HOST, port=port, user=ROLE, password=PASSWORD, dbname="postgres", connect_timeout=5
        ) as connection:
            row = connection.execute("SELECT pg_has_role(current_user, 'pg_signal_backend', 'MEMBER')").fetchone()
    except psycopg.Error as error:
        return str(error).strip() or type(error).__name__
    if not row or not row[0]:
        return f"role {ROLE} is not a member of pg_signal_backend"
    return None


# -- processes ------------------------------------------------------------------------------------


def _as_user(user: str, argv: list[str]) -> list[str]:
    """``argv`` run as ``user`` (the cluster's owner, for peer authentication on the socket)."""
    if pwd.getpwuid(os.geteuid()).pw_name == user:
        return argv
    if os.geteuid() == 0:
        if shutil.which("runuser"):
            return ["runuser", "-u", user, "--", *argv]
        return ["su", user, "-s", "/bin/sh", "-c", shlex.join(argv)]
    return ["sudo", "-n", "-u", user, "--", *argv]


def _try(
    argv: list[str], *, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            cwd="/",  # the cluster's owner may not be able to enter the current directory
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"timed out after {timeout:g} s")


def _run(
    argv: list[str], *, what: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float
) -> str:
    """Run a command; its stdout, or :class:`PostgresSetupError` naming ``what`` and the command's own words."""
    result = _try(argv, stdin=stdin, env=env, timeout=timeout)
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip()).splitlines()
        detail = " | ".join(output[-5:]) if output else "no output"
        raise PostgresSetupError(f"{what} failed: `{shlex.join(argv)}` exited with {result.returncode}: {detail}")
    return result.stdout


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)  # read-only is enough for flock, whoever made it
    except OSError as error:
        raise PostgresSetupError(f"cannot open the lock file {path}: {error}") from error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def main() -> int:
    try:
        print(ensure_server(verbose=True))
    except PostgresSetupError as error:
        print(f"tests/_postgres.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
