"""The gene-effect matrix of a ``gene_effect`` fit, on the scale DepMap users read.

The fit never samples the gene effects ``theta_gc``: for each posterior draw
of the other parameters, ``theta_gc`` is normal with a known mean ``m`` and
sd ``s`` (:func:`pystanmods.models.gene_effect.theta_moments`). Its posterior
is therefore the mixture of those normals over the draws, and every summary
here is computed from that mixture exactly (Rao-Blackwellised), streaming over
chunks of draws, so the G x C matrix is never held as draws:

* **scaling.** Per draw, the effects are shifted and scaled as Chronos and
  CERES do: the median over cell lines of each line's median nonessential
  effect becomes 0 and that of the common-essential medians -1. The controls'
  effects for this come from one draw of theta per posterior draw.
* **mean, sd** of the scaled effect (law of total variance over draws).
* **central interval** (``q_low``, ``q_high``): quantiles of one draw of
  theta per posterior draw (a draw from the mixture), so their Monte Carlo
  error is that of any posterior quantile.
* **p_dependency**: the posterior probability that the scaled effect is
  below ``threshold`` (default -0.5, about half of a common essential's
  effect): DepMap's notion of a dependency, with posterior uncertainty.
* **lfsr**, the local false sign rate: the posterior probability that the
  sign of the scaled effect is the opposite of its posterior mean's sign,
  ``min(P(< 0), P(> 0))``; small means the direction is certain.
* ``raw_mean``, ``raw_sd``: theta itself, on the logFC scale of a fully
  efficacious guide, before scaling.

Memory: the table takes about 80 bytes per cell; the work runs over runs of
whole blocks with every draw, about 64 bytes x draws x units in the run
(``chunk_bytes``), and the scaling keeps one float32 theta per draw for each
control gene x cell line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from pystanmods.data import DataError
from pystanmods.models.gene_effect import CONDITIONING, theta_moments

#: Keys of the Stan data that the moments need, read back from the fit's constant_data.
DATA_KEYS = ("sgrna_gene", "unit_sgrna", "unit_cell_line", "unit_n", "unit_logfc", "unit_x",
             "block_start", "block_gene", "block_cell_line")


def _fit_data(fit: Any) -> dict[str, np.ndarray]:
    idata = fit.idata
    model = str(idata.posterior.attrs.get("model", ""))
    if model != "gene_effect":
        raise ValueError(f"gene-effect matrices come from a gene_effect fit, not {model or 'this fit'}")
    data = {k: np.asarray(idata.constant_data[k]) for k in DATA_KEYS}
    if "x_block" in idata.constant_data and np.asarray(idata.constant_data["x_block"]).size > 0:
        data["x_block"] = np.asarray(idata.constant_data["x_block"])
    return data


def _draws(fit: Any) -> dict[str, np.ndarray]:
    posterior = fit.idata.posterior
    # b_g is in the posterior only when the fit has covariates (K > 0).
    return {
        k: posterior[k].stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
        for k in (*CONDITIONING, "b_g") if k in posterior
    }


def _block_slices(block_start: np.ndarray, max_units: int) -> Iterable[tuple[int, int]]:
    """Runs of whole blocks (b0, b1) with at most ``max_units`` units each (at least one block)."""
    n_blocks = block_start.size - 1
    b0 = 0
    while b0 < n_blocks:
        b1 = int(np.searchsorted(block_start, block_start[b0] + max_units, side="right")) - 1
        b1 = min(max(b1, b0 + 1), n_blocks)
        yield b0, b1
        b0 = b1


def _subset(data: Mapping[str, np.ndarray], b0: int, b1: int) -> dict[str, np.ndarray]:
    """The Stan data of blocks b0..b1 - 1 alone (their units are contiguous)."""
    start = data["block_start"]
    u0, u1 = start[b0] - 1, start[b1] - 1
    out = {k: data[k][u0:u1] for k in ("unit_sgrna", "unit_cell_line", "unit_n", "unit_logfc", "unit_x")}
    out.update(
        sgrna_gene=data["sgrna_gene"],
        block_start=start[b0 : b1 + 1] - u0,
        block_gene=data["block_gene"][b0:b1],
        block_cell_line=data["block_cell_line"][b0:b1],
    )
    if "x_block" in data:
        out["x_block"] = data["x_block"][b0:b1]
    return out


def _is_control(labels: list[str], controls: Iterable[str]) -> np.ndarray:
    wanted = set(controls)
    return np.array([label in wanted or label.split(" (")[0] in wanted for label in labels])


def _scaling(
    data: Mapping[str, np.ndarray], draws: Mapping[str, np.ndarray], genes: list[str], n_cells: int,
    essential: Iterable[str], nonessential: Iterable[str], rng: np.random.Generator, max_units: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per draw: the shift (median over lines of nonessential medians) and the scale.

    The controls' effects are one draw of theta from its conditional normal
    per posterior draw, kept in float32 (controls x draws).
    """
    is_ess, is_non = _is_control(genes, essential), _is_control(genes, nonessential)
    block_gene, block_cell = data["block_gene"] - 1, data["block_cell_line"] - 1
    selected = is_ess[block_gene] | is_non[block_gene]
    if not is_ess[block_gene].any() or not is_non[block_gene].any():
        raise DataError(
            f"the fit's {len(genes)} genes include {int(is_ess.sum())} essential and {int(is_non.sum())} "
            f"nonessential controls; both are needed to scale (or pass neither list)"
        )
    n_draws = next(iter(draws.values())).shape[0]
    theta = np.empty((n_draws, int(selected.sum())), dtype=np.float32)
    filled = 0
    for b0, b1 in _block_slices(data["block_start"], max_units):
        keep = selected[b0:b1]
        if not keep.any():
            continue
        mean, sd = theta_moments(_subset(data, b0, b1), draws)
        theta[:, filled : filled + int(keep.sum())] = mean[:, keep] + sd[:, keep] * rng.standard_normal(
            (n_draws, int(keep.sum()))
        )
        filled += int(keep.sum())
    cells, kinds = block_cell[selected], is_ess[block_gene[selected]]

    def median_of_line_medians(essential_set: bool) -> np.ndarray:
        medians = np.full((n_draws, n_cells), np.nan)
        for c in range(n_cells):
            members = (cells == c) & (kinds == essential_set)
            if members.any():
                medians[:, c] = np.median(theta[:, members], axis=1)
        return np.nanmedian(medians, axis=1)

    shift = median_of_line_medians(False)
    return shift, np.abs(median_of_line_medians(True) - shift)


def gene_effect_summaries(
    fit: Any,
    *,
    essential: Iterable[str] | None = None,
    nonessential: Iterable[str] | None = None,
    threshold: float = -0.5,
    prob: float = 0.9,
    seed: int = 0,
    chunk_bytes: int = 2**28,
) -> pd.DataFrame:
    """Posterior summaries of every gene x cell-line effect of a ``gene_effect`` fit.

    Parameters
    ----------
    fit : StanFit
        A fit of the ``gene_effect`` model.
    essential, nonessential : iterable of str, optional
        Control genes (labels as in the fit's ``gene`` coords, or their
        symbols). Both or neither; without them the effects are not scaled
        (shift 0, scale 1) and ``scaled`` is False.
    threshold : float
        ``p_dependency`` is P(scaled effect < threshold).
    prob : float
        Mass of the central interval.
    seed : int
        Seed of the theta draws behind the scaling and the interval.
    chunk_bytes : int
        Memory for the arrays of one run of blocks over all draws.

    Returns
    -------
    pandas.DataFrame
        One row per gene x cell line: ``gene``, ``cell_line``, ``mean``,
        ``sd``, ``q_low``, ``q_high``, ``p_dependency``, ``lfsr``,
        ``raw_mean``, ``raw_sd``, ``scaled``; ``attrs`` hold the threshold,
        the interval and the per-draw shift and scale.
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be between 0 and 1, got {prob!r}")
    if (essential is None) != (nonessential is None):
        raise ValueError("give both control lists (essential and nonessential) or neither")
    data = _fit_data(fit)
    draws = _draws(fit)
    genes = [str(g) for g in fit.idata.posterior["gene"].to_numpy()]
    cells = [str(c) for c in fit.idata.posterior["cell_line"].to_numpy()]
    n_draws = next(iter(draws.values())).shape[0]
    # About eight arrays of draws x units are alive at once in theta_moments.
    max_units = max(1, int(chunk_bytes // (8 * 8 * n_draws)))
    rng = np.random.default_rng(seed)
    scaled = essential is not None
    if scaled:
        shift, scale = _scaling(data, draws, genes, len(cells), essential, nonessential, rng, max_units)  # type: ignore[arg-type]
    else:
        shift, scale = np.zeros(n_draws), np.ones(n_draws)
    lower, upper = (1 - prob) / 2, 1 - (1 - prob) / 2
    parts = []
    for b0, b1 in _block_slices(data["block_start"], max_units):
        mean, sd = theta_moments(_subset(data, b0, b1), draws)
        m = (mean - shift[:, None]) / scale[:, None]
        s = sd / scale[:, None]
        post_mean = m.mean(axis=0)
        p_negative = ndtr(-m / s).mean(axis=0)
        # One theta per posterior draw: a draw from the mixture, for its quantiles.
        sample = m + s * rng.standard_normal(m.shape)
        parts.append(
            pd.DataFrame(
                {
                    "mean": post_mean,
                    # Law of total variance: within-draw variance plus the spread of the means.
                    "sd": np.sqrt((s**2).mean(axis=0) + m.var(axis=0)),
                    "q_low": np.quantile(sample, lower, axis=0),
                    "q_high": np.quantile(sample, upper, axis=0),
                    "p_dependency": ndtr((threshold - m) / s).mean(axis=0),
                    "lfsr": np.minimum(p_negative, 1 - p_negative),
                    "raw_mean": mean.mean(axis=0),
                    "raw_sd": np.sqrt((sd**2).mean(axis=0) + mean.var(axis=0)),
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    table.insert(0, "cell_line", [cells[c - 1] for c in data["block_cell_line"]])
    table.insert(0, "gene", [genes[g - 1] for g in data["block_gene"]])
    table["scaled"] = scaled
    table.attrs.update(threshold=threshold, prob=prob, shift=shift, scale=scale)
    return table


def depmap_matrix(table: pd.DataFrame, column: str, gene_labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One column of :func:`gene_effect_summaries` in DepMap's matrix layout.

    Rows are cell lines (``ModelID``), columns genes as ``SYMBOL (ENTREZ_ID)``
    where ``gene_labels`` maps the fit's gene labels to them, NaN where a gene
    was not screened in a line, as in ``CRISPRGeneEffect.csv``.
    """
    matrix = table.pivot(index="cell_line", columns="gene", values=column)
    matrix.index.name = "ModelID"
    matrix.columns.name = None
    if gene_labels:
        matrix = matrix.rename(columns=dict(gene_labels))
    return matrix
