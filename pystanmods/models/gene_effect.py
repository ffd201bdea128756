"""The gene-effect matrix model: a gene effect per gene x cell line, corrected
for guide efficacy, screen quality and copy number, with theta integrated out.

The program (``stan/templates/gene_effect.stan.j2``) never samples the G x C
gene effects ``theta_gc``: given the other parameters each is normal, so the
sampler works on genes, guides and cell lines only, and
:func:`theta_moments` gives, for any posterior draw, the exact conditional
mean and sd of every theta. :mod:`pystanmods.depmap.matrix` turns those into
the gene-effect matrix and its posterior summaries.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from pystanmods.data import DataError, encode, label_column, nested, numeric_column
from pystanmods.models import limitations as limits
from pystanmods.models.base import Model, Simulation, StanData, register
from pystanmods.models.record import Effect, ModelRecord, UnitRule
from pystanmods.models.shared import guide_design

#: Default sd of the guide efficacies' prior, normal(1, sigma_k) on (0, 1),
#: fixed rather than learnt (see the program's header). With 0.3 a tenth of
#: guides are below 0.6; Chronos's efficacies on the shared DepMap sample
#: (2.3.11, 3,474 guides) have 10% below 0.57 and 5% below 0.41.
SIGMA_K = 0.3

#: Default sd of the covariate slopes' hyperpriors, b_0k ~ normal(0, SLOPE_SD) and
#: sigma_bk ~ half-normal(SLOPE_SD): slopes are per sd of a covariate, and half
#: an sd of theta per sd of expression is already a strong biomarker.
SLOPE_SD = 0.5

#: The model's posterior variables that the gene-effect summaries need, in the
#: program's own (constrained) names; ``b_g`` too when the fit has covariates.
CONDITIONING = ("mu_g", "log_tau_g", "k_s", "omega_s", "log_q_c", "beta_c", "kappa_c", "log_sigma_c")


def efficacy_prior(sigma_k: float = SIGMA_K) -> Any:
    """The guide efficacies' prior: normal(1, sigma_k) truncated to (0, 1), as scipy frozen."""
    return stats.truncnorm(-1.0 / sigma_k, 0.0, loc=1.0, scale=sigma_k)


def _centred(values: np.ndarray) -> np.ndarray:
    return values - values.mean()


@register
class GeneEffect(Model):
    """Gene x cell-line effects with guide efficacy, screen quality and copy number.

    ``logfc ~ N(beta_c + omega_s + kappa_c x + k_s q_c theta_gc, sigma_c)``,
    ``theta_gc ~ N(mu_g, tau_g)``; see the program's header for every prior.

    Identification: guide efficacy ``k_s`` lies in (0, 1), its prior's mode
    at 1 with a fixed sd ``sigma_k`` (default :data:`SIGMA_K`), and screen quality
    ``q_c`` has geometric mean 1, so ``theta`` is the effect seen by a fully
    efficacious guide in a typical screen; the screen offsets ``beta_c`` sum to
    zero. The simulator draws ``log q_c`` and ``beta_c`` already centred, so
    its truth is on the program's footing.
    """

    record = ModelRecord(
        name="gene_effect",
        title="gene x cell-line effects with guide efficacy, screen quality and copy number (theta integrated out)",
        template="gene_effect.stan.j2",
        # Non-centered: on the default simulation (seed 11, 4 x 1000 + 1000)
        # the non-centered program had no divergence (R-hat 1.0117 and 1.0106,
        # bulk ESS 426 and 479 for sampler seeds 1 and 2: slow, not stuck); the
        # centered one 228 (funnels in sigma_omega and sigma_kappa).
        recommended="noncentered",
        required=("gene", "cell_line", "sgrna", "logfc"),
        # log2_copy_number (as depmap.prepare writes it) and n_alignments (cut
        # sites of the guide) make the cutting-toxicity covariate; without them
        # it is 0 and kappa_c is left to its prior.
        optional=("log2_copy_number", "n_alignments"),
        unit_rules=(UnitRule("log2_copy_number"), UnitRule("n_alignments", ("sgrna",))),
        effects=(
            Effect("mu_g", ("gene",)),
            Effect("log_tau_g", ("gene",)),
            Effect("omega_s", ("sgrna",)),
            Effect("log_q_c", ("cell_line",), free_dims=("cell_line_free",)),
            Effect("beta_c", ("cell_line",), free_dims=("cell_line_free",)),
            Effect("kappa_c", ("cell_line",)),
            Effect("log_sigma_c", ("cell_line",)),
        ),
        variables={"theta": ("block",), "k_s": ("sgrna",), "b_0": ("covariate",), "sigma_b": ("covariate",),
                   "b_g": ("gene", "covariate"), "b_g_z": ("gene", "covariate")},
        gene_effects=("mu_g",),
        results=("theta", "k_s", "omega_s", "log_q_c", "kappa_c", "log_sigma_c", "log_tau_g"),
        group_parameters=("mu_g", "k_s", "log_q_c", "log_sigma_c"),
        hyperparameters=("mu_0", "sigma_mu", "sigma_omega", "mu_sigma"),
        priors={
            "mu_0": ("normal", 0.0, 1.0),
            "sigma_mu": ("halfnormal", 1.0),
            "mu_log_tau": ("normal", -1.5, 1.0),
            "sigma_log_tau": ("halfnormal", 1.0),
            "sigma_omega": ("halfnormal", 0.5),
            "sigma_q": ("halfnormal", 0.5),
            "sigma_beta": ("halfnormal", 0.5),
            "kappa_0": ("normal", 0.0, 0.5),
            "sigma_kappa": ("halfnormal", 0.25),
            "mu_sigma": ("normal", -1.0, 1.0),
            "tau_sigma": ("exponential", 2.0),
        },
        defaults={
            "n_genes": 24,
            "guides_per_gene": (1, 2, 3, 4),  # cycled over the genes: a ragged library
            "n_cell_lines": 10,
            "n_replicates": 2,
            "missing_fraction": 0.05,
            "copy_number_sd": 0.4,  # sd of log2 relative copy number per gene x line
            "multi_alignment_fraction": 0.05,  # guides cutting two sites
            "mu_0": -0.4,
            "sigma_mu": 0.6,
            "mu_log_tau": -1.2,
            "sigma_log_tau": 0.4,
            "sigma_omega": 0.1,
            "sigma_q": 0.25,
            "sigma_beta": 0.1,
            "kappa_0": -0.15,
            "sigma_kappa": 0.05,
            "mu_sigma": -1.4,
            "tau_sigma": 0.25,
            # Slopes of theta on each covariate (only with GeneEffect(covariates=...)).
            "b_0": -0.3,
            "sigma_b": 0.15,
        },
        # The SBC design (make sbc): on 6 genes x 4 lines with 2 x (500 + 500)
        # both trial fits diverged or had R-hat >= 1.01 (ten hyperparameters
        # that few genes and lines barely inform); on this one, with 2 x
        # (1000 + 1000), the first four prior draws fitted in 8-30 s with R-hat
        # <= 1.0084 and no divergence. The 100-simulation runs: non-centered at 2 x (1000 +
        # 2000), adapt_delta 0.99, max_treedepth 12 (sbc_fit_by_program): 5% unconverged, PASS
        # (2026-12-01); at 2 x (1000 + 1000), adapt_delta 0.95 and depth 10: 38% (26 of its 28
        # R-hat failures below 1.021, i.e. short chains; 16 fits with divergences). Centered
        # (gene_effect-centered, the shorter setting) 97%, INCONCLUSIVE. No run rejects.
        sbc={"n_genes": 10, "guides_per_gene": (2, 3, 4), "n_cell_lines": 8, "n_replicates": 2,
             "missing_fraction": 0.0},
        sbc_fit={"iter_warmup": 1000, "iter_sampling": 1000},
        sbc_fit_by_program={"noncentered": {"iter_sampling": 2000, "adapt_delta": 0.99, "max_treedepth": 12}},
        limitations=(
            limits.GAUSSIAN_LOGFC,
            "Each guide is given to one gene (DepMap's guide map); a guide listed under several genes is "
            "dropped by depmap.prepare, one cutting several sites of one gene is kept and its extra cuts "
            "enter the cutting-toxicity covariate.",
            "Cutting toxicity is linear in log2 copy number (plus log2 cut sites), one slope per cell line; "
            "CERES's piecewise-linear curve is not modelled, so strong amplifications may be under-corrected.",
            "Guide efficacy is one number per guide, the same in every cell line; a guide whose efficacy "
            "differs between lines moves its gene's effect there.",
            "On the test simulation (24 genes, 10 lines) theta's 90% intervals covered 83.8%, 90.2% and 84.3% "
            "of the fixed true values for seeds 11-13; over truths drawn from the prior (SBC, 10 genes x 8 lines) "
            "89.5%, a PASS with 5% of fits unconverged. In that SBC the per-line parameters are less well "
            "calibrated: the noise sds' posteriors sit below the truth (mean rank 0.535, 2.9 standard errors "
            "over simulations above 0.5) and the 90% intervals of kappa_c, log_q_c and log_sigma_c covered "
            "86-88%; so per-line intervals are somewhat too narrow there. Not rejected per scalar, not explained.",
            "Covariate slopes (GeneEffect(covariates=...)) are per gene, pooled: from few lines per gene they are "
            "shrunk to the population slope, and where sigma_b is underestimated their intervals are too narrow "
            "(24 genes x 10 lines, slopes spread 0.15: 12 of 24 covered by 90% intervals; x 30 lines: 22 of 24).",
            "theta_gc is normal around its gene's mean: a gene that matters in a few lines only (a selective "
            "dependency) is shrunk toward the gene's mean where its data are few.",
            "Not shown to converge on a whole DepMap release: on the shared sample (41 lines, 883 genes) 2 chains "
            "x (300 + 200) ended at R-hat 1.84 (benchmarks/results/depmap_sample). A gene whose guides disagree "
            "(one against three) has two posterior modes, one guide working or three, that chains do not cross: "
            "four genes there (GNS, GPR26, NPHS2, TFAP2D) held every parameter with R-hat above 1.1. Check "
            "fit.diagnostics() and per-gene R-hat before reading its matrix.",
        ),
    )

    def __init__(self, sigma_k: float = SIGMA_K, covariates: Sequence[str] = (), slope_sd: float = SLOPE_SD) -> None:
        super().__init__()
        for name, value in (("sigma_k (sd of the guide efficacies' prior)", sigma_k),
                            ("slope_sd (sd of the covariate slopes' hyperpriors)", slope_sd)):
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite positive number, got {value!r}")
        if isinstance(covariates, str) or not all(isinstance(c, str) and c for c in covariates):
            raise ValueError(f"covariates must be a sequence of column names, got {covariates!r}")
        clash = sorted(set(covariates) & {*self.record.required, *self.record.optional})
        if clash or len(set(covariates)) != len(covariates):
            raise ValueError(f"covariates must be distinct columns other than the model's own; got {list(covariates)}")
        self.sigma_k = float(sigma_k)
        self.slope_sd = float(slope_sd)
        self.covariates = tuple(covariates)
        # Instance-level: the covariate columns are kept by column resolution
        # (and a columns mapping may rename them) like the record's optional
        # ones, and each is one value per gene x cell line like copy number.
        self.optional = (*self.record.optional, *self.covariates)
        self.unit_rules = (*self.record.unit_rules, *(UnitRule(c) for c in self.covariates))

    def prepare(self, data: pd.DataFrame, columns=None, *, compute_log_lik: bool = True,
                compute_y_rep: bool = True, compute_theta: bool = False) -> StanData:
        """As :meth:`Model.prepare`; ``compute_theta`` writes theta draws (off by default:
        the summaries come exactly from the other draws, and G x C draws are large).

        ``log_lik`` is per gene x cell-line block, the unit that theta couples.
        """
        prepared = super().prepare(data, columns, compute_log_lik=compute_log_lik, compute_y_rep=compute_y_rep)
        prepared.data["compute_theta"] = int(bool(compute_theta))
        prepared.dims["log_lik"] = ["block"]
        return prepared

    def _build(self, frame: pd.DataFrame) -> tuple[dict[str, Any], dict]:
        gene_labels = label_column(frame, "gene")
        sgrna_labels = label_column(frame, "sgrna")
        gene, sgrna = encode(gene_labels), encode(sgrna_labels)
        cell = encode(label_column(frame, "cell_line"))
        if cell.size < 2:
            raise DataError(
                f"gene_effect needs at least 2 cell lines (screen quality and offsets are relative "
                f"between lines); column 'cell_line' has {cell.size} in {len(frame)} rows"
            )
        sgrna_gene = nested(sgrna_labels, gene_labels, sgrna, gene)
        logfc = numeric_column(frame, "logfc")
        x = self._covariate(frame)
        # Units sorted by (gene, cell line, guide): each gene x line block is then a
        # contiguous run of units, as the program's CSR block sums need.
        keys = np.column_stack([sgrna_gene[sgrna.codes - 1], cell.codes, sgrna.codes])
        units, row_unit, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        row_unit = row_unit.ravel()
        means = np.bincount(row_unit, weights=logfc) / counts
        unit_ss = np.bincount(row_unit, weights=(logfc - means[row_unit]) ** 2)
        # One value per unit: the record's unit rules refuse copy number that
        # varies within a gene x cell line, or cut sites within a guide.
        unit_x = np.bincount(row_unit, weights=x) / counts
        blocks, unit_block = np.unique(units[:, :2], axis=0, return_inverse=True)
        unit_block = unit_block.ravel()
        block_start = np.searchsorted(unit_block, np.arange(len(blocks) + 1)) + 1
        data = {
            "N": len(frame),
            "G": gene.size,
            "C": cell.size,
            "S": sgrna.size,
            "sgrna_gene": sgrna_gene,
            "logfc": logfc,
            "U": int(len(units)),
            "unit_sgrna": units[:, 2].astype(int),
            "unit_cell_line": units[:, 1].astype(int),
            "unit_n": counts.astype(float),
            "unit_logfc": means,
            "unit_x": unit_x,
            "row_unit": row_unit + 1,
            "B": int(len(blocks)),
            "block_gene": blocks[:, 0].astype(int),
            "block_cell_line": blocks[:, 1].astype(int),
            "block_start": block_start.astype(int),
            "ss_block": np.bincount(unit_block, weights=unit_ss, minlength=len(blocks)),
        }
        # The efficacies' prior sd: data, so that another needs no recompile.
        data["sigma_k"] = self.sigma_k
        x_block, covariate_names = self._block_covariates(frame, row_unit, unit_block, blocks)
        data.update(K=len(covariate_names), x_block=x_block, slope_sd=self.slope_sd)
        # The centered program's affine scales, as written until a pilot sets them.
        data.update(identity_pilot(data))
        coords = {
            "gene": gene.labels,
            "sgrna": sgrna.labels,
            "cell_line": cell.labels,
            "cell_line_free": cell.labels[1:],
            "block": [f"{gene.labels[g - 1]} | {cell.labels[c - 1]}" for g, c in blocks],
            "covariate": covariate_names,
        }
        return data, coords

    def _block_covariates(self, frame: pd.DataFrame, row_unit: np.ndarray, unit_block: np.ndarray,
                          blocks: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """The ``B x K`` covariate matrix: one value per gene x cell line, centred
        over each gene's lines and divided by its sd over all blocks.

        A numeric column is used as it is; any other (a lineage) becomes one
        indicator per level but its most common one, the reference, which the
        gene's mean then absorbs. Centring within genes keeps ``mu_g`` the gene's
        mean effect over its lines.
        """
        n_blocks = len(blocks)
        row_block = unit_block[row_unit]
        columns: list[np.ndarray] = []
        names: list[str] = []
        for name in self.covariates:
            raw = frame[name]
            if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
                parts = [(name, numeric_column(frame, name))]
            else:
                levels = label_column(frame, name)
                order = levels.value_counts()
                parts = [(f"{name}[{level}]", (levels == level).to_numpy(dtype=float)) for level in order.index[1:]]
                if not parts:
                    raise DataError(f"covariate column {name!r} has one level ({order.index[0]!r}) in "
                                    f"{len(frame)} rows: nothing to compare")
            for label, values in parts:
                # One value per block: the instance's unit rules (checked by
                # prepare) refuse a covariate that varies within one.
                per_block = np.bincount(row_block, weights=values, minlength=n_blocks) / np.bincount(row_block)
                gene_mean = (np.bincount(blocks[:, 0] - 1, weights=per_block)
                             / np.bincount(blocks[:, 0] - 1))[blocks[:, 0] - 1]
                centred = per_block - gene_mean
                sd = centred.std()
                if not sd > 1e-12:
                    raise DataError(f"covariate {label!r} does not vary within any gene over its cell lines "
                                    f"({n_blocks} gene x cell-line cells): it has no slope to estimate")
                columns.append(centred / sd)
                names.append(label)
        x_block = np.column_stack(columns) if columns else np.zeros((n_blocks, 0))
        return x_block, names

    @staticmethod
    def _covariate(frame: pd.DataFrame) -> np.ndarray:
        """Cutting-toxicity covariate: log2 relative copy number + log2 cut sites.

        A row without copy number gets 0 (the typical line's diploid-relative
        level); :func:`pystanmods.depmap.matrix` reports how many.
        """
        x = np.zeros(len(frame))
        if "log2_copy_number" in frame:
            cn = pd.to_numeric(frame["log2_copy_number"], errors="coerce").to_numpy(dtype=float)
            x += np.where(np.isfinite(cn), cn, 0.0)
        if "n_alignments" in frame:
            sites = numeric_column(frame, "n_alignments")
            if (sites < 1).any():
                raise DataError(
                    f"column 'n_alignments' must be >= 1; {int((sites < 1).sum())} of {len(frame)} rows are not"
                )
            x += np.log2(sites)
        return x

    def simulate(self, seed: int | None = None, **overrides: Any) -> Simulation:
        s = self.settings(overrides)
        rng = np.random.default_rng(seed)
        n_genes, n_cells = int(s["n_genes"]), int(s["n_cell_lines"])
        cycle = [int(k) for k in s["guides_per_gene"]]
        per_gene = [cycle[i % len(cycle)] for i in range(n_genes)]
        frame, sgrna_gene, si, ci = guide_design(rng, per_gene, n_cells, int(s["n_replicates"]), float(s["missing_fraction"]))
        n_guides = sgrna_gene.size
        mu_g = rng.normal(s["mu_0"], s["sigma_mu"], n_genes)
        log_tau_g = rng.normal(s["mu_log_tau"], s["sigma_log_tau"], n_genes)
        # Covariates (one per name in self.covariates), drawn per gene x line and
        # put on the program's footing, centred within each gene and of unit sd
        # over the grid, so that with every block observed prepare leaves them as
        # they are. Every covariate shares the settings' b_0 and sigma_b.
        z = rng.normal(0.0, 1.0, (len(self.covariates), n_genes, n_cells))
        z -= z.mean(axis=2, keepdims=True)
        z /= z.reshape(len(self.covariates), -1).std(axis=1)[:, None, None] if self.covariates else 1.0
        b_g = rng.normal(s["b_0"], s["sigma_b"], (n_genes, len(self.covariates)))
        theta = rng.normal(mu_g[:, None] + np.einsum("kgc,gk->gc", z, b_g), np.exp(log_tau_g)[:, None],
                           (n_genes, n_cells))
        k_s = efficacy_prior(self.sigma_k).rvs(n_guides, random_state=rng)
        omega_s = rng.normal(0.0, s["sigma_omega"], n_guides)
        log_q_c = _centred(rng.normal(0.0, s["sigma_q"], n_cells))
        beta_c = _centred(rng.normal(0.0, s["sigma_beta"], n_cells))
        kappa_c = rng.normal(s["kappa_0"], s["sigma_kappa"], n_cells)
        log_sigma_c = rng.normal(s["mu_sigma"], s["tau_sigma"], n_cells)
        cn = rng.normal(0.0, s["copy_number_sd"], (n_genes, n_cells))
        sites = np.where(rng.random(n_guides) < s["multi_alignment_fraction"], 2, 1)
        gi = sgrna_gene[si]
        x = cn[gi, ci] + np.log2(sites[si])
        mean = (beta_c[ci] + omega_s[si] + kappa_c[ci] * x
                + k_s[si] * np.exp(log_q_c[ci]) * theta[gi, ci])
        frame["logfc"] = rng.normal(mean, np.exp(log_sigma_c[ci]))
        frame["log2_copy_number"] = cn[gi, ci]
        frame["n_alignments"] = sites[si]
        for k, name in enumerate(self.covariates):
            frame[name] = z[k][gi, ci]
        truth: dict[str, Any] = {
            "mu_g": mu_g,
            "log_tau_g": log_tau_g,
            "k_s": k_s,
            "omega_s": omega_s,
            "log_q_c": log_q_c,
            "beta_c": beta_c,
            "kappa_c": kappa_c,
            "log_sigma_c": log_sigma_c,
            "theta": theta,
            **{name: float(s[name]) for name in self.priors},
        }
        if self.covariates:
            k = len(self.covariates)
            truth.update(b_g=b_g, b_0=np.full(k, float(s["b_0"])), sigma_b=np.full(k, float(s["sigma_b"])))
        return Simulation(data=frame, truth=truth, generating=dict(s))

    def sbc_inputs(self, simulation: Simulation) -> tuple[StanData, dict[str, Any]]:
        """SBC ranks theta too: the program writes its draws (compute_theta), one
        per gene x cell-line block, so the simulator's ``(G, C)`` truth is taken
        in block order. Simulated labels sort in simulation order (``gene01``, ...)."""
        prepared = self.prepare(simulation.data, compute_log_lik=False, compute_y_rep=False, compute_theta=True)
        data = prepared.data
        truth = dict(simulation.truth)
        truth["theta"] = np.asarray(truth["theta"])[np.asarray(data["block_gene"]) - 1,
                                                     np.asarray(data["block_cell_line"]) - 1]
        return prepared, truth


def theta_moments(data: dict[str, Any], draws: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Conditional mean and sd of each block's theta, for each draw.

    Parameters
    ----------
    data : dict
        The Stan data of a :class:`GeneEffect` fit.
    draws : dict
        :data:`CONDITIONING` variables, each ``(n_draws, size)``, and ``b_g``
        ``(n_draws, G, K)`` when the data have covariates (``x_block``).

    Returns
    -------
    mean, sd : numpy.ndarray
        ``(n_draws, B)``: theta_gc | rest ~ normal(mean, sd), as in the program.
    """
    sgrna = np.asarray(data["unit_sgrna"]) - 1
    cell = np.asarray(data["unit_cell_line"]) - 1
    n = np.asarray(data["unit_n"], dtype=float)
    start = np.asarray(data["block_start"]) - 1
    block_gene = np.asarray(data["block_gene"]) - 1
    block_cell = np.asarray(data["block_cell_line"]) - 1
    # Each block's prior mean of theta, m_b = mu_g + x_b' b_g (block_mean in the program).
    prior_mean = draws["mu_g"][:, block_gene]
    x_block = np.asarray(data.get("x_block", np.zeros((block_gene.size, 0))), dtype=float)
    if x_block.shape[1] > 0:
        prior_mean = prior_mean + np.einsum("bk,nbk->nb", x_block, draws["b_g"][:, block_gene, :])
    unit_block = np.repeat(np.arange(block_gene.size), np.diff(start))
    a = draws["k_s"][:, sgrna] * np.exp(draws["log_q_c"][:, cell])
    r = (np.asarray(data["unit_logfc"])[None, :] - draws["beta_c"][:, cell] - draws["omega_s"][:, sgrna]
         - draws["kappa_c"][:, cell] * np.asarray(data["unit_x"])[None, :] - a * prior_mean[:, unit_block])
    # Block sums of contiguous unit runs.
    big_a = np.add.reduceat(n * a**2, start[:-1], axis=1)
    big_b = np.add.reduceat(n * a * r, start[:-1], axis=1)
    lam = np.exp(2 * (draws["log_tau_g"][:, block_gene] - draws["log_sigma_c"][:, block_cell]))
    d = 1 + lam * big_a
    return prior_mean + lam * big_b / d, np.exp(draws["log_tau_g"][:, block_gene]) / np.sqrt(d)


def pilot_sizes(data: dict[str, Any]) -> dict[str, int]:
    """The centered program's effects sampled on a pilot's affine scale, with
    their number of coordinates (zero-sum effects: their C - 1 Helmert ones)."""
    G, S, C = int(data["G"]), int(data["S"]), int(data["C"])
    return {"mu_g": G, "log_tau_g": G, "omega_s": S, "log_q_c": C - 1, "beta_c": C - 1, "kappa_c": C,
            "log_sigma_c": C}


def helmert_matrix(n_free: int) -> np.ndarray:
    """The ``(n_free + 1, n_free)`` matrix of the programs' ``sum_to_zero_helmert``.

    Its columns are orthonormal and sum to zero, so a zero-sum vector ``x``
    has Helmert coordinates ``H.T @ x``.
    """
    k = np.arange(1, n_free + 1, dtype=float)
    h = np.zeros((n_free + 1, n_free))
    for j in range(n_free):
        # sum_to_zero_helmert of the unit vector e_j: w = 1 / sqrt(k (k + 1)) at j.
        w = 1.0 / np.sqrt(k[j] * (k[j] + 1))
        h[: j + 1, j] = w
        h[j + 1, j] = -k[j] * w
    return h


def identity_pilot(data: dict[str, Any]) -> dict[str, np.ndarray]:
    """Location 0 and scale 1 for every pilot effect: the program as written."""
    out: dict[str, np.ndarray] = {}
    for name, size in pilot_sizes(data).items():
        out[f"{name}_loc"] = np.zeros(size)
        out[f"{name}_scale"] = np.ones(size)
    return out


def pilot(data: dict[str, Any], efficacy: float | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Moment estimates of the effects' posterior location and sd, and inits.

    NUTS adapts its metric only after a first window of 75 iterations run on
    a unit metric. On a genome-scale fit the effects' posterior sds span two
    orders of magnitude (a line's noise is known to 1%, a weak guide's
    efficacy hardly at all), so that window runs trees of hundreds of
    leapfrog steps. The centered program samples each effect as
    ``loc + scale * raw``; given these pilots every raw coordinate starts
    near unit scale and near its mode. The density is unchanged: a wrong
    pilot costs adaptation time, never correctness.

    The estimates use block means (a gene in a cell line), weighted by their
    marginal precision ``1 / (k^2 tau_g^2 + sigma_c^2 / n_b)`` with the typical
    guide efficacy ``k`` (the prior's mean): a gene's mean, each line's
    offset and copy-number slope by weighted least squares, each line's noise
    from the spread of its units around their block means.

    Parameters
    ----------
    data : dict
        The Stan data of a :class:`GeneEffect` fit.
    efficacy : float, optional
        The typical guide efficacy assumed by the pilot; default the mean of
        the efficacy prior with the data's ``sigma_k``.

    Returns
    -------
    scales : dict
        ``name_loc`` and ``name_scale`` for each effect of :func:`pilot_sizes`, as the
        program's data.
    inits : dict
        Initial values for the centered program (hyperparameters included).
    """
    G, C, S = int(data["G"]), int(data["C"]), int(data["S"])
    if efficacy is None:
        efficacy = float(efficacy_prior(float(data.get("sigma_k", SIGMA_K))).mean())
    n = np.asarray(data["unit_n"], dtype=float)
    y = np.asarray(data["unit_logfc"], dtype=float)
    x = np.asarray(data["unit_x"], dtype=float)
    unit_line = np.asarray(data["unit_cell_line"]) - 1
    unit_guide = np.asarray(data["unit_sgrna"]) - 1
    start = np.asarray(data["block_start"]) - 1
    block_gene = np.asarray(data["block_gene"]) - 1
    block_line = np.asarray(data["block_cell_line"]) - 1
    unit_block = np.repeat(np.arange(len(block_gene)), np.diff(start))
    n_b = np.add.reduceat(n, start[:-1])
    y_b = np.add.reduceat(n * y, start[:-1]) / n_b
    x_b = np.add.reduceat(n * x, start[:-1]) / n_b
    # A line's noise: its rows' spread around their block means, replicates'
    # spread included; guides that differ in efficacy inflate it a little.
    spread = (np.bincount(unit_line, weights=n * (y - y_b[unit_block]) ** 2, minlength=C)
              + np.bincount(block_line, weights=np.asarray(data["ss_block"], dtype=float), minlength=C))
    df = np.bincount(unit_line, weights=n, minlength=C) - np.bincount(block_line, minlength=C)
    s2_c = np.where(df > 0, spread / np.maximum(df, 1), np.nan)
    s2_c = np.where(np.isfinite(s2_c) & (s2_c > 0), s2_c, np.nanmedian(s2_c[s2_c > 0]) if (s2_c > 0).any() else 0.25)
    noise_b = s2_c[block_line] / n_b
    # A gene's spread across lines, net of noise, on theta's scale.
    lines_g = np.bincount(block_gene, minlength=G).astype(float)
    mean_g = np.bincount(block_gene, weights=y_b, minlength=G) / lines_g
    var_g = np.bincount(block_gene, weights=(y_b - mean_g[block_gene]) ** 2, minlength=G) / np.maximum(lines_g - 1, 1)
    noise_g = np.bincount(block_gene, weights=noise_b, minlength=G) / lines_g
    tau_g = np.sqrt(np.maximum(var_g - noise_g, 0.05**2)) / efficacy
    w_b = 1.0 / (efficacy**2 * tau_g[block_gene] ** 2 + noise_b)
    # Each line's copy-number slope and offset on the residual of its genes' means.
    mu_g = np.bincount(block_gene, weights=w_b * y_b, minlength=G) / np.bincount(block_gene, weights=w_b, minlength=G)
    resid = y_b - mu_g[block_gene]
    sxx = np.bincount(block_line, weights=w_b * x_b**2, minlength=C)
    sx = np.bincount(block_line, weights=w_b * x_b, minlength=C)
    sw = np.bincount(block_line, weights=w_b, minlength=C)
    sxy = np.bincount(block_line, weights=w_b * x_b * resid, minlength=C)
    sy = np.bincount(block_line, weights=w_b * resid, minlength=C)
    det = sxx * sw - sx**2
    kappa_c = np.where(det > 1e-12 * np.maximum(sxx * sw, 1e-300), (sw * sxy - sx * sy) / np.where(det > 0, det, 1), 0.0)
    beta_c = (sy - kappa_c * sx) / sw
    beta_c -= beta_c.mean()
    mu_g = mu_g / efficacy
    helmert = helmert_matrix(C - 1)
    # Precision of each effect given the others (information of the block means).
    info_mu = np.bincount(block_gene, weights=efficacy**2 * w_b, minlength=G)
    info_q = np.bincount(block_line, weights=(efficacy * mu_g[block_gene]) ** 2 * w_b, minlength=C)
    info_omega = np.bincount(unit_guide, weights=n / s2_c[unit_line], minlength=S)
    n_c = np.bincount(unit_line, weights=n, minlength=C)
    scales = {
        "mu_g_loc": mu_g,
        "mu_g_scale": 1.0 / np.sqrt(info_mu + 1.0),
        # A sd from C_g values is known to about 1 / sqrt(2 (C_g - 1)) on the log
        # scale; a gene whose spread is hidden by noise (at the floor) far less.
        "log_tau_g_loc": np.log(tau_g),
        "log_tau_g_scale": np.where(var_g - noise_g > 0.05**2, 1.0 / np.sqrt(2.0 * np.maximum(lines_g - 1, 1)), 0.5),
        "omega_s_loc": np.zeros(S),
        "omega_s_scale": 1.0 / np.sqrt(info_omega + 1.0 / 0.1**2),
        "log_q_c_loc": np.zeros(C - 1),
        "log_q_c_scale": np.full(C - 1, 1.0 / np.sqrt(info_q.mean() + 1.0 / 0.5**2)),
        "beta_c_loc": helmert.T @ beta_c,
        "beta_c_scale": np.full(C - 1, 1.0 / np.sqrt(sw.mean())),
        "kappa_c_loc": kappa_c,
        "kappa_c_scale": 1.0 / np.sqrt(sxx + 1.0 / 0.25**2),
        "log_sigma_c_loc": 0.5 * np.log(s2_c),
        "log_sigma_c_scale": 1.0 / np.sqrt(2.0 * n_c),
    }
    log_tau = np.log(tau_g)
    log_sigma = scales["log_sigma_c_loc"]
    inits = {
        "mu_0": float(mu_g.mean()),
        "log_sigma_mu": float(np.log(max(mu_g.std(), 0.05))),
        "mu_g": mu_g,
        "mu_log_tau": float(log_tau.mean()),
        "log_sigma_log_tau": float(np.log(max(log_tau.std(), 0.1))),
        "log_tau_g": log_tau,
        "k_s": np.full(S, efficacy),
        "log_sigma_omega": float(np.log(0.1)),
        "omega_s": np.zeros(S),
        "log_sigma_q": float(np.log(0.1)),
        "log_q_c_raw": np.zeros(C - 1),
        "log_sigma_beta": float(np.log(max(beta_c.std(), 0.02))),
        "beta_c_raw": scales["beta_c_loc"],
        "kappa_0": float(kappa_c.mean()),
        "log_sigma_kappa": float(np.log(max(kappa_c.std(), 0.01))),
        "kappa_c": kappa_c,
        "mu_sigma": float(log_sigma.mean()),
        "log_tau_sigma": float(np.log(max(log_sigma.std(), 0.05))),
        "log_sigma_c": log_sigma,
    }
    return scales, inits


def jittered_inits(inits: dict[str, Any], scales: dict[str, np.ndarray], chains: int,
                   seed: int | None = None) -> list[dict[str, Any]]:
    """One init per chain: the pilot's, each effect moved by uniform(-1, 1) pilot sds.

    Chains that all started at one point would make R-hat blind to a
    posterior they had not left; Stan's own inits are uniform(-2, 2) on the
    unconstrained scale, here the pilot's scale.
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(chains):
        chain = {}
        for name, value in inits.items():
            value = np.asarray(value, dtype=float)
            key = name[: -len("_raw")] if name.endswith("_raw") else name
            scale = scales.get(f"{key}_scale", 0.1 if name.startswith(("log_sigma", "log_tau_sigma")) else None)
            if scale is None and name == "k_s":
                # Half the distance to the nearer bound: every init stays inside (0, 1).
                scale = 0.5 * min(float(value.min()), 1.0 - float(value.max()))
            if scale is None:
                scale = 0.02
            moved = value + np.asarray(scale) * rng.uniform(-1.0, 1.0, value.shape)
            chain[name] = moved.tolist() if moved.ndim else float(moved)
        out.append(chain)
    return out
