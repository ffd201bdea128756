"""Model 3: replicates of a latent gene x cell-line effect predicted by RNA."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pystanmods.data import encode, label_column, numeric_column
from pystanmods.models.base import Model, Simulation, as_array, labels, register
from pystanmods.models import limitations as limits
from pystanmods.models.record import Effect, ModelRecord, UnitRule


@register
class Model3(Model):
    """Replicate logFC per gene x cell line, RNA one level up.

    Each observed gene x cell-line unit has a latent effect
    ``theta ~ N(gamma_g + delta_g * rna, sigma_g)`` and the replicates are
    ``logfc ~ N(theta, sigma)``. RNA must therefore be constant within a unit.
    This is the seed's Model 3 done right: the seed averaged RNA over cell
    lines into a per-gene mean, which its own conclusion calls wrong.

    The Stan program integrates theta out (replicate means and the pooled
    within-unit sum of squares are sufficient) and draws it from its exact
    conditional posterior in generated quantities: sampled directly, theta
    formed a funnel per gene that neither parameterization could sample.

    Two pointwise log-likelihoods: ``log_lik`` per row, conditional on the
    drawn theta, and ``log_lik_unit`` (posterior group, dim ``unit``) per
    gene x cell-line unit with theta integrated out, which
    :func:`pystanmods.compare` uses to leave whole units out.
    """

    record = ModelRecord(
        name="model3",
        title="replicates of a latent gene x cell-line effect, RNA one level up",
        template="model3.stan.j2",
        #: With theta integrated out, only gamma_g and delta_g are group effects,
        #: each informed by 20 cell lines: centered has twice the ESS in a fifth of the time.
        recommended="centered",
        required=("gene", "cell_line", "rna", "logfc"),
        unit_rules=(UnitRule("rna"),),
        effects=(Effect("gamma_g", ("gene",)), Effect("delta_g", ("gene",))),
        variables={
            "sigma_g": ("gene",),
            "theta": ("unit",),
            "mu_theta": ("unit",),
            # Leave-one-unit-out log-likelihood (theta integrated out); compare() uses it.
            "log_lik_unit": ("unit",),
        },
        gene_effects=("gamma_g",),
        slopes=("delta_g",),
        results=("sigma_g", "theta"),
        group_parameters=("gamma_g", "delta_g", "theta"),
        hyperparameters=("mu_gamma", "sigma_gamma", "mu_delta", "sigma_delta", "tau_sigma", "sigma"),
        priors={
            "mu_gamma": ("normal", 0.0, 5.0),
            "sigma_gamma": ("exponential", 1.0),
            "mu_delta": ("normal", 0.0, 5.0),
            "sigma_delta": ("exponential", 1.0),
            "tau_sigma": ("exponential", 1.0),
            "sigma": ("exponential", 1.0),
        },
        defaults={
            "n_cell_lines": 20,
            "n_replicates": 3,
            "n_genes": 5,
            "mu_gamma": -1.0,
            "sigma_gamma": 0.4,
            "mu_delta": 0.0,
            "sigma_delta": 1.0,
            "tau_sigma": 0.4,
            "sigma": 0.3,
            "gamma_g": None,
            "delta_g": None,
            "sigma_g": None,
        },
        # The SBC design (make sbc; docs/sbc-results/model3-noncentered), non-centered,
        # 100 simulations: 2 genes x 4 lines at 2 x (500 + 500) left 80% of fits with a
        # divergence or R-hat >= 1.01; 4 x 10 at 2 x (1000 + 1000), adapt_delta 0.99,
        # 17%; with 2000 draws and adapt_delta 0.999, 4% (PASS), and 3% rerun on the --O1
        # build (2026-12-01, the committed run). The centered program on
        # the same design and data sets (model3-centered): 73% (INCONCLUSIVE).
        sbc={"n_genes": 4, "n_cell_lines": 10, "n_replicates": 2},
        sbc_fit={"iter_warmup": 1000, "iter_sampling": 2000, "adapt_delta": 0.999},
        limitations=(
            limits.GAUSSIAN_LOGFC,
            "No cell-line intercept: a cell line's overall shift (screen quality, growth rate) goes into the "
            "gene x cell-line effects theta, whose sd sigma_g then grows; centre logFC within cell lines first "
            "if the lines differ.",
            "RNA must be constant within a gene x cell-line unit (it is checked).",
        ),
    )

    def _build(self, frame: pd.DataFrame) -> tuple[dict[str, Any], dict]:
        gene_labels = label_column(frame, "gene")
        cell_labels = label_column(frame, "cell_line")
        gene = encode(gene_labels)
        rna = numeric_column(frame, "rna")
        units = pd.DataFrame({"gene": gene_labels.to_numpy(), "cell_line": cell_labels.to_numpy(), "rna": rna})
        # One rna per unit is the record's unit rule, checked by prepare().
        spread = units.groupby(["gene", "cell_line"], sort=True)["rna"].agg(["min", "size"])
        unit_labels = [f"{g}|{c}" for g, c in spread.index]
        unit_lookup = {key: i for i, key in enumerate(spread.index, start=1)}
        unit = np.array([unit_lookup[key] for key in zip(units["gene"], units["cell_line"])], dtype=int)
        gene_lookup = {label: i for i, label in enumerate(gene.labels, start=1)}
        data = {
            "N": len(frame),
            "G": gene.size,
            "U": len(spread),
            "unit": unit,
            "unit_gene": np.array([gene_lookup[g] for g, _ in spread.index], dtype=int),
            "rna": spread["min"].to_numpy(dtype=float),
            "logfc": numeric_column(frame, "logfc"),
        }
        coords = {"gene": gene.labels, "unit": unit_labels}
        return data, coords

    def simulate(self, seed: int | None = None, **overrides: Any) -> Simulation:
        s = self.settings(overrides)
        rng = np.random.default_rng(seed)
        n_genes, n_cells, n_reps = int(s["n_genes"]), int(s["n_cell_lines"]), int(s["n_replicates"])
        gamma_g = as_array(s["gamma_g"], n_genes, "gamma_g")
        if gamma_g is None:
            gamma_g = rng.normal(s["mu_gamma"], s["sigma_gamma"], n_genes)
        delta_g = as_array(s["delta_g"], n_genes, "delta_g")
        if delta_g is None:
            delta_g = rng.normal(s["mu_delta"], s["sigma_delta"], n_genes)
        sigma_g = as_array(s["sigma_g"], n_genes, "sigma_g")
        if sigma_g is None:
            # numpy's exponential takes the mean, as the seed's simulation does.
            sigma_g = rng.exponential(s["tau_sigma"], n_genes)
        genes, cells = labels("gene", n_genes), labels("cell", n_cells)
        g = np.repeat(np.arange(n_genes), n_cells)  # unit order: gene-major, then cell line
        c = np.tile(np.arange(n_cells), n_genes)
        rna = rng.normal(0, 1, g.size)
        theta = rng.normal(gamma_g[g] + delta_g[g] * rna, sigma_g[g])
        unit = np.tile(np.arange(g.size), n_reps)
        logfc = rng.normal(theta[unit], s["sigma"])
        data = pd.DataFrame(
            {
                "gene": np.array(genes)[g[unit]],
                "cell_line": np.array(cells)[c[unit]],
                "replicate": np.repeat(np.arange(1, n_reps + 1), g.size),
                "rna": rna[unit],
                "logfc": logfc,
            }
        )
        truth = {k: float(s[k]) for k in self.hyperparameters}
        truth.update(gamma_g=gamma_g, delta_g=delta_g, sigma_g=sigma_g, theta=theta)
        return Simulation(
            data=data, truth=truth, generating={**s, "gamma_g": gamma_g, "delta_g": delta_g, "sigma_g": sigma_g}
        )
