"""The PyMC peer of ``gene_effect`` (benchmarks/peers.py) is the Stan program's posterior.

Its log density on constrained values, without Jacobians, is compared with
Stan's (embedded engine, ``jacobian=False``) at random parameter points.
Both drop or keep different constants (Stan drops those of ``~``
statements, PyMC keeps the half-normals' and the truncation's), so the check
compares differences from the first point: any modelling slip (a prior
left out, a wrong index in the block statistics) moves them by O(1), while
round-off moves them by far less than 1e-6.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("pymc")

import pystanmods as psm
from benchmarks.peers import gene_effect
from pystanmods.models.base import StanData
from pystanmods.models.gene_effect import GeneEffect

POSITIVE = ("sigma_mu", "sigma_log_tau", "sigma_omega", "sigma_q", "sigma_beta", "sigma_kappa", "tau_sigma")


def _random_point(data: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Random constrained values of the non-centered program's parameters (K = 0)."""
    G, C, S = int(data["G"]), int(data["C"]), int(data["S"])
    point: dict[str, Any] = {name: float(rng.uniform(0.1, 1.0)) for name in POSITIVE}
    point.update(mu_0=rng.normal(), mu_log_tau=rng.normal(-1.5, 0.5), kappa_0=rng.normal(0, 0.3),
                 mu_sigma=rng.normal(-1, 0.3))
    for name, size in (("mu_g_z", G), ("log_tau_g_z", G), ("omega_s_z", S), ("log_q_c_z", C - 1),
                       ("beta_c_z", C - 1), ("kappa_c_z", C), ("log_sigma_c_z", C)):
        point[name] = rng.normal(size=size)
    point["k_s"] = rng.uniform(0.05, 0.99, size=S)
    point.update(b_0=np.zeros(0), sigma_b=np.zeros(0), b_g_z=np.zeros((G, 0)))
    return point


def _pymc_log_density(model: Any, point: dict[str, Any]) -> float:
    """The PyMC model's log density at constrained values, its Jacobians left out."""
    logp = model.compile_logp(jacobian=False)
    values: dict[str, np.ndarray] = {}
    for rv in model.free_RVs:
        value_name = model.rvs_to_values[rv].name
        x = np.asarray(point[rv.name], float)
        if value_name.endswith("_log__"):
            x = np.log(x)
        elif value_name.endswith("_interval__"):  # k_s on (0, 1)
            x = np.log(x) - np.log1p(-x)
        elif value_name != rv.name:
            raise AssertionError(f"unexpected transform of {rv.name}: {value_name}")
        values[value_name] = x
    return float(logp(values))


def _densities(stan_data: StanData, model: Any, n_points: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Stan's and the PyMC model's log densities at the same random points."""
    rng = np.random.default_rng(2024)
    points = [_random_point(stan_data.data, rng) for _ in range(n_points)]
    stan = np.array([psm.log_prob("gene_effect", stan_data, p, parameterization="noncentered", jacobian=False)
                     for p in points])
    pymc = np.array([_pymc_log_density(model, p) for p in points])
    return stan, pymc


@pytest.fixture(scope="module")
def stan_data() -> StanData:
    model = GeneEffect()
    return model.prepare(model.simulate(seed=1).data)


def test_pymc_gene_effect_is_the_stan_posterior(stan_data: StanData) -> None:
    stan, pymc = _densities(stan_data, gene_effect(stan_data.data, "noncentered"))
    # Differences from the first point cancel each side's constants.
    np.testing.assert_allclose(pymc[1:] - pymc[0], stan[1:] - stan[0], rtol=1e-8, atol=1e-6)


def test_density_check_can_fail(stan_data: StanData) -> None:
    """The check catches one prior term left out: the guide offsets' std_normal."""
    import pymc as pm

    model = gene_effect(stan_data.data, "noncentered")
    # omega_s_z's prior cancelled by a Potential: the model without that term.
    with model:
        z = model["omega_s_z"]
        pm.Potential("drop_omega_prior", -pm.logp(pm.Normal.dist(0, 1), z).sum())
    stan, pymc = _densities(stan_data, model)
    assert np.max(np.abs((pymc[1:] - pymc[0]) - (stan[1:] - stan[0]))) > 1e-3


def test_refuses_covariates(stan_data: StanData) -> None:
    data = stan_data.data
    with pytest.raises(ValueError, match="K = 1"):
        gene_effect({**data, "K": 1}, "noncentered")
    with pytest.raises(ValueError, match="non-centered only"):
        gene_effect(data, "centered")
