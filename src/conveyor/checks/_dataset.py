"""A table to check: a pandas DataFrame (or a CSV/Parquet file), its label, and each column's kind.

Columns are classified once (numeric, categorical, datetime, text) and converted once into
the arrays every check works on: numeric values as float64 with NaN for missing, categories
as integer codes (``pandas.factorize``, -1 for missing). Checks then run vectorised on
those arrays instead of on Python objects, which is where the speed comes from.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types

from conveyor.errors import DataError, MissingFileError, UsageError

Kind = Literal["numeric", "categorical", "datetime", "text"]

# an integer column with at most this many distinct values is a category (a code, a rating)
CATEGORICAL_MAX_INTEGERS = 10
# a string column whose distinct values are more than this share of its rows is free text (or an id)
TEXT_UNIQUE_SHARE = 0.5
TEXT_MIN_UNIQUE = 100


@dataclass
class Column:
    """One column, converted once for every check."""

    name: str
    kind: Kind
    series: pd.Series
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def missing(self) -> np.ndarray:
        if "missing" not in self._cache:
            self._cache["missing"] = self.series.isna().to_numpy()
        return self._cache["missing"]

    @property
    def numbers(self) -> np.ndarray:
        """float64 values, NaN where missing (numeric and datetime columns)."""
        if "numbers" not in self._cache:
            if self.kind == "datetime":
                values = pd.to_datetime(self.series, errors="coerce")
                numbers = values.astype("int64").to_numpy().astype(np.float64)
                numbers[values.isna().to_numpy()] = np.nan
            elif self.series.dtype == np.float64:
                numbers = self.series.to_numpy()  # the frame's own array (read-only), not a copy per column
            else:
                numbers = pd.to_numeric(self.series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            self._cache["numbers"] = numbers
        return self._cache["numbers"]

    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, categories)``: an int code per row (-1 where missing) and the distinct values."""
        if "codes" not in self._cache:
            codes, uniques = pd.factorize(self.series, use_na_sentinel=True)
            self._cache["codes"] = (codes, uniques.to_numpy() if hasattr(uniques, "to_numpy") else uniques)
        return self._cache["codes"]

    @property
    def n_unique(self) -> int:
        return len(self.codes()[1])


def classify(series: pd.Series) -> Kind:
    """The kind of a column, from its dtype and, for integers and strings, its distinct values."""

    if types.is_bool_dtype(series.dtype) or isinstance(series.dtype, pd.CategoricalDtype):
        return "categorical"
    if types.is_datetime64_any_dtype(series.dtype):
        return "datetime"
    if types.is_numeric_dtype(series.dtype):
        if types.is_integer_dtype(series.dtype) and series.nunique(dropna=True) <= CATEGORICAL_MAX_INTEGERS:
            return "categorical"
        return "numeric"
    present = series.dropna()
    if len(present) == 0:
        return "categorical"
    unique = present.nunique()
    if unique >= TEXT_MIN_UNIQUE and unique > TEXT_UNIQUE_SHARE * len(present):
        lengths = present.astype(str).str.len()
        if float(lengths.mean()) > 20:  # long strings: free text; short ones: an id or a code
            return "text"
    return "categorical"


def _class_like_floats(series: pd.Series) -> bool:
    """Floats that are few whole numbers, as integer classes become when read with a missing value."""
    if not types.is_float_dtype(series.dtype):
        return False
    values = series.dropna().unique()
    return 0 < len(values) <= CATEGORICAL_MAX_INTEGERS and bool(np.all(np.mod(values, 1) == 0))


class Dataset:
    """A table, its label column and the kind of each feature.

    ``categorical`` forces columns to be categories (and ``numeric`` to be numbers) where the
    inference from dtypes would guess wrong, as Deepchecks' ``cat_features`` does.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        label: str | None = None,
        features: Sequence[str] | None = None,
        categorical: Sequence[str] = (),
        numeric: Sequence[str] = (),
        name: str = "data",
    ) -> None:

        if not isinstance(frame, pd.DataFrame):
            raise UsageError(f"{name}: expected a pandas DataFrame, got {type(frame).__name__}")
        if not all(isinstance(c, str) for c in frame.columns):
            frame = frame.rename(columns=str)  # a copy: the caller's frame keeps its column labels
        self.frame = frame
        self.name = name
        self.label = label
        if label is not None and label not in frame.columns:
            raise DataError(
                f"{name}: label column '{label}' is not in the data",
                hint=f"columns are {_listing(frame.columns)}; pass the right --label",
            )
        chosen = list(features) if features is not None else [c for c in frame.columns if c != label]
        unknown = [c for c in (*chosen, *categorical, *numeric) if c not in frame.columns]
        if unknown:
            raise DataError(
                f"{name}: column '{unknown[0]}' is not in the data", hint=f"columns are {_listing(frame.columns)}"
            )
        self.features = [c for c in chosen if c != label]
        both = [c for c in categorical if c in set(numeric)]
        if both:
            raise UsageError(
                f"{name}: column '{both[0]}' is declared both categorical and numeric", hint="declare it once"
            )
        self._forced: dict[str, Kind] = {c: "categorical" for c in categorical}
        self._forced.update({c: "numeric" for c in numeric})
        self._columns: dict[str, Column] = {}

    def __len__(self) -> int:
        return len(self.frame)

    def column(self, name: str) -> Column:
        if name not in self._columns:
            series = self.frame[name]
            kind = self._forced.get(name) or classify(series)
            if name == self.label and name not in self._forced and _class_like_floats(series):
                kind = "categorical"  # 0.0/1.0: a class label read as floats (one value was missing in the CSV)
            self._columns[name] = Column(name, kind, series)
        return self._columns[name]

    @property
    def label_column(self) -> Column | None:
        return None if self.label is None else self.column(self.label)

    def kinds(self) -> dict[str, Kind]:
        return {name: self.column(name).kind for name in self.features}

    def of_kind(self, *kinds: Kind) -> list[Column]:
        return [self.column(name) for name in self.features if self.column(name).kind in kinds]

    @functools.cached_property
    def row_hashes(self) -> np.ndarray:
        """A 64-bit hash per row of the features (not the label): equal rows, equal hashes."""
        return _hash_rows(self.frame, self.features)

    @functools.cached_property
    def full_row_hashes(self) -> np.ndarray:
        """A 64-bit hash per row of every column, the label included."""
        return _hash_rows(self.frame)

    @property
    def task(self) -> Literal["classification", "regression"] | None:
        """What predicting the label is: classification for categories, regression for numbers."""
        column = self.label_column
        if column is None:
            return None
        if column.kind == "numeric":
            return "regression"
        return "classification"


def _hash_rows(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> np.ndarray:
    """A 64-bit hash per row, by value: 1 and 1.0 hash alike (a column read as float because one
    value is missing still matches the same column read as integers)."""
    # Column by column into one running hash (the mixing of pandas' combine_hash_arrays): only
    # one column's temporaries live at a time, never a converted copy of the whole frame.
    # ``columns`` are read one by one: ``frame[columns]`` would copy them all (pandas before copy-on-write).
    names = list(frame.columns) if columns is None else list(columns)
    out = np.full(len(frame), 0x345678, dtype=np.uint64)
    mult = np.uint64(1000003)
    count = len(names)
    with np.errstate(over="ignore"):
        for i, name in enumerate(names):
            series = frame[name]
            if series.dtype == np.float64:
                values: pd.Series = series
            elif types.is_numeric_dtype(series.dtype):
                values = series.astype("float64")
            else:
                values = series
            out ^= pd.util.hash_pandas_object(values, index=False).to_numpy()
            out *= mult
            mult += np.uint64(82520 + 2 * (count - i))
        out += np.uint64(97531)
    return out


def category_keys(series: pd.Series) -> pd.Series:
    """Each value as text, numbers by value: 1 and 1.0 are the same category."""
    if types.is_numeric_dtype(series.dtype):
        return series.astype("float64").astype(str)
    return series.astype(str)


def _listing(columns: Sequence[Any] | pd.Index, limit: int = 8) -> str:
    shown = ", ".join(repr(str(c)) for c in list(columns)[:limit])
    more = f" and {len(columns) - limit} more" if len(columns) > limit else ""
    return shown + more


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV or Parquet file (by its suffix) into a DataFrame, with one-line errors."""

    file = Path(path)
    if not file.is_file():
        raise MissingFileError(f"{file}: no such data file", hint="check the path (CSV or Parquet)")
    suffix = file.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            try:
                return pd.read_parquet(file)
            except ImportError as exc:
                raise UsageError(
                    f"{file}: reading Parquet needs pyarrow", hint="pip install 'conveyor[parquet]'"
                ) from exc
        if suffix in (".csv", ".tsv", ".txt", ".gz"):
            return pd.read_csv(file, sep="\t" if suffix == ".tsv" else ",", low_memory=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, OSError) as exc:
        if isinstance(exc, pd.errors.EmptyDataError):
            raise DataError(f"{file}: the file is empty", hint="write the data first") from exc
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{file}: cannot read it as a table: {reason}", hint="check the file's format") from exc
    raise UsageError(f"{file}: unknown table format '{suffix}'", hint="use a .csv, .tsv or .parquet file")


def as_dataset(
    data: Dataset | pd.DataFrame | str | os.PathLike[str],
    *,
    label: str | None = None,
    categorical: Sequence[str] = (),
    numeric: Sequence[str] = (),
    name: str = "data",
) -> Dataset:
    """A :class:`Dataset` from a Dataset, a DataFrame or a path to a CSV/Parquet file."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        name = os.fspath(data) if name == "data" else name
        data = read_table(data)
    return Dataset(data, label=label, categorical=categorical, numeric=numeric, name=name)
