"""Per-gene effect tables and plots, the results users read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.axes

    from pystanmods.stanfit.fit import StanFit

#: Each model's gene effect: the gene's logFC in the average cell line (at
#: zero covariates); for the lineage model, in each lineage.
GENE_EFFECT: dict[str, str] = {
    "model2": "alpha_g",
    "model3": "gamma_g",
    "model4": "alpha_g",
    "model5": "epsilon_g",
    "model5_flat": "gamma_g",
    "model_c": "epsilon_g",
    "model_a": "epsilon_g",
    "model_b": "epsilon_g",
    "model_lineage": "epsilon_gl",
}


def _obs_gene_lineage(fit: StanFit) -> tuple[np.ndarray, np.ndarray | None]:
    """0-based gene (and lineage) of each observation, from the fit's constant data."""
    data = fit.idata.constant_data
    if "sgrna_gene" in data and "sgrna" in data:
        gene = np.asarray(data["sgrna_gene"].values)[np.asarray(data["sgrna"].values) - 1] - 1
    else:
        gene = np.asarray(data["gene"].values) - 1
    lineage = None
    if "cell_line_lineage" in data:
        lineage = np.asarray(data["cell_line_lineage"].values)[np.asarray(data["cell_line"].values) - 1] - 1
    return gene, lineage


def gene_effects(fit: StanFit, prob: float = 0.9) -> pd.DataFrame:
    """One row per gene (per gene x lineage for the lineage model).

    Parameters
    ----------
    fit : StanFit
        A fit of a model with gene effects (see :data:`GENE_EFFECT`).
    prob : float
        Mass of the central (equal-tailed) posterior interval.

    Returns
    -------
    pandas.DataFrame
        ``gene`` (and ``lineage``), ``n_obs`` (observations behind the
        effect; 0 means the row is the prior's pooled guess), ``mean``,
        ``sd``, the interval ends (``q5``/``q95`` for 90 %) and
        ``p_negative`` = P(effect < 0): the posterior probability that
        knocking out the gene depletes cells. For Model B also
        ``mutation_effect`` (posterior mean of ``zeta_g``) and
        ``p_mutation_matters`` (posterior mean of ``p_matters_g``); both are
        NaN for genes mutated in none or all of their cell lines, whose
        mutation effect the data cannot inform.
    """
    model = fit.model
    if model not in GENE_EFFECT:
        raise ValueError(f"{model} has no gene effects; models with them are {sorted(GENE_EFFECT)}")
    draws = fit.idata.posterior[GENE_EFFECT[model]].stack(sample=("chain", "draw"))
    lo, hi = (1 - prob) / 2, 1 - (1 - prob) / 2
    lo_name, hi_name = f"q{lo * 100:g}", f"q{hi * 100:g}"
    gene_obs, lineage_obs = _obs_gene_lineage(fit)
    frame = pd.DataFrame(
        {
            "mean": draws.mean("sample").to_series(),
            "sd": draws.std("sample", ddof=1).to_series(),
            lo_name: draws.quantile(lo, dim="sample").drop_vars("quantile").to_series(),
            hi_name: draws.quantile(hi, dim="sample").drop_vars("quantile").to_series(),
            "p_negative": (draws < 0).mean("sample").to_series(),
        }
    ).reset_index()
    genes = list(draws["gene"].values)
    if "lineage" in draws.dims and lineage_obs is not None:
        lineages = list(draws["lineage"].values)
        counts = np.zeros((len(genes), len(lineages)), dtype=int)
        np.add.at(counts, (gene_obs, lineage_obs), 1)
        lookup = {(g, l): counts[i, j] for i, g in enumerate(genes) for j, l in enumerate(lineages)}
        n_obs = [lookup[(g, l)] for g, l in zip(frame["gene"], frame["lineage"])]
    else:
        counts = np.bincount(gene_obs, minlength=len(genes))
        n_obs = [int(counts[genes.index(g)]) for g in frame["gene"]]
    frame.insert(1 + int("lineage" in frame), "n_obs", n_obs)
    if model == "model_b":
        post = fit.idata.posterior
        mutated = list(post["mutated_gene"].values) if "mutated_gene" in post.dims else []
        zeta = post["zeta_g"].mean(("chain", "draw")).to_series() if mutated else pd.Series(dtype=float)
        p = post["p_matters_g"].mean(("chain", "draw")).to_series() if mutated else pd.Series(dtype=float)
        frame["mutation_effect"] = frame["gene"].map(zeta).astype(float)
        frame["p_mutation_matters"] = frame["gene"].map(p).astype(float)
    return frame


def plot_gene_effects(
    fit: StanFit, prob: float = 0.9, ax: matplotlib.axes.Axes | None = None, **kwargs: Any
) -> matplotlib.axes.Axes:
    """Posterior mean and interval of each gene's effect, sorted by mean.

    One row per gene; for the lineage model one marker per lineage, offset
    within the gene's row. A dashed line marks 0 (no effect on growth).

    Parameters
    ----------
    fit : StanFit
    prob : float
        Mass of the plotted interval.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure sized to the number of genes.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.errorbar`.
    """
    import matplotlib.pyplot as plt

    table = gene_effects(fit, prob=prob)
    lo_name, hi_name = table.columns[table.columns.str.startswith("q")][:2]
    order = table.groupby("gene")["mean"].mean().sort_values().index.tolist()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 1 + 0.3 * len(order)))
    groups = list(table.groupby("lineage", sort=True)) if "lineage" in table else [(None, table)]
    width = 0.6
    for k, (label, rows) in enumerate(groups):
        offset = (k - (len(groups) - 1) / 2) * width / max(len(groups), 1)
        y = np.array([order.index(g) for g in rows["gene"]]) + offset
        ax.errorbar(
            rows["mean"],
            y,
            xerr=[rows["mean"] - rows[lo_name], rows[hi_name] - rows["mean"]],
            fmt="o",
            markersize=4,
            capsize=2,
            label=label,
            **kwargs,
        )
    ax.axvline(0, linestyle="--", color="grey", linewidth=1)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels(order)
    ax.set_xlabel(f"gene effect on logFC (mean, {prob:.0%} interval)")
    ax.set_title(f"{fit.model} ({fit.parameterization})")
    if groups[0][0] is not None:
        ax.legend(title="lineage", fontsize="small")
    return ax
