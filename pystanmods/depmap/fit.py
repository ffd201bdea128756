"""Fit catalogue models to a prepared DepMap frame."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pystanmods.data import DataError
from pystanmods.models import Model, all_models, get_model

#: Where a missing column would come from, for messages.
_SOURCES = {
    "rna": "the expression table OmicsExpressionProteinCodingGenesTPMLogp1.csv",
    "sgrna": "the guide map",
}


def _complete(frame: pd.DataFrame, model: Model) -> pd.Series:
    return frame[list(model.required)].notna().all(axis=1)


def supported_models(frame: pd.DataFrame) -> list[str]:
    """Models of the catalogue that this frame can be fitted to as it is.

    A model is supported when the frame has its required columns with at
    least one complete row; Model 1 fits one gene, so it is listed only for a
    one-gene frame (subset with ``frame[frame.gene == "KRAS"]``).
    """
    names = []
    for model in all_models():
        if any(c not in frame.columns for c in model.required):
            continue
        complete = _complete(frame, model)
        if not complete.any():
            continue
        if not model.hierarchical and "gene" in frame and frame.loc[complete, "gene"].nunique() > 1:
            continue
        names.append(model.name)
    return names


def check_frame(frame: pd.DataFrame, model: str | Model, *, missing: str = "drop", verbose: bool = True) -> pd.DataFrame:
    """The rows of ``frame`` that ``model`` can use, or a DataError saying why none.

    Parameters
    ----------
    missing : {"drop", "error"}
        Rows with NA in a column the model uses (e.g. ``rna`` for genes without
        expression, kept by ``prepare(missing="keep")``) are dropped and counted,
        or raise.
    """
    model = get_model(model)
    absent = [c for c in model.required if c not in frame.columns]
    if absent:
        hints = [f"{c} (from {_SOURCES[c]})" if c in _SOURCES else c for c in absent]
        raise DataError(
            f"{model.name} needs column {', '.join(hints)}, missing from the frame "
            f"({len(frame)} rows; columns are {list(frame.columns)})"
        )
    if missing not in ("drop", "error"):
        raise ValueError(f"missing must be 'drop' or 'error', got {missing!r}")
    lacking = frame[list(model.required)].isna()
    bad = lacking.any(axis=1)
    if bad.any():
        per_column = {c: int(n) for c, n in lacking.sum().items() if n}
        detail = ", ".join(f"{c}: {n}" for c, n in per_column.items())
        if missing == "error" or bad.all():
            raise DataError(
                f"{model.name}: {int(bad.sum())} of {len(frame)} rows have NA in the columns it uses ({detail})"
                + ("" if missing == "error" else "; no complete row is left")
            )
        if verbose:
            print(f"{model.name}: dropped {int(bad.sum())} of {len(frame)} rows with NA ({detail})")
        frame = frame[~bad]
    model.check_units(frame)
    return frame


def fit_frame(model: str | Model, frame: pd.DataFrame, *, missing: str = "drop", verbose: bool = True, **fit_kwargs: Any):
    """Fit a catalogue model to a frame made by :func:`pystanmods.depmap.prepare`.

    Parameters
    ----------
    model : str or Model
        e.g. ``"model5"``; see :func:`supported_models`.
    frame : pandas.DataFrame
        A prepared frame (canonical column names).
    missing : {"drop", "error"}
        What to do with rows that have NA in a column the model uses
        (see :func:`check_frame`); dropped rows are counted and printed.
    verbose : bool
        Print how many rows were dropped.
    **fit_kwargs
        Passed to :func:`pystanmods.fit` (``parameterization``, ``engine``,
        ``chains``, ``iter_warmup``, ``iter_sampling``, ``seed``, ``adapt_delta``, ...).

    Returns
    -------
    StanFit

    Notes
    -----
    Models 3, 4 and 5-flat treat every guide and replicate of a gene in a cell
    line as a replicate measurement of that gene x cell line; Model 5 keeps
    the guide level. ``rna`` is one value per gene x cell line after the join,
    as Models 3 and 4 require (checked here).
    """
    from pystanmods.sampling import fit

    if "columns" in fit_kwargs:
        raise ValueError("fit_frame takes a prepared frame with canonical column names; columns= is not used")
    usable = check_frame(frame, model, missing=missing, verbose=verbose)
    return fit(get_model(model), usable, **fit_kwargs)
