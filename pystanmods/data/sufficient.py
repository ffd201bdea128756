"""Sufficient statistics of rows that share a mean (replicate screens)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def unit_statistics(keys: Mapping[str, np.ndarray], y: np.ndarray, outcome: str = "logfc") -> dict[str, Any]:
    """Collapse rows with the same index keys into count, mean and sum of squares.

    A normal likelihood of rows that share a mean depends on them only through
    these, so a program can evaluate one term per unit instead of one per row.

    Parameters
    ----------
    keys : mapping
        Stan index name (e.g. ``"sgrna"``) to its 1-based codes, one per row.
    y : numpy.ndarray
        The outcome, one value per row.
    outcome : str
        Name of the outcome in the returned keys.

    Returns
    -------
    dict
        ``U``; ``unit_<key>`` per key; ``unit_n``, ``unit_<outcome>`` (the
        mean) and ``ss_<outcome>`` (the pooled within-unit sum of squares).
        Units are sorted by their keys, first key first: the Model 5
        programs read the units as the rows of a sparse (CSR) guide x cell-line
        matrix, which needs them grouped by guide, and they check it.
    """
    y = np.asarray(y, dtype=float)
    stacked = np.column_stack([np.asarray(codes) for codes in keys.values()])
    units, inverse, counts = np.unique(stacked, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    means = np.bincount(inverse, weights=y) / counts
    ss = float(np.sum((y - means[inverse]) ** 2))
    data: dict[str, Any] = {"U": int(units.shape[0])}
    for j, name in enumerate(keys):
        data[f"unit_{name}"] = units[:, j].astype(int)
    data["unit_n"] = counts.astype(float)
    data[f"unit_{outcome}"] = means
    data[f"ss_{outcome}"] = ss
    return data

