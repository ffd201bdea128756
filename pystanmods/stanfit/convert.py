"""Draws from either engine to one ArviZ InferenceData with the data's labels as coords."""

from __future__ import annotations

from typing import Any

import arviz as az
import numpy as np

from pystanmods.engines.base import Draws
from pystanmods.models.base import StanData

POINTWISE = ("log_lik", "y_rep")


def to_inference_data(draws: Draws, stan_data: StanData, outcome: str, attrs: dict[str, Any]) -> az.InferenceData:
    """Build the InferenceData of a fit.

    ``log_lik`` goes to the log_likelihood group and ``y_rep`` to
    posterior_predictive, both under the outcome's name, so that
    ``az.loo`` and ``az.plot_ppc`` work as they are.
    """
    # A variable switched off by a data flag has no values and is left out:
    # theta without compute_theta, Model 3's per-unit log-likelihood without
    # log_lik (it stays in the posterior group: a second log_likelihood
    # variable would make az.loo(idata) ask which one).
    posterior = {k: v for k, v in draws.variables.items() if k not in POINTWISE and np.size(v) > 0}
    # A non-scalar variable the model's record does not declare would get
    # ArviZ's x_dim_0 names, which nothing downstream can select on.
    undeclared = sorted(k for k, v in posterior.items() if np.ndim(v) > 2 and k not in stan_data.dims)
    if undeclared:
        raise ValueError(
            f"Stan variable(s) {undeclared} have no dims in the model's record: declare them "
            "(record.effects or record.variables) beside the template that writes them"
        )
    dims = {k: v for k, v in stan_data.dims.items() if k in posterior}
    coords = dict(stan_data.coords)
    groups: dict[str, Any] = {
        "posterior": posterior,
        "sample_stats": draws.sample_stats,
        "observed_data": {outcome: stan_data.observed},
        "constant_data": {
            k: np.asarray(v) for k, v in stan_data.data.items() if k != outcome and np.ndim(v) > 0
        },
    }
    log_lik = draws.variables.get("log_lik")
    log_lik = log_lik if log_lik is not None and log_lik.shape[-1] > 0 else None
    # A model whose log_lik is per group of rows (a gene x cell-line block)
    # rather than per row gets its own log_likelihood dims.
    log_lik_dims = list(stan_data.dims.get("log_lik", ["obs"]))
    if log_lik is not None and log_lik_dims == ["obs"]:
        groups["log_likelihood"] = {outcome: log_lik}
    if draws.variables.get("y_rep") is not None and draws.variables["y_rep"].shape[-1] > 0:
        groups["posterior_predictive"] = {outcome: draws.variables["y_rep"]}
    dims[outcome] = ["obs"]
    idata = az.from_dict(**groups, coords=coords, dims=dims)
    if log_lik is not None and log_lik_dims != ["obs"]:
        extra = az.from_dict(
            log_likelihood={outcome: log_lik},
            coords={d: coords[d] for d in log_lik_dims},
            dims={outcome: log_lik_dims},
        )
        idata.add_groups(log_likelihood=extra.log_likelihood)
    for group in idata.groups():
        idata[group].attrs.update(_netcdf_attrs(attrs))
    return idata


def _netcdf_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes netCDF can store: strings and numbers only."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        out[key] = value if isinstance(value, (str, int, float)) else str(value)
    return out
