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
    posterior = {k: v for k, v in draws.variables.items() if k not in POINTWISE}
    # Model 3's per-unit log-likelihood stays in the posterior group (a second
    # log_likelihood variable would make az.loo(idata) ask which one); it is
    # empty, and dropped, when log_lik is not computed.
    if "log_lik_unit" in posterior and posterior["log_lik_unit"].shape[-1] == 0:
        del posterior["log_lik_unit"]
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
    if draws.variables.get("log_lik") is not None and draws.variables["log_lik"].shape[-1] > 0:
        groups["log_likelihood"] = {outcome: draws.variables["log_lik"]}
    if draws.variables.get("y_rep") is not None and draws.variables["y_rep"].shape[-1] > 0:
        groups["posterior_predictive"] = {outcome: draws.variables["y_rep"]}
    dims[outcome] = ["obs"]
    idata = az.from_dict(**groups, coords=coords, dims=dims)
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
