"""Independent numpy/scipy versions of the models, and the recovery checks.

Nothing here calls Stan: the log densities are written from the equations at
the top of each Stan program, so that a likelihood added twice, a wrong index
or a wrong prior in a program shows up as a mismatch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats

# --------------------------------------------------------------------------
# Sum-to-zero effects: an explicit dense Helmert basis, built a different way
# from the O(K) cumulative-sum code in the Stan programs.


def helmert_basis(k: int) -> np.ndarray:
    """K x (K-1) matrix whose orthonormal columns span the sum-to-zero vectors."""
    basis = np.zeros((k, k - 1))
    for j in range(1, k):
        basis[:j, j - 1] = 1.0
        basis[j, j - 1] = -float(j)
        basis[:, j - 1] /= np.sqrt(j * (j + 1))
    return basis


def normal(x: Any, mu: Any, sigma: Any) -> float:
    return float(np.sum(stats.norm.logpdf(x, mu, sigma)))


def halfnormal(x: Any, scale: float) -> float:
    return float(np.sum(stats.halfnorm.logpdf(x, scale=scale)))


def exponential(x: Any, rate: Any) -> float:
    return float(np.sum(stats.expon.logpdf(x, scale=1.0 / np.asarray(rate))))


def _effect(params: dict, name: str, mu: Any, sigma: Any, centered: bool) -> tuple[np.ndarray, float]:
    """Value and prior log density of a group effect in either parameterization."""
    if centered:
        value = np.asarray(params[name], dtype=float)
        return value, normal(value, mu, sigma)
    z = np.asarray(params[f"{name}_z"], dtype=float)
    return mu + sigma * z, normal(z, 0, 1)


def _zero_sum(params: dict, name: str, sigma: float, size: int, centered: bool) -> tuple[np.ndarray, float]:
    basis = helmert_basis(size)
    if centered:
        raw = np.asarray(params[f"{name}_raw"], dtype=float)
        return basis @ raw, normal(raw, 0, sigma)
    z = np.asarray(params[f"{name}_z"], dtype=float)
    return sigma * (basis @ z), normal(z, 0, 1)


# --------------------------------------------------------------------------
# Log densities on the constrained scale, without Jacobian terms.


def lp_model1(d: dict, p: dict, centered: bool) -> float:
    mu = p["alpha"] + p["beta"] * d["rna"]
    return (
        normal(p["alpha"], 0, 10)
        + normal(p["beta"], 0, 1)
        + halfnormal(p["sigma"], 5)
        + normal(d["logfc"], mu, p["sigma"])
    )


def lp_model2(d: dict, p: dict, centered: bool) -> float:
    alpha_g, lp_a = _effect(p, "alpha_g", p["mu_alpha"], p["sigma_alpha"], centered)
    beta_g, lp_b = _effect(p, "beta_g", p["mu_beta"], p["sigma_beta"], centered)
    g = np.asarray(d["gene"]) - 1
    return (
        normal(p["mu_alpha"], 0, 5)
        + halfnormal(p["sigma_alpha"], 5)
        + normal(p["mu_beta"], 0, 2)
        + halfnormal(p["sigma_beta"], 2)
        + lp_a
        + lp_b
        + halfnormal(p["sigma"], 5)
        + normal(d["logfc"], alpha_g[g] + beta_g[g] * d["rna"], p["sigma"])
    )


def lp_model3(d: dict, p: dict, centered: bool) -> float:
    """Model 3 with theta integrated out, written as a multivariate normal per
    unit (covariance sigma^2 I + sigma_g^2 11'), not through the sufficient
    statistics that the Stan program uses."""
    gamma_g, lp_g = _effect(p, "gamma_g", p["mu_gamma"], p["sigma_gamma"], centered)
    delta_g, lp_d = _effect(p, "delta_g", p["mu_delta"], p["sigma_delta"], centered)
    ug = np.asarray(d["unit_gene"]) - 1
    sigma_g = np.asarray(p["sigma_g"])
    mu_theta = gamma_g[ug] + delta_g[ug] * np.asarray(d["rna"])
    unit = np.asarray(d["unit"]) - 1
    y = np.asarray(d["logfc"])
    lp_y = 0.0
    for u in range(int(d["U"])):
        y_u = y[unit == u]
        cov = p["sigma"] ** 2 * np.eye(y_u.size) + sigma_g[ug[u]] ** 2 * np.ones((y_u.size, y_u.size))
        lp_y += float(stats.multivariate_normal.logpdf(y_u, np.full(y_u.size, mu_theta[u]), cov))
    return (
        normal(p["mu_gamma"], 0, 5)
        + exponential(p["sigma_gamma"], 1)
        + normal(p["mu_delta"], 0, 5)
        + exponential(p["sigma_delta"], 1)
        + exponential(p["tau_sigma"], 1)
        + lp_g
        + lp_d
        + exponential(sigma_g, 1 / p["tau_sigma"])
        + exponential(p["sigma"], 1)
        + lp_y
    )


def lp_model4(d: dict, p: dict, centered: bool) -> float:
    alpha_g, lp_a = _effect(p, "alpha_g", p["mu_alpha"], p["sigma_alpha"], centered)
    beta_g, lp_b = _effect(p, "beta_g", p["mu_beta"], p["sigma_beta"], centered)
    gamma_c, lp_c = _zero_sum(p, "gamma_c", p["sigma_gamma"], d["C"], centered)
    g, c = np.asarray(d["gene"]) - 1, np.asarray(d["cell_line"]) - 1
    return (
        normal(p["mu_alpha"], 0, 2)
        + exponential(p["sigma_alpha"], 1)
        + exponential(p["sigma_gamma"], 1)
        + normal(p["mu_beta"], 0, 1)
        + exponential(p["sigma_beta"], 1)
        + lp_a
        + lp_c
        + lp_b
        + exponential(p["sigma"], 1)
        + normal(d["logfc"], alpha_g[g] + gamma_c[c] + beta_g[g] * d["rna"], p["sigma"])
    )


def lp_model5(d: dict, p: dict, centered: bool) -> float:
    epsilon_g, lp_e = _effect(p, "epsilon_g", p["mu_epsilon"], p["sigma_epsilon"], centered)
    sgrna_gene = np.asarray(d["sgrna_gene"]) - 1
    alpha_s, lp_a = _effect(p, "alpha_s", epsilon_g[sgrna_gene], p["sigma_alpha"], centered)
    beta_c, lp_c = _zero_sum(p, "beta_c", p["sigma_beta"], d["C"], centered)
    s, c = np.asarray(d["sgrna"]) - 1, np.asarray(d["cell_line"]) - 1
    return (
        normal(p["mu_epsilon"], 0, 5)
        + exponential(p["sigma_epsilon"], 1)
        + exponential(p["sigma_alpha"], 1)
        + exponential(p["sigma_beta"], 1)
        + lp_e
        + lp_a
        + lp_c
        + exponential(p["sigma"], 1)
        + normal(d["logfc"], alpha_s[s] + beta_c[c], p["sigma"])
    )


def lp_model5_flat(d: dict, p: dict, centered: bool) -> float:
    gamma_g, lp_g = _effect(p, "gamma_g", p["mu_gamma"], p["sigma_gamma"], centered)
    beta_c, lp_c = _zero_sum(p, "beta_c", p["sigma_beta"], d["C"], centered)
    g, c = np.asarray(d["gene"]) - 1, np.asarray(d["cell_line"]) - 1
    return (
        normal(p["mu_gamma"], 0, 2)
        + exponential(p["sigma_gamma"], 0.5)
        + exponential(p["sigma_beta"], 0.5)
        + lp_g
        + lp_c
        + exponential(p["sigma"], 1)
        + normal(d["logfc"], gamma_g[g] + beta_c[c], p["sigma"])
    )


REFERENCE_LOG_DENSITY: dict[str, Callable[[dict, dict, bool], float]] = {
    "model1": lp_model1,
    "model2": lp_model2,
    "model3": lp_model3,
    "model4": lp_model4,
    "model5": lp_model5,
    "model5_flat": lp_model5_flat,
}

# --------------------------------------------------------------------------
# Random parameter values of the right shapes.

#: Parameter name -> (size key in the Stan data or None for a scalar, positive?).
PARAMETERS: dict[str, dict[str, tuple[str | None, bool]]] = {
    "model1": {"alpha": (None, False), "beta": (None, False), "sigma": (None, True)},
    "model2": {
        "mu_alpha": (None, False), "sigma_alpha": (None, True), "mu_beta": (None, False),
        "sigma_beta": (None, True), "alpha_g": ("G", False), "beta_g": ("G", False), "sigma": (None, True),
    },
    "model3": {
        "mu_gamma": (None, False), "sigma_gamma": (None, True), "mu_delta": (None, False),
        "sigma_delta": (None, True), "tau_sigma": (None, True), "gamma_g": ("G", False),
        "delta_g": ("G", False), "sigma_g": ("G", True), "sigma": (None, True),
    },
    "model4": {
        "mu_alpha": (None, False), "sigma_alpha": (None, True), "sigma_gamma": (None, True),
        "mu_beta": (None, False), "sigma_beta": (None, True), "alpha_g": ("G", False),
        "gamma_c": ("C-1", False), "beta_g": ("G", False), "sigma": (None, True),
    },
    "model5": {
        "mu_epsilon": (None, False), "sigma_epsilon": (None, True), "sigma_alpha": (None, True),
        "epsilon_g": ("G", False), "alpha_s": ("S", False), "sigma_beta": (None, True),
        "beta_c": ("C-1", False), "sigma": (None, True),
    },
    "model5_flat": {
        "mu_gamma": (None, False), "sigma_gamma": (None, True), "gamma_g": ("G", False),
        "sigma_beta": (None, True), "beta_c": ("C-1", False), "sigma": (None, True),
    },
}

#: Group effects declared through a standard-normal `_z` when non-centered.
GROUP_EFFECTS = {"alpha_g", "beta_g", "gamma_g", "delta_g", "theta", "epsilon_g", "alpha_s"}


def random_parameters(model: str, parameterization: str, data: dict, rng: np.random.Generator) -> dict[str, Any]:
    """Random constrained values for every parameter of a program, named as in the program."""
    params: dict[str, Any] = {}
    for name, (size_key, positive) in PARAMETERS[model].items():
        if size_key is None:
            size = None
        elif size_key == "C-1":
            size = int(data["C"]) - 1
        else:
            size = int(data[size_key])
        value = rng.exponential(1.0, size) + 0.05 if positive else rng.normal(0, 1.5, size)
        if size_key == "C-1":
            name += "_raw" if parameterization == "centered" else "_z"
        elif name in GROUP_EFFECTS and parameterization == "noncentered":
            name += "_z"
        params[name] = value.tolist() if size is not None else float(value)
    return params


# --------------------------------------------------------------------------
# Recovery checks.


def coverage_floor(k: int, level: float = 0.9, alpha: float = 0.001) -> int:
    """Fewest intervals out of ``k`` that calibrated ``level`` intervals cover,
    except with probability about ``alpha``: the ``alpha`` quantile of
    Binomial(k, level). Intervals of one fit are positively correlated, which
    widens the spread of the count; alpha = 0.001 leaves room for that while a
    biased or overconfident posterior still fails by a wide margin."""
    return int(stats.binom.ppf(alpha, k, level))


def covered_count(draws: np.ndarray, truth: np.ndarray, prob: float = 0.9) -> int:
    """How many of ``truth``'s k values lie in the central ``prob`` intervals of
    ``draws`` (n_draws x k), each interval from its own column's quantiles."""
    lower, upper = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return int(np.sum((lower <= truth) & (truth <= upper)))


def coverage_floor_from_draws(
    draw_sets: list[np.ndarray], prob: float = 0.9, alpha: float = 0.001, n_resamples: int = 20000, seed: int = 0,
) -> int:
    """Fewest covered truths, summed over independent fits, that a calibrated
    posterior gives except with probability about ``alpha``, when the truths
    were drawn from the prior.

    If the truth is drawn from the prior and the data from the model, the
    truth given the data is distributed as the posterior. So the number of the
    fit's k truths inside their intervals has the distribution of the number
    of a joint posterior draw's k values inside the same intervals, however the
    k values are correlated: counting that over the fit's draws gives the
    exact reference distribution (up to Monte Carlo error), with none of the
    independence a binomial bound assumes. Fits of independent simulations
    add independent counts, so their reference is the sum of one count drawn
    from each fit, here resampled ``n_resamples`` times; the floor is its
    ``alpha`` quantile.
    """
    rng = np.random.default_rng(seed)
    total = np.zeros(n_resamples, dtype=int)
    for draws in draw_sets:
        lower, upper = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        counts = np.sum((lower <= draws) & (draws <= upper), axis=1)
        total += rng.choice(counts, size=n_resamples)
    return int(np.quantile(total, alpha, method="lower"))
