"""Screen quality of a gene-effect matrix: how well each cell line separates controls.

DepMap judges a screen by how far its common-essential genes (positive
controls) fall from its nonessential genes (negative controls) in the gene
effects of that cell line. Two numbers per cell line are the field's usual ones:

* **NNMD**, the null-normalised median difference,
  ``(median(essential) - median(nonessential)) / MAD(nonessential)``, with the
  MAD unscaled (the median absolute deviation from the median). More negative
  is better. It depends on the matrix's scale and noise, so it compares tools
  on the same data rather than against a fixed cut-off.
* **AUROC**, the probability that a nonessential gene's effect lies above an
  essential gene's effect in the same line (ties count one half). 1 is perfect
  separation, 0.5 is none.

Both are computed on whatever matrix they are given, so the same function
scores Chronos's matrix and a posterior-mean matrix of this package alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from pystanmods.data import DataError

#: The control-gene files of a DepMap release, by role.
CONTROL_FILES = {
    "essential": "AchillesCommonEssentialControls.csv",
    "nonessential": "AchillesNonessentialControls.csv",
}


def read_controls(path: str | Path) -> list[str]:
    """Read a DepMap control list (one ``Gene`` column of ``SYMBOL (ENTREZ_ID)`` labels).

    Parameters
    ----------
    path : str or Path
        A CSV with a ``Gene`` column, or a plain text file of one label per line.

    Returns
    -------
    list of str
        The labels, stripped, in file order, without duplicates.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"control list {path} does not exist")
    if path.suffix.lower() == ".csv":
        table = pd.read_csv(path, dtype=str)
        if "Gene" not in table.columns:
            raise DataError(
                f"{path}: control list needs a 'Gene' column; found {list(table.columns)} "
                f"in {len(table)} rows"
            )
        labels = table["Gene"]
    else:
        labels = pd.Series(path.read_text().splitlines(), dtype=str)
    labels = labels.dropna().str.strip()
    labels = labels[labels != ""]
    if labels.empty:
        raise DataError(f"{path}: control list is empty")
    return list(dict.fromkeys(labels))


def nnmd(positive: np.ndarray, negative: np.ndarray) -> float:
    """Null-normalised median difference of ``positive`` against ``negative`` (NaNs ignored)."""
    positive = np.asarray(positive, dtype=float)
    negative = np.asarray(negative, dtype=float)
    positive, negative = positive[np.isfinite(positive)], negative[np.isfinite(negative)]
    if positive.size == 0 or negative.size < 2:
        return float("nan")
    centre = np.median(negative)
    spread = np.median(np.abs(negative - centre))
    if spread == 0:
        return float("nan")
    return float((np.median(positive) - centre) / spread)


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a negative control's effect > a positive control's), ties one half (NaNs ignored)."""
    positive = np.asarray(positive, dtype=float)
    negative = np.asarray(negative, dtype=float)
    positive, negative = positive[np.isfinite(positive)], negative[np.isfinite(negative)]
    n_pos, n_neg = positive.size, negative.size
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # The Mann-Whitney U of the negatives over the positives, from mid-ranks.
    ranks = rankdata(np.concatenate([positive, negative]))
    u = ranks[n_pos:].sum() - n_neg * (n_neg + 1) / 2
    return float(u / (n_pos * n_neg))


def control_separation(
    gene_effect: pd.DataFrame,
    essential: Iterable[str],
    nonessential: Iterable[str],
) -> pd.DataFrame:
    """NNMD and AUROC of the controls in each cell line (row) of a gene-effect matrix.

    Parameters
    ----------
    gene_effect : pandas.DataFrame
        Cell lines as rows, genes as columns (DepMap's ``CRISPRGeneEffect`` layout);
        NaN where a gene was not scored in a line.
    essential, nonessential : iterable of str
        Control labels in the matrix's column labels.

    Returns
    -------
    pandas.DataFrame
        One row per cell line: ``nnmd``, ``auroc``, ``n_essential``, ``n_nonessential``
        (controls scored in that line).
    """
    columns = pd.Index(gene_effect.columns)
    positive = columns.intersection(pd.Index(list(essential)))
    negative = columns.intersection(pd.Index(list(nonessential)))
    if positive.empty or negative.empty:
        raise DataError(
            f"gene-effect matrix ({gene_effect.shape[0]} rows x {gene_effect.shape[1]} genes) holds "
            f"{len(positive)} essential and {len(negative)} nonessential controls; both are needed"
        )
    rows = []
    for line, values in gene_effect.iterrows():
        pos = values[positive].to_numpy(dtype=float)
        neg = values[negative].to_numpy(dtype=float)
        rows.append(
            {
                "cell_line": line,
                "nnmd": nnmd(pos, neg),
                "auroc": auroc(pos, neg),
                "n_essential": int(np.isfinite(pos).sum()),
                "n_nonessential": int(np.isfinite(neg).sum()),
            }
        )
    return pd.DataFrame(rows).set_index("cell_line")
