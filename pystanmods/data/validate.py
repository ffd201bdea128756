"""Checks at the boundary between a user's tidy frame and a Stan program.

Every check raises :class:`DataError` with the column, an offending value and
the number of rows affected, so that the message alone says what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from pystanmods.data.errors import DataError


def preview(values: Iterable[object], limit: int = 3) -> str:
    """The first ``limit`` values, quoted, then ``...`` if there are more: for messages."""
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (", ..." if len(values) > limit else "")


def resolve_columns(
    data: pd.DataFrame,
    required: Sequence[str],
    optional: Sequence[str] = (),
    columns: Mapping[str, str] | None = None,
    model: str = "this model",
) -> pd.DataFrame:
    """Return a frame holding the model's columns under their canonical names.

    Parameters
    ----------
    data : pandas.DataFrame
        Tidy data, one row per observation.
    required, optional : sequence of str
        Canonical column names (``gene``, ``cell_line``, ``sgrna``, ``logfc``, ...).
    columns : mapping, optional
        Canonical name to the name used in ``data``, e.g. ``{"gene": "hugo_symbol"}``.
    model : str
        Model name, for messages.

    Returns
    -------
    pandas.DataFrame
        A copy with canonical column names and the original index.
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"{model} needs a pandas DataFrame, got {type(data).__name__}")
    columns = dict(columns or {})
    unknown = set(columns) - set(required) - set(optional)
    if unknown:
        raise DataError(
            f"columns= maps {sorted(unknown)}, which {model} does not use; "
            f"it uses {sorted(set(required) | set(optional))}"
        )
    if len(data) == 0:
        raise DataError(f"the data frame is empty (0 rows): {model} needs at least one observation")
    missing = [c for c in required if columns.get(c, c) not in data.columns]
    if missing:
        names = [f"'{columns.get(c, c)}'" + (f" (for '{c}')" if c in columns else "") for c in missing]
        raise DataError(
            f"{model} needs column {', '.join(names)}, missing from the data "
            f"({len(data)} rows; columns are {list(data.columns)}); "
            "pass columns={...} to map other names"
        )
    keep = {columns.get(c, c): c for c in [*required, *optional] if columns.get(c, c) in data.columns}
    return data.loc[:, list(keep)].rename(columns=keep)


def numeric_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Return ``frame[column]`` as finite floats, or raise naming the bad rows."""
    series = frame[column]
    values = pd.to_numeric(series, errors="coerce")
    if series.dtype == bool:
        values = series.astype(float)
    non_numeric = values.isna() & series.notna()
    if non_numeric.any():
        bad = series[non_numeric].unique()
        raise DataError(
            f"column '{column}' has non-numeric values in {int(non_numeric.sum())} of "
            f"{len(series)} rows, e.g. {preview(bad)}"
        )
    array = values.to_numpy(dtype=float)
    nan = np.isnan(array)
    if nan.any():
        raise DataError(
            f"column '{column}' has missing values (NaN) in {int(nan.sum())} of {len(array)} rows; "
            "drop or impute them before fitting"
        )
    inf = np.isinf(array)
    if inf.any():
        raise DataError(
            f"column '{column}' has infinite values in {int(inf.sum())} of {len(array)} rows, "
            f"e.g. {preview(array[inf].tolist())}"
        )
    return array


def label_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """Return a categorical column as strings, or raise naming missing labels."""
    series = frame[column]
    missing = series.isna()
    if missing.any():
        raise DataError(
            f"column '{column}' has missing labels in {int(missing.sum())} of {len(series)} rows"
        )
    return series.astype(str)
