"""The pinned set of distributions a bundle installs: what loads the model and what serves it.

The roots are conveyor itself with what its server imports, and the packages the model's flavor
and format load with (scikit-learn, skops, ...). Their dependencies are followed through the
installed distributions' metadata (markers evaluated for this interpreter); each is pinned to
the version the model's training run had, or, for one that run did not have (the server's), to
the version installed here, and said so.
"""

from __future__ import annotations

import importlib.metadata as md
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.errors import UsageError
from conveyor.registry._compat import model_packages, normalise

if TYPE_CHECKING:
    from conveyor.registry import ModelVersion

# What conveyor's server imports, beyond conveyor's own dependencies (the ``serve`` extra less
# the HTTP client and Parquet, which a bundle's server does not use: it keeps no request logs).
SERVER_PACKAGES = ("starlette", "uvicorn", "httptools", "uvloop", "prometheus-client", "numpy", "pandas")
_NEVER = frozenset({"pip", "setuptools", "wheel"})


@dataclass(frozen=True, slots=True)
class Pin:
    name: str  # normalised
    version: str
    origin: str  # "run": the training run had it; "build": installed where the bundle was built

    def line(self) -> str:
        return f"{self.name}=={self.version}"


def target_environment(python: str, platform_text: str) -> dict[str, str]:
    """The marker environment of the container a bundle runs in: Linux, CPython, the training
    run's Python version and machine (``platform_text`` as ``platform.platform()`` gives it)."""
    from packaging.markers import default_environment

    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    numbers = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", python)
    if numbers:
        env["python_version"] = f"{numbers.group(1)}.{numbers.group(2)}"
        env["python_full_version"] = python
    machine = re.search(r"(x86_64|aarch64|arm64|amd64|ppc64le|s390x)", platform_text.lower())
    if machine:
        env["platform_machine"] = {"arm64": "aarch64", "amd64": "x86_64"}.get(machine.group(1), machine.group(1))
    env.update(
        sys_platform="linux",
        platform_system="Linux",
        os_name="posix",
        implementation_name="cpython",
        platform_python_implementation="CPython",
    )
    return env


def _requires(name: str, target: dict[str, str]) -> list[str]:
    """The distributions ``name`` (installed here) needs, markers evaluated for ``target``."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        declared = md.distribution(name).requires or []
    except md.PackageNotFoundError:
        return []
    found = []
    for text in declared:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({**target, "extra": ""}):
            continue  # an extra's requirement, or another platform's
        found.append(normalise(requirement.name))
    return found


def _installed_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def pins(
    version: ModelVersion,
    trained: dict[str, str],
    *,
    target: dict[str, str],
    server: bool = True,
    project: str | None = None,
) -> list[Pin]:
    """The pinned closure of what loads ``version`` (and, with ``server``, serves it) on the
    ``target`` marker environment, sorted by name; conveyor itself is left out (a bundle ships
    its wheel). Dependencies are read from the distributions installed here. A pickle that needs
    modules of the ``project`` folder, which no distribution provides, is refused."""
    from conveyor.registry._compat import module_distributions, pickled_modules

    unknown = module_distributions(pickled_modules(version), near=[project] if project else None)[1]
    if unknown:
        raise UsageError(
            f"{version.ref} is a pickle that imports {', '.join(unknown)}, which no installed distribution "
            "provides (the project's own code?)",
            hint="make that code an installable package and install it where you build, or save the model with skops",
        )
    roots = list(model_packages(version))
    if server:
        roots += ["conveyor", *SERVER_PACKAGES]
    wanted = [normalise(r) for r in roots]
    seen: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in seen or name in _NEVER:
            continue
        if name != "conveyor" and _installed_version(name) is None:
            if name == "uvloop" and name not in trained:
                continue  # an optional speed-up of the server, absent on some platforms
            wanted_pin = f"{name}=={trained[name]}" if name in trained else name
            where = f"its run had {wanted_pin}" if name in trained else "its run did not have it either"
            raise UsageError(
                f"cannot pin the dependencies of '{name}' for {version.ref}: it is not installed here ({where})",
                hint=f"install it where you build (pip install {wanted_pin}), then build again",
            )
        seen.add(name)
        wanted.extend(_requires(name, target))
    found = []
    for name in sorted(seen - {"conveyor"}):
        recorded = trained.get(name)
        if recorded is not None:
            found.append(Pin(name, recorded, "run"))
        else:
            installed = _installed_version(name)
            assert installed is not None
            found.append(Pin(name, installed, "build"))
    return found


def render(pins_: list[Pin], *, ref: str, wheel: str) -> str:
    """``requirements.lock``: every pin, then conveyor's wheel by path (the bundle's own)."""
    lines = [
        f"# The Python packages {ref} loads and is served with, pinned: written by conveyor build.",
        "# Install from the bundle's folder, dependencies already resolved:",
        "#   pip install --no-deps -r requirements.lock",
    ]
    width = max((len(p.line()) for p in pins_), default=0)
    for pin in pins_:
        note = "from the training run" if pin.origin == "run" else "where the bundle was built"
        lines.append(f"{pin.line():<{width}}  # {note}")
    lines.append(f"./wheels/{wheel}")
    return "\n".join(lines) + "\n"


def parse(text: str) -> dict[str, str]:
    """The ``name==version`` pins of a ``requirements.lock`` (normalised names)."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s#;]+)", line)
        if match:
            found[normalise(match.group(1))] = match.group(2)
    return found
