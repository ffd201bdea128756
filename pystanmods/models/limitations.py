"""What the models assume and where their intervals are too narrow.

Shared sentences of the models' ``limitations``, printed by
``pystanmods info MODEL`` and summarised in the README's "Limitations".
"""

from __future__ import annotations

GAUSSIAN_LOGFC = (
    "logFC is modelled as Gaussian with one residual scale: read counts, their Poisson/negative-binomial "
    "noise and the extra noise of low-count guides are not modelled (speclet's final model and Chronos "
    "model counts), so guides with few reads weigh as much as well-measured ones."
)

NO_GENE_BY_CELL_LINE = (
    "No gene x cell-line term: a gene's guides and replicates in one cell line are treated as independent "
    "draws around the gene's effect, when in screens they share the gene's effect in that line. The "
    "gene-level intervals (intercept, RNA slope) are then too narrow, by about "
    "sqrt((n sigma_gc^2 + sigma^2) / (sigma_gc^2 + sigma^2)) for n rows per gene x cell line and a "
    "gene x cell-line sd sigma_gc (benchmarks/gene_by_cell_line.py; see the README's Limitations). "
    "Model 3 has the term."
)


def zero_sum(effect: str, scale: str) -> str:
    """The marginal sd of a sum-to-zero effect of C levels."""
    return (
        f"{effect} sum to zero, so each has marginal prior sd {scale} * sqrt((C - 1) / C), not {scale}: "
        f"{scale} is the scale of the C - 1 free coordinates (0.71 {scale} for 2 cell lines, 0.95 for 10)."
    )
