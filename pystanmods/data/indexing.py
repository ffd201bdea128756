"""Categorical labels to Stan's 1-based integer indices, keeping the labels as coords."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pystanmods.data.errors import DataError
from pystanmods.data.validate import preview


@dataclass(frozen=True)
class Index:
    """A 1-based index over the levels of one column.

    Attributes
    ----------
    codes : numpy.ndarray
        One integer in ``1..len(labels)`` per row.
    labels : list of str
        The level of each code, in code order; these become InferenceData coords.
    """

    codes: np.ndarray
    labels: list[str]

    @property
    def size(self) -> int:
        return len(self.labels)


def encode(series: pd.Series) -> Index:
    """Encode labels as 1-based codes.

    Levels are sorted, except that an ordered or explicit categorical keeps its
    category order; unused categories are not given a parameter.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        used = [c for c in series.cat.categories if c in set(series)]
        labels = [str(c) for c in used]
        lookup = {str(c): i for i, c in enumerate(used, start=1)}
        codes = series.astype(str).map(lookup).to_numpy(dtype=int)
    else:
        values = series.astype(str)
        uniques = sorted(values.unique())
        lookup = {label: i for i, label in enumerate(uniques, start=1)}
        codes = values.map(lookup).to_numpy(dtype=int)
        labels = uniques
    return Index(codes=codes, labels=labels)


def nested(child: pd.Series, parent: pd.Series, child_index: Index, parent_index: Index) -> np.ndarray:
    """Map each child level (e.g. sgRNA) to its one parent level (e.g. gene).

    Returns
    -------
    numpy.ndarray
        For each child code ``1..K``, the 1-based parent code.

    Raises
    ------
    DataError
        When a child level occurs with more than one parent.
    """
    pairs = pd.DataFrame({"child": child.astype(str).to_numpy(), "parent": parent.astype(str).to_numpy()})
    parents_per_child = pairs.groupby("child")["parent"].nunique()
    ambiguous = parents_per_child[parents_per_child > 1].index.tolist()
    if ambiguous:
        rows = int(pairs["child"].isin(ambiguous).sum())
        first = ambiguous[0]
        targets = sorted(pairs.loc[pairs["child"] == first, "parent"].unique())
        raise DataError(
            f"column '{child.name}' value {first!r} maps to more than one '{parent.name}' "
            f"({preview(targets)}); {len(ambiguous)} such value(s) in {rows} rows. "
            f"Each {child.name} must belong to exactly one {parent.name}"
        )
    first_parent = pairs.drop_duplicates("child").set_index("child")["parent"]
    parent_lookup = {label: i for i, label in enumerate(parent_index.labels, start=1)}
    return np.array([parent_lookup[first_parent[label]] for label in child_index.labels], dtype=int)
