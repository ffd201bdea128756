"""Simulation-based calibration (Talts et al. 2018; Modrák et al. 2023) on Dask.

For each of ``n_sims`` data sets drawn from the model's own prior
(:meth:`pystanmods.models.Model.simulate_prior`), fit the model and find the
rank of each true value among the posterior draws. If the model, its
simulator and the sampler are all right, every parameter's ranks are uniform.

Thinning: the rank counts draws below the truth, and autocorrelated draws
make its distribution lumpier than the uniform the test assumes. Each
scalar's draws are therefore thinned, within each chain, by
``ceil(total draws / bulk ESS)`` of that scalar in that fit, which leaves
about ESS draws that are close to independent (Talts et al. section 5.1).
Fits differ in how many draws survive (``n_draws`` in ``ranks.csv``), so each
rank ``r`` out of ``K`` thinned draws is also put on [0, 1] as
``u = (r + V) / (K + 1)`` with ``V ~ Uniform(0, 1)``: a randomised PIT, exactly
Uniform(0, 1) when ``r`` is uniform on ``0..K``, which lets fits with
different ``K`` be pooled.

Uniformity test: Pearson's chi-square on equal-width bins of ``u`` (about 5
expected per bin, between 2 and 20 bins), one test per scalar parameter,
Holm-corrected across all scalars of the model so that ``alpha`` bounds the
chance that a calibrated model fails anywhere. The ECDF-difference plots show
simultaneous 1 - ``alpha`` bands (Säilynoja et al. 2022, as computed by
ArviZ).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pystanmods.engines.options import check_count
from pystanmods.models import Model, get_model
from pystanmods.outputs import check_directory

#: Sampler settings of each SBC fit unless overridden.
FIT_DEFAULTS: dict[str, Any] = {"chains": 4, "iter_warmup": 500, "iter_sampling": 250}

#: A fit "did not converge" if it had any divergence or a max R-hat >= this.
RHAT_LIMIT = 1.01
#: A run in which more than this share of fits did not converge is
#: INCONCLUSIVE, not a pass: its ranks come mostly from posteriors the sampler
#: did not explore, so uniform ranks are weak evidence of calibration.
NONCONVERGED_LIMIT = 0.10


@dataclass
class SBCResult:
    """The outcome of :func:`run`.

    Attributes
    ----------
    model, parameterization : str
    ranks : pandas.DataFrame
        One row per simulation and scalar parameter: ``rank`` among ``n_draws``
        thinned draws, ``thin`` and the randomised PIT ``u``.
    fits : pandas.DataFrame
        One row per simulation: seed, attempts, status, diagnostics, seconds.
    uniformity : pandas.DataFrame
        Per scalar parameter: chi-square statistic, bins, p-value, Holm-adjusted
        p-value, rejected.
    alpha : float
        Family-wise level of the uniformity tests.
    out : pathlib.Path or None
        Where the tables, plots and ``report.md`` were written.
    """

    model: str
    parameterization: str
    ranks: pd.DataFrame
    fits: pd.DataFrame
    uniformity: pd.DataFrame
    alpha: float
    settings: dict[str, Any] = field(default_factory=dict)
    out: Path | None = None

    @property
    def passed(self) -> bool:
        """``status == "PASS"``: every fit succeeded, at most
        :data:`NONCONVERGED_LIMIT` of them had divergences or R-hat >=
        :data:`RHAT_LIMIT`, and no parameter's ranks reject uniformity at the
        corrected level. Failed fits drop simulations non-randomly (the hard
        corners of the prior), so a run with any is no evidence of
        calibration, and neither is a run that tested nothing or one whose
        fits mostly did not converge."""
        return self.status == "PASS"

    @property
    def nonconverged(self) -> int:
        """Successful fits with any divergence or max R-hat >= :data:`RHAT_LIMIT`."""
        ok = self.fits[self.fits["status"] == "ok"]
        rhat = pd.to_numeric(ok["max_rhat"], errors="coerce")
        # A NaN R-hat (a constant draw) is no evidence of convergence either.
        return int(((ok["divergences"] > 0) | ~(rhat < RHAT_LIMIT)).sum())

    @property
    def nonconverged_share(self) -> float:
        """:attr:`nonconverged` over the successful fits (NaN without any)."""
        n_ok = int((self.fits["status"] == "ok").sum())
        return self.nonconverged / n_ok if n_ok else float("nan")

    @property
    def status(self) -> str:
        """``"FAIL"`` if any parameter rejects uniformity; else ``"PASS"`` if
        no fit failed, something was tested and at most
        :data:`NONCONVERGED_LIMIT` of the fits did not converge; else
        ``"INCONCLUSIVE"``. A rejection is reported even from unconverged
        fits: it still says that the ranks are not uniform."""
        if self.flagged:
            return "FAIL"
        share = self.nonconverged_share
        if len(self.uniformity) == 0 or self.n_failed or not share <= NONCONVERGED_LIMIT:
            return "INCONCLUSIVE"
        return "PASS"

    @property
    def flagged(self) -> list[str]:
        return list(self.uniformity.loc[self.uniformity["rejected"], "parameter"])

    @property
    def n_failed(self) -> int:
        return int((self.fits["status"] != "ok").sum())

    @property
    def n_retried(self) -> int:
        return int((self.fits["attempts"] > 1).sum())

    def diagnostics_summary(self) -> dict[str, Any]:
        ok = self.fits[self.fits["status"] == "ok"]
        return {
            "fits": len(self.fits),
            "failed": self.n_failed,
            "retried": self.n_retried,
            "with_divergences": int((ok["divergences"] > 0).sum()),
            "total_divergences": int(ok["divergences"].sum()),
            "with_treedepth_hits": int((ok["treedepth_hits"] > 0).sum()),
            "rhat_over_1.01": int((ok["max_rhat"] >= RHAT_LIMIT).sum()),
            "nonconverged": self.nonconverged,
            "nonconverged_share": self.nonconverged_share,
            "max_rhat": float(ok["max_rhat"].max()) if len(ok) else float("nan"),
            "median_min_ess_bulk": float(ok["min_ess_bulk"].median()) if len(ok) else float("nan"),
            "min_ess_bulk": float(ok["min_ess_bulk"].min()) if len(ok) else float("nan"),
        }

    def verdict(self) -> str:
        d = self.diagnostics_summary()
        status = self.status
        if status == "FAIL":
            head = f"FAIL ({', '.join(self.flagged)})"
        elif status == "PASS":
            head = "PASS"
        else:
            reasons = []
            if d["failed"]:
                reasons.append(f"{d['failed']} of {d['fits']} fits failed")
            if not d["nonconverged_share"] <= NONCONVERGED_LIMIT:
                reasons.append(
                    f"{d['nonconverged']} of {d['fits'] - d['failed']} fits ({d['nonconverged_share']:.0%}) had "
                    f"divergences or R-hat >= {RHAT_LIMIT}, over the {NONCONVERGED_LIMIT:.0%} limit"
                )
            if not len(self.uniformity):
                reasons.append("nothing tested")
            head = f"INCONCLUSIVE ({'; '.join(reasons)})"
        return (
            f"{self.model} {self.parameterization}: {head} at family-wise alpha={self.alpha} "
            f"over {len(self.uniformity)} scalars; {d['fits'] - d['failed']} of {d['fits']} fits used, "
            f"{d['retried']} retried, {d['failed']} failed; {d['with_divergences']} with divergences, "
            f"{d['rhat_over_1.01']} with R-hat >= {RHAT_LIMIT} ({d['nonconverged']} with either)"
        )


def scalar_names(name: str, shape: tuple[int, ...]) -> list[str]:
    """``alpha_g[1]``, ... (1-based, as in Stan) or ``sigma`` for a scalar."""
    if not shape:
        return [name]
    return [f"{name}[{','.join(str(i + 1) for i in index)}]" for index in np.ndindex(*shape)]


def thinned_rank(draws: np.ndarray, truth: float, rng: np.random.Generator) -> tuple[int, int, int]:
    """Rank of ``truth`` among ``draws`` (chain x draw) thinned toward independence.

    Returns
    -------
    rank, n_draws, thin
        ``rank`` counts thinned draws below the truth (ties split at random).
    """
    import arviz as az

    chains, n = draws.shape
    ess = float(az.ess(draws, method="bulk"))
    thin = 1 if not np.isfinite(ess) or ess <= 0 else max(1, math.ceil(chains * n / ess))
    kept = draws[:, ::thin].ravel()
    below = int(np.sum(kept < truth))
    ties = int(np.sum(kept == truth))
    return below + int(rng.integers(0, ties + 1)), int(kept.size), thin


def one_simulation(
    model: str | Model,
    parameterization: str,
    index: int,
    seed: int,
    sizes: dict[str, Any],
    prior_scale: float,
    fit_kwargs: dict[str, Any],
    max_retries: int,
) -> dict[str, Any]:
    """Simulate from the prior, fit, rank; runs on a worker and never raises.

    A fit that raises or gives non-finite draws is tried again with another
    seed (same simulated data), up to ``max_retries`` times.
    """
    from pystanmods.sampling import fit as fit_model

    start = time.perf_counter()
    catalogue = get_model(model)
    record: dict[str, Any] = {"sim": index, "seed": seed, "attempts": 0, "status": "failed", "ranks": []}
    try:
        simulation = catalogue.simulate_prior(seed=seed, prior_scale=prior_scale, **sizes)
    except Exception as error:
        record.update(error=f"simulation: {type(error).__name__}: {error}", seconds=time.perf_counter() - start)
        return record
    try:
        data, truths = catalogue.sbc_inputs(simulation)
    except Exception as error:
        record.update(error=f"preparing data: {type(error).__name__}: {error}", seconds=time.perf_counter() - start)
        return record
    errors = []
    for attempt in range(max_retries + 1):
        record["attempts"] = attempt + 1
        fit_seed = (seed + 7919 * attempt) % (2**31 - 1)
        try:
            # PyStan writes "Building: found in cache" to stderr on every fit.
            with contextlib.redirect_stderr(io.StringIO()):
                fit = fit_model(
                    catalogue, data, parameterization, seed=fit_seed,
                    compute_log_lik=False, compute_y_rep=False, show_progress=False, **fit_kwargs,
                )
            posterior = fit.idata.posterior
            rng = np.random.default_rng([seed, 1])
            ranks = []
            for name, truth in truths.items():
                if name not in posterior:
                    continue
                values = np.asarray(posterior[name].values, dtype=float)
                truth_array = np.asarray(truth, dtype=float)
                if values.shape[2:] != truth_array.shape:
                    raise ValueError(f"{name}: posterior shape {values.shape[2:]} but truth {truth_array.shape}")
                if not np.all(np.isfinite(values)):
                    raise FloatingPointError(f"non-finite draws of {name}")
                flat = values.reshape(values.shape[0], values.shape[1], -1)
                for k, label in enumerate(scalar_names(name, truth_array.shape)):
                    rank, n_draws, thin = thinned_rank(flat[:, :, k], float(truth_array.flat[k]), rng)
                    u = (rank + rng.random()) / (n_draws + 1)
                    ranks.append({"parameter": label, "variable": name, "rank": rank, "n_draws": n_draws,
                                  "thin": thin, "u": u})
            diagnostics = fit.diagnostics(warn=False)
            record.update(status="ok", ranks=ranks, fit_seed=fit_seed, **diagnostics.as_dict())
            break
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}")
            record["traceback"] = traceback.format_exc()
    record["error"] = " | ".join(" ".join(e.split()) for e in errors)
    record["seconds"] = time.perf_counter() - start
    return record


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    m = p.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def uniformity_tests(ranks: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Chi-square test of uniform ``u`` per parameter, Holm-corrected."""
    from scipy import stats

    rows = []
    for parameter, group in ranks.groupby("parameter", sort=False):
        u = group["u"].to_numpy()
        bins = int(min(20, max(2, len(u) // 5)))
        counts = np.histogram(u, bins=bins, range=(0.0, 1.0))[0]
        statistic, p_value = stats.chisquare(counts)
        rows.append({"parameter": parameter, "variable": group["variable"].iloc[0], "n": len(u), "bins": bins,
                     "chi2": float(statistic), "p_value": float(p_value)})
    table = pd.DataFrame(rows, columns=["parameter", "variable", "n", "bins", "chi2", "p_value"])
    table["p_holm"] = holm(table["p_value"].to_numpy()) if len(table) else []
    table["rejected"] = table["p_holm"] < alpha
    return table


def check_run_settings(sizes: dict[str, Any], prior_scale: float, max_retries: int) -> None:
    """Raise ValueError, naming the setting, for sizes below 1, a prior scale <= 0 or negative retries."""
    check_count("max_retries", max_retries, minimum=0)
    if isinstance(prior_scale, bool) or not isinstance(prior_scale, (int, float)) or not 0 < prior_scale < math.inf:
        raise ValueError(f"prior_scale must be a positive number, got {prior_scale!r}")
    for name, value in sizes.items():
        if name.startswith("n_") or name.endswith("_per_lineage"):
            for item in value if isinstance(value, (list, tuple)) else [value]:
                check_count(f"size {name}", item, minimum=1)


def run(
    model: str | Model,
    n_sims: int = 200,
    parameterization: str = "noncentered",
    *,
    seed: int = 1,
    sizes: dict[str, Any] | None = None,
    prior_scale: float = 1.0,
    alpha: float = 0.05,
    max_retries: int = 2,
    out: str | os.PathLike[str] | None = None,
    plots: bool = True,
    client: Any = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    engine: str | None = None,
    progress: bool = True,
    **fit_options: Any,
) -> SBCResult:
    """Simulation-based calibration of a model of the catalogue.

    Parameters
    ----------
    model : str or Model
    n_sims : int
        Data sets drawn from the prior, each fitted once.
    parameterization : {"noncentered", "centered"}
    seed : int
        Seeds every simulation (through numpy's SeedSequence).
    sizes : dict, optional
        Simulator size settings, e.g. ``{"n_genes": 3, "n_cell_lines": 10}``.
    prior_scale : float
        Multiplies every prior scale of the *simulator* only; anything but 1 is
        a deliberately mis-specified simulator that SBC should flag.
    alpha : float
        Family-wise level of the per-parameter uniformity tests (Holm).
    max_retries : int
        Further attempts, with other seeds, of a fit that fails.
    out : path, optional
        Directory for ``ranks.csv``, ``fits.csv``, ``uniformity.csv``,
        ``report.md`` and ``plots/``.
    client, scheduler, n_workers
        Dask client, scheduler address, or size of a new local cluster.
    **fit_options
        ``chains``, ``iter_warmup``, ``iter_sampling`` (defaults
        :data:`FIT_DEFAULTS`), ``adapt_delta``, ...

    Returns
    -------
    SBCResult
    """
    from pystanmods.batch.cluster import Task, run_tasks
    from pystanmods.engines import get_engine
    from pystanmods.sampling import compile_model

    model = get_model(model)
    if n_sims < 2:
        raise ValueError(f"n_sims must be at least 2, got {n_sims}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if not model.priors:
        raise ValueError(f"{model.name} has no prior simulator yet (Model.priors is empty), so it cannot be calibrated")
    sizes = dict(sizes or {})
    check_run_settings(sizes, prior_scale, max_retries)
    if out is not None:
        check_directory(out, "SBC output directory")  # before any fit, not after 200 of them
    model.settings(sizes)  # unknown size names raise here, not on every worker
    try:  # and so do values the simulator cannot use
        model.simulate_prior(seed=seed, **sizes)
    except Exception as error:
        raise ValueError(f"{model.name} cannot simulate with sizes {sizes}: {type(error).__name__}: {error}") from error
    engine_obj = get_engine(engine)
    fit_kwargs = {**FIT_DEFAULTS, **fit_options, "engine": engine_obj.name}
    compile_model(model, parameterization, engine_obj)  # once, before dispatch
    seeds = [int(s.generate_state(1)[0] % (2**31 - 1)) for s in np.random.SeedSequence(seed).spawn(n_sims)]

    # A task key names its result on the cluster: two runs that share a model
    # and seed but not their prior scale, sizes or fit settings must not share
    # keys, or a client still holding the first run's results hands them to
    # the second.
    from dask.base import tokenize

    # The instance, not its name, goes to the workers: its settings (Model
    # B's tau_zeta and sigma_zeta prior) are part of both prior and program.
    token = tokenize(model.name, vars(model), parameterization, seed, sizes, prior_scale, fit_kwargs, max_retries)[:12]
    tasks = {
        i: Task(f"pystanmods-sbc-{model.name}-{parameterization}-{token}-{i}", one_simulation,
                (model, parameterization, i, s, sizes, prior_scale, fit_kwargs, max_retries))
        for i, s in enumerate(seeds)
    }
    records: list[dict[str, Any]] = []

    def handle(i: Any, record: Any, error: BaseException | None) -> None:
        if error is not None:  # worker lost beyond the scheduler's retries
            record = {"sim": i, "seed": seeds[i], "attempts": 0, "status": "failed", "ranks": [],
                      "error": f"{type(error).__name__}: {error}"}
        records.append(record)

    run_tasks(tasks, handle, client=client, scheduler=scheduler, n_workers=n_workers,
              desc=f"SBC {model.name}", unit="fit", progress=progress)
    records.sort(key=lambda r: r["sim"])
    ranks = pd.DataFrame(
        [{"sim": r["sim"], **row} for r in records for row in r["ranks"]],
        columns=["sim", "parameter", "variable", "rank", "n_draws", "thin", "u"],
    )
    fit_columns = ["sim", "seed", "fit_seed", "attempts", "status", "max_rhat", "min_ess_bulk", "min_ess_tail",
                   "divergences", "treedepth_hits", "min_ebfmi", "seconds", "error"]
    fits = pd.DataFrame([{k: r.get(k) for k in fit_columns} for r in records], columns=fit_columns)
    for column in ("divergences", "treedepth_hits"):
        fits[column] = pd.to_numeric(fits[column]).fillna(0).astype(int)
    settings = {"n_sims": n_sims, "seed": seed, "sizes": sizes, "prior_scale": prior_scale, "alpha": alpha,
                "max_retries": max_retries, **fit_kwargs}
    result = SBCResult(
        model=model.name,
        parameterization=parameterization if model.hierarchical else "none",
        ranks=ranks,
        fits=fits,
        uniformity=uniformity_tests(ranks, alpha),
        alpha=alpha,
        settings=settings,
    )
    if out is not None:
        from pystanmods.sbc.report import write_report

        result.out = write_report(result, Path(out), plots=plots)
    return result
