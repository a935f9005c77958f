"""Whether this environment can load a model the way the one it was trained in did.

A scikit-learn estimator pickled (or saved with skops) under one minor version is not supported
under another: it may fail to load, or load and predict differently. The packages that decide
this for each flavor and format are compared between the versions a model was trained with (its
run's recorded environment, or a bundle's lock) and the installed ones, at the level of the
version each package promises compatibility for.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.errors import EnvironmentMismatchError, UsageError

if TYPE_CHECKING:
    from conveyor.registry._records import ModelVersion

log = logging.getLogger("conveyor.registry")

MODES = ("refuse", "warn", "off")

# How much of a version must match to load a model: 1 = the major version, 2 = major.minor.
_PARTS = {
    "scikit-learn": 2,  # estimators are persisted and loaded only within a minor version
    "skops": 2,  # its file format moves with minor versions
    "numpy": 1,  # 2.0 moved numpy.core to numpy._core: older pickles of arrays break
    "pandas": 1,
    "scipy": 1,
    "joblib": 1,
    "xgboost": 1,
    "lightgbm": 1,
    "torch": 1,
    "onnxruntime": 1,  # ONNX files carry their opset: a newer runtime loads older models
}
# NumPy 2 reads NumPy 1 pickles, not the other way round: only an older major is refused.
_NEWER_LOADS_OLDER = frozenset({"numpy"})

# The distributions each flavor's models are loaded with, beyond those a pickle names.
_FLAVOR_PACKAGES = {
    "sklearn": ("scikit-learn", "numpy", "scipy"),
    "xgboost": ("xgboost", "numpy"),
    "lightgbm": ("lightgbm", "numpy"),
    "pytorch": ("torch",),
    "onnx": ("onnxruntime",),
    "python": (),
}
_FORMAT_PACKAGES = {"skops": ("skops",), "joblib": ("joblib",), "pickle": ("joblib",)}  # pickles load through joblib


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pickled_modules(version: ModelVersion) -> list[str]:
    """The top-level modules a pickled version names, less the standard library's."""
    import sys

    found = {str(m).split(".", 1)[0] for m in version.loader.get("modules", []) or []}
    return sorted(m for m in found if m not in sys.stdlib_module_names and m != "__main__")


def module_distributions(modules: list[str], *, near: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(distributions that provide ``modules``, the modules importable here or from the folders
    ``near`` (a project's own code) that no distribution provides)."""
    import importlib.machinery
    import importlib.metadata as md
    import importlib.util

    provided = md.packages_distributions()
    names: set[str] = set()
    unknown: list[str] = []
    for module in modules:
        if module in provided:
            names.update(normalise(d) for d in provided[module])
            continue
        try:
            found = module.isidentifier() and (
                importlib.util.find_spec(module) is not None
                or importlib.machinery.PathFinder.find_spec(module, near or []) is not None
            )
        except (ImportError, ValueError):
            found = False
        if found:  # importable, but from no distribution: the project's own code
            unknown.append(module)
        # else not importable here at all: a name the pickle reader took for a module, or one
        # missing here too (loading would fail before any bundle could help)
    return sorted(names), unknown


def model_packages(version: ModelVersion) -> list[str]:
    """The distributions loading ``version`` depends on (normalised names, sorted); modules of a
    pickle that no installed distribution provides (the project's own code) are left out."""
    names = set(_FLAVOR_PACKAGES.get(version.flavor, ())) | set(_FORMAT_PACKAGES.get(version.format, ()))
    names.update(module_distributions(pickled_modules(version))[0])
    return sorted(normalise(n) for n in names)


@dataclass(frozen=True)
class Mismatch:
    package: str
    trained: str
    installed: str | None  # None: not installed here

    def describe(self) -> str:
        if self.installed is None:
            return f"{self.package} {self.trained} (not installed here)"
        return f"{self.package} {self.trained} (this environment has {self.installed})"


def _release(version: str, parts: int) -> tuple[str, ...]:
    numbers = re.match(r"^\s*v?(\d+(?:\.\d+)*)", version)
    return tuple((numbers.group(1) if numbers else version).split(".")[:parts])


def _number(release: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in release)


def mismatches(version: ModelVersion, trained: dict[str, str], installed: dict[str, str]) -> list[Mismatch]:
    """The packages ``version`` loads with whose installed version differs from the one it was
    trained with at the level that breaks loading. A package the training run did not have is
    not compared (nothing is known about it)."""
    found = []
    for package in model_packages(version):
        was = trained.get(package)
        if was is None:
            continue
        now = installed.get(package)
        if now is None:
            found.append(Mismatch(package, was, None))
        else:
            parts = _PARTS.get(package, 2)
            trained_at, installed_at = _release(was, parts), _release(now, parts)
            if package in _NEWER_LOADS_OLDER:
                if _number(installed_at) < _number(trained_at):
                    found.append(Mismatch(package, was, now))
            elif trained_at != installed_at:
                found.append(Mismatch(package, was, now))
    return found


def installed_packages() -> dict[str, str]:
    """Normalised name -> version of every distribution installed here."""
    from conveyor.store import installed_distributions

    found = {}
    for line in installed_distributions():
        name, _, number = line.partition("==")
        found[name] = number
    return found


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UsageError(f"unknown environment check '{mode}'", hint=f"choose one of {', '.join(MODES)}")
    return mode


def enforce(version: ModelVersion, trained: dict[str, str] | None, *, mode: str, source: str) -> list[Mismatch]:
    """Refuse (``mode="refuse"``) or warn about loading ``version`` here when a package it loads
    with differs from the one it was trained with. ``source`` says where ``trained`` came from."""
    check_mode(mode)
    if mode == "off" or not trained:
        return []
    found = mismatches(version, trained, installed_packages())
    if not found:
        return found
    listed = "; ".join(m.describe() for m in found)
    message = f"{version.ref} was trained with {listed}, per {source}"
    pins = " ".join(f"{m.package}=={m.trained}" for m in found)
    if mode == "refuse":
        raise EnvironmentMismatchError(
            message + ": another version can fail to load it or change its predictions",
            hint=f"install {pins} (a bundle's requirements.lock pins them), or allow it with --allow-env-mismatch",
        )
    log.warning("%s: serving it anyway (--allow-env-mismatch)", message)
    return found
