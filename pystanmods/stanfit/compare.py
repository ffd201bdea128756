"""Rank fitted models by PSIS-LOO."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import arviz as az
import numpy as np
import pandas as pd

from pystanmods.data import DataError
from pystanmods.stanfit.fit import StanFit


def _named(fits: Mapping[str, StanFit] | Sequence[StanFit]) -> dict[str, StanFit]:
    if isinstance(fits, Mapping):
        return dict(fits)
    named: dict[str, StanFit] = {}
    for fit in fits:
        base = f"{fit.model} ({fit.parameterization})"
        name, k = base, 2
        while name in named:
            name, k = f"{base} #{k}", k + 1
        named[name] = fit
    return named


def _observed(name: str, fit: StanFit) -> np.ndarray:
    idata = fit.idata
    if "log_likelihood" not in idata.groups():
        raise DataError(
            f"fit {name!r} has no pointwise log-likelihood, so it has no LOO; "
            "fit it again with compute_log_lik=True"
        )
    observed = idata.observed_data
    return np.concatenate([np.asarray(observed[v].values, dtype=float).ravel() for v in observed.data_vars])


def compare(
    fits: Mapping[str, StanFit] | Sequence[StanFit],
    *,
    method: str = "stacking",
    scale: str = "log",
) -> pd.DataFrame:
    """Rank fitted models by PSIS-LOO (:func:`arviz.compare`).

    Parameters
    ----------
    fits : mapping of str to StanFit, or sequence of StanFit
        The fits to compare; a sequence is named ``"model (parameterization)"``.
    method : {"stacking", "BB-pseudo-BMA", "pseudo-BMA"}
        How ArviZ computes the model weights.
    scale : {"log", "negative_log", "deviance"}
        Scale of the ELPD columns.

    Returns
    -------
    pandas.DataFrame
        One row per fit, best first, with ArviZ's columns (``elpd_loo``,
        ``p_loo``, ``elpd_diff``, ``weight``, ``se``, ``dse``, ``warning``)
        plus ``n_high_pareto_k``: observations whose Pareto k exceeds ArviZ's
        ``good_k`` (0.7 at usual draw counts), where the LOO estimate of that
        fit is unreliable.

    Raises
    ------
    DataError
        When fewer than two fits are given, a fit lacks ``log_lik``, or the
        fits' observed data differ: LOO across different observations is
        meaningless.

    Warns
    -----
    UserWarning
        For each fit with high Pareto k values.
    """
    named = _named(fits)
    if len(named) < 2:
        raise DataError(f"compare needs at least two fits, got {len(named)}")
    observed = {name: _observed(name, fit) for name, fit in named.items()}
    (first, reference), *rest = observed.items()
    for name, values in rest:
        if values.shape != reference.shape:
            raise DataError(
                f"fits {first!r} and {name!r} were fitted to different data ({reference.size} and "
                f"{values.size} observations); LOO compares models only on the same observations"
            )
        differ = ~np.isclose(values, reference, rtol=0, atol=0)
        if differ.any():
            raise DataError(
                f"fits {first!r} and {name!r} were fitted to different data: {int(differ.sum())} of "
                f"{values.size} observed values differ (first at position {int(np.argmax(differ))}); "
                "LOO compares models only on the same observations, in the same order"
            )
    loos: dict[str, az.ELPDData] = {}
    high: dict[str, int] = {}
    for name, fit in named.items():
        with warnings.catch_warnings():
            # Reported once below, in words, with the fit's name.
            warnings.filterwarnings("ignore", message=".*shape parameter of Pareto.*")
            loo = az.loo(fit.idata, pointwise=True, scale=scale)
        good_k = float(getattr(loo, "good_k", 0.7))
        high[name] = int(np.sum(np.asarray(loo.pareto_k) > good_k))
        if high[name]:
            warnings.warn(
                f"{name}: {high[name]} of {loo.n_data_points} observations have Pareto k > {good_k:.2f}; "
                "their leave-one-out predictions are poorly estimated, so this fit's LOO is unreliable "
                "(see az.plot_khat; consider K-fold cross-validation or a more robust model)",
                UserWarning,
                stacklevel=2,
            )
        loos[name] = loo
    table = az.compare(loos, method=method, scale=scale)
    table["n_high_pareto_k"] = pd.Series(high)
    return table
