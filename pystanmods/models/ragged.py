"""Models A and B: ragged sgRNA x cell-line data with RNA, copy-number and mutation covariates."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np
import pandas as pd

from pystanmods.data import DataError, numeric_column
from pystanmods.data.transform import centre_within_cell_line
from pystanmods.models.base import Model, Simulation, as_array, draw_from, register
from pystanmods.models import limitations as limits
from pystanmods.models.record import Effect, ModelRecord, UnitRule
from pystanmods.models import shared

#: Scale of Model B's "no effect" mixture component: a mutation that moves a
#: gene's logFC by less than about 0.1 does not change a screen's call.
TAU_ZETA = 0.05
#: Default prior of Model B's effect scale, ``sigma_zeta ~ lognormal(log(median),
#: log_sd)``: mutation effects of typically 0.75 in logFC, within 0.3-1.9 with
#: 95% probability.
SIGMA_ZETA_PRIOR_MEDIAN = 0.75
SIGMA_ZETA_PRIOR_LOG_SD = 0.5


def mutation_slots(gene: pd.Series, is_mutated: np.ndarray, gene_labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """Which genes get a mutation effect in Model B.

    A gene mutated in none, or in all, of the cell lines it is measured in
    carries no information on its mutation effect: the effect is then absent
    or indistinguishable from the gene's intercept. Such a gene gets slot
    ``M + 1``, a fixed zero effect; the others get slots ``1..M`` in gene order.

    Returns
    -------
    slots : numpy.ndarray
        1-based slot per gene (in ``gene_labels`` order).
    informative : list of str
        Labels of the M genes with a mutation effect.
    """
    share = pd.Series(is_mutated, index=gene.to_numpy()).groupby(level=0).mean()
    informative = [g for g in gene_labels if 0.0 < share[g] < 1.0]
    slot_of = {g: i for i, g in enumerate(informative, start=1)}
    slots = np.array([slot_of.get(g, len(informative) + 1) for g in gene_labels], dtype=int)
    return slots, informative


@register
class ModelA(Model):
    """Ragged sgRNA x cell-line data with RNA and copy-number covariates.

    ``logfc ~ N(alpha_s + beta_c + delta_g * rna + kappa_s * cn, sigma)``;
    guides nested in genes (``alpha_s ~ N(epsilon_g, sigma_alpha)``), a
    gene-varying RNA slope ``delta_g`` and a guide-varying copy-number slope
    ``kappa_s ~ N(eta_g, sigma_kappa)`` (Cas9 cutting toxicity at amplified
    loci depends on where the guide cuts). ``cn`` is the column
    ``log2_copy_number`` (0: the cell line's baseline ploidy), as in the
    DepMap frame. Not every guide needs to be in every cell line.

    Identification: only the observed pairs enter, so raggedness changes
    nothing. The cell-line effects sum to zero, so ``alpha_s`` is a guide's
    effect in the average cell line at ``rna = 0`` and ``cn = 0``, and
    ``mu_epsilon`` is the single grand mean.

    Parameters
    ----------
    centre_rna : bool
        Centre ``rna`` within each cell line before fitting (see
        :func:`pystanmods.data.transform.centre_within_cell_line`); the same
        compiled program serves both. Pass the instance to :func:`pystanmods.fit`.
    """

    record = ModelRecord(
        name="model_a",
        title="ragged guides in genes, cell-line intercepts, RNA and copy-number slopes",
        template="model_a.stan.j2",
        within_chain=True,
        template_vars={"mutation": False},
        # The guides' copy-number slopes kappa_s are barely informed by their own
        # data (a slope over a covariate with sd about 0.5, from a few cell lines
        # per guide) and pooled tightly (sigma_kappa about 0.05): a funnel. On the
        # test simulation the centered program had 202 divergences and R-hat 1.14
        # for sigma_kappa; the non-centered one had none and R-hat 1.006.
        recommended="noncentered",
        required=("gene", "cell_line", "sgrna", "rna", "log2_copy_number", "logfc"),
        group_parameters=("alpha_s", "beta_c", "delta_g", "kappa_s"),
        hyperparameters=("mu_epsilon", "sigma_alpha", "sigma_beta", "mu_delta", "mu_eta", "sigma"),
        priors={
            "mu_epsilon": ("normal", 0.0, 5.0),
            "sigma_epsilon": ("exponential", 1.0),
            "sigma_alpha": ("exponential", 1.0),
            "sigma_beta": ("exponential", 1.0),
            "mu_delta": ("normal", 0.0, 1.0),
            "sigma_delta": ("exponential", 1.0),
            "mu_eta": ("normal", 0.0, 1.0),
            "sigma_eta": ("exponential", 2.0),
            "sigma_kappa": ("exponential", 2.0),
            "sigma": ("exponential", 1.0),
        },
        defaults={
            "n_genes": 8,
            "sgrnas_per_gene": 3,
            "n_cell_lines": 12,
            "n_replicates": 1,
            "missing_fraction": 0.2,
            "mu_epsilon": -0.5,
            "sigma_epsilon": 1.0,
            "sigma_alpha": 0.3,
            "sigma_beta": 0.5,
            "mu_delta": -0.3,
            "sigma_delta": 0.3,
            "mu_eta": -0.2,
            "sigma_eta": 0.1,
            "sigma_kappa": 0.05,
            "sigma": 0.3,
            # RNA is z-scored per gene; rna_cell_line_sd adds a shift per cell line
            # (the seed's "cell lines that tend to have higher RNA expression").
            "rna_cell_line_sd": 0.0,
            "cn_sd": 0.5,  # sd of log2 relative copy number per gene x cell line
            "epsilon_g": None,
            "alpha_s": None,
            "beta_c": None,
            "delta_g": None,
            "eta_g": None,
            "kappa_s": None,
        },
        unit_rules=(UnitRule("rna"),),
        effects=(
            shared.GENE_EFFECT,
            shared.GUIDE_EFFECT,
            shared.CELL_LINE_EFFECT,
            Effect("delta_g", ("gene",)),
            Effect("eta_g", ("gene",)),
            Effect("kappa_s", ("sgrna",)),
        ),
        gene_effects=("epsilon_g",),
        slopes=("delta_g", "kappa_s"),
        results=("alpha_s", "beta_c", "eta_g"),
        # Ragged, as the model is meant for, but lightly: a guide that loses all
        # 5 of its cell lines changes the simulation's shape and fails its fit.
        # At 0.05 that has probability about 2e-6 per simulation (6e-5 at 0.1).
        sbc={"n_cell_lines": 5, "sgrnas_per_gene": [1, 2, 3], "missing_fraction": 0.05},
        # make sbc (docs/sbc-results/model_a-noncentered): at 2 x (300 + 300) 198 of 200
        # fits had R-hat >= 1.01; a pilot of 10 (seed 2) at these settings had 1 of 10
        # unconverged (one divergence), max R-hat 1.004, 9.5 s per fit; the run of 100: 14, and
        # 16 rerun on the --O1 build (2026-12-01), 10 of its 11 R-hat failures at the maximum
        # tree depth 10. At depth 12 (the committed run, 2026-12-01): 12 of 100, R-hat
        # failures 11 -> 2 but fits with divergences 6 -> 10 (1-5 each): INCONCLUSIVE by two.
        # The centered program on the same data sets (model_a-centered): 99 of 100 diverged.
        sbc_fit={"iter_warmup": 1000, "iter_sampling": 2000, "adapt_delta": 0.999},
        sbc_fit_by_program={"noncentered": {"max_treedepth": 12}},
        limitations=(
            limits.GAUSSIAN_LOGFC,
            limits.NO_GENE_BY_CELL_LINE,
            limits.zero_sum("The cell-line intercepts beta_c", "sigma_beta"),
            "RNA and copy-number slopes are linear and the same in every cell line.",
        ),
    )

    def __init__(self, centre_rna: bool = False) -> None:
        self.centre_rna = bool(centre_rna)

    def _covariates(self, frame: pd.DataFrame, data: dict[str, Any]) -> None:
        rna = numeric_column(frame, "rna")
        if self.centre_rna:
            rna = centre_within_cell_line(frame.assign(rna=rna)).to_numpy(dtype=float)
        data["rna"] = rna
        data["copy_number"] = numeric_column(frame, "log2_copy_number")

    def _build(self, frame: pd.DataFrame) -> tuple[dict[str, Any], dict]:
        data, coords = shared.guide_structure(frame)
        self._covariates(frame, data)
        return data, coords

    # ---------------------------------------------------------- simulation
    def _prior_overrides(self, rng: np.random.Generator, drawn: dict, settings: dict) -> dict[str, Any]:
        # Every gene and guide effect drawn from the hyperparameters; beta_c as
        # the program's: iid normal(0, sigma_beta) centred by their mean. RNA
        # and copy number are data and keep the simulator's design.
        beta_c = rng.normal(0.0, drawn["sigma_beta"], int(settings["n_cell_lines"]))
        return {
            **dict.fromkeys(("epsilon_g", "alpha_s", "delta_g", "eta_g", "kappa_s")),
            "beta_c": beta_c - beta_c.mean(),
        }

    def _simulate_a(self, s: dict[str, Any], rng: np.random.Generator) -> tuple[pd.DataFrame, dict, dict, dict]:
        """The Model A part of a simulation: frame, linear predictor pieces, truth and draws."""
        per_gene = shared.guides_per_gene(s["sgrnas_per_gene"], int(s["n_genes"]))
        n_genes, n_cells = len(per_gene), int(s["n_cell_lines"])
        frame, sgrna_gene, si, ci = shared.guide_design(rng, per_gene, n_cells, int(s["n_replicates"]), float(s["missing_fraction"]))
        n_sgrnas = sgrna_gene.size
        epsilon_g = shared.draw_effect(rng, s["epsilon_g"], n_genes, "epsilon_g", s["mu_epsilon"], s["sigma_epsilon"])
        alpha_s = shared.draw_effect(rng, s["alpha_s"], n_sgrnas, "alpha_s", epsilon_g[sgrna_gene], s["sigma_alpha"])
        beta_c = shared.draw_effect(rng, s["beta_c"], n_cells, "beta_c", 0.0, s["sigma_beta"])
        delta_g = shared.draw_effect(rng, s["delta_g"], n_genes, "delta_g", s["mu_delta"], s["sigma_delta"])
        eta_g = shared.draw_effect(rng, s["eta_g"], n_genes, "eta_g", s["mu_eta"], s["sigma_eta"])
        kappa_s = shared.draw_effect(rng, s["kappa_s"], n_sgrnas, "kappa_s", eta_g[sgrna_gene], s["sigma_kappa"])
        # One RNA and one copy-number value per gene x cell line, shared by its guides.
        rna_gc = rng.normal(0, 1, (n_genes, n_cells)) + rng.normal(0, s["rna_cell_line_sd"], n_cells)
        cn_gc = rng.normal(0, s["cn_sd"], (n_genes, n_cells))
        gi = sgrna_gene[si]
        frame["rna"] = rna_gc[gi, ci]
        frame["log2_copy_number"] = cn_gc[gi, ci]
        mu = alpha_s[si] + beta_c[ci] + delta_g[gi] * frame["rna"].to_numpy() + kappa_s[si] * frame["log2_copy_number"].to_numpy()
        shift = beta_c.mean()
        truth: dict[str, Any] = {k: float(s[k]) for k in ("sigma_epsilon", "sigma_alpha", "sigma_beta", "mu_delta",
                                                           "sigma_delta", "mu_eta", "sigma_eta", "sigma_kappa", "sigma")}
        truth.update(
            mu_epsilon=float(s["mu_epsilon"] + shift),
            epsilon_g=epsilon_g + shift,
            alpha_s=alpha_s + shift,
            beta_c=beta_c - shift,
            delta_g=delta_g,
            eta_g=eta_g,
            kappa_s=kappa_s,
        )
        generating = {**s, "epsilon_g": epsilon_g, "alpha_s": alpha_s, "beta_c": beta_c, "delta_g": delta_g,
                      "eta_g": eta_g, "kappa_s": kappa_s}
        index = {"si": si, "ci": ci, "gi": gi, "sgrna_gene": sgrna_gene, "mu": mu}
        return frame, truth, generating, index

    def simulate(self, seed: int | None = None, **overrides: Any) -> Simulation:
        """Simulate ragged tidy data; every size and value in :attr:`defaults` can be overridden.

        A share ``missing_fraction`` of the sgRNA x cell-line cells is left out
        at random; ``sgrnas_per_gene`` is one count or one count per gene.
        """
        s = self.settings(overrides)
        rng = np.random.default_rng(seed)
        frame, truth, generating, index = self._simulate_a(s, rng)
        frame["logfc"] = rng.normal(index["mu"], s["sigma"])
        return Simulation(data=frame, truth=truth, generating=generating)


@register
class ModelB(ModelA):
    """Model A plus a gene mutation covariate with a two-component mixture effect.

    ``logfc ~ N(... + zeta_g * is_mutated, sigma)`` with
    ``zeta_g ~ omega N(0, sigma_zeta) + (1 - omega) N(0, tau_zeta)``: a gene's
    mutation either leaves its dependency unchanged (narrow component, fixed
    scale ``tau_zeta``) or shifts it (wide component). The indicator is summed
    out; ``p_matters_g`` is the per-draw probability of the wide component, and
    its posterior mean is P(the gene's mutation matters).

    Genes mutated in none or in all of the cell lines they are measured in
    carry no information on a mutation effect (it is absent, or confounded
    with the gene's intercept). They get no ``zeta_g`` (see
    :func:`mutation_slots`): ``zeta_g`` and ``p_matters_g`` run over the
    informative genes only (dim ``mutated_gene``), and for a gene mutated
    everywhere ``epsilon_g`` is its effect in mutated cells. A warning names
    how many genes are left out.

    Identification: as Model A. There is no label switching: the components
    differ by construction (``sigma_zeta > tau_zeta``, ``tau_zeta`` fixed).

    Sensitivity (``benchmarks/model_b_sensitivity.py``, results in
    ``benchmarks/results/model_b_sensitivity.json``). The test simulation:
    12 genes x 12 cell lines, 11 with a mutation effect slot, 5 of them
    shifted by 0.8-1.3 and 6 not (gene09, shifted, is mutated in all its
    cell lines and has no slot). The non-centered program, 4 chains x 1000
    draws after 500 warmup, adapt_delta 0.9: R-hat <= 1.011 in every run, no
    divergences except one each at prior median 0.3 and at log-sd 1.0.
    Posterior mean of ``p_matters_g``, and of ``sigma_zeta`` (5%-95%):

    ========  ==============  =========  =========  ================
    tau_zeta  sigma_zeta      5 shifted  6 null     sigma_zeta
              prior median,   genes      genes      posterior
              log-sd
    ========  ==============  =========  =========  ================
    0.025     0.75, 0.5       1.00 each  0.09-0.18  1.03 (0.68-1.54)
    0.05      0.75, 0.5       1.00 each  0.11-0.16  1.04 (0.67-1.57)
    0.1       0.75, 0.5       1.00 each  0.13-0.16  1.03 (0.68-1.55)
    0.2       0.75, 0.5       0.99-1.00  0.18-0.21  1.01 (0.67-1.52)
    0.05      0.3, 0.5        1.00 each  0.14-0.20  0.84 (0.58-1.20)
    0.05      1.5, 0.5        1.00 each  0.09-0.12  1.29 (0.80-2.06)
    0.05      0.75, 1.0       1.00 each  0.10-0.13  1.16 (0.70-1.88)
    ========  ==============  =========  =========  ================

    (0.05 and lognormal(log(0.75), 0.5) are the defaults.) Effects of 0.8 or
    more are called "matters" in every setting. A gene without an effect
    never gets near 0: its probability rises with ``tau_zeta`` (the two
    components become harder to tell apart, and the probability moves
    toward the prior's omega, mean 2/7), and across the runs at 0.05 it
    falls as the posterior of ``sigma_zeta`` rises (the wide component then
    puts less density near 0). Moving the prior median from 0.75 down to
    0.3 or up to 1.5 moves the mean over the 6 null genes from 0.13 to 0.16
    or to 0.10; doubling the log-sd to 1.0 moves it to 0.12; ``tau_zeta``
    0.2 moves it to 0.19. So P(mutation
    matters) of a null gene is set by ``tau_zeta`` and the ``sigma_zeta``
    prior, not by the data; both are data of the program, set from the
    constructor (no recompile).

    Parameters
    ----------
    centre_rna : bool
        As in :class:`ModelA`.
    tau_zeta : float
        Scale of the "no effect" component, passed as data.
    sigma_zeta_prior_median, sigma_zeta_prior_log_sd : float
        The prior ``sigma_zeta ~ lognormal(log(median), log_sd)``, passed as
        data; the median must exceed ``tau_zeta``.
    """

    record = dataclasses.replace(
        ModelA.record,
        name="model_b",
        title="Model A plus a mutation effect from a no-effect/effect mixture",
        template_vars={"mutation": True},
        required=("gene", "cell_line", "sgrna", "rna", "log2_copy_number", "is_mutated", "logfc"),
        unit_rules=(UnitRule("rna"), UnitRule("is_mutated")),
        variables={"zeta_g": ("mutated_gene",), "p_matters_g": ("mutated_gene",)},
        results=(*ModelA.record.results, "zeta_g", "p_matters_g"),
        #: As Model A, plus the mixture's weight and wide scale. sigma_zeta is
        #: declared ``<lower=tau_zeta>``, so its lognormal is truncated there
        #: (:meth:`draw_prior`); tau_zeta itself is data, not a parameter.
        #: sigma_zeta's median and log-sd are data too: this is the default
        #: instance's prior (an instance's own is :meth:`prior`).
        priors={
            **ModelA.record.priors,
            "omega": ("beta", 2.0, 5.0),
            "sigma_zeta": ("lognormal", float(np.log(SIGMA_ZETA_PRIOR_MEDIAN)), SIGMA_ZETA_PRIOR_LOG_SD),
        },
        defaults={
            **ModelA.record.defaults,
            "n_genes": 12,
            "mutation_frequency": 0.3,  # per cell line; one value or one per gene
            "omega": 0.5,
            "sigma_zeta": 1.0,
            "tau_zeta": TAU_ZETA,
            "matters": None,  # one bool per gene; default drawn with probability omega
            "zeta_g": None,  # one value per gene (all genes, informative or not)
            # False: genes mutated in none or all of their cell lines get no
            # mutation effect, the program's fixed zero (slot M + 1). True: they
            # keep the drawn zeta_g, which for a gene mutated everywhere then
            # moves its intercept, so its epsilon_g is no longer a prior draw.
            "zeta_where_uninformative": True,
        },
        # At mutation frequency 0.5 a gene is mutated in some but not all of its
        # 5 cell lines with probability 0.94, so nearly every simulation has
        # zeta_g for 3-4 genes and the mixture's omega and sigma_zeta are tested.
        sbc={"n_cell_lines": 5, "sgrnas_per_gene": [1, 2, 2, 3], "missing_fraction": 0.05, "mutation_frequency": 0.5},
        # make sbc (docs/sbc-results/model_b-noncentered): at 2 x (300 + 300) all 200 fits
        # had R-hat >= 1.01; at 2 x (1000 + 2000), 41 of 100 were unconverged, mostly R-hat
        # just above 1.01 (slow mixing). Pilots of 10 (seed 2) at 2000 / 4000 / 8000 draws:
        # 6 / 2 / 1 of 10 unconverged (max R-hat 1.06 / 1.019 / 1.005), 30 s per fit at 8000.
        # The run of 100 at 8000: 11 of 100 (INCONCLUSIVE by one fit), the R-hat failures at
        # a small drawn sigma (median 0.036), every draw at the maximum tree depth 10. At depth
        # 12 (Model A's setting, taken from its record below): 6 of 100 (4 with 1-4
        # divergences, 2 with R-hat >= 1.01, max 1.036), PASS (2026-12-01, the committed run).
        # The centered program at 2 x (1000 + 2000), as Model A's centered run (its verdict is
        # set by divergences, which more draws would not remove, at a quarter of the cost): 99 of
        # 100 unconverged (97 with divergences), INCONCLUSIVE, no rejection (2026-12-01).
        sbc_fit={"iter_warmup": 1000, "iter_sampling": 8000, "adapt_delta": 0.999},
        sbc_fit_by_program={**ModelA.record.sbc_fit_by_program, "centered": {"iter_sampling": 2000}},
        limitations=(
            limits.GAUSSIAN_LOGFC,
            limits.NO_GENE_BY_CELL_LINE,
            limits.zero_sum("The cell-line intercepts beta_c", "sigma_beta"),
            "P(mutation matters) depends on the fixed scale of the no-effect component (tau_zeta = 0.05 by "
            "default; data, not estimated) and on the prior sigma_zeta ~ lognormal(log(0.75), 0.5) (its median "
            "and log-sd are data too), not only on the data: a small mutation effect is called 'matters' or not "
            "largely by those choices. On the test simulation genes without an effect get P = 0.11-0.16 at the "
            "defaults, 0.18-0.21 at tau_zeta = 0.2, 0.14-0.20 with a prior median of 0.3 and 0.09-0.12 with 1.5, "
            "never near 0, while effects of 0.8-1.3 get P >= 0.99 in every setting "
            "(benchmarks/results/model_b_sensitivity.json). Report it with the tau_zeta and prior used, and refit "
            "with others (ModelB(tau_zeta=, sigma_zeta_prior_median=, sigma_zeta_prior_log_sd=)) to see how much "
            "it moves.",
            "Genes mutated in none or all of their cell lines get no mutation effect (it is not identified).",
        ),
    )

    def __init__(
        self,
        centre_rna: bool = False,
        tau_zeta: float = TAU_ZETA,
        sigma_zeta_prior_median: float = SIGMA_ZETA_PRIOR_MEDIAN,
        sigma_zeta_prior_log_sd: float = SIGMA_ZETA_PRIOR_LOG_SD,
    ) -> None:
        super().__init__(centre_rna)
        for name, value in (("tau_zeta", tau_zeta), ("sigma_zeta_prior_median", sigma_zeta_prior_median),
                            ("sigma_zeta_prior_log_sd", sigma_zeta_prior_log_sd)):
            number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            if not (number and np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite positive number, got {value!r}")
        # sigma_zeta is declared above tau_zeta: a prior whose median lies below
        # it would put most of its mass where the program cannot go (and the
        # "effect" component would be the narrower one).
        if not sigma_zeta_prior_median > tau_zeta:
            raise ValueError(
                f"sigma_zeta_prior_median must exceed tau_zeta ({tau_zeta!r}), got {sigma_zeta_prior_median!r}"
            )
        self.tau_zeta = float(tau_zeta)
        self.sigma_zeta_prior_median = float(sigma_zeta_prior_median)
        self.sigma_zeta_prior_log_sd = float(sigma_zeta_prior_log_sd)

    @property
    def prior_data(self) -> dict[str, float]:
        """``sigma_zeta``'s prior median and log-sd, passed to the program as data."""
        return {"sigma_zeta_prior_median": self.sigma_zeta_prior_median,
                "sigma_zeta_prior_log_sd": self.sigma_zeta_prior_log_sd}

    def prior(self, name: str) -> tuple[Any, ...]:
        """As :meth:`Model.prior`; ``sigma_zeta``'s is this instance's."""
        if name == "sigma_zeta":
            return ("lognormal", float(np.log(self.sigma_zeta_prior_median)), self.sigma_zeta_prior_log_sd)
        return super().prior(name)

    def _build(self, frame: pd.DataFrame) -> tuple[dict[str, Any], dict]:
        data, coords = shared.guide_structure(frame)
        self._covariates(frame, data)
        mutated = numeric_column(frame, "is_mutated")
        bad = ~np.isin(mutated, (0.0, 1.0))
        if bad.any():
            raise DataError(
                f"column 'is_mutated' must be 0/1 or True/False; {int(bad.sum())} of {len(mutated)} rows "
                f"have other values, e.g. {mutated[bad][0]!r}"
            )
        slots, informative = mutation_slots(frame["gene"].astype(str), mutated, coords["gene"])
        left_out = len(coords["gene"]) - len(informative)
        if left_out:
            warnings.warn(
                f"{self.name}: {left_out} of {len(coords['gene'])} genes are mutated in none or all of their "
                "cell lines; their mutation effect is not identifiable and is fixed at 0 (no p_matters_g)",
                stacklevel=3,
            )
        data.update(
            is_mutated=mutated,
            M=len(informative),
            gene_mutation_slot=slots,
            tau_zeta=self.tau_zeta,
            **self.prior_data,
        )
        coords["mutated_gene"] = informative
        return data, coords

    def draw_prior(self, rng: np.random.Generator, prior_scale: float = 1.0) -> dict[str, float]:
        """As :meth:`Model.draw_prior`, with ``sigma_zeta`` from this instance's
        prior, truncated below at :attr:`tau_zeta` as the program declares it
        (by rejection; the default lognormal puts about 3e-8 of its mass below
        the default 0.05, and any allowed prior, median above tau_zeta, less
        than half)."""
        drawn = super().draw_prior(rng, prior_scale)
        while drawn["sigma_zeta"] <= self.tau_zeta:
            drawn["sigma_zeta"] = draw_from(self.prior("sigma_zeta"), rng, prior_scale)
        return drawn

    def _prior_overrides(self, rng: np.random.Generator, drawn: dict, settings: dict) -> dict[str, Any]:
        # The program's tau_zeta is this instance's; a simulation with another
        # would draw zeta_g from a different mixture than the one fitted.
        if float(settings["tau_zeta"]) != self.tau_zeta:
            raise ValueError(
                f"{self.name}: tau_zeta={settings['tau_zeta']} differs from the program's {self.tau_zeta}; "
                "pass tau_zeta to ModelB() instead"
            )
        # zeta_g from the mixture given omega and sigma_zeta, and none for the
        # genes the program gives no zeta_g, so that their epsilon_g and
        # alpha_s stay draws from their own priors.
        return {
            **super()._prior_overrides(rng, drawn, settings),
            "matters": None,
            "zeta_g": None,
            "tau_zeta": self.tau_zeta,
            "zeta_where_uninformative": False,
        }

    def simulate(self, seed: int | None = None, **overrides: Any) -> Simulation:
        """Simulate ragged data with mutations; see :class:`ModelA` and :attr:`defaults`.

        ``truth["zeta_g"]`` and ``truth["matters"]`` cover the informative genes
        only, in gene order, as the fit reports them; a gene mutated in every
        one of its cell lines has its effect added to its ``alpha_s`` and
        ``epsilon_g``, where the model puts it.
        """
        s = self.settings(overrides)
        rng = np.random.default_rng(seed)
        frame, truth, generating, index = self._simulate_a(s, rng)
        n_genes, n_cells = truth["epsilon_g"].size, int(s["n_cell_lines"])
        freq = np.broadcast_to(np.asarray(s["mutation_frequency"], dtype=float), (n_genes,))
        mutated_gc = rng.random((n_genes, n_cells)) < freq[:, None]
        matters = s["matters"]
        if matters is None:
            matters = rng.random(n_genes) < s["omega"]
        matters = np.asarray(matters, dtype=bool)
        if matters.shape != (n_genes,):
            raise ValueError(f"matters needs {n_genes} values, got {matters.size}")
        zeta_g = as_array(s["zeta_g"], n_genes, "zeta_g")
        if zeta_g is None:
            zeta_g = np.where(matters, rng.normal(0, s["sigma_zeta"], n_genes), rng.normal(0, s["tau_zeta"], n_genes))
        gi, ci = index["gi"], index["ci"]
        is_mutated = mutated_gc[gi, ci].astype(int)
        frame["is_mutated"] = is_mutated
        gene_labels = sorted(frame["gene"].unique())
        slots, informative = mutation_slots(frame["gene"], is_mutated, gene_labels)
        always = np.array([frame.loc[frame["gene"] == g, "is_mutated"].all() for g in gene_labels])
        keep = slots <= len(informative)
        if not s["zeta_where_uninformative"]:
            zeta_g = np.where(keep, zeta_g, 0.0)
        frame["logfc"] = rng.normal(index["mu"] + zeta_g[gi] * is_mutated, s["sigma"])
        truth["alpha_s"] = truth["alpha_s"] + (zeta_g * always)[index["sgrna_gene"]]
        truth["epsilon_g"] = truth["epsilon_g"] + zeta_g * always
        truth.update(zeta_g=zeta_g[keep], matters=matters[keep], sigma_zeta=float(s["sigma_zeta"]), omega=float(s["omega"]))
        generating.update(zeta_g=zeta_g, matters=matters, mutated=mutated_gc, informative=informative)
        return Simulation(data=frame, truth=truth, generating=generating)
