"""The peers: the seed's Models 4 and 5 in PyMC, sampled by PyMC's default
NUTS and by nutpie, in two parameterizations each.

``seed``: the notebook's PyMC3 code, unchanged but for the data plumbing (its
``mu`` Deterministic of size N is left out: it only stores draws).
``identified``: the same model as ``stan/model4_noncentered.stan`` and
``stan/model5_noncentered.stan``: non-centered group effects, cell-line
effects summing to zero through ``pm.ZeroSumNormal`` and no ``mu_gamma`` /
``mu_beta``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.metrics import RunResult, free_parameter_summary

PARAMETERIZATIONS = ("seed", "identified")
#: Also available: the identified model centered, as stan/model{4,5}_centered.stan.
ALL_PARAMETERIZATIONS = (*PARAMETERIZATIONS, "centered")


def _index(data: dict[str, Any], name: str) -> np.ndarray:
    """A 1-based Stan index as a 0-based numpy one."""
    return np.asarray(data[name], dtype=np.int64) - 1


def model4(data: dict[str, Any], parameterization: str) -> Any:
    """Model 4 in PyMC from its Stan data dict."""
    import pymc as pm

    g, c = _index(data, "gene"), _index(data, "cell_line")
    rna, y = np.asarray(data["rna"], float), np.asarray(data["logfc"], float)
    G, C = int(data["G"]), int(data["C"])
    with pm.Model() as model:
        if parameterization == "seed":
            mu_alpha = pm.Normal("mu_alpha", 0, 2)
            sigma_alpha = pm.Exponential("sigma_alpha", 1)
            mu_gamma = pm.Normal("mu_gamma", 0, 2)
            sigma_gamma = pm.Exponential("sigma_gamma", 1)
            mu_beta = pm.Normal("mu_beta", 0, 1)
            sigma_beta = pm.Exponential("sigma_beta", 1)
            alpha_g = pm.Normal("alpha_g", mu_alpha, sigma_alpha, shape=G)
            gamma_c = pm.Normal("gamma_c", mu_gamma, sigma_gamma, shape=C)
            beta_g = pm.Normal("beta_g", mu_beta, sigma_beta, shape=G)
        elif parameterization in ("identified", "centered"):
            # The identified model's hyperpriors, shared by both programs.
            mu_alpha = pm.Normal("mu_alpha", 0, 2)
            sigma_alpha = pm.Exponential("sigma_alpha", 1)
            sigma_gamma = pm.Exponential("sigma_gamma", 1)
            mu_beta = pm.Normal("mu_beta", 0, 1)
            sigma_beta = pm.Exponential("sigma_beta", 1)
        else:
            raise ValueError(f"unknown parameterization {parameterization!r}")
        if parameterization == "identified":
            alpha_g_z = pm.Normal("alpha_g_z", 0, 1, shape=G)
            # Unit-scale zero-sum effects times their scale: the Helmert
            # construction of the Stan program, non-centered.
            gamma_c_z = pm.ZeroSumNormal("gamma_c_z", sigma=1.0, shape=C)
            beta_g_z = pm.Normal("beta_g_z", 0, 1, shape=G)
            alpha_g = pm.Deterministic("alpha_g", mu_alpha + sigma_alpha * alpha_g_z)
            gamma_c = pm.Deterministic("gamma_c", sigma_gamma * gamma_c_z)
            beta_g = pm.Deterministic("beta_g", mu_beta + sigma_beta * beta_g_z)
        elif parameterization == "centered":
            alpha_g = pm.Normal("alpha_g", mu_alpha, sigma_alpha, shape=G)
            gamma_c = pm.ZeroSumNormal("gamma_c", sigma=sigma_gamma, shape=C)
            beta_g = pm.Normal("beta_g", mu_beta, sigma_beta, shape=G)
        sigma = pm.Exponential("sigma", 1)
        pm.Normal("logfc", alpha_g[g] + gamma_c[c] + beta_g[g] * rna, sigma, observed=y)
    return model


def model5(data: dict[str, Any], parameterization: str) -> Any:
    """Model 5 in PyMC from its Stan data dict."""
    import pymc as pm

    s, c = _index(data, "sgrna"), _index(data, "cell_line")
    sgrna_gene = _index(data, "sgrna_gene")
    y = np.asarray(data["logfc"], float)
    G, C, S = int(data["G"]), int(data["C"]), int(data["S"])
    with pm.Model() as model:
        if parameterization == "seed":
            mu_epsilon = pm.Normal("mu_epsilon", 0, 5)
            sigma_epsilon = pm.Exponential("sigma_epsilon", 1)
            sigma_alpha = pm.Exponential("sigma_alpha", 1)
            mu_beta = pm.Normal("mu_beta", 0, 5)
            sigma_beta = pm.Exponential("sigma_beta", 1)
            epsilon_g = pm.Normal("epsilon_g", mu_epsilon, sigma_epsilon, shape=G)
            alpha_s = pm.Normal("alpha_s", epsilon_g[sgrna_gene], sigma_alpha, shape=S)
            beta_c = pm.Normal("beta_c", mu_beta, sigma_beta, shape=C)
        elif parameterization in ("identified", "centered"):
            # The identified model's hyperpriors, shared by both programs.
            mu_epsilon = pm.Normal("mu_epsilon", 0, 5)
            sigma_epsilon = pm.Exponential("sigma_epsilon", 1)
            sigma_alpha = pm.Exponential("sigma_alpha", 1)
            sigma_beta = pm.Exponential("sigma_beta", 1)
        else:
            raise ValueError(f"unknown parameterization {parameterization!r}")
        if parameterization == "identified":
            epsilon_g_z = pm.Normal("epsilon_g_z", 0, 1, shape=G)
            alpha_s_z = pm.Normal("alpha_s_z", 0, 1, shape=S)
            beta_c_z = pm.ZeroSumNormal("beta_c_z", sigma=1.0, shape=C)
            epsilon_g = pm.Deterministic("epsilon_g", mu_epsilon + sigma_epsilon * epsilon_g_z)
            alpha_s = pm.Deterministic("alpha_s", epsilon_g[sgrna_gene] + sigma_alpha * alpha_s_z)
            beta_c = pm.Deterministic("beta_c", sigma_beta * beta_c_z)
        elif parameterization == "centered":
            epsilon_g = pm.Normal("epsilon_g", mu_epsilon, sigma_epsilon, shape=G)
            alpha_s = pm.Normal("alpha_s", epsilon_g[sgrna_gene], sigma_alpha, shape=S)
            beta_c = pm.ZeroSumNormal("beta_c", sigma=sigma_beta, shape=C)
        sigma = pm.Exponential("sigma", 1)
        pm.Normal("logfc", alpha_s[s] + beta_c[c], sigma, observed=y)
    return model


def gene_effect(data: dict[str, Any], parameterization: str = "noncentered") -> Any:
    """The ``gene_effect`` model in PyMC from its Stan data dict (K = 0 only).

    The posterior of ``stan/gene_effect_noncentered.stan``: the same priors,
    constraints and parameters (``*_z`` the unit-scale coordinates, the
    zero-sum ``log_q_c`` and ``beta_c`` through the programs' Helmert basis),
    and theta integrated out block by block (the program's
    ``block_log_density``: Sherman-Morrison and the determinant lemma on each
    gene x cell-line block, from per-unit statistics). ``k_s`` has
    normal(1, sigma_k) truncated to (0, 1); its truncation mass is constant
    since sigma_k is data. The centered program samples the same posterior
    on other coordinates; only the non-centered one is written here.
    """
    import pymc as pm
    import pytensor.tensor as pt

    from pystanmods.models.gene_effect import helmert_matrix

    if parameterization != "noncentered":
        raise ValueError(f"gene_effect in PyMC is written non-centered only, got {parameterization!r}")
    if int(data["K"]) != 0:
        raise ValueError(f"gene_effect in PyMC has no covariate regression: the data has K = {int(data['K'])} "
                         "covariates; prepare it with GeneEffect() (no covariates)")
    G, C, S, B = int(data["G"]), int(data["C"]), int(data["S"]), int(data["B"])
    unit_s, unit_c = _index(data, "unit_sgrna"), _index(data, "unit_cell_line")
    block_g, block_c = _index(data, "block_gene"), _index(data, "block_cell_line")
    start = np.asarray(data["block_start"], dtype=np.int64) - 1
    unit_b = np.repeat(np.arange(B), np.diff(start))  # units are contiguous runs per block
    n_u = np.asarray(data["unit_n"], float)
    ybar_u, x_u = np.asarray(data["unit_logfc"], float), np.asarray(data["unit_x"], float)
    n_b = np.bincount(unit_b, weights=n_u, minlength=B)
    ss_b = np.asarray(data["ss_block"], float)
    helmert = helmert_matrix(C - 1)

    def block_sum(values: Any) -> Any:
        """Sum of per-unit values over each block's units."""
        return pt.inc_subtensor(pt.zeros(B)[unit_b], values)

    with pm.Model() as model:
        mu_0 = pm.Normal("mu_0", 0, 1)
        sigma_mu = pm.HalfNormal("sigma_mu", 1)
        mu_g_z = pm.Normal("mu_g_z", 0, 1, shape=G)
        mu_log_tau = pm.Normal("mu_log_tau", -1.5, 1)
        sigma_log_tau = pm.HalfNormal("sigma_log_tau", 1)
        log_tau_g_z = pm.Normal("log_tau_g_z", 0, 1, shape=G)
        k_s = pm.TruncatedNormal("k_s", 1.0, float(data["sigma_k"]), lower=0.0, upper=1.0, shape=S)
        sigma_omega = pm.HalfNormal("sigma_omega", 0.5)
        omega_s_z = pm.Normal("omega_s_z", 0, 1, shape=S)
        sigma_q = pm.HalfNormal("sigma_q", 0.5)
        log_q_c_z = pm.Normal("log_q_c_z", 0, 1, shape=C - 1)
        sigma_beta = pm.HalfNormal("sigma_beta", 0.5)
        beta_c_z = pm.Normal("beta_c_z", 0, 1, shape=C - 1)
        kappa_0 = pm.Normal("kappa_0", 0, 0.5)
        sigma_kappa = pm.HalfNormal("sigma_kappa", 0.25)
        kappa_c_z = pm.Normal("kappa_c_z", 0, 1, shape=C)
        mu_sigma = pm.Normal("mu_sigma", -1, 1)
        tau_sigma = pm.Exponential("tau_sigma", 2.0)
        log_sigma_c_z = pm.Normal("log_sigma_c_z", 0, 1, shape=C)

        mu_g = mu_0 + sigma_mu * mu_g_z
        log_tau_g = mu_log_tau + sigma_log_tau * log_tau_g_z
        omega_s = sigma_omega * omega_s_z
        log_q_c = sigma_q * pt.dot(helmert, log_q_c_z)
        beta_c = sigma_beta * pt.dot(helmert, beta_c_z)
        kappa_c = kappa_0 + sigma_kappa * kappa_c_z
        log_sigma_c = mu_sigma + tau_sigma * log_sigma_c_z

        # Per unit: loading a on theta and residual r at theta = the block's prior mean.
        a = k_s[unit_s] * pt.exp(log_q_c[unit_c])
        r = ybar_u - beta_c[unit_c] - omega_s[unit_s] - kappa_c[unit_c] * x_u - a * mu_g[block_g][unit_b]
        A, Bs, R = block_sum(n_u * a**2), block_sum(n_u * a * r), block_sum(n_u * r**2)
        log_s2 = 2 * log_sigma_c[block_c]
        lam = pt.exp(2 * log_tau_g[block_g] - log_s2)
        D = 1 + lam * A
        pm.Potential("integrated_log_density", -0.5 * pt.sum(
            n_b * (np.log(2 * np.pi) + log_s2) + pt.log(D) + (ss_b + R - lam * Bs**2 / D) * pt.exp(-log_s2)))
        for name, value in (("mu_g", mu_g), ("log_tau_g", log_tau_g), ("omega_s", omega_s), ("log_q_c", log_q_c),
                            ("beta_c", beta_c), ("kappa_c", kappa_c), ("log_sigma_c", log_sigma_c)):
            pm.Deterministic(name, value)
    return model


BUILDERS: dict[str, Callable[[dict[str, Any], str], Any]] = {"model4": model4, "model5": model5,
                                                             "gene_effect": gene_effect}


def free_names(model: Any) -> list[str]:
    """Names of a PyMC model's free random variables."""
    return [rv.name for rv in model.free_RVs]


def _finish(result: RunResult, idata: Any, names: list[str]) -> RunResult:
    result.min_ess_bulk, result.worst_parameter, result.max_rhat = free_parameter_summary(idata.posterior, names)
    stats = idata.sample_stats
    result.divergences = int(stats["diverging"].sum())
    for key in ("n_steps", "tree_size"):  # PyMC / nutpie names of the leapfrog count
        if key in stats:
            result.leapfrog_steps = int(stats[key].sum())
            break
    return result


def run_pymc(
    model_name: str, data: dict[str, Any], parameterization: str, chains: int, warmup: int, draws: int, seed: int, cores: int
) -> RunResult:
    """PyMC's default sampler (NUTS, jitter+adapt_diag) on ``pm.sample``'s defaults."""
    import pymc as pm

    result = RunResult(model_name, "pymc", parameterization, int(data["N"]), chains, warmup, draws)
    model = BUILDERS[model_name](data, parameterization)
    start = time.perf_counter()
    with model:
        idata = pm.sample(
            draws=draws, tune=warmup, chains=chains, cores=cores, random_seed=seed,
            progressbar=False, compute_convergence_checks=False,
        )
    total = time.perf_counter() - start
    # PyMC times its own draw loop (warmup and sampling); the rest of the call
    # is compiling the logp/gradient functions and setting up the chains.
    result.sampling_seconds = float(idata.posterior.attrs.get("sampling_time", total))
    result.compile_seconds = total - result.sampling_seconds
    return _finish(result, idata, free_names(model))


def compile_nutpie(model: Any) -> tuple[Any, float]:
    """nutpie's numba build of a PyMC model and its compile seconds."""
    import nutpie

    start = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model)
    return compiled, time.perf_counter() - start


def run_nutpie(
    model_name: str, data: dict[str, Any], parameterization: str, chains: int, warmup: int, draws: int, seed: int, cores: int
) -> RunResult:
    """nutpie's NUTS (numba backend, its default adaptation) on the same PyMC model."""
    import nutpie

    result = RunResult(model_name, "nutpie", parameterization, int(data["N"]), chains, warmup, draws)
    model = BUILDERS[model_name](data, parameterization)
    compiled, result.compile_seconds = compile_nutpie(model)
    start = time.perf_counter()
    idata = nutpie.sample(compiled, draws=draws, tune=warmup, chains=chains, cores=cores, seed=seed, progress_bar=False)
    result.sampling_seconds = time.perf_counter() - start
    return _finish(result, idata, free_names(model))


def logp_grad_timer(model: Any, backend: str) -> Callable[[], Any]:
    """A no-argument call of a peer's compiled log density and gradient at its initial point.

    ``backend="pymc"``: the C-compiled function PyMC's NUTS calls.
    ``backend="nutpie"``: the numba-compiled function nutpie samples with.
    """
    point = model.initial_point()
    x = np.concatenate([np.asarray(point[v.name], float).ravel() for v in model.value_vars])
    if backend == "pymc":
        fn = model.logp_dlogp_function(ravel_inputs=True)
        fn.set_extra_values({})
        return lambda: fn(x)
    if backend == "nutpie":
        compiled, _ = compile_nutpie(model)
        return lambda: compiled.logp_func(x)
    raise ValueError(backend)


def median_seconds(call: Callable[[], Any], budget: float = 2.0, min_calls: int = 3, max_calls: int = 200) -> float:
    """Median wall seconds of ``call`` after one warm-up call, within about ``budget`` seconds."""
    call()
    times: list[float] = []
    spent = 0.0
    while len(times) < max_calls and (len(times) < min_calls or spent < budget):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return float(np.median(times)) if times else math.nan
