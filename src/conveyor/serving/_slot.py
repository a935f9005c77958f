"""The model a server answers with: a registered version, loaded (its artifact verified by
hash), warmed up, and replaced by another in one assignment.

Requests read :attr:`ModelSlot.current` once and use that :class:`Loaded` to the end, so a
swap never mixes two versions in one answer and never fails a request in flight.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from conveyor.errors import ConveyorError, DataError
from conveyor.serving._protocol import InferRequest, ProtocolError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from conveyor.registry import ModelVersion, Signature


class ModelSource(Protocol):
    """Where a server gets its versions: the registry, or a bundle (one pinned version)."""

    def get(self, ref: str) -> ModelVersion: ...

    def load(self, ref: str | ModelVersion, *, environment: str = "warn") -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Loaded:
    """One version in memory, ready to predict."""

    version: ModelVersion
    model: Any
    loaded_at: float = field(default_factory=time.time)
    # the model as it takes a float matrix, and the column order it was fitted in (None: the
    # signature's); None when it must be given a DataFrame (pipelines that select by name)
    _array: tuple[Any, list[str]] | None = field(default=None, init=False, repr=False, compare=False)
    # request columns -> the positions that give the model its columns (plain-number requests)
    _positions: dict[tuple[str, ...], list[int] | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _plain: tuple[Any, list[str] | None] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        signature = self.version.signature
        names = [c.name for c in signature.inputs] if signature is not None and signature.inputs else None
        array = _array_model(self.model, names)
        if array is not None and names is not None:
            array = (array[0], array[1] or names)
            if any(c.type != "double" for c in signature.inputs):  # type: ignore[union-attr]
                array = None  # other types are converted column by column (conform)
        object.__setattr__(self, "_array", array if names is not None else None)
        object.__setattr__(self, "_plain", _array_model(self.model, names))

    @property
    def name(self) -> str:
        return self.version.model

    @property
    def number(self) -> int:
        return self.version.version

    @property
    def signature(self) -> Signature | None:
        return self.version.signature

    def predict_request(self, request: InferRequest, *, proba: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`predict` for a decoded request: a plain-number request whose columns hold
        every input goes to the model as a float matrix, with no DataFrame made at all."""
        matrix = self._matrix_of(request)
        if matrix is None or self._array is None:
            return self.predict(request.frame, proba=proba)
        return self._run(self._array[0], matrix, proba)

    def _matrix_of(self, request: InferRequest) -> np.ndarray | None:
        if request.matrix is None or request.columns is None or self._array is None:
            return None
        positions = self._positions.get(request.columns, [])
        if positions == []:
            where = {name: i for i, name in enumerate(request.columns)}
            wanted = self._array[1]
            positions = None if any(name not in where for name in wanted) else [where[name] for name in wanted]
            if len(self._positions) < 64:
                self._positions[request.columns] = positions
        if positions is None:
            return None  # a column is missing: the careful path names it
        if positions == list(range(len(request.columns))):
            return request.matrix
        return request.matrix[:, positions]

    def predict(self, frame: pd.DataFrame, *, proba: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (and class probabilities, when asked and the model gives them) for every row.
        Input that does not fit the signature is a :class:`ProtocolError` naming the column;
        a model that cannot predict on input that does fit is one too (422), with its reason."""
        features: Any = conform(frame, self.signature)
        model = self.model
        plain = self._plain
        if plain is not None:
            matrix = _matrix(features, plain[1])
            if matrix is not None:  # a float matrix: no per-call DataFrame checks in the model
                model, features = plain[0], matrix
        return self._run(model, features, proba)

    def _run(self, model: Any, features: Any, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        import numpy as np

        try:
            labels = np.asarray(model.predict(features))
            probabilities = None
            if proba and hasattr(model, "predict_proba"):
                probabilities = np.asarray(model.predict_proba(features), dtype=np.float64)
        except Exception as exc:  # whatever the model raises is about this input
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ProtocolError(
                f"the model could not predict on this input: {type(exc).__name__}: {reason}", 422
            ) from exc
        if labels.ndim != 1 or len(labels) != len(features):
            raise ProtocolError(f"the model returned shape {labels.shape} for {len(features)} rows", 500)
        return labels, probabilities


def _array_model(model: Any, names: list[str] | None) -> tuple[Any, list[str] | None] | None:
    """The model as it can be given a plain float matrix, with the column order to give it.

    A scikit-learn estimator fitted on an array takes one as it is. One fitted on a DataFrame
    checks the column names of every call (a millisecond for one row) and warns on an array:
    once the server has checked the names against the signature, a shallow copy without the
    remembered names takes the columns in their fitted order. Pipelines and column
    transformers may select columns by name, so they keep getting DataFrames."""
    import copy

    if not hasattr(model, "n_features_in_") or not hasattr(model, "predict"):
        return None
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is None:
        return model, None
    module = type(model).__module__
    if names is None or module.startswith(("sklearn.pipeline", "sklearn.compose")) or not module.startswith("sklearn."):
        return None
    order = [str(n) for n in fitted]
    if set(order) != set(names):
        return None
    plain = copy.copy(model)
    try:
        del plain.feature_names_in_
    except AttributeError:
        return None
    return plain, order


def _matrix(features: Any, order: list[str] | None) -> Any:
    """``features`` as a float64 matrix in ``order`` (its own order when None); None when a
    column is not numeric (the model then gets the DataFrame and says what it thinks)."""
    import numpy as np

    if not hasattr(features, "to_numpy"):
        return None
    if order is not None and list(features.columns) != order:
        features = features[order]
    if not all(dtype.kind in "fiu" for dtype in features.dtypes):
        return None
    return features.to_numpy(dtype=np.float64)


def conform(frame: pd.DataFrame, signature: Signature | None) -> pd.DataFrame:
    """The signature's input columns of ``frame``, in its order and converted to its types
    (numbers sent as text become numbers); a missing or unusable column is a 400 naming it."""

    if signature is None or not signature.inputs:
        return frame
    fast = _all_double(frame, signature)
    if fast is not None:
        return fast
    try:
        return _conform(frame, signature)
    except OverflowError:
        raise ProtocolError("a value is out of range for the column's type") from None


def _conform(frame: pd.DataFrame, signature: Signature) -> pd.DataFrame:
    import pandas as pd

    try:
        signature.validate(frame, what="input")
    except DataError as exc:
        raise ProtocolError(exc.message) from None
    out = {}
    for spec in signature.inputs:
        column = frame[spec.name]
        if spec.type in ("double", "long") and column.dtype.kind not in "biuf":
            column = pd.to_numeric(column, errors="coerce")
        if spec.type == "double":
            column = column.astype("float64")
        elif spec.type == "long" and column.notna().all():
            column = column.astype("int64")
        elif spec.type == "datetime":
            column = pd.to_datetime(column, errors="coerce")
        out[spec.name] = column
    return pd.DataFrame(out, index=frame.index)


def _all_double(frame: pd.DataFrame, signature: Signature) -> pd.DataFrame | None:
    """The common case in one step: every input a double, every column there and numeric;
    None otherwise (the careful path then names what is wrong)."""
    import numpy as np
    import pandas as pd

    names = [c.name for c in signature.inputs]
    if any(c.type != "double" for c in signature.inputs):
        return None
    columns = frame.columns
    if not all(name in columns for name in names):
        return None
    chosen = frame if list(columns) == names else frame[names]
    dtypes = chosen.dtypes
    if not all(dtype.kind in "fiu" for dtype in dtypes):
        return None
    if chosen is frame and all(dtype == np.float64 for dtype in dtypes):
        return frame  # already what the model needs: no copy
    return pd.DataFrame(chosen.to_numpy(dtype=np.float64), columns=names, index=frame.index)


def warm_up_frame(signature: Signature | None, recent: pd.DataFrame | None) -> pd.DataFrame | None:
    """What to warm a new version up with: recent live requests when there are some (real
    inputs), else one row made from the signature (zeros, empty text)."""
    import pandas as pd

    if recent is not None and len(recent):
        return recent
    if signature is None or not signature.inputs:
        return None
    defaults = {"double": 0.0, "long": 0, "boolean": False, "string": "", "datetime": pd.Timestamp(0)}
    return pd.DataFrame({c.name: [defaults.get(c.type, 0)] for c in signature.inputs})


class ModelSlot:
    """The version being served, swapped atomically."""

    def __init__(self, environment: str = "refuse") -> None:
        self.current: Loaded | None = None
        self.last_error: str | None = None  # why the last load or warm-up failed, for /ready and logs
        self.environment = environment  # a version trained with other package versions: refuse, warn, off

    def load(self, source: ModelSource, ref: str | ModelVersion, *, recent: pd.DataFrame | None = None) -> Loaded:
        """Load and warm up a version without touching :attr:`current`; a failure is a
        :class:`ConveyorError` (and is remembered in :attr:`last_error`)."""
        try:
            version = ref if not isinstance(ref, str) else source.get(ref)
            model = source.load(version, environment=self.environment)
            candidate = Loaded(version, model)
            sample = warm_up_frame(candidate.signature, recent)
            if sample is not None:
                candidate.predict(sample, proba=True)
        except ProtocolError as exc:
            self.last_error = f"warm-up failed: {exc.message}"
            raise ConveyorError(f"{ref if isinstance(ref, str) else ref.ref}: {self.last_error}") from exc
        except ConveyorError as exc:
            self.last_error = exc.message
            raise
        self.last_error = None
        return candidate

    def swap(self, loaded: Loaded | None) -> Loaded | None:
        """Serve ``loaded`` from the next request on; returns what was served before."""
        before, self.current = self.current, loaded
        return before
