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


def _labels(fit: StanFit, dim: str) -> np.ndarray:
    coords = fit.idata.posterior.coords
    if dim not in coords:
        raise KeyError(dim)
    return np.asarray(coords[dim].values).astype(str)


def _row_units(name: str, fit: StanFit) -> np.ndarray:
    """The gene x cell-line unit (``"gene|cell_line"``) of every row of a fit."""
    data = fit.idata.constant_data
    try:
        if "unit" in data:  # Model 3
            return _labels(fit, "unit")[np.asarray(data["unit"].values, dtype=int) - 1]
        if "gene" in data:
            gene = np.asarray(data["gene"].values, dtype=int) - 1
        else:
            gene = (np.asarray(data["sgrna_gene"].values, dtype=int) - 1)[np.asarray(data["sgrna"].values, dtype=int) - 1]
        cell = np.asarray(data["cell_line"].values, dtype=int) - 1
        genes, cells = _labels(fit, "gene"), _labels(fit, "cell_line")
    except KeyError as missing:
        raise DataError(
            f"fit {name!r} ({fit.model}) does not record the gene and cell line of its rows (no {missing}), "
            "so it has no leave-one-unit-out LOO; compare(..., level='row') compares row by row"
        ) from None
    return np.char.add(np.char.add(genes[gene], "|"), cells[cell])


def _unit_log_lik(name: str, fit: StanFit, outcome: str) -> az.InferenceData:
    """An InferenceData whose log-likelihood has one entry per gene x cell-line
    unit, in label order: Model 3's own (theta integrated out) or, for a model
    whose rows are independent given its parameters, the sum of its rows'."""
    units = _row_units(name, fit)
    order = np.unique(units)
    if "log_lik_unit" in fit.idata.posterior:
        values = fit.idata.posterior["log_lik_unit"].values
        labels = _labels(fit, "unit")
        values = values[..., np.argsort(labels)]
    else:
        rows = fit.idata.log_likelihood[outcome].values
        index = np.searchsorted(order, units)
        values = np.zeros(rows.shape[:2] + (order.size,))
        for chain in range(rows.shape[0]):
            for draw_block in np.array_split(np.arange(rows.shape[1]), max(1, rows.shape[1] // 256)):
                block = np.zeros((draw_block.size, order.size))
                np.add.at(block, (slice(None), index), rows[chain, draw_block])
                values[chain, draw_block] = block
    log_likelihood = az.from_dict(log_likelihood={outcome: values}, coords={"unit": order},
                                  dims={outcome: ["unit"]}).log_likelihood
    # az.loo reads the draw counts (and relative ESS) from the posterior group.
    return az.InferenceData(posterior=fit.idata.posterior, log_likelihood=log_likelihood)


def compare(
    fits: Mapping[str, StanFit] | Sequence[StanFit],
    *,
    method: str = "stacking",
    scale: str = "log",
    level: str = "auto",
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
    level : {"auto", "row", "unit"}
        What LOO leaves out. ``"row"``: one observation. ``"unit"``: all rows
        of one gene x cell-line unit, using Model 3's ``log_lik_unit`` (its
        theta integrated out) and, for the other fits, the sum of their rows'
        log-likelihoods per unit. ``"auto"`` (default): ``"unit"`` when a
        Model 3 fit is among ``fits``, whose per-row ``log_lik`` is conditional
        on a theta drawn per unit and, with few replicates per unit, gives
        high Pareto k; otherwise ``"row"``.

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
    if level not in ("auto", "row", "unit"):
        raise ValueError(f"level must be 'auto', 'row' or 'unit', got {level!r}")
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
    if level == "auto":
        level = "unit" if any("log_lik_unit" in fit.idata.posterior for fit in named.values()) else "row"
    targets = {name: fit.idata for name, fit in named.items()}
    if level == "unit":
        targets = {}
        for name, fit in named.items():
            outcome = next(iter(fit.idata.log_likelihood.data_vars))
            targets[name] = _unit_log_lik(name, fit, outcome)
        first_units = next(iter(targets.values())).log_likelihood.coords["unit"].values
        for name, idata in targets.items():
            if not np.array_equal(idata.log_likelihood.coords["unit"].values, first_units):
                raise DataError(f"fit {name!r} has other gene x cell-line units than {first!r}")
    loos: dict[str, az.ELPDData] = {}
    high: dict[str, int] = {}
    for name, fit in named.items():
        with warnings.catch_warnings():
            # Reported once below, in words, with the fit's name.
            warnings.filterwarnings("ignore", message=".*shape parameter of Pareto.*")
            loo = az.loo(targets[name], pointwise=True, scale=scale)
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
    table.attrs["level"] = level
    return table
