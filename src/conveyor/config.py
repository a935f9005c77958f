"""Layered configuration: ``.conveyor/config`` (committed), ``config.local`` (never committed), env.

Later layers win. Every key is declared once in :data:`KEYS` with its type, default and
help, so a typo gets a "did you mean" and a bad value names the key and what it takes.
Config is an explicit object passed to whoever needs it, never a process-wide global.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor import _fs
from conveyor._suggest import did_you_mean
from conveyor.errors import CorruptFileError, UsageError

LINK_TYPES = ("reflink", "copy", "hardlink", "symlink")


def _parse_link(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    kinds = tuple(str(item).strip() for item in items if str(item).strip())
    if not kinds or any(kind not in LINK_TYPES for kind in kinds):
        raise ValueError(f"expected a comma-separated list of {', '.join(LINK_TYPES)}")
    return kinds


def _parse_float(value: Any) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("expected a number of seconds >= 0")
    return number


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _parse_str(value: Any) -> str:
    if not isinstance(value, str | int | float) or not str(value):
        raise ValueError("expected a non-empty string")
    return str(value)


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    env: str | None = None  # the environment variable, when not CONVEYOR_<KEY>


KEYS: dict[str, Key] = {
    key.name: key
    for key in (
        Key(
            "cache.link",
            _parse_link,
            ("reflink", "copy"),
            "how checkout places cached files in the workspace, tried in order",
        ),
        Key("cache.dir", _parse_str, None, "where the cache lives (default .conveyor/cache)"),
        Key(
            "core.lock_timeout",
            _parse_float,
            10.0,
            "seconds to wait for another conveyor process before giving up",
        ),
        Key("core.no_scm", _parse_bool, False, "allow a workspace outside git"),
        Key("core.remote", _parse_str, None, "the remote push, fetch and pull use by default"),
        Key(
            "store.url",
            _parse_str,
            None,
            "the database of runs and the model registry: sqlite:///PATH or postgresql://USER@HOST/DB "
            "(default .conveyor/store/conveyor.db)",
            env="CONVEYOR_DB",
        ),
    )
}

# ``remote.NAME.OPTION``: one section per remote. Secret options may only live in config.local.
REMOTE_OPTIONS: dict[str, str] = {
    "url": "where the remote is: a folder, s3://bucket/prefix, gs://, az://, ssh://, https://",
    "endpoint_url": "the S3 API endpoint of an S3-compatible store (MinIO, Ceph)",
    "region": "the cloud region",
    "profile": "a named profile of the backend's own config files (~/.aws/config, ...)",
    "jobs": "parallel transfers (default: 4 per CPU, at most 32)",
    "access_key_id": "access key (config.local only)",
    "secret_access_key": "secret key (config.local only)",
    "session_token": "session token (config.local only)",
    "password": "password (config.local only)",
    "username": "user name",
    "key_filename": "an SSH private key file",
}
SECRET_OPTIONS = frozenset({"access_key_id", "secret_access_key", "session_token", "password"})
_REMOTE_NAME = __import__("re").compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")


def _remote_key(key: str) -> Key | None:
    parts = key.split(".")
    if len(parts) < 3 or parts[0] != "remote":
        return None
    name, option = ".".join(parts[1:-1]), parts[-1]
    if not _REMOTE_NAME.match(name):
        raise UsageError(f"bad remote name {name!r}", hint="use letters, digits, '_', '-' and '.'")
    if option not in REMOTE_OPTIONS:
        hint = did_you_mean(option, REMOTE_OPTIONS) or f"known options: {', '.join(REMOTE_OPTIONS)}"
        raise UsageError(f"unknown remote option '{option}'", hint=hint)
    return Key(key, _parse_str, None, REMOTE_OPTIONS[option])


def _has_password(url: Any) -> bool:
    """Whether a database URL carries a password (``scheme://user:password@host``)."""
    import re

    if not isinstance(url, str):
        return False
    return re.search(r"//[^/@:]*:[^/]+@", url) is not None or re.search(r"[?&]password=", url) is not None


def _env_name(key: str) -> str:
    return "CONVEYOR_" + key.upper().replace(".", "_")


def check_key(key: str) -> Key:
    if key in KEYS:
        return KEYS[key]
    remote = _remote_key(key)
    if remote is not None:
        return remote
    hint = did_you_mean(key, KEYS) or f"known keys: {', '.join(sorted(KEYS))}"
    raise UsageError(f"unknown config key '{key}'", hint=hint)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in data.items():
        full = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{full}."))
        else:
            flat[full] = value
    return flat


def _load_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    if text.strip() in ("", "schema: 1"):
        return {}  # the file as init writes it: spare every command the YAML import
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CorruptFileError(
            f"{path}: not valid YAML ({exc.__class__.__name__})",
            hint="fix the file by hand or restore it from git",
        ) from exc
    if not isinstance(data, Mapping):
        raise CorruptFileError(f"{path}: expected a mapping of sections", hint="restore it from git")
    flat = _flatten(data)
    flat.pop("schema", None)
    return flat


class Config:
    """The merged view of every layer, with parsed and validated values."""

    def __init__(self, conveyor_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.conveyor_dir = conveyor_dir
        self._env = os.environ if env is None else env
        self._values: dict[str, Any] = {}
        for layer in (conveyor_dir / "config", conveyor_dir / "config.local"):
            for key, raw in _load_file(layer).items():
                if layer.name == "config" and key.startswith("remote.") and key.rsplit(".", 1)[1] in SECRET_OPTIONS:
                    raise UsageError(
                        f"{layer}: '{key}' is a secret in the committed config",
                        hint="move it to .conveyor/config.local ('conveyor remote modify NAME OPTION VALUE --local') "
                        "and remove it from the file and from git history",
                    )
                if layer.name == "config" and key == "store.url" and _has_password(raw):
                    raise UsageError(
                        f"{layer}: 'store.url' holds a password in the committed config",
                        hint="set it in .conveyor/config.local ('conveyor config store.url URL --local') or in "
                        "CONVEYOR_DB, or use the server's own password file (~/.pgpass)",
                    )
                self._values[key] = self._parse(key, raw, str(layer))
        for key, spec in KEYS.items():
            name = spec.env or _env_name(key)
            raw = self._env.get(name)
            if raw:  # set and empty counts as unset: what a CI job gives for a secret nobody defined
                self._values[key] = self._parse(key, raw, f"environment variable {name}")

    @staticmethod
    def _parse(key: str, raw: Any, where: str) -> Any:
        try:
            spec = check_key(key)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc.message}", hint=exc.hint) from exc
        try:
            return spec.parse(raw)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{where}: bad value {raw!r} for '{key}': {exc}") from exc

    def get(self, key: str) -> Any:
        spec = check_key(key)
        return self._values.get(key, spec.default)

    def items(self) -> dict[str, Any]:
        declared = {key: self.get(key) for key in KEYS}
        remotes = {key: value for key, value in self._values.items() if key.startswith("remote.")}
        return dict(sorted({**declared, **remotes}.items()))

    def remotes(self) -> dict[str, dict[str, str]]:
        """``{name: {option: value}}`` of every remote, merged over config and config.local."""
        found: dict[str, dict[str, str]] = {}
        for key, value in self._values.items():
            if key.startswith("remote."):
                name, option = key[len("remote.") :].rsplit(".", 1)
                found.setdefault(name, {})[option] = value
        return found


def set_value(conveyor_dir: Path, key: str, value: str | None, *, local: bool = False) -> None:
    """Set (or with ``value=None`` unset) ``key`` in the committed or the local config file."""
    import yaml

    spec = check_key(key)
    if value is not None:
        Config._parse(key, value, "value")
    path = conveyor_dir / ("config.local" if local else "config")
    flat = _load_file(path)
    if value is None:
        flat.pop(key, None)
    else:
        parsed = spec.parse(value)
        flat[key] = list(parsed) if isinstance(parsed, tuple) else parsed
    if value is not None and not local and key == "store.url" and _has_password(value):
        raise UsageError(
            "'store.url' holds a password: it must not go into the committed config",
            hint="pass --local to keep it in .conveyor/config.local, or set CONVEYOR_DB, or use ~/.pgpass",
        )
    if value is not None and not local and key.startswith("remote.") and key.rsplit(".", 1)[1] in SECRET_OPTIONS:
        raise UsageError(
            f"'{key}' is a secret: it must not go into the committed config",
            hint="pass --local to keep it in .conveyor/config.local, or use the backend's own credentials",
        )
    nested: dict[str, Any] = {"schema": 1}
    for name in sorted(flat):
        if name.startswith("remote."):  # remote.NAME.OPTION, where NAME may hold dots
            remote, option = name[len("remote.") :].rsplit(".", 1)
            nested.setdefault("remote", {}).setdefault(remote, {})[option] = flat[name]
            continue
        section, _, leaf = name.partition(".")
        nested.setdefault(section, {})[leaf] = flat[name]
    _fs.atomic_write_text(path, yaml.safe_dump(nested, sort_keys=False, default_flow_style=False))
