"""Remotes by name: ``remote.NAME.url`` and options in the config, ``core.remote`` the default."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from conveyor.config import REMOTE_OPTIONS, set_value
from conveyor.errors import UsageError
from conveyor.workspace import Workspace

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*\Z")
# schemes we know how to reach (fsspec's names); others are tried through fsspec too
_KNOWN = ("s3", "gs", "gcs", "az", "abfs", "ssh", "sftp", "http", "https", "file", "memory", "hdfs", "webdav")


@dataclass(frozen=True)
class Remote:
    """A named remote: where it is and how to reach it."""

    name: str
    url: str
    options: dict[str, str] = field(default_factory=dict, compare=False)
    default: bool = False

    @property
    def scheme(self) -> str:
        return _scheme(self.url)


def _scheme(url: str) -> str:
    if "://" not in url:
        return "file"
    return url.split("://", 1)[0].lower()


def check_url(url: str) -> str:
    """A URL conveyor can use, or a UsageError that says what is wrong with it."""
    url = url.strip()
    if not url:
        raise UsageError("empty remote URL", hint="give a folder or a URL such as s3://bucket/prefix")
    scheme = _scheme(url)
    if scheme == "file":
        return url
    if not re.fullmatch(r"[a-z][a-z0-9+.\-]*", scheme):
        raise UsageError(f"{url}: not a URL", hint="write SCHEME://LOCATION, or a folder path")
    parts = urlsplit(url)
    if scheme in ("s3", "gs", "gcs", "az", "abfs") and not parts.netloc:
        raise UsageError(f"{url}: no bucket in the URL", hint=f"write {scheme}://BUCKET/optional/prefix")
    if scheme in ("ssh", "sftp", "http", "https") and not parts.netloc:
        raise UsageError(f"{url}: no host in the URL", hint=f"write {scheme}://HOST/path")
    if scheme not in _KNOWN:
        import fsspec

        if scheme not in fsspec.available_protocols():
            raise UsageError(
                f"{url}: unknown scheme '{scheme}'",
                hint="use a folder, s3://, gs://, az://, ssh://, sftp:// or http(s)://",
            )
    return url


def remotes(ws: Workspace) -> list[Remote]:
    default = ws.config.get("core.remote")
    found = []
    for name, options in sorted(ws.config.remotes().items()):
        if "url" not in options:
            continue  # a section with only local secrets, say: not usable until it has a URL
        rest = {k: v for k, v in options.items() if k != "url"}
        found.append(Remote(name, options["url"], rest, default=name == default))
    return found


def get_remote(ws: Workspace, name: str | None = None) -> Remote:
    """The remote called ``name``, or the default one (``core.remote``, or the only one)."""
    known = remotes(ws)
    if name is None:
        name = ws.config.get("core.remote")
        if name is None:
            if len(known) == 1:
                return known[0]
            if not known:
                raise UsageError(
                    "no remote is configured", hint="add one with 'conveyor remote add NAME URL --default'"
                )
            raise UsageError(
                f"{len(known)} remotes and no default",
                hint=f"name one with -r ({', '.join(r.name for r in known)}), or set one with 'remote add --default'",
            )
    for remote in known:
        if remote.name == name:
            return remote
    names = ", ".join(r.name for r in known) or "none yet"
    raise UsageError(f"unknown remote '{name}'", hint=f"known remotes: {names}; add it with 'conveyor remote add'")


def remote_add(
    name: str,
    url: str,
    *,
    default: bool = False,
    local: bool = False,
    force: bool = False,
    workspace: Workspace | None = None,
) -> Remote:
    """Add remote ``name`` at ``url`` (in the committed config, or ``local``ly); ``default`` makes it
    the one push, fetch and pull use without ``-r``."""
    ws = workspace or Workspace.find()
    if not _NAME.match(name):
        raise UsageError(f"bad remote name {name!r}", hint="use letters, digits, '_' and '-'")
    url = check_url(url)
    if any(r.name == name for r in remotes(ws)) and not force:
        raise UsageError(f"remote '{name}' already exists", hint="change it with 'conveyor remote modify', or --force")
    with ws.lock():
        set_value(ws.conveyor_dir, f"remote.{name}.url", url, local=local)
        if default:
            set_value(ws.conveyor_dir, "core.remote", name, local=local)
    ws.reload_config()
    return get_remote(ws, name)


def remote_modify(
    name: str,
    option: str,
    value: str | None = None,
    *,
    unset: bool = False,
    local: bool = False,
    workspace: Workspace | None = None,
) -> Remote:
    """Set (or ``unset``) one option of remote ``name``; secrets only with ``local``."""
    ws = workspace or Workspace.find()
    get_remote(ws, name)
    if option not in REMOTE_OPTIONS:
        import difflib

        close = difflib.get_close_matches(option, REMOTE_OPTIONS, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"options: {', '.join(REMOTE_OPTIONS)}"
        raise UsageError(f"unknown remote option '{option}'", hint=hint)
    if unset:
        value = None
    elif value is None:
        raise UsageError(f"no value for '{option}'", hint="give a value, or --unset to remove it")
    elif option == "url":
        value = check_url(value)
    with ws.lock():
        set_value(ws.conveyor_dir, f"remote.{name}.{option}", value, local=local)
    ws.reload_config()
    return get_remote(ws, name)


def remote_remove(name: str, *, workspace: Workspace | None = None) -> None:
    """Forget remote ``name`` (from both config files); its data stays where it is."""
    ws = workspace or Workspace.find()
    remote = get_remote(ws, name)
    with ws.lock():
        for local in (False, True):
            for option in [*remote.options, "url"]:
                set_value(ws.conveyor_dir, f"remote.{name}.{option}", None, local=local)
            if ws.config.get("core.remote") == name:
                set_value(ws.conveyor_dir, "core.remote", None, local=local)
    ws.reload_config()


def remote_list(*, workspace: Workspace | None = None) -> list[Remote]:
    """Every configured remote, the default one marked."""
    return remotes(workspace or Workspace.find())
