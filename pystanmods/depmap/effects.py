"""Gene-effect tables from a fit to a prepared DepMap frame.

Which posterior quantity is "the gene's effect" depends on the model:

* Model 5: ``epsilon_g``, the mean of the gene's guide effects in the average
  cell line (the cell-line effects sum to zero), on the logFC scale.
* Model 5-flat: ``gamma_g``, the same without a guide level.
* Model 4: ``alpha_g``, the gene's effect in the average cell line at the
  gene's average expression (``rna`` is z-scored within gene), and
  ``beta_g``, the change in logFC per standard deviation of expression.
* Models 2 and 3: ``alpha_g`` (and ``beta_g`` for the RNA slope).

A negative logFC means guides were depleted: knocking the gene out slowed
growth. ``p_negative`` is the posterior probability that the effect is below
zero, the share of draws below zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Model name to the gene-level variables reported, in order.
GENE_VARIABLES: dict[str, tuple[str, ...]] = {
    "model5": ("epsilon_g",),
    "model5_flat": ("gamma_g",),
    "model4": ("alpha_g", "beta_g"),
    "model3": ("alpha_g", "beta_g"),
    "model2": ("alpha_g",),
}

TABLE_COLUMNS = ("model", "variable", "gene", "mean", "sd", "q05", "q95", "p_negative", "n_rows")


def gene_effect_table(
    fit: object,
    frame: pd.DataFrame | None = None,
    *,
    variables: Sequence[str] | None = None,
    prob: float = 0.9,
) -> pd.DataFrame:
    """Posterior summary of each gene's effect: mean, sd, central interval, P(effect < 0).

    Parameters
    ----------
    fit : StanFit
        A fit of a catalogue model (``fit.idata`` with a ``gene`` coordinate).
    frame : pandas.DataFrame, optional
        The frame that was fitted; adds ``n_rows``, the rows per gene.
    variables : sequence of str, optional
        Gene-level variables to report; default from :data:`GENE_VARIABLES`.
    prob : float
        Mass of the central interval; 0.9 gives the 5% and 95% quantiles
        (columns ``q05``/``q95`` are named for the default).

    Returns
    -------
    pandas.DataFrame
        One row per variable x gene, columns :data:`TABLE_COLUMNS`.
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be between 0 and 1, got {prob!r}")
    idata = fit.idata  # type: ignore[attr-defined]
    model = str(idata.posterior.attrs.get("model", ""))
    names = list(variables) if variables is not None else list(GENE_VARIABLES.get(model, ()))
    if not names:
        raise ValueError(f"no gene-level variable known for model {model!r}; pass variables=")
    lower, upper = (1 - prob) / 2, 1 - (1 - prob) / 2
    counts = frame.groupby("gene").size() if frame is not None else None
    parts = []
    for name in names:
        if name not in idata.posterior:
            raise KeyError(f"{name!r} is not a variable of the {model} fit")
        draws = idata.posterior[name]
        if "gene" not in draws.dims:
            raise ValueError(f"{name!r} has no gene dimension (dims {draws.dims})")
        # chains x draws stacked, genes as columns.
        values = draws.stack(sample=("chain", "draw")).transpose("gene", "sample").to_numpy()
        genes = [str(g) for g in draws["gene"].to_numpy()]
        table = pd.DataFrame(
            {
                "model": model,
                "variable": name,
                "gene": genes,
                "mean": values.mean(axis=1),
                "sd": values.std(axis=1, ddof=1),
                "q05": np.quantile(values, lower, axis=1),
                "q95": np.quantile(values, upper, axis=1),
                "p_negative": (values < 0).mean(axis=1),
            }
        )
        table["n_rows"] = table["gene"].map(counts).astype("Int64") if counts is not None else pd.NA
        parts.append(table)
    return pd.concat(parts, ignore_index=True)[list(TABLE_COLUMNS)]
