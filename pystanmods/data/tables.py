"""Reading a user's tidy table from disk, keeping labels as written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from pystanmods.data.validate import LABEL_COLUMNS


def read_tidy(
    path: str | Path, columns: Mapping[str, str] | None = None, labels: Iterable[str] = ()
) -> pd.DataFrame:
    """Read a CSV (or ``.tsv``/``.tab``) with its label columns as text.

    Parameters
    ----------
    path : str or Path
    columns : mapping, optional
        Canonical name to the name in the file (as ``columns=`` of ``fit``);
        the mapped names of :data:`LABEL_COLUMNS` are read as strings.
    labels : iterable of str
        Further columns to read as strings (e.g. a batch's ``--by`` columns).

    Notes
    -----
    pandas would read ``001`` and ``1`` as the same integer, merging two genes
    or cell lines; read as strings they stay distinct, as the user wrote them.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"data file {path} not found")
    mapping = dict(columns or {})
    text = {mapping.get(c, c) for c in LABEL_COLUMNS} | set(labels)
    return pd.read_csv(file, sep="\t" if file.suffix in (".tsv", ".tab") else ",", dtype={c: str for c in text})
