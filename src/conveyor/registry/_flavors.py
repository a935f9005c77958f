"""Model flavors: what a model file is, how to save a model safely, and how to load one.

A *flavor* is the library (scikit-learn, XGBoost, LightGBM, PyTorch, ONNX, or a generic
Python callable); a *format* is the file's encoding. Detection never runs the file: pickles
are read opcode by opcode (:mod:`pickletools`) for the classes they would import, skops files
are listed with skops' own reader, other formats are told by their header.

Safety. A pickle (joblib too) runs code when loaded: conveyor loads one only when its
content hash is pinned (by the registry, which verifies the bytes before loading) or when
the caller says it trusts the file. scikit-learn models are saved as skops by default, which
loads no code: only types skops knows to be safe, plus those the registrant accepted when
registering (recorded with the version, pinned by its hash).
"""

from __future__ import annotations

import io
import os
import pickletools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.errors import ModelError, UsageError

FLAVORS = ("sklearn", "xgboost", "lightgbm", "pytorch", "onnx", "python")
FORMATS = (
    "skops",
    "joblib",
    "pickle",
    "onnx",
    "torchscript",
    "xgboost-json",
    "xgboost-ubj",
    "lightgbm-text",
)
PICKLE_FORMATS = ("joblib", "pickle")
_MODULE_FLAVORS = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "torch": "pytorch",
    "onnxruntime": "onnx",
}


@dataclass(frozen=True)
class Detected:
    flavor: str
    format: str
    loader: dict[str, Any] = field(default_factory=dict)  # what loading needs (skops: the accepted types)


def detect(path: str | os.PathLike[str], *, flavor: str | None = None, name: str | None = None) -> Detected:
    """The flavor and format of a model file, without running it (``name``: the file name to
    take the suffix from, for a cache object that has none)."""
    path = Path(path)
    if flavor is not None and flavor not in FLAVORS:
        raise UsageError(f"unknown flavor '{flavor}'", hint=f"choose one of {', '.join(FLAVORS)}")
    with open(path, "rb") as handle:
        head = handle.read(64)
    suffix = Path(name or path.name).suffix.lower()
    if suffix == ".skops" or (head.startswith(b"PK\x03\x04") and _is_skops(path)):
        return Detected(flavor or "sklearn", "skops", {"trusted_types": _skops_untrusted(path)})
    if suffix == ".onnx":
        return Detected(flavor or "onnx", "onnx")
    if suffix in (".pt", ".pth") or (head.startswith(b"PK\x03\x04") and suffix in (".zip", ".torchscript")):
        return Detected(flavor or "pytorch", "torchscript")
    if suffix == ".ubj":
        return Detected(flavor or "xgboost", "xgboost-ubj")
    if head.lstrip().startswith(b"{") and b'"learner"' in _read_some(path, 4096):
        return Detected(flavor or "xgboost", "xgboost-json")
    if head.startswith(b"tree\n") or head.startswith(b"tree\r\n"):
        return Detected(flavor or "lightgbm", "lightgbm-text")
    if head[:1] == b"\x80" or suffix in (".pkl", ".pickle", ".joblib"):
        modules = pickled_modules(path)
        fmt = "joblib" if suffix == ".joblib" or "joblib" in modules else "pickle"
        if flavor is None:
            flavor = next((_MODULE_FLAVORS[m] for m in modules if m in _MODULE_FLAVORS), "python")
        return Detected(flavor, fmt, {"modules": sorted(m for m in modules if m not in _BUILTIN_MODULES)})
    raise ModelError(
        f"{path}: not a model file conveyor can read",
        hint="save it as .skops, .joblib/.pkl, .onnx, .pt (TorchScript), XGBoost .json/.ubj or LightGBM .txt",
    )


_BUILTIN_MODULES = frozenset({"builtins", "copyreg", "collections", "_codecs", "__builtin__", "numpy", "joblib"})


def _read_some(path: Path, size: int) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(size)


def pickled_modules(path: str | os.PathLike[str]) -> set[str]:
    """Top-level modules whose names a pickle (or joblib) file would import, read without
    running it. Joblib stores array bytes after their pickle record: reading stops at the
    first thing that is not an opcode, after the classes that matter have been seen."""
    found: set[str] = set()
    pending: list[Any] = []  # the last two values pushed, for STACK_GLOBAL (module, name)
    memo: dict[int, Any] = {}
    with open(path, "rb") as handle:
        data = handle.read(16 * 1024 * 1024)
    try:
        for opcode, arg, _pos in pickletools.genops(io.BytesIO(data)):
            name = opcode.name
            if name in ("GLOBAL", "INST") and isinstance(arg, str):
                found.add(arg.split(" ", 1)[0].split(".", 1)[0])
            elif name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                pending = [*pending[-1:], arg]
            elif name == "MEMOIZE":  # numbers every value memoized, strings or not
                memo[len(memo)] = pending[-1] if pending else None
            elif name in ("BINPUT", "LONG_BINPUT", "PUT") and pending and isinstance(arg, int):
                memo[arg] = pending[-1]
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                pending = [*pending[-1:], memo.get(arg) if isinstance(arg, int) else None]
            elif name == "STACK_GLOBAL":
                if len(pending) == 2 and isinstance(pending[0], str):
                    found.add(pending[0].split(".", 1)[0])
                pending = []
            elif name not in ("FRAME", "PROTO"):
                pending = [*pending[-1:], None]  # something else was pushed in between
    except Exception:
        pass  # the end of the pickle part (joblib's array bytes follow), or not a pickle: what was seen stands
    return found


def _is_skops(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return "schema.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _skops_untrusted(path: Path) -> list[str]:
    try:
        import skops.io as sio
    except ImportError:
        raise UsageError("reading a .skops file needs skops", hint="pip install 'conveyor[sklearn]'") from None
    try:
        return sorted(sio.get_untrusted_types(file=path))
    except Exception as exc:
        raise ModelError(f"{path}: not a readable skops file: {exc}", hint="save the model again") from None


def save(model: Any, path: str | os.PathLike[str], *, format: str | None = None) -> Detected:
    """Save ``model`` to ``path``: scikit-learn objects as skops (loads no code), anything else
    with joblib. Returns what :func:`detect` would say of the file."""
    module = type(model).__module__.split(".", 1)[0]
    fmt = format or ("skops" if module == "sklearn" else "joblib")
    if fmt == "skops":
        try:
            import skops.io as sio
        except ImportError:
            raise UsageError("saving as skops needs skops", hint="pip install 'conveyor[sklearn]'") from None
        sio.dump(model, path)
    elif fmt in PICKLE_FORMATS:
        import joblib

        joblib.dump(model, path)
    else:
        raise UsageError(f"cannot save a model as '{fmt}'", hint="use skops or joblib")
    return detect(path, flavor=_MODULE_FLAVORS.get(module, "python"))


def load(path: str | os.PathLike[str], detected: Detected, *, pinned: bool, trust: bool = False) -> Any:
    """Load a model file as ``detected`` says. Pickles need ``pinned`` (their hash verified
    against the registry's) or ``trust``; skops files load the types accepted at registration."""
    fmt = detected.format
    try:
        if fmt in PICKLE_FORMATS:
            if not (pinned or trust):
                raise ModelError(
                    f"{path}: a {fmt} file runs code when loaded, and its hash is not pinned",
                    hint="register it ('conveyor model register') and load it from the registry, or say you "
                    "trust it (--trust / trust=True)",
                )
            import joblib

            return joblib.load(path)
        if fmt == "skops":
            import skops.io as sio

            accepted = list(detected.loader.get("trusted_types", [])) if (pinned or trust) else []
            return sio.load(path, trusted=accepted)
        if fmt == "onnx":
            return _OnnxModel(path)
        if fmt == "torchscript":
            import torch

            return torch.jit.load(str(path))
        if fmt in ("xgboost-json", "xgboost-ubj"):
            import xgboost

            booster = xgboost.Booster()
            booster.load_model(bytearray(Path(path).read_bytes()))  # by content: a cache object has no suffix
            return booster
        if fmt == "lightgbm-text":
            import lightgbm

            return lightgbm.Booster(model_file=str(path))
    except ImportError as exc:
        raise ModelError(
            f"{path}: loading a {detected.flavor} model needs {exc.name or 'its library'}",
            hint=f"pip install {exc.name or detected.flavor}",
        ) from None
    except ModelError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: cannot load the {fmt} file: {first}", hint="save the model again") from None
    raise ModelError(f"{path}: unknown model format '{fmt}'", hint=f"formats: {', '.join(FORMATS)}")


class _OnnxModel:
    """An ONNX model behind ``predict`` (and ``predict_proba`` when it has a probability output)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]

    def _run(self, features: Any) -> list[Any]:
        import numpy as np

        values = np.asarray(features.to_numpy() if hasattr(features, "to_numpy") else features, dtype=np.float32)
        return list(self.session.run(None, {self.input: values}))

    def predict(self, features: Any) -> Any:
        return self._run(features)[0]

    def predict_proba(self, features: Any) -> Any:
        import numpy as np

        results = self._run(features)
        if len(results) < 2:
            raise ModelError("the ONNX model has no probability output", hint="export it with its probabilities")
        proba = results[1]
        if isinstance(proba, list):  # a list of {class: probability} maps (skl2onnx's default)
            keys = sorted(proba[0])
            return np.array([[row[k] for k in keys] for row in proba])
        return np.asarray(proba)
