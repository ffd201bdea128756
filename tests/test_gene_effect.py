"""The gene-effect matrix model: data layout, log density, the integrated-out theta,
recovery, calibration of P(dependency) and the summaries on DepMap's scale."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import pystanmods as psm
from pystanmods.data import DataError
from pystanmods.depmap.fit import check_frame
from pystanmods.depmap.matrix import _draws, _fit_data, depmap_matrix, gene_effect_summaries
from pystanmods.engines import get_engine
from pystanmods.models import PARAMETERIZATIONS
from pystanmods.models.gene_effect import theta_moments
from pystanmods.sampling import compile_model
from tests.conftest import RECOVERY_DIAGNOSTICS, engines
from tests.helpers import coverage_floor, helmert_basis

MODEL = psm.get_model("gene_effect")
GROUP = ("mu_g", "log_tau_g", "omega_s", "kappa_c", "log_sigma_c")
ZERO_SUM = ("log_q_c", "beta_c")
SCALES = {"mu_g": ("mu_0", "sigma_mu"), "log_tau_g": ("mu_log_tau", "sigma_log_tau"),
          "omega_s": (None, "sigma_omega"),
          "kappa_c": ("kappa_0", "sigma_kappa"), "log_sigma_c": ("mu_sigma", "tau_sigma"),
          "log_q_c": (None, "sigma_q"), "beta_c": (None, "sigma_beta")}
PRIORS = MODEL.priors
#: The centered program samples these sds through their logs (its header).
LOG_SCALES = ("sigma_mu", "sigma_log_tau", "sigma_omega", "sigma_q", "sigma_beta", "sigma_kappa",
              "tau_sigma")


def _small(seed: int = 7, covariates: bool = False, **overrides) -> tuple[psm.models.Simulation, dict]:
    """A small ragged design; with covariates, a numeric one (``rna``) and a
    lineage of three levels (two indicators), so K = 3."""
    settings = {"n_genes": 6, "guides_per_gene": (1, 2, 3), "n_cell_lines": 4, "missing_fraction": 0.2,
                "multi_alignment_fraction": 0.3, **overrides}
    model = type(MODEL)(covariates=("rna", "lineage")) if covariates else MODEL
    if covariates:
        sim = type(MODEL)(covariates=("rna",)).simulate(seed=seed, **settings)
        lineage = {"cell1": "skin", "cell2": "lung", "cell3": "skin", "cell4": "blood"}
        sim.data["lineage"] = sim.data["cell_line"].map(lineage)
    else:
        sim = MODEL.simulate(seed=seed, **settings)
    return sim, model.prepare(sim.data).data


# ----------------------------------------------------------------- layout


def test_units_form_contiguous_gene_by_cell_line_blocks() -> None:
    sim, data = _small()
    frame = sim.data
    assert data["N"] == len(frame) and data["C"] == 4
    start = np.asarray(data["block_start"])
    assert start[0] == 1 and start[-1] == data["U"] + 1 and np.all(np.diff(start) >= 1)
    gene_of_unit = np.asarray(data["sgrna_gene"])[np.asarray(data["unit_sgrna"]) - 1]
    block_of_unit = np.repeat(np.arange(data["B"]), np.diff(start))
    assert np.array_equal(gene_of_unit, np.asarray(data["block_gene"])[block_of_unit])
    assert np.array_equal(np.asarray(data["unit_cell_line"]), np.asarray(data["block_cell_line"])[block_of_unit])
    # The unit statistics reproduce the rows: total sum of squares, per block.
    y = np.asarray(data["logfc"])
    unit = np.asarray(data["row_unit"]) - 1
    total = np.bincount(block_of_unit[unit], weights=y**2)
    n, ybar = np.asarray(data["unit_n"]), np.asarray(data["unit_logfc"])
    rebuilt = np.asarray(data["ss_block"]) + np.bincount(block_of_unit, weights=n * ybar**2)
    np.testing.assert_allclose(rebuilt, total, rtol=1e-10)
    # Multi-aligned guides add log2(2) = 1 to their covariate.
    two = frame.groupby("sgrna")["n_alignments"].first() == 2
    assert two.any() and (~two).any()


def test_one_cell_line_and_uneven_copy_number_are_refused() -> None:
    sim, _ = _small()
    one = sim.data[sim.data["cell_line"] == sim.data["cell_line"].iloc[0]]
    with pytest.raises(DataError, match="at least 2 cell lines"):
        MODEL.prepare(one)
    uneven = sim.data.copy()
    uneven.loc[uneven.index[0], "log2_copy_number"] += 1.0
    with pytest.raises(DataError, match="'log2_copy_number' takes more than one value within gene x cell_line in 1 of"):
        MODEL.prepare(uneven)


# ------------------------------------------------------------ log density


def _random_point(data: dict, parameterization: str, rng: np.random.Generator) -> dict:
    sizes = {"mu_g": data["G"], "log_tau_g": data["G"], "omega_s": data["S"],
             "kappa_c": data["C"], "log_sigma_c": data["C"]}
    point: dict = {}
    for name, prior in PRIORS.items():
        point[name] = float(abs(rng.normal(0.5, 0.2)) if prior[0] in ("halfnormal", "exponential") else rng.normal(0, 0.5))
    for name, size in sizes.items():
        suffix = "" if parameterization == "centered" else "_z"
        point[name + suffix] = rng.normal(0, 0.7, int(size)).tolist()
    # Both programs sample the efficacies themselves, on (0, 1).
    point["k_s"] = rng.uniform(0.2, 0.95, int(data["S"])).tolist()
    # Covariate slopes, non-centered in both programs (empty when K = 0).
    K = int(data["K"])
    point["b_0"] = rng.normal(0, 0.5, K).tolist()
    point["sigma_b"] = np.abs(rng.normal(0.3, 0.1, K)).tolist()
    point["b_g_z"] = rng.normal(0, 1, (int(data["G"]), K)).tolist()
    for name in ZERO_SUM:
        point[name + ("_raw" if parameterization == "centered" else "_z")] = rng.normal(0, 0.5, int(data["C"]) - 1).tolist()
    if parameterization == "centered":
        for name in LOG_SCALES:
            point["log_" + name] = float(np.log(point.pop(name)))
    return point


def _reference_log_density(data: dict, p: dict, centered: bool) -> float:
    """Every prior term, and the rows of each gene x cell line block as one multivariate normal."""
    basis = helmert_basis(int(data["C"]))
    lp = 0.0
    if centered:
        # Sds sampled through their logs: back to sds, and the exp map's Jacobian.
        p = dict(p, **{name: float(np.exp(p["log_" + name])) for name in LOG_SCALES})
        lp += sum(p["log_" + name] for name in LOG_SCALES)
    for name, prior in PRIORS.items():
        family, *args = prior
        if family == "normal":
            lp += stats.norm.logpdf(p[name], args[0], args[1])
        elif family == "halfnormal":
            lp += stats.norm.logpdf(p[name], 0, args[0])
        else:
            lp += stats.expon.logpdf(p[name], scale=1 / args[0])
    values = {}
    for name in GROUP:
        loc_name, scale_name = SCALES[name]
        loc = p[loc_name] if isinstance(loc_name, str) else (loc_name or 0.0)
        if centered:
            values[name] = np.asarray(p[name])
            lp += stats.norm.logpdf(values[name], loc, p[scale_name]).sum()
        else:
            z = np.asarray(p[name + "_z"])
            values[name] = loc + p[scale_name] * z
            lp += stats.norm.logpdf(z).sum()
    # Efficacies: normal(1, sigma_k) truncated to (0, 1), sigma_k data.
    values["k_s"] = np.asarray(p["k_s"])
    sigma_k = float(data["sigma_k"])
    lp += stats.truncnorm.logpdf(values["k_s"], -1 / sigma_k, 0, loc=1, scale=sigma_k).sum()
    for name in ZERO_SUM:
        scale = p[SCALES[name][1]]
        if centered:
            raw = np.asarray(p[name + "_raw"])
            values[name] = basis @ raw
            lp += stats.norm.logpdf(raw, 0, scale).sum()
        else:
            z = np.asarray(p[name + "_z"])
            values[name] = scale * (basis @ z)
            lp += stats.norm.logpdf(z).sum()
    # Slopes: b_gk = b_0k + sigma_bk z_gk; priors normal(0, slope_sd), half-normal(slope_sd), std normal.
    slope_sd = float(data["slope_sd"])
    b_0, sigma_b, b_z = (np.asarray(p[k], dtype=float) for k in ("b_0", "sigma_b", "b_g_z"))
    lp += stats.norm.logpdf(b_0, 0, slope_sd).sum() + stats.norm.logpdf(sigma_b, 0, slope_sd).sum()
    lp += stats.norm.logpdf(b_z).sum()
    b_g = b_0[None, :] + b_z * sigma_b[None, :] if b_z.size else np.zeros((int(data["G"]), 0))
    # The covariates of each gene x cell line, looked up by its (gene, line) pair.
    x_of = {(int(g_) - 1, int(c_) - 1): np.asarray(data["x_block"])[i]
            for i, (g_, c_) in enumerate(zip(data["block_gene"], data["block_cell_line"]))}
    y = np.asarray(data["logfc"])
    unit = np.asarray(data["row_unit"]) - 1
    s = np.asarray(data["unit_sgrna"])[unit] - 1
    c = np.asarray(data["unit_cell_line"])[unit] - 1
    g = np.asarray(data["sgrna_gene"])[s] - 1
    x = np.asarray(data["unit_x"])[unit]
    a = values["k_s"][s] * np.exp(values["log_q_c"][c])
    offset = values["beta_c"][c] + values["omega_s"][s] + values["kappa_c"][c] * x
    for gene, cell in {(int(i), int(j)) for i, j in zip(g, c)}:
        rows = (g == gene) & (c == cell)
        tau, sigma = np.exp(values["log_tau_g"][gene]), np.exp(values["log_sigma_c"][cell])
        cov = sigma**2 * np.eye(rows.sum()) + tau**2 * np.outer(a[rows], a[rows])
        prior_mean = values["mu_g"][gene] + x_of[(gene, cell)] @ b_g[gene]
        lp += stats.multivariate_normal.logpdf(y[rows], offset[rows] + a[rows] * prior_mean, cov)
    return float(lp)


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize("covariates", [False, True], ids=["K0", "K3"])
def test_log_density_matches_rows_as_multivariate_normals(parameterization: str, engine: str, covariates: bool) -> None:
    _, data = _small(covariates=covariates)
    assert int(data["K"]) == (3 if covariates else 0)
    rng = np.random.default_rng(2024)
    points = [_random_point(data, parameterization, rng) for _ in range(4)]
    compiled = compile_model("gene_effect", parameterization, engine)
    eng = get_engine(engine)
    stan_lp = np.array([eng.log_prob(compiled.program, compiled.directory, data, q, jacobian=False) for q in points])
    numpy_lp = np.array([_reference_log_density(data, q, parameterization == "centered") for q in points])
    # Differences cancel the constants Stan drops; the reference never forms
    # sufficient statistics or the rank-one update, so a slip in either, a
    # wrong index or a prior counted twice moves them by O(1), round-off by 1e-8.
    np.testing.assert_allclose(stan_lp[1:] - stan_lp[0], numpy_lp[1:] - numpy_lp[0], rtol=1e-8, atol=1e-8)


def test_reference_density_detects_a_wrong_efficacy() -> None:
    # The comparison above can fail: with every guide's inefficiency halved
    # (k -> (1 + k) / 2) the reference moves by far more than its tolerance.
    _, data = _small()
    point = _random_point(data, "centered", np.random.default_rng(1))
    moved = dict(point, k_s=((1 + np.asarray(point["k_s"])) / 2).tolist())
    assert abs(_reference_log_density(data, moved, True) - _reference_log_density(data, point, True)) > 1.0


def test_sigma_k_is_data_of_the_program_and_validated() -> None:
    # The efficacy prior's sd reaches the program as data: from 0.3 to 0.6 the
    # density moves by the normal kernel's difference at the same k_s (Stan's
    # ~ drops log sigma_k and the truncation's mass, constants given data). A
    # program that ignored sigma_k, or hard-coded 0.3, would not move at all.
    _, data = _small()
    assert data["sigma_k"] == 0.3
    point = _random_point(data, "centered", np.random.default_rng(9))
    compiled = compile_model("gene_effect", "centered")
    eng = get_engine(None)
    lp = [eng.log_prob(compiled.program, compiled.directory, {**data, "sigma_k": sd}, point, jacobian=False)
          for sd in (0.3, 0.6)]
    k = np.asarray(point["k_s"])
    expected = -0.5 * np.sum((1 - k) ** 2) * (1 / 0.6**2 - 1 / 0.3**2)
    assert abs((lp[1] - lp[0]) - expected) < 1e-8 * max(1.0, abs(expected))
    assert type(MODEL)(sigma_k=0.5).prepare(_small()[0].data).data["sigma_k"] == 0.5
    for bad in (0, -0.1, float("nan"), float("inf"), True, "0.3"):
        with pytest.raises(ValueError, match="sigma_k"):
            type(MODEL)(sigma_k=bad)


def test_reference_density_detects_a_wrong_covariate() -> None:
    # The K3 comparison can fail on the covariates: with them left uncentred
    # (shifted by one sd) the reference moves by far more than its tolerance.
    _, data = _small(covariates=True)
    point = _random_point(data, "noncentered", np.random.default_rng(3))
    x = np.asarray(data["x_block"]) + 1.0
    moved = _reference_log_density({**data, "x_block": x}, point, False)
    assert abs(moved - _reference_log_density(data, point, False)) > 1.0


def test_covariates_are_validated_with_counts() -> None:
    sim, _ = _small(covariates=True)
    model = type(MODEL)(covariates=("rna",))
    # Read and checked as the package checks every column: the unit rule the
    # model builds per covariate names the cell, its two values and the rows.
    varying = sim.data.copy()
    first = varying.index[0]
    value, gene, line = varying.loc[first, ["rna", "gene", "cell_line"]]
    varying.loc[first, "rna"] += 1.0
    cell = rf"gene '{gene}', cell_line '{line}' \({re.escape(f'{value:.4g}')} to {re.escape(f'{value + 1:.4g}')}\)"
    with pytest.raises(DataError, match=rf"column 'rna' takes more than one value within gene x cell_line in 1 of 23 "
                                        rf"units \(2 rows\), e.g. {cell}"):
        model.prepare(varying)
    with pytest.raises(DataError, match=rf"gene_effect: column 'rna' takes more than one value .* e.g. {cell}"):
        check_frame(varying, model, verbose=False)  # the depmap path applies the instance's rules too
    # A lineage is compared as text: one row moved to another lineage is refused.
    lineage = type(MODEL)(covariates=("lineage",))
    moved = sim.data.copy()
    moved.loc[first, "lineage"] = "bone"
    with pytest.raises(DataError, match=r"column 'lineage' takes more than one value within gene x cell_line in 1 of "
                                        rf"23 units \(2 rows\), e.g. gene '{gene}', cell_line '{line}' \('bone' to "):
        lineage.prepare(moved)
    gaps = sim.data.copy()
    gaps.loc[gaps.index[:3], "rna"] = np.nan
    with pytest.raises(DataError, match=rf"column 'rna' has missing values \(NaN\) in 3 of {len(gaps)} rows"):
        model.prepare(gaps)
    gaps.loc[gaps.index[:3], "rna"] = [np.inf, -np.inf, 1.0]
    with pytest.raises(DataError, match=rf"column 'rna' has infinite values in 2 of {len(gaps)} rows, e.g. inf, -inf"):
        model.prepare(gaps)
    with pytest.raises(DataError, match=rf"column 'lineage' has missing labels in 3 of {len(gaps)} rows"):
        lineage.prepare(sim.data.assign(lineage=sim.data["lineage"].mask(sim.data.index.isin(sim.data.index[:3]))))
    flat = sim.data.assign(rna=sim.data["gene"].map({g: i for i, g in enumerate(sorted(sim.data["gene"].unique()))}))
    with pytest.raises(DataError, match="'rna' does not vary within any gene"):
        model.prepare(flat)  # constant within each gene: centring leaves nothing
    with pytest.raises(DataError, match="'lineage' has one level"):
        lineage.prepare(sim.data.assign(lineage="skin"))
    with pytest.raises(ValueError, match="rna2"):
        type(MODEL)(covariates=("rna2",)).prepare(sim.data, columns={"rna2": "expression"})
    for bad in ("rna", ("gene",), ("rna", "rna"), (1,)):
        with pytest.raises(ValueError, match="covariates"):
            type(MODEL)(covariates=bad)
    with pytest.raises(ValueError, match="slope_sd"):
        type(MODEL)(slope_sd=0)


# --------------------------------------------------------------- the fit


@pytest.fixture(scope="module")
def fitted() -> tuple[psm.models.Simulation, object]:
    sim = MODEL.simulate(seed=11)
    stan_data = MODEL.prepare(sim.data, compute_theta=True)
    # 4 x 2000 draws: a gene with one guide has its mean and its guide's
    # efficacy and offset tied by one guide mean, a ridge that mixes slowly
    # (4 x 1000 draws gave bulk ESS 426 and 479, R-hat 1.0117 and 1.0106, for
    # sampler seeds 1 and 2), so at 1000 draws R-hat's own noise crosses 1.01.
    fit = psm.fit("gene_effect", stan_data, parameterization="recommended", seed=1, show_progress=False,
                  iter_sampling=2000)
    d = fit.diagnostics()
    RECOVERY_DIAGNOSTICS.append(
        f"gene_effect {fit.idata.posterior.attrs['parameterization']:<12} R-hat {d.max_rhat:.4f}  "
        f"bulk ESS {d.min_ess_bulk:.0f}  divergences {d.divergences}  "
        f"{fit.idata.posterior.attrs['sampling_seconds']:.1f} s"
    )
    return sim, fit


def _theta_truth(sim, table: pd.DataFrame) -> np.ndarray:
    genes = sorted(sim.data["gene"].unique())
    cells = sorted(sim.data["cell_line"].unique())
    g = table["gene"].map({x: i for i, x in enumerate(genes)}).to_numpy()
    c = table["cell_line"].map({x: i for i, x in enumerate(cells)}).to_numpy()
    return sim.truth["theta"][g, c]


def test_fit_converges(fitted) -> None:
    _, fit = fitted
    d = fit.diagnostics()
    assert d.max_rhat < 1.01 and d.min_ess_bulk > 400 and d.divergences == 0


def test_theta_moments_are_the_programs_conditional(fitted) -> None:
    _, fit = fitted
    mean, sd = theta_moments(_fit_data(fit), _draws(fit))
    theta = fit.idata.posterior["theta"].stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
    z = (theta - mean) / sd
    # theta was drawn in the program from normal(mean, sd) computed there; the
    # numpy moments must give z ~ N(0, 1) over ~10^6 values: mean within
    # 5 / sqrt(n) of 0 and sd within 1%. A wrong block sum or index shifts a
    # whole block's z by O(1).
    assert abs(z.mean()) < 5 / np.sqrt(z.size)
    assert abs(z.std() - 1) < 0.01
    assert np.abs(z.mean(axis=0)).max() < 5 / np.sqrt(z.shape[0])


def test_theta_recovered_with_calibrated_intervals(fitted) -> None:
    sim, fit = fitted
    table = gene_effect_summaries(fit, prob=0.9)
    truth = _theta_truth(sim, table)
    covered = int(((table["q_low"] <= truth) & (truth <= table["q_high"])).sum())
    # theta was drawn from the model given the simulation's hyperparameters, so
    # calibrated 90% intervals cover Binomial(B, 0.9) of them (see coverage_floor).
    assert covered >= coverage_floor(len(table)), f"{covered} of {len(table)} covered"
    # Raw mean on the logFC scale, unscaled: correlation with the truth.
    assert np.corrcoef(table["raw_mean"], truth)[0, 1] > 0.9


def test_a_too_narrow_interval_fails_the_coverage_check(fitted) -> None:
    sim, fit = fitted
    table = gene_effect_summaries(fit, prob=0.5)  # a 50% interval labelled 90%
    truth = _theta_truth(sim, table)
    covered = int(((table["q_low"] <= truth) & (truth <= table["q_high"])).sum())
    assert covered < coverage_floor(len(table))


def test_group_effects_recovered(fitted) -> None:
    sim, fit = fitted
    rec = fit.recovery({k: sim.truth[k] for k in ("mu_g", "k_s", "log_sigma_c", "log_q_c")})
    for name, part in rec.groupby("parameter"):
        assert int(part["covered"].sum()) >= coverage_floor(len(part)), name


@pytest.fixture(scope="module")
def fitted_with_covariates() -> tuple[psm.models.Simulation, object]:
    model = type(MODEL)(covariates=("rna",))
    # Every block observed, so prepare's centring leaves the simulated covariate
    # as drawn. 30 lines, as in a DepMap lineage: a gene's slope is then known
    # to about tau / sqrt(30) ~ 0.06, below the slopes' spread (sigma_b 0.15).
    # With the default 10 lines (about 0.1) the same seed's slopes were shrunk
    # almost to b_0 (sigma_b's posterior mean 0.053) and their 90% intervals
    # covered 12 of 24: the data could not tell the slopes apart, which this
    # test cannot judge; the 30-line fit covered 22 of 24.
    sim = model.simulate(seed=21, missing_fraction=0.0, n_cell_lines=30)
    stan_data = model.prepare(sim.data, compute_theta=True, compute_log_lik=False, compute_y_rep=False)
    fit = psm.fit(model, stan_data, parameterization="recommended", seed=1, show_progress=False)
    d = fit.diagnostics()
    RECOVERY_DIAGNOSTICS.append(
        f"gene_effect +rna {fit.idata.posterior.attrs['parameterization']:<12} R-hat {d.max_rhat:.4f}  "
        f"bulk ESS {d.min_ess_bulk:.0f}  divergences {d.divergences}  "
        f"{fit.idata.posterior.attrs['sampling_seconds']:.1f} s"
    )
    return sim, fit


def test_covariate_slopes_recovered(fitted_with_covariates) -> None:
    sim, fit = fitted_with_covariates
    d = fit.diagnostics()
    assert d.max_rhat < 1.01 and d.divergences == 0
    posterior = fit.idata.posterior
    assert list(posterior["b_g"].coords["covariate"].values) == ["rna"]
    # The slopes of 24 genes were drawn from normal(b_0, sigma_b) given the
    # simulation's b_0, so calibrated 90% intervals cover Binomial(24, 0.9) of them.
    rec = fit.recovery({"b_g": sim.truth["b_g"]})
    assert int(rec["covered"].sum()) >= coverage_floor(len(rec)), rec
    # The population slope, a fixed truth: within 4 posterior sds (a calibrated
    # posterior misses that with probability below 1e-4 if the truth were a prior draw).
    b_0 = posterior["b_0"].values.ravel()
    assert abs(b_0.mean() - sim.truth["b_0"][0]) < 4 * b_0.std()
    # And the data say the slope is negative: 24 genes x 30 lines at -0.3 per sd.
    assert (b_0 < 0).mean() > 0.95


def test_theta_moments_follow_the_covariates(fitted_with_covariates) -> None:
    _, fit = fitted_with_covariates
    data, draws = _fit_data(fit), _draws(fit)
    assert data["x_block"].shape[1] == 1 and draws["b_g"].shape[2] == 1
    mean, sd = theta_moments(data, draws)
    theta = fit.idata.posterior["theta"].stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
    z = (theta - mean) / sd
    # As for the fit without covariates: z ~ N(0, 1) only if the numpy moments
    # carry the program's block means mu_g + x b_g; leaving x b_g out shifts
    # each block by its slope times its covariate, O(0.1-1) in sd units.
    assert abs(z.mean()) < 5 / np.sqrt(z.size)
    assert abs(z.std() - 1) < 0.01
    assert np.abs(z.mean(axis=0)).max() < 5 / np.sqrt(z.shape[0])
    without = theta_moments({k: v for k, v in data.items() if k != "x_block"}, draws)[0]
    assert np.abs(((theta - without) / sd).mean(axis=0)).max() > 5 / np.sqrt(z.shape[0])


def test_p_dependency_is_calibrated(fitted) -> None:
    sim, fit = fitted
    table = gene_effect_summaries(fit, threshold=-0.5)
    below = _theta_truth(sim, table) < -0.5
    p = table["p_dependency"].to_numpy()
    # Within each bin of P, the count of cells truly below the threshold is a
    # sum of Bernoulli(p_i) if P is calibrated: its mean is sum p_i and its sd
    # sqrt(sum p_i (1 - p_i)). 3.5 sd (+1 for the discreteness of small bins)
    # holds for a calibrated P; an overconfident one piles its misses up.
    for lo, hi in ((0, 0.1), (0.1, 0.5), (0.5, 0.9), (0.9, 1.01)):
        members = (p >= lo) & (p < hi)
        expected = p[members].sum()
        sd = np.sqrt((p[members] * (1 - p[members])).sum())
        assert abs(below[members].sum() - expected) <= 3.5 * sd + 1, (lo, hi, below[members].sum(), expected)


def test_scaled_to_controls(fitted) -> None:
    sim, fit = fitted
    raw = gene_effect_summaries(fit)
    genes = raw.groupby("gene")["raw_mean"].mean().sort_values()
    essential, nonessential = list(genes.index[:5]), list(genes.index[-12:])
    table = gene_effect_summaries(fit, essential=essential, nonessential=nonessential)
    shift, scale = table.attrs["shift"], table.attrs["scale"]
    assert table["scaled"].all() and shift.shape == scale.shape == (8000,) and np.all(scale > 0)
    # The scaled posterior means put the controls where the scaling does per
    # draw: medians of line medians near 0 and -1 (means of medians differ
    # from medians of means by posterior noise, well under 0.15 here).
    def median_of_lines(gs):
        return table[table["gene"].isin(gs)].groupby("cell_line")["mean"].median().median()
    assert abs(median_of_lines(nonessential)) < 0.15
    assert abs(median_of_lines(essential) + 1) < 0.15
    matrix = depmap_matrix(table, "mean", {g: f"{g} (1{i})" for i, g in enumerate(genes.index)})
    assert matrix.index.name == "ModelID" and matrix.shape == (10, 24)
    assert all(label.endswith(")") for label in matrix.columns)
    with pytest.raises(ValueError, match="both control lists"):
        gene_effect_summaries(fit, essential=essential)


# ------------------------------------------------------------------ pilot


def test_pilot_scales_leave_the_centered_density_unchanged() -> None:
    # The centered program samples its effects as loc + scale * raw with the
    # pilot's data; at the same constrained values and without the Jacobian
    # the density must not move. A program that read a pilot into the model
    # (a prior centred on loc, a likelihood on raw) moves it by O(1) or more.
    from pystanmods.models.gene_effect import pilot

    _, data = _small()
    scales, _ = pilot(data)
    point = _random_point(data, "centered", np.random.default_rng(5))
    compiled = compile_model("gene_effect", "centered")
    eng = get_engine(None)
    plain = eng.log_prob(compiled.program, compiled.directory, data, point, jacobian=False)
    scaled = eng.log_prob(compiled.program, compiled.directory, {**data, **scales}, point, jacobian=False)
    assert abs(scaled - plain) < 1e-8 * abs(plain)
    assert all(np.all(np.asarray(v) > 0) for k, v in scales.items() if k.endswith("_scale"))


def test_pilot_locates_the_gene_means_and_line_noise() -> None:
    # Moment estimates from block means: on the default simulation (24 genes
    # x 10 lines, 1-4 guides) the gene means track the truth (correlation)
    # and each line's noise is within 30% (its rows' spread around block
    # means, inflated only by guides that differ in efficacy and offset).
    from pystanmods.models.gene_effect import pilot

    sim = MODEL.simulate(seed=3)
    data = MODEL.prepare(sim.data).data
    scales, inits = pilot(data)
    assert np.corrcoef(scales["mu_g_loc"], sim.truth["mu_g"])[0, 1] > 0.9
    np.testing.assert_allclose(np.exp(scales["log_sigma_c_loc"]), np.exp(sim.truth["log_sigma_c"]), rtol=0.3)
    assert set(inits) >= {"mu_g", "log_tau_g", "omega_s", "kappa_c", "log_sigma_c", "k_s"}


def test_pilot_and_identity_pilot_give_the_same_data_fields() -> None:
    # Both read pilot_sizes; the program rejects a field of the wrong length.
    from pystanmods.models.gene_effect import identity_pilot, pilot

    _, data = _small()
    scales, _ = pilot(data)
    identity = identity_pilot(data)
    assert set(scales) == set(identity)
    assert all(np.shape(scales[k]) == np.shape(identity[k]) for k in identity)
