"""Optional transformations of covariates before a model sees them."""

from __future__ import annotations

import pandas as pd

from pystanmods.data.errors import DataError


def centre_within_cell_line(
    frame: pd.DataFrame, column: str = "rna", unit: tuple[str, str] = ("gene", "cell_line")
) -> pd.Series:
    """``frame[column]`` minus its mean over the genes of each cell line.

    The seed notes that some cell lines "tend to have higher RNA expression"
    overall (library depth, ploidy, normalisation). Without centring, that
    cell-line level enters every gene's RNA slope; after it, ``rna`` is a
    gene's expression relative to the other genes in the same cell line, and
    the cell-line level is left to the cell-line intercepts.

    The mean is over distinct ``unit`` pairs (gene x cell line), not rows, so
    that a gene with more guides or replicates does not weigh more.

    Parameters
    ----------
    frame : pandas.DataFrame
        Tidy data with ``column`` and the ``unit`` columns.
    column : str
        The covariate to centre (one value per gene x cell line).
    unit : tuple of str
        The columns that identify one value: (gene, cell line).

    Returns
    -------
    pandas.Series
        The centred values, aligned with ``frame``.

    Raises
    ------
    DataError
        When ``column`` takes more than one value within a gene x cell line.
    """
    gene, cell = unit
    values = frame[[gene, cell, column]]
    per_unit = values.groupby([gene, cell], sort=False)[column]
    varying = per_unit.nunique(dropna=False) > 1
    if varying.any():
        first = varying[varying].index[0]
        rows = int(frame.set_index([gene, cell]).index.isin(varying[varying].index).sum())
        raise DataError(
            f"column '{column}' takes more than one value within {gene} x {cell} {first!r} "
            f"({int(varying.sum())} such pairs, {rows} rows); it must be one value per {gene} and {cell}"
        )
    unit_means = per_unit.first().groupby(level=cell).mean()
    return frame[column] - frame[cell].map(unit_means)
