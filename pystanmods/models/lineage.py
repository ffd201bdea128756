"""The lineage model: Model 5 with cell lines nested in lineages and gene x lineage effects."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pystanmods.data import DataError, encode
from pystanmods.data.validate import preview
from pystanmods.models.base import Model, Simulation, register
from pystanmods.models import limitations as limits
from pystanmods.models.record import Effect, ModelRecord
from pystanmods.models import shared


def cell_line_lineages(frame: pd.DataFrame, cell_labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """The lineage of each cell line, as 1-based codes in ``cell_labels`` order.

    Raises
    ------
    DataError
        When a cell line has no lineage label or more than one.
    """
    lineage = frame["lineage"]
    missing = lineage.isna() | (lineage.astype(str).str.strip() == "")
    if missing.any():
        cells = sorted(frame.loc[missing, "cell_line"].astype(str).unique())
        raise DataError(
            f"column 'lineage' is missing for cell line(s) {preview(cells)} "
            f"({len(cells)} cell lines, {int(missing.sum())} of {len(frame)} rows); "
            "every cell line needs its lineage"
        )
    pairs = pd.DataFrame({"cell_line": frame["cell_line"].astype(str), "lineage": lineage.astype(str)})
    per_cell = pairs.groupby("cell_line")["lineage"].nunique()
    ambiguous = per_cell[per_cell > 1].index.tolist()
    if ambiguous:
        first = ambiguous[0]
        found = sorted(pairs.loc[pairs["cell_line"] == first, "lineage"].unique())
        rows = int(pairs["cell_line"].isin(ambiguous).sum())
        raise DataError(
            f"column 'lineage' gives cell line {first!r} more than one lineage ({preview(found)}); "
            f"{len(ambiguous)} such cell line(s) in {rows} rows"
        )
    lineage_index = encode(lineage.astype(str))
    first_lineage = pairs.drop_duplicates("cell_line").set_index("cell_line")["lineage"]
    lookup = {label: i for i, label in enumerate(lineage_index.labels, start=1)}
    return np.array([lookup[first_lineage[c]] for c in cell_labels], dtype=int), lineage_index.labels


def identify_lineage_effects(
    lambda_l: np.ndarray, delta_c: np.ndarray, theta_gl: np.ndarray, cell_lineage: np.ndarray
) -> dict[str, np.ndarray]:
    """Map drawn lineage-model effects to the program's identified ones.

    ``lambda_l + delta_c + theta_gl`` (0-based ``cell_lineage``) is split as
    the program constrains it: ``theta_gl`` columns sum to zero over genes and
    rows to zero under the cell-line weights ``w_l``; ``delta_c`` sums to
    zero; ``w' lambda_l = 0``. What is removed goes to the lineage effect
    (column means of theta), the genes (``gene_shift``) and the grand mean
    (``shift``), so that the linear predictor is unchanged.
    """
    n_lineages = theta_gl.shape[1]
    w = np.bincount(cell_lineage, minlength=n_lineages) / cell_lineage.size
    column_means = theta_gl.mean(axis=0)
    t1 = theta_gl - column_means
    gene_shift = t1 @ w
    theta = t1 - gene_shift[:, None]
    lam = lambda_l + column_means
    shift = float(w @ lam + delta_c.mean())
    lam_id = lam - w @ lam
    delta_id = delta_c - delta_c.mean()
    return {
        "lambda_l": lam_id,
        "delta_c": delta_id,
        "beta_c": lam_id[cell_lineage] + delta_id,
        "theta_gl": theta,
        "gene_shift": gene_shift + shift,
        "shift": np.asarray(shift),
    }


@register
class ModelLineage(Model):
    """Model 5 with cell-line effects nested in lineages, plus gene x lineage effects.

    ``logfc ~ N(alpha_s + beta_c + theta_gl[g, l], sigma)`` with
    ``beta_c = lambda_l + delta_c`` (``delta_c ~ N(0, sigma_beta)`` within a
    lineage, ``lambda_l ~ N(0, sigma_lambda)``, the seed's
    ``beta_c ~ N(mu_lineage[l], sigma_lineage)``) and
    ``theta_gl ~ N(0, sigma_theta)``. ``epsilon_gl = epsilon_g + theta_gl`` is
    gene g's effect in lineage l, so a gene can be essential in one lineage only.

    Identification: ``sum_c delta_c = 0`` and ``sum_l w_l lambda_l = 0``
    (``w_l``: the share of cell lines in lineage l), hence ``sum_c beta_c = 0``
    and ``mu_epsilon`` is the single grand mean; ``theta_gl`` sums to zero
    over genes in each lineage (a lineage-wide shift is ``lambda_l``) and to
    zero over lineages, weighted by ``w_l``, for each gene (``epsilon_g`` is
    the gene's cell-line-weighted average effect). The trade between
    ``lambda_l`` and its cell lines' ``delta_c`` is left to the hierarchical
    prior, as for any group mean. The simulator's truth is mapped the same way
    (:func:`identify_lineage_effects`). Needs at least two lineages and two genes.
    """

    record = ModelRecord(
        name="model_lineage",
        title="Model 5 with cell lines nested in lineages and gene x lineage effects",
        template="model_lineage.stan.j2",
        within_chain=True,
        # Cell lines, guides and gene x lineage cells all have many observations
        # (13-20 in the tests, far more in DepMap), so the centered program fits
        # them without a funnel: on the test simulation both had no divergences
        # and R-hat < 1.006, but the centered one sampled in 20 s against 231 s
        # (long trajectories of the non-centered one along data-bound directions).
        # Where lineages explain little (sigma_lambda, sigma_theta near 0), the
        # centered program meets the usual funnel: on Model A data with lineages
        # assigned at random (examples/compare_models.py) it had 26 divergences
        # and R-hat 1.09. Use the non-centered program there.
        recommended="centered",
        required=("gene", "cell_line", "sgrna", "lineage", "logfc"),
        group_parameters=("alpha_s", "beta_c", "theta_gl"),
        hyperparameters=("mu_epsilon", "sigma_alpha", "sigma_beta", "sigma_theta", "sigma"),
        priors={
            "mu_epsilon": ("normal", 0.0, 5.0),
            "sigma_epsilon": ("exponential", 1.0),
            "sigma_alpha": ("exponential", 1.0),
            "sigma_lambda": ("exponential", 1.0),
            "sigma_beta": ("exponential", 1.0),
            "sigma_theta": ("exponential", 2.0),
            "sigma": ("exponential", 1.0),
        },
        defaults={
            "n_genes": 6,
            "sgrnas_per_gene": 3,
            "cell_lines_per_lineage": (5, 5, 5),
            "n_replicates": 1,
            "missing_fraction": 0.1,
            "mu_epsilon": -0.5,
            "sigma_epsilon": 1.0,
            "sigma_alpha": 0.3,
            "sigma_lambda": 0.5,
            "sigma_beta": 0.3,
            "sigma_theta": 0.5,
            "sigma": 0.3,
            "epsilon_g": None,
            "alpha_s": None,
            "lambda_l": None,
            "delta_c": None,
            "theta_gl": None,  # n_genes x n_lineages
        },
        effects=(
            shared.GENE_EFFECT,
            shared.GUIDE_EFFECT,
            Effect("lambda_l", ("lineage",), free_dims=("lineage_free",)),
            Effect("delta_c", ("cell_line",), free_dims=("cell_line_free",)),
            Effect("theta_gl", ("gene", "lineage"), free_dims=("gene_free", "lineage_free")),
        ),
        variables={"beta_c": ("cell_line",), "epsilon_gl": ("gene", "lineage")},
        gene_effects=("epsilon_gl",),
        results=("epsilon_g", "theta_gl", "lambda_l", "beta_c"),
        # Two lineages of two cell lines: delta_c within a lineage and lambda_l
        # both exist, and theta_gl has (3 - 1) x (2 - 1) free coordinates. The centered
        # program diverged in 99 of its 100 SBC fits here (docs/sbc.md). Non-centered at
        # max_treedepth 12: 5% unconverged, PASS (2026-12-01); at the default depth 10, 14%,
        # whose 10 R-hat failures all ran at the depth limit with a small drawn sigma.
        sbc={"sgrnas_per_gene": [1, 2, 3], "cell_lines_per_lineage": [2, 2], "missing_fraction": 0.0},
        sbc_fit={"iter_warmup": 1000, "iter_sampling": 2000, "adapt_delta": 0.999},
        sbc_fit_by_program={"noncentered": {"max_treedepth": 12}},
        limitations=(
            limits.GAUSSIAN_LOGFC,
            "Gene x lineage effects theta_gl, but no gene x cell-line term within a lineage: a gene's guides "
            "and replicates in one cell line are treated as independent, so intervals of epsilon_g and "
            "theta_gl are too narrow where genes differ between cell lines of a lineage (see Model 4's "
            "limitation).",
            "delta_c sums to zero over all C cell lines, so its marginal prior sd is sigma_beta * "
            "sqrt((C - 1) / C), not sigma_beta; lambda_l is constrained likewise (weighted by lineage size), "
            "so its marginal sd is also below sigma_lambda.",
        ),
    )

    def _build(self, frame: pd.DataFrame) -> tuple[dict[str, Any], dict]:
        data, coords = shared.guide_structure(frame)
        lineage_codes, lineage_labels = cell_line_lineages(frame, coords["cell_line"])
        if len(lineage_labels) < 2:
            raise DataError(
                f"{self.name} needs cell lines from at least two lineages; column 'lineage' has only "
                f"{preview(lineage_labels)} over {len(frame)} rows. Fit model5 instead"
            )
        if data["G"] < 2:
            raise DataError(
                f"{self.name} needs at least two genes for gene x lineage effects; column 'gene' has only "
                f"{preview(coords['gene'])} over {len(frame)} rows. Fit model5 instead"
            )
        data.update(L=len(lineage_labels), cell_line_lineage=lineage_codes)
        coords.update(lineage=lineage_labels, lineage_free=lineage_labels[1:], gene_free=coords["gene"][1:])
        return data, coords

    def _prior_overrides(self, rng: np.random.Generator, drawn: dict, settings: dict) -> dict[str, Any]:
        # The program's constrained effects are iid normals centred as
        # identify_lineage_effects centres them, but without moving what is
        # removed into lambda_l, epsilon_g and mu_epsilon (that would widen
        # their priors by theta_gl's means). Drawn so, the mapping is the
        # identity and the truth is a draw from the program's prior.
        n_genes = len(shared.guides_per_gene(settings["sgrnas_per_gene"], int(settings["n_genes"])))
        per_lineage = [int(k) for k in settings["cell_lines_per_lineage"]]
        w = np.asarray(per_lineage, dtype=float) / sum(per_lineage)
        lambda_l = rng.normal(0.0, drawn["sigma_lambda"], len(per_lineage))
        delta_c = rng.normal(0.0, drawn["sigma_beta"], sum(per_lineage))
        theta_gl = rng.normal(0.0, drawn["sigma_theta"], (n_genes, len(per_lineage)))
        theta_gl = theta_gl - theta_gl.mean(axis=0)
        return {
            "epsilon_g": None,
            "alpha_s": None,
            "lambda_l": lambda_l - w @ lambda_l,
            "delta_c": delta_c - delta_c.mean(),
            "theta_gl": theta_gl - (theta_gl @ w)[:, None],
        }

    def simulate(self, seed: int | None = None, **overrides: Any) -> Simulation:
        """Simulate tidy data; every size and value in :attr:`defaults` can be overridden.

        Lineages are labelled ``lineageA``, ``lineageB``, ...; cell lines are
        assigned to them in blocks of ``cell_lines_per_lineage``.
        """
        s = self.settings(overrides)
        rng = np.random.default_rng(seed)
        per_gene = shared.guides_per_gene(s["sgrnas_per_gene"], int(s["n_genes"]))
        per_lineage = [int(k) for k in s["cell_lines_per_lineage"]]
        n_genes, n_lineages, n_cells = len(per_gene), len(per_lineage), sum(per_lineage)
        frame, sgrna_gene, si, ci = shared.guide_design(rng, per_gene, n_cells, int(s["n_replicates"]), float(s["missing_fraction"]))
        cell_lineage = np.repeat(np.arange(n_lineages), per_lineage)
        lineage_labels = [f"lineage{chr(ord('A') + i)}" for i in range(n_lineages)]
        epsilon_g = shared.draw_effect(rng, s["epsilon_g"], n_genes, "epsilon_g", s["mu_epsilon"], s["sigma_epsilon"])
        alpha_s = shared.draw_effect(rng, s["alpha_s"], sgrna_gene.size, "alpha_s", epsilon_g[sgrna_gene], s["sigma_alpha"])
        lambda_l = shared.draw_effect(rng, s["lambda_l"], n_lineages, "lambda_l", 0.0, s["sigma_lambda"])
        delta_c = shared.draw_effect(rng, s["delta_c"], n_cells, "delta_c", 0.0, s["sigma_beta"])
        if s["theta_gl"] is None:
            theta_gl = rng.normal(0, s["sigma_theta"], (n_genes, n_lineages))
        else:
            theta_gl = np.asarray(s["theta_gl"], dtype=float)
            if theta_gl.shape != (n_genes, n_lineages):
                raise ValueError(f"theta_gl needs shape {(n_genes, n_lineages)}, got {theta_gl.shape}")
        gi, li = sgrna_gene[si], cell_lineage[ci]
        mu = alpha_s[si] + lambda_l[li] + delta_c[ci] + theta_gl[gi, li]
        frame["lineage"] = np.array(lineage_labels)[li]
        frame["logfc"] = rng.normal(mu, s["sigma"])
        ident = identify_lineage_effects(lambda_l, delta_c, theta_gl, cell_lineage)
        epsilon_id = epsilon_g + ident["gene_shift"]
        truth: dict[str, Any] = {k: float(s[k]) for k in ("sigma_epsilon", "sigma_alpha", "sigma_lambda",
                                                           "sigma_beta", "sigma_theta", "sigma")}
        truth.update(
            mu_epsilon=float(s["mu_epsilon"] + ident["shift"]),
            epsilon_g=epsilon_id,
            alpha_s=alpha_s + ident["gene_shift"][sgrna_gene],
            lambda_l=ident["lambda_l"],
            delta_c=ident["delta_c"],
            beta_c=ident["beta_c"],
            theta_gl=ident["theta_gl"],
            epsilon_gl=epsilon_id[:, None] + ident["theta_gl"],
        )
        generating = {**s, "epsilon_g": epsilon_g, "alpha_s": alpha_s, "lambda_l": lambda_l, "delta_c": delta_c,
                      "theta_gl": theta_gl, "cell_lineage": cell_lineage}
        return Simulation(data=frame, truth=truth, generating=generating)
