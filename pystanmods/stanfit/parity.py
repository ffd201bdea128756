"""Do two fits of one model and data agree? Draw for draw, or within Monte Carlo error.

With the same seed, CmdStan and the embedded engine run the same Stan 2.35
sampler and give the same chains: :func:`draw_differences` compares them
value by value. With different seeds their posterior means differ only by
Monte Carlo error: :func:`mean_differences` judges that with unrounded MCSEs.
"""

from __future__ import annotations

from collections.abc import Sequence

import arviz as az
import numpy as np
import pandas as pd

#: Groups that hold draws (data groups are compared elsewhere, by layout).
DRAW_GROUPS = ("posterior", "posterior_predictive", "log_likelihood", "sample_stats")


def draw_differences(
    a: az.InferenceData, b: az.InferenceData, *, rtol: float, atol: float, groups: Sequence[str] = DRAW_GROUPS
) -> list[str]:
    """Where two fits' draws differ by more than ``atol + rtol * |b|``; empty when they match.

    Every variable of each group present in either fit is compared, with its
    shape; a variable or group only one fit has is a difference too.
    """
    problems: list[str] = []
    for group in groups:
        in_a, in_b = group in a.groups(), group in b.groups()
        if in_a != in_b:
            problems.append(f"group {group} only in fit {'a' if in_a else 'b'}")
        if not (in_a and in_b):
            continue
        ds_a, ds_b = a[group], b[group]
        for name in sorted(set(ds_a.data_vars) | set(ds_b.data_vars)):
            if name not in ds_a.data_vars or name not in ds_b.data_vars:
                problems.append(f"{group}.{name} only in fit {'a' if name in ds_a.data_vars else 'b'}")
                continue
            x = np.asarray(ds_a[name].values, dtype=float)
            y = np.asarray(ds_b[name].values, dtype=float)
            if x.shape != y.shape:
                problems.append(f"{group}.{name} has shape {x.shape} in fit a and {y.shape} in fit b")
                continue
            far = ~np.isclose(x, y, rtol=rtol, atol=atol, equal_nan=True)
            if far.any():
                worst = np.unravel_index(np.nanargmax(np.where(far, np.abs(x - y), -np.inf)), x.shape)
                problems.append(
                    f"{group}.{name}: {int(far.sum())} of {x.size} values differ; largest at {tuple(map(int, worst))}: "
                    f"{x[worst]!r} vs {y[worst]!r}"
                )
    return problems


def mean_differences(
    a: az.InferenceData, b: az.InferenceData, var_names: Sequence[str], *, z_max: float
) -> pd.DataFrame:
    """Posterior means of two independent fits, judged against their Monte Carlo error.

    One row per scalar: both means, both MCSEs of the mean (``az.mcse`` on the
    draws, unrounded), ``z = diff / sqrt(mcse_a^2 + mcse_b^2)`` and ``ok``,
    which is ``|diff| <= z_max * sqrt(mcse_a^2 + mcse_b^2)``. Written without a
    division, so a scalar whose draws are constant in both fits (both MCSEs 0)
    is ok exactly when its two values are equal, and never 0/0 = NaN; a NaN
    mean or MCSE is not ok.
    """
    rows = []
    summaries = {}
    for label, idata in (("a", a), ("b", b)):
        posterior = idata.posterior[list(var_names)]
        summaries[label] = (posterior.mean(("chain", "draw")), az.mcse(posterior, method="mean"))
    for name in var_names:
        mean_a, mean_b = (np.ravel(summaries[k][0][name].values) for k in ("a", "b"))
        mcse_a, mcse_b = (np.ravel(summaries[k][1][name].values) for k in ("a", "b"))
        if mean_a.shape != mean_b.shape:
            raise ValueError(f"{name} has {mean_a.size} values in fit a and {mean_b.size} in fit b")
        for i in range(mean_a.size):
            diff = mean_a[i] - mean_b[i]
            se = float(np.hypot(mcse_a[i], mcse_b[i]))
            ok = bool(abs(diff) <= z_max * se)  # False for any NaN
            if np.isnan(diff) or np.isnan(se):
                z = np.nan
            else:
                z = diff / se if se > 0 else (0.0 if diff == 0 else np.copysign(np.inf, diff))
            label = name if mean_a.size == 1 else f"{name}[{i}]"
            rows.append({"name": label, "mean_a": mean_a[i], "mean_b": mean_b[i], "mcse_a": mcse_a[i],
                         "mcse_b": mcse_b[i], "z": z, "ok": ok})
    return pd.DataFrame(rows).set_index("name")
