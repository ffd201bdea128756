"""Per-gene effect tables and plots, the results users read.

Which posterior quantity is "the gene's effect" is a fact of the model (its
record's ``gene_effects``, :mod:`pystanmods.models.record`): for Model 5 ``epsilon_g``, the mean of the gene's
guide effects in the average cell line; for Models 2 and 4 ``alpha_g``; for
Model 3 ``gamma_g``; for the lineage model ``epsilon_gl``, per lineage. A
negative logFC means guides were depleted: knocking the gene out slowed
growth, and ``p_negative`` is the share of draws below zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.axes

    from pystanmods.stanfit.fit import StanFit

def interval_columns(prob: float) -> tuple[str, str]:
    """Names of the central interval's ends: ``q5``/``q95`` for 0.9, ``q2.5``/``q97.5`` for 0.95."""
    if not 0 < prob < 1:
        raise ValueError(f"prob must be between 0 and 1, got {prob!r}")
    lo, hi = (1 - prob) / 2, 1 - (1 - prob) / 2
    return f"q{round(lo * 100, 6):g}", f"q{round(hi * 100, 6):g}"


def _obs_gene_lineage(fit: StanFit) -> tuple[np.ndarray, np.ndarray | None] | None:
    """0-based gene (and lineage) of each observation, from the fit's constant data."""
    if "constant_data" not in fit.idata.groups():
        return None
    data = fit.idata.constant_data
    if "sgrna_gene" in data and "sgrna" in data:
        gene = np.asarray(data["sgrna_gene"].values)[np.asarray(data["sgrna"].values) - 1] - 1
    elif "unit_gene" in data and "unit" in data:
        gene = np.asarray(data["unit_gene"].values)[np.asarray(data["unit"].values) - 1] - 1
    elif "gene" in data:
        gene = np.asarray(data["gene"].values) - 1
    else:
        return None
    lineage = None
    if "cell_line_lineage" in data:
        lineage = np.asarray(data["cell_line_lineage"].values)[np.asarray(data["cell_line"].values) - 1] - 1
    return gene, lineage


def gene_effect_table(fit: StanFit, prob: float = 0.9, *, variables: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per variable x gene (x lineage): mean, sd, central interval, P(effect < 0).

    Parameters
    ----------
    fit : StanFit
        A fit of a catalogue model with gene effects.
    prob : float
        Mass of the central (equal-tailed) posterior interval.
    variables : sequence of str, optional
        Gene-level variables to report (for example a model's RNA slope
        ``beta_g``); default the model's gene effect.

    Returns
    -------
    pandas.DataFrame
        ``model``, ``variable``, ``gene`` (and ``lineage``), ``n_obs``
        (observations behind the effect; 0 means the row is the prior's pooled
        guess; missing when the fit kept no constant data), ``mean``, ``sd``,
        the interval ends named by :func:`interval_columns` (``q5``/``q95`` for
        0.9) and ``p_negative`` = P(effect < 0): the posterior probability that
        knocking out the gene depletes cells. For Model B also
        ``mutation_effect`` (posterior mean of ``zeta_g``) and
        ``p_mutation_matters`` (posterior mean of ``p_matters_g``); both are
        NaN for genes mutated in none or all of their cell lines, whose
        mutation effect the data cannot inform.
    """
    lo_name, hi_name = interval_columns(prob)
    lo, hi = (1 - prob) / 2, 1 - (1 - prob) / 2
    from pystanmods.models import all_models, get_model

    model = fit.model
    if variables is None:
        variables = get_model(model).record.gene_effects
        if not variables:
            having = [m.name for m in all_models() if m.record.gene_effects]
            raise ValueError(f"{model} has no gene effects; models with them are {having}")
    post = fit.idata.posterior
    located = _obs_gene_lineage(fit)
    parts = []
    for name in variables:
        if name not in post:
            raise KeyError(f"{name!r} is not a variable of the {model} fit")
        if "gene" not in post[name].dims:
            raise ValueError(f"{name!r} has no gene dimension (dims {post[name].dims})")
        draws = post[name].stack(sample=("chain", "draw"))
        frame = pd.DataFrame(
            {
                "mean": draws.mean("sample").to_series(),
                "sd": draws.std("sample", ddof=1).to_series(),
                lo_name: draws.quantile(lo, dim="sample").drop_vars("quantile").to_series(),
                hi_name: draws.quantile(hi, dim="sample").drop_vars("quantile").to_series(),
                "p_negative": (draws < 0).mean("sample").to_series(),
            }
        ).reset_index()
        frame.insert(0, "model", model)
        frame.insert(1, "variable", name)
        frame.insert(3 + int("lineage" in frame), "n_obs", _n_obs(draws, frame, located))
        parts.append(frame)
    table = pd.concat(parts, ignore_index=True)
    if model == "model_b":
        mutated = list(post["mutated_gene"].values) if "mutated_gene" in post.dims else []
        zeta = post["zeta_g"].mean(("chain", "draw")).to_series() if mutated else pd.Series(dtype=float)
        p = post["p_matters_g"].mean(("chain", "draw")).to_series() if mutated else pd.Series(dtype=float)
        table["mutation_effect"] = table["gene"].map(zeta).astype(float)
        table["p_mutation_matters"] = table["gene"].map(p).astype(float)
    return table


def _n_obs(draws: Any, frame: pd.DataFrame, located: tuple[np.ndarray, np.ndarray | None] | None) -> Any:
    """Observations behind each row of ``frame`` (gene, or gene x lineage)."""
    if located is None:
        return pd.array([pd.NA] * len(frame), dtype="Int64")
    gene_obs, lineage_obs = located
    genes = list(draws["gene"].values)
    if "lineage" in draws.dims and lineage_obs is not None:
        lineages = list(draws["lineage"].values)
        counts = np.zeros((len(genes), len(lineages)), dtype=int)
        np.add.at(counts, (gene_obs, lineage_obs), 1)
        lookup = {(g, l): counts[i, j] for i, g in enumerate(genes) for j, l in enumerate(lineages)}
        return pd.array([lookup[(g, l)] for g, l in zip(frame["gene"], frame["lineage"])], dtype="Int64")
    counts = np.bincount(gene_obs, minlength=len(genes))
    return pd.array([int(counts[genes.index(g)]) for g in frame["gene"]], dtype="Int64")


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

    table = gene_effect_table(fit, prob=prob)
    lo_name, hi_name = interval_columns(prob)
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
