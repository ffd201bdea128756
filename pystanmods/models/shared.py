"""Building blocks shared by the models whose guides are nested in genes
(Models 5, C, A, B and lineage): their Stan data, their group effects and
their simulated designs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pystanmods.data import encode, label_column, nested, numeric_column
from pystanmods.models.base import as_array, labels
from pystanmods.models.record import Effect

#: The guide-in-gene effects and the zero-sum cell-line effect of every model
#: built on Model 5.
GENE_EFFECT = Effect("epsilon_g", ("gene",))
GUIDE_EFFECT = Effect("alpha_s", ("sgrna",))
CELL_LINE_EFFECT = Effect("beta_c", ("cell_line",), free_dims=("cell_line_free",))


def guides_per_gene(value: Any, n_genes: int) -> list[int]:
    """Guides per gene from one count or a list of counts (then ``n_genes`` is ignored)."""
    if np.ndim(value) == 0:
        return [int(value)] * n_genes
    return [int(k) for k in value]


def guide_design(
    rng: np.random.Generator, sgrnas_per_gene: list[int], n_cells: int, n_reps: int, missing_fraction: float
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Every sgRNA in every cell line, minus a random share of sgRNA x cell-line cells."""
    n_genes = len(sgrnas_per_gene)
    genes, cells = labels("gene", n_genes), labels("cell", n_cells)
    sgrna_gene = np.repeat(np.arange(n_genes), sgrnas_per_gene)
    guides = labels("sgRNA_", sgrna_gene.size)
    s = np.repeat(np.arange(sgrna_gene.size), n_cells)
    c = np.tile(np.arange(n_cells), sgrna_gene.size)
    if missing_fraction > 0:
        keep = rng.random(s.size) >= missing_fraction
        s, c = s[keep], c[keep]
    s, c = np.tile(s, n_reps), np.tile(c, n_reps)
    replicate = np.repeat(np.arange(1, n_reps + 1), s.size // n_reps)
    frame = pd.DataFrame(
        {
            "gene": np.array(genes)[sgrna_gene[s]],
            "sgrna": np.array(guides)[s],
            "cell_line": np.array(cells)[c],
            "replicate": replicate,
        }
    )
    return frame, sgrna_gene, s, c


def guide_structure(frame: pd.DataFrame) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Stan data and coords of sgRNAs nested in genes, crossed with cell lines.

    Shared by the models whose guides are nested in genes (5, C, A, B, lineage).
    Raises :class:`DataError` when an sgRNA occurs under two genes.
    """
    gene_labels = label_column(frame, "gene")
    sgrna_labels = label_column(frame, "sgrna")
    gene = encode(gene_labels)
    sgrna = encode(sgrna_labels)
    cell = encode(label_column(frame, "cell_line"))
    data = {
        "N": len(frame),
        "G": gene.size,
        "C": cell.size,
        "S": sgrna.size,
        "sgrna": sgrna.codes,
        "sgrna_gene": nested(sgrna_labels, gene_labels, sgrna, gene),
        "cell_line": cell.codes,
        "logfc": numeric_column(frame, "logfc"),
    }
    coords = {
        "gene": gene.labels,
        "sgrna": sgrna.labels,
        "cell_line": cell.labels,
        "cell_line_free": cell.labels[1:],
    }
    return data, coords


def draw_effect(
    rng: np.random.Generator, given: Any, size: int, name: str, loc: Any, scale: float
) -> np.ndarray:
    """``given`` checked to ``size`` values, or ``size`` draws from normal(loc, scale)."""
    value = as_array(given, size, name)
    return rng.normal(loc, scale, size) if value is None else value
