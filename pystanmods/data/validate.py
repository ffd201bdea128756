"""Checks at the boundary between a user's tidy frame and a Stan program.

Every check raises :class:`DataError` with the column, an offending value and
the number of rows affected, so that the message alone says what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from pystanmods.data.errors import DataError

#: Columns holding labels (levels of a group), compared as the text the user
#: wrote: a CSV reader keeps them as strings (``001`` is not ``1``).
LABEL_COLUMNS: tuple[str, ...] = ("gene", "cell_line", "sgrna", "lineage")

#: Largest magnitude accepted in a numeric column. logFC, standardised
#: expression and log2 copy number live within about +-50; a value past 1e6 is
#: a unit or missing-value code (1e300, 9.99e9), and squaring it in a normal
#: likelihood overflows or swamps every other row, so Stan cannot initialise.
MAX_ABS_VALUE = 1e6


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
    # An explicit mapping to a column the data lack is an error, not ignored,
    # even for an optional column: the user asked for that column, a typo
    # (``"celline"``) would otherwise fit without it unnoticed, and a warning
    # is lost in a batch run's worker logs.
    absent = {c: columns[c] for c in optional if c in columns and columns[c] not in data.columns}
    if absent:
        canonical, name = next(iter(absent.items()))
        raise DataError(
            f"columns= maps '{canonical}' to '{name}', which is not a column of the data "
            f"({len(data)} rows; columns are {list(data.columns)})"
        )
    keep = {columns.get(c, c): c for c in [*required, *optional] if columns.get(c, c) in data.columns}
    frame = data.loc[:, list(keep)].rename(columns=keep)
    for column in LABEL_COLUMNS:
        if column in frame:
            check_label_types(frame[column], column)
    return frame


def check_label_types(series: pd.Series, column: str) -> None:
    """Raise when labels of different types read as the same text (int ``1`` and str ``"1"``).

    Labels become Stan indices through their text, so such values would
    silently be merged into one level.
    """
    if series.dtype != object:
        return
    uniques = [v for v in pd.unique(series) if not (isinstance(v, float) and np.isnan(v)) and v is not None]
    by_text: dict[str, list[object]] = {}
    for value in uniques:
        by_text.setdefault(str(value), []).append(value)
    clashes = {text: values for text, values in by_text.items() if len(values) > 1}
    if clashes:
        text, values = next(iter(clashes.items()))
        rows = int(series.astype(str).isin(list(clashes)).sum())
        kinds = ", ".join(f"{v!r} ({type(v).__name__})" for v in values)
        raise DataError(
            f"column '{column}' mixes label types that read the same: {kinds} would become one "
            f"{column} {text!r}; {len(clashes)} such label(s) in {rows} of {len(series)} rows. "
            "Make the column all text (e.g. df[col].astype(str)) or all numbers first"
        )


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
    huge = np.abs(array) > MAX_ABS_VALUE
    if huge.any():
        raise DataError(
            f"column '{column}' has values of magnitude above {MAX_ABS_VALUE:g} in {int(huge.sum())} of "
            f"{len(array)} rows, e.g. {', '.join(f'{v:g}' for v in array[huge][:3])}; on the model's log scales such values "
            "are unit or missing-value codes, and the likelihood is meaningless with them"
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


#: Size symbols of the Stan programs and the column whose levels they count.
SIZE_COLUMNS = {"C": "cell_line", "G": "gene", "L": "lineage", "S": "sgrna"}


def require_two_levels(model: str, stan_code: str, data: Mapping[str, object], n_rows: int) -> None:
    """Raise when a sum-to-zero effect has fewer than two levels.

    A program that declares ``vector[C - 1]`` (or ``[G - 1]``, ``[L - 1]``)
    makes that group's effects sum to zero over its levels: with one level the
    effect is identically zero, its scale has nothing to describe, and the
    Helmert basis (``linspaced_vector(C - 1, 1, C - 1)``) is undefined, so Stan
    fails to initialise. Say so before sampling.
    """
    for symbol, column in SIZE_COLUMNS.items():
        if any(f"{a}{symbol} - 1{b}" in stan_code for a, b in (("[", "]"), ("[", ","), (", ", "]"))):
            levels = int(data.get(symbol, 2))  # type: ignore[call-overload]
            if levels < 2:
                raise DataError(
                    f"{model} needs at least two levels of '{column}', got {levels} over {n_rows} rows: "
                    f"its {column} effects sum to zero (identified against each other, not against the "
                    f"intercepts), which leaves no free effect with one {column}. Fit more {column}s, "
                    "or a model without that effect"
                )


class InitializationError(DataError, RuntimeError):
    """Stan found no starting point with a finite log density; the message names the likely cause.

    A DataError (bad input, one line on the command line) and still the
    RuntimeError the engines raised before, for callers that catch that.
    """


def explain_initialization_failure(model: str, frame: pd.DataFrame, inits: object, error: BaseException) -> str:
    """A message for Stan's ``Initialization failed`` naming the likely column or setting.

    Stan reports only that no random start (uniform(-2, 2) on the unconstrained
    scale) gave a finite log density and gradient. With data that passed
    :func:`numeric_column`, the usual causes are a column far off the scale the
    priors expect, or an ``inits`` setting outside the support.
    """
    scales = []
    for column in frame.columns:
        values = pd.to_numeric(frame[column], errors="coerce") if frame[column].dtype != bool else None
        if values is None or values.isna().all() or column in LABEL_COLUMNS:
            continue
        magnitude = values.abs()
        row = magnitude.idxmax()
        scales.append((float(magnitude.max()), column, row, float(values[row])))
    scales.sort(reverse=True)
    causes = []
    if inits is not None:
        causes.append(f"the inits setting ({preview([inits], 1)[:80]}) may start a parameter where the log density "
                      "is not finite; try inits=None (Stan's random starts)")
    if scales and scales[0][0] > 1e3:
        size, column, row, value = scales[0]
        causes.append(f"column '{column}' reaches {value:g} (row {row!r}), far off the scale of the priors "
                      "(logFC and covariates within about +-10); rescale it or remove the outlier")
    if not causes:
        shown = ", ".join(f"'{c}' up to {s:.3g}" for s, c, _, _ in scales[:3]) or "none"
        causes.append(f"no column stands out (largest |values|: {shown}); check the inits setting and the "
                      "group sizes, or rerun with another seed")
    stan = " ".join(str(error).split())
    return f"{model}: Stan could not initialise ({stan}) with {len(frame)} rows; likely cause: " + "; ".join(causes)
