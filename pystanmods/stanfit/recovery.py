"""Posterior against the truth of a simulation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr


def recovery_table(
    posterior: xr.Dataset,
    truth: Mapping[str, Any],
    prob: float = 0.9,
    var_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per true scalar: truth, posterior mean and sd, central interval, coverage.

    Parameters
    ----------
    posterior : xarray.Dataset
        The posterior group of a fit.
    truth : mapping
        Parameter name to its true value (scalar or array over the variable's dims).
    prob : float
        Mass of the central interval.
    var_names : sequence of str, optional
        Which truths to tabulate; default all that the posterior has.
    """
    lo_q, hi_q = (1 - prob) / 2, 1 - (1 - prob) / 2
    rows = []
    names = var_names or [n for n in truth if n in posterior]
    for name in names:
        draws = posterior[name].stack(sample=("chain", "draw"))
        true = np.atleast_1d(np.asarray(truth[name], dtype=float))
        extra = [d for d in draws.dims if d != "sample"]
        values = draws.transpose(*extra, "sample").values.reshape(-1, draws.sizes["sample"])
        labels = (
            [str(v) for v in draws[extra[0]].values] if len(extra) == 1 else [""] * values.shape[0]
        )
        if true.size != values.shape[0]:
            raise ValueError(f"truth for {name} has {true.size} values; the posterior has {values.shape[0]}")
        lower = np.quantile(values, lo_q, axis=1)
        upper = np.quantile(values, hi_q, axis=1)
        for i in range(values.shape[0]):
            rows.append(
                {
                    "parameter": name,
                    "index": labels[i],
                    "true": true[i],
                    "mean": values[i].mean(),
                    "sd": values[i].std(ddof=1),
                    "lower": lower[i],
                    "upper": upper[i],
                    "covered": bool(lower[i] <= true[i] <= upper[i]),
                }
            )
    table = pd.DataFrame(rows)
    table["z"] = (table["mean"] - table["true"]) / table["sd"]
    return table.rename(columns={"lower": f"q{lo_q * 100:g}", "upper": f"q{hi_q * 100:g}"})
