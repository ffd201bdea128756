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


BUILDERS: dict[str, Callable[[dict[str, Any], str], Any]] = {"model4": model4, "model5": model5}


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
