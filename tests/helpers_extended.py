"""Independent numpy/scipy log densities of Models C, A, B and lineage.

Written from the equations in the header of each Stan program, not from the
programs: dense Helmert bases (tests.helpers.helmert_basis) instead of the
programs' cumulative sums, explicit loops over mixture components and scipy
densities. Values are constrained, without Jacobian terms, as
``log_prob(jacobian=False)`` returns them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats
from scipy.special import logsumexp

from tests.helpers import _effect, _zero_sum, exponential, helmert_basis, normal


def _guides(d: dict, p: dict, centered: bool) -> tuple[np.ndarray, float]:
    """alpha_s and the log prior of mu_epsilon, sigma_epsilon, sigma_alpha, epsilon_g and alpha_s."""
    epsilon_g, lp_e = _effect(p, "epsilon_g", p["mu_epsilon"], p["sigma_epsilon"], centered)
    sgrna_gene = np.asarray(d["sgrna_gene"]) - 1
    alpha_s, lp_a = _effect(p, "alpha_s", epsilon_g[sgrna_gene], p["sigma_alpha"], centered)
    lp = normal(p["mu_epsilon"], 0, 5) + exponential(p["sigma_epsilon"], 1) + exponential(p["sigma_alpha"], 1)
    return alpha_s, lp + lp_e + lp_a


def lp_model_c(d: dict, p: dict, centered: bool) -> float:
    alpha_s, lp = _guides(d, p, centered)
    beta_c, lp_c = _zero_sum(p, "beta_c", p["sigma_beta"], d["C"], centered)
    log_sigma_c, lp_s = _effect(p, "log_sigma_c", p["mu_sigma"], p["tau_sigma"], centered)
    s, c = np.asarray(d["sgrna"]) - 1, np.asarray(d["cell_line"]) - 1
    return (
        lp
        + exponential(p["sigma_beta"], 1)
        + normal(p["mu_sigma"], -1, 1)
        + exponential(p["tau_sigma"], 2)
        + lp_c
        + lp_s
        + normal(d["logfc"], alpha_s[s] + beta_c[c], np.exp(log_sigma_c)[c])
    )


def _model_a_parts(d: dict, p: dict, centered: bool) -> tuple[np.ndarray, float]:
    """Linear predictor and log prior of Model A."""
    alpha_s, lp = _guides(d, p, centered)
    beta_c, lp_c = _zero_sum(p, "beta_c", p["sigma_beta"], d["C"], centered)
    delta_g, lp_d = _effect(p, "delta_g", p["mu_delta"], p["sigma_delta"], centered)
    eta_g, lp_e = _effect(p, "eta_g", p["mu_eta"], p["sigma_eta"], centered)
    sgrna_gene = np.asarray(d["sgrna_gene"]) - 1
    kappa_s, lp_k = _effect(p, "kappa_s", eta_g[sgrna_gene], p["sigma_kappa"], centered)
    s, c = np.asarray(d["sgrna"]) - 1, np.asarray(d["cell_line"]) - 1
    g = sgrna_gene[s]
    mu = alpha_s[s] + beta_c[c] + delta_g[g] * np.asarray(d["rna"]) + kappa_s[s] * np.asarray(d["copy_number"])
    lp += (
        exponential(p["sigma_beta"], 1)
        + normal(p["mu_delta"], 0, 1)
        + exponential(p["sigma_delta"], 1)
        + normal(p["mu_eta"], 0, 1)
        + exponential(p["sigma_eta"], 2)
        + exponential(p["sigma_kappa"], 2)
        + lp_c
        + lp_d
        + lp_e
        + lp_k
        + exponential(p["sigma"], 1)
    )
    return mu, lp


def lp_model_a(d: dict, p: dict, centered: bool) -> float:
    mu, lp = _model_a_parts(d, p, centered)
    return lp + normal(d["logfc"], mu, p["sigma"])


def lp_model_b(d: dict, p: dict, centered: bool) -> float:
    mu, lp = _model_a_parts(d, p, centered)
    zeta = np.asarray(p["zeta_g"], dtype=float).reshape(-1)
    omega, sigma_zeta, tau = p["omega"], p["sigma_zeta"], float(d["tau_zeta"])
    mixture = 0.0
    for z in zeta:
        mixture += logsumexp(
            [np.log(omega) + stats.norm.logpdf(z, 0, sigma_zeta), np.log1p(-omega) + stats.norm.logpdf(z, 0, tau)]
        )
    # Gene -> its zeta, or 0 for the genes without one (slot M + 1).
    per_gene = np.array([zeta[k - 1] if k <= zeta.size else 0.0 for k in d["gene_mutation_slot"]])
    g = (np.asarray(d["sgrna_gene"]) - 1)[np.asarray(d["sgrna"]) - 1]
    mu = mu + per_gene[g] * np.asarray(d["is_mutated"])
    return (
        lp
        + float(stats.beta.logpdf(omega, 2, 5))
        + float(stats.lognorm.logpdf(sigma_zeta, d["sigma_zeta_prior_log_sd"], scale=d["sigma_zeta_prior_median"]))
        + mixture
        + normal(d["logfc"], mu, p["sigma"])
    )


def lineage_basis(cell_line_lineage: Any, n_lineages: int) -> np.ndarray:
    """L x (L-1) map to lineage effects whose cell-line-weighted mean is zero."""
    lineage = np.asarray(cell_line_lineage) - 1
    w = np.bincount(lineage, minlength=n_lineages) / lineage.size
    return (np.eye(n_lineages) - np.outer(np.ones(n_lineages), w)) @ helmert_basis(n_lineages)


def lp_model_lineage(d: dict, p: dict, centered: bool) -> float:
    alpha_s, lp = _guides(d, p, centered)
    n_genes, n_lineages = int(d["G"]), int(d["L"])
    a_l = lineage_basis(d["cell_line_lineage"], n_lineages)
    b_g = helmert_basis(n_genes)
    if centered:
        lam_raw = np.asarray(p["lambda_l_raw"], dtype=float)
        lambda_l, lp_l = a_l @ lam_raw, normal(lam_raw, 0, p["sigma_lambda"])
        theta_raw = np.asarray(p["theta_gl_raw"], dtype=float)
        theta_gl, lp_t = b_g @ theta_raw @ a_l.T, normal(theta_raw, 0, p["sigma_theta"])
    else:
        lam_z = np.asarray(p["lambda_l_z"], dtype=float)
        lambda_l, lp_l = p["sigma_lambda"] * (a_l @ lam_z), normal(lam_z, 0, 1)
        theta_z = np.asarray(p["theta_gl_z"], dtype=float)
        theta_gl, lp_t = p["sigma_theta"] * (b_g @ theta_z @ a_l.T), normal(theta_z, 0, 1)
    delta_c, lp_c = _zero_sum(p, "delta_c", p["sigma_beta"], d["C"], centered)
    cell_lineage = np.asarray(d["cell_line_lineage"]) - 1
    beta_c = lambda_l[cell_lineage] + delta_c
    s, c = np.asarray(d["sgrna"]) - 1, np.asarray(d["cell_line"]) - 1
    g = (np.asarray(d["sgrna_gene"]) - 1)[s]
    mu = alpha_s[s] + beta_c[c] + theta_gl[g, cell_lineage[c]]
    return (
        lp
        + exponential(p["sigma_lambda"], 1)
        + exponential(p["sigma_beta"], 1)
        + exponential(p["sigma_theta"], 2)
        + lp_l
        + lp_c
        + lp_t
        + exponential(p["sigma"], 1)
        + normal(d["logfc"], mu, p["sigma"])
    )


REFERENCE_LOG_DENSITY: dict[str, Callable[[dict, dict, bool], float]] = {
    "model_c": lp_model_c,
    "model_a": lp_model_a,
    "model_b": lp_model_b,
    "model_lineage": lp_model_lineage,
}

# --------------------------------------------------------------------------
# Random parameter values. Each entry: name -> (shape in terms of the data,
# kind, renamed when non-centered/centered). kind is "real", "positive",
# "unit" (0-1) or "above_tau" (> tau_zeta).

_A = {
    "mu_epsilon": ((), "real"), "sigma_epsilon": ((), "positive"), "sigma_alpha": ((), "positive"),
    "epsilon_g": (("G",), "effect"), "alpha_s": (("S",), "effect"), "sigma_beta": ((), "positive"),
    "beta_c": (("C-1",), "zero_sum"), "mu_delta": ((), "real"), "sigma_delta": ((), "positive"),
    "delta_g": (("G",), "effect"), "mu_eta": ((), "real"), "sigma_eta": ((), "positive"),
    "sigma_kappa": ((), "positive"), "eta_g": (("G",), "effect"), "kappa_s": (("S",), "effect"),
    "sigma": ((), "positive"),
}
PARAMETERS: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "model_c": {
        "mu_epsilon": ((), "real"), "sigma_epsilon": ((), "positive"), "sigma_alpha": ((), "positive"),
        "epsilon_g": (("G",), "effect"), "alpha_s": (("S",), "effect"), "sigma_beta": ((), "positive"),
        "beta_c": (("C-1",), "zero_sum"), "mu_sigma": ((), "real"), "tau_sigma": ((), "positive"),
        "log_sigma_c": (("C",), "effect"),
    },
    "model_a": _A,
    "model_b": {**_A, "omega": ((), "unit"), "sigma_zeta": ((), "above_tau"), "zeta_g": (("M",), "real")},
    "model_lineage": {
        "mu_epsilon": ((), "real"), "sigma_epsilon": ((), "positive"), "sigma_alpha": ((), "positive"),
        "epsilon_g": (("G",), "effect"), "alpha_s": (("S",), "effect"), "sigma_lambda": ((), "positive"),
        "lambda_l": (("L-1",), "zero_sum"), "sigma_beta": ((), "positive"), "delta_c": (("C-1",), "zero_sum"),
        "sigma_theta": ((), "positive"), "theta_gl": (("G-1", "L-1"), "zero_sum"), "sigma": ((), "positive"),
    },
}


def _size(key: str, data: dict) -> int:
    return int(data[key[:-2]]) - 1 if key.endswith("-1") else int(data[key])


def random_parameters(model: str, parameterization: str, data: dict, rng: np.random.Generator) -> dict[str, Any]:
    """Random constrained values for every parameter of a program, named as in the program."""
    params: dict[str, Any] = {}
    for name, (shape_keys, kind) in PARAMETERS[model].items():
        shape = tuple(_size(k, data) for k in shape_keys)
        if kind == "positive":
            value = rng.exponential(1.0, shape) + 0.05
        elif kind == "unit":
            value = rng.uniform(0.05, 0.95, shape)
        elif kind == "above_tau":
            value = float(data["tau_zeta"]) + rng.exponential(1.0, shape) + 0.01
        else:
            value = rng.normal(0, 1.5, shape)
        if kind == "zero_sum":
            name += "_raw" if parameterization == "centered" else "_z"
        elif kind == "effect" and parameterization == "noncentered":
            name += "_z"
        params[name] = value.tolist() if shape else float(value)
    return params
