"""Compile, fit and evaluate the catalogue's models on either engine."""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pystanmods.compile.cache import CompiledModel, compile_program
from pystanmods.data.validate import InitializationError, explain_initialization_failure
from pystanmods.engines import Engine, Program, SamplerOptions, get_engine
from pystanmods.engines.base import Draws
from pystanmods.models import Model, StanData, get_model, require_threaded
from pystanmods.stanfit import StanFit
from pystanmods.stanfit.convert import to_inference_data


def program_for(model: Model, parameterization: str, engine: Engine) -> Program:
    """The program that ``model`` compiles to, with the engine's default options."""
    return Program(
        name=model.program_name(parameterization),
        code=model.stan_code(parameterization),
        options=engine.default_compile_options(),
    )


def compile_model(
    model: str | Model,
    parameterization: str = "recommended",
    engine: str | Engine | None = None,
    *,
    quiet: bool = False,
) -> CompiledModel:
    """Compile a model once per engine and Stan version; later calls hit the cache."""
    model = get_model(model)
    engine = get_engine(engine)
    return compile_program(program_for(model, parameterization, engine), engine, quiet=quiet)


def fit(
    model: str | Model,
    data: pd.DataFrame | StanData,
    parameterization: str = "recommended",
    engine: str | Engine | None = None,
    chains: int = 4,
    iter_warmup: int = 1000,
    iter_sampling: int = 1000,
    seed: int | None = None,
    *,
    columns: Mapping[str, str] | None = None,
    compute_log_lik: bool | None = None,
    compute_y_rep: bool | None = None,
    variables: Sequence[str] | None = None,
    threads_per_chain: int | None = None,
    **sampler_options: Any,
) -> StanFit:
    """Fit a model of the catalogue to tidy data.

    Parameters
    ----------
    model : str or Model
        A name from :func:`pystanmods.list_models`.
    data : pandas.DataFrame or StanData
        Tidy data, one row per observation, or the result of ``model.prepare``.
    parameterization : {"recommended", "centered", "noncentered"}
        Which program of a hierarchical model to run. The default,
        ``"recommended"``, is the model's own choice for data like the
        seed's (``model.recommended``: centered for 7 of the 9 hierarchical
        models, whose groups are data-rich).
    engine : {"cmdstan", "pystan"}, optional
        Default: CmdStan when installed, else the embedded engine;
        ``$PYSTANMODS_ENGINE`` overrides.
    chains, iter_warmup, iter_sampling, seed
        As in cmdstanpy. Without a seed one is drawn and recorded in the fit.
    columns : mapping, optional
        Canonical column name to the name used in ``data``.
    compute_log_lik, compute_y_rep : bool, optional
        Keep pointwise log-likelihoods and replicated data (same compiled
        program). Each costs 8 bytes per observation per kept draw, so the
        default (None) keeps them unless that exceeds
        :data:`GENERATED_QUANTITIES_BUDGET` bytes, and warns when it does not.
        ``True`` keeps them whatever they cost; a prepared ``StanData`` keeps
        the flags it was prepared with unless they are None here and over budget.
    variables : sequence of str, optional
        Keep only these posterior variables (e.g. ``["alpha_s", "sigma"]``);
        default all. ``log_lik`` and ``y_rep`` follow their own flags.
    threads_per_chain : int, optional
        Above 1, split each chain's likelihood over threads with reduce_sum
        (models with ``within_chain``: C, A, B and lineage), in slices of
        about N / (4 threads) rows unless the data set ``grainsize``. For
        machines with more cores than chains. CmdStan runs this many threads
        per chain; the embedded engine has no thread-count setting, and its
        chain processes use the threading library's default (every core).
    **sampler_options
        ``adapt_delta`` (default: the model's, 0.95 for hierarchical models as
        in rstanarm), ``max_treedepth``, ``inits``, ``thin``, ``step_size``,
        ``refresh``, ``show_progress``.

    Returns
    -------
    StanFit
    """
    model = get_model(model)
    parameterization = model.check_parameterization(parameterization)
    engine = get_engine(engine)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31 - 1))
    if sampler_options.get("adapt_delta") is None and model.adapt_delta is not None:
        sampler_options["adapt_delta"] = model.adapt_delta
    # The options check validates threads_per_chain before it sizes slices.
    options = SamplerOptions.from_kwargs(
        chains=chains, iter_warmup=iter_warmup, iter_sampling=iter_sampling, seed=seed,
        threads_per_chain=threads_per_chain, **sampler_options
    )
    stan_data = (
        data
        if isinstance(data, StanData)
        else model.prepare(data, columns, compute_log_lik=compute_log_lik is not False,
                           compute_y_rep=compute_y_rep is not False)
    )
    stan_data = _within_budget(stan_data, chains * options.kept_per_chain, compute_log_lik, compute_y_rep)
    if threads_per_chain is not None:
        stan_data = _threaded(model, stan_data, threads_per_chain)
    compiled = compile_model(model, parameterization, engine)
    try:
        draws = engine.sample(compiled.program, compiled.directory, stan_data.data, options)
    except RuntimeError as error:
        # PyStan says "Initialization failed."; cmdstanpy's error carries CmdStan's console lines.
        markers = ("Initialization failed", "Initialization between", "Rejecting initial value")
        if not any(marker in str(error) for marker in markers):
            raise
        message = explain_initialization_failure(model.name, stan_data.frame, options.inits, error)
        raise InitializationError(message) from error
    if variables is not None:
        draws = _keep(draws, variables)
    attrs = {
        "model": model.name,
        "parameterization": parameterization if model.hierarchical else "none",
        "program": compiled.program.name,
        "engine": engine.name,
        "stan_version": engine.stan_version(),
        "seed": options.seed,
        "iter_warmup": iter_warmup,
        "iter_sampling": iter_sampling,
        "adapt_delta": options.value("adapt_delta"),
        "max_treedepth": options.value("max_treedepth"),
        "thin": options.value("thin"),
        "threads_per_chain": threads_per_chain or 1,
        "grainsize": int(stan_data.data.get("grainsize", 0)),
        "sampling_seconds": draws.sampling_seconds,
        "compile_seconds": compiled.compile_seconds,
        "compile_cached": int(compiled.cached),
        "pystanmods_version": _version(),
    }
    idata = to_inference_data(draws, stan_data, model.outcome, attrs)
    return StanFit(idata)


#: Bytes that log_lik and y_rep may take together before fit() leaves them out
#: by default: 2 GiB, a tenth of a 24 GB machine: both for 4000 draws of about
#: 33,000 observations. Set ``PYSTANMODS_GQ_BUDGET`` (bytes) to change it.
GENERATED_QUANTITIES_BUDGET = 2 * 1024**3


def _within_budget(stan_data: StanData, kept_draws: int, log_lik: bool | None, y_rep: bool | None) -> StanData:
    """Switch off log_lik and y_rep left at their default when they would not fit the budget."""
    bytes_each = int(stan_data.data["N"]) * kept_draws * 8
    budget = int(os.environ.get("PYSTANMODS_GQ_BUDGET", GENERATED_QUANTITIES_BUDGET))
    flags = {"compute_log_lik": log_lik, "compute_y_rep": y_rep}
    on = [k for k, v in flags.items() if v is not False and int(stan_data.data.get(k, 0))]
    if not on or bytes_each * len(on) <= budget:
        return stan_data
    off = [k for k in on if flags[k] is None]
    if not off:
        return stan_data
    warnings.warn(
        f"{' and '.join(k.removeprefix('compute_') for k in off)} left out: "
        f"{bytes_each * len(on) / 1024**3:.1f} GiB of draws for {int(stan_data.data['N']):,} observations "
        f"exceed the {budget / 1024**3:.1f} GiB budget; pass {'=True, '.join(off)}=True to keep them, "
        "or thin the draws",
        stacklevel=3,
    )
    return dataclasses.replace(stan_data, data={**stan_data.data, **{k: 0 for k in off}})


def _threaded(model: Model, stan_data: StanData, threads: int) -> StanData:
    """Stan data that take the program's reduce_sum path when ``threads`` > 1 (validated by SamplerOptions)."""
    if threads == 1:
        return stan_data
    require_threaded(model, f"threads_per_chain={threads}")
    if int(stan_data.data.get("grainsize", 0)) > 0:
        return stan_data
    grainsize = grainsize_for(int(stan_data.data["N"]), threads)
    return dataclasses.replace(stan_data, data={**stan_data.data, "grainsize": grainsize})


def grainsize_for(n: int, threads: int) -> int:
    """Rows per reduce_sum slice for ``threads`` threads: about N / (4 threads).

    A few slices per thread let the scheduler balance them, and few enough
    that copying the shared parameters into every slice stays cheap.
    """
    return max(1, -(-n // (4 * threads)))


def _keep(draws: Draws, variables: Sequence[str]) -> Draws:
    """Draws of ``variables`` (and the pointwise outputs) only."""
    unknown = sorted(set(variables) - set(draws.variables))
    if unknown:
        raise ValueError(f"variables {unknown} are not in the program; it has {sorted(draws.variables)}")
    kept = {k: v for k, v in draws.variables.items() if k in variables or k in ("log_lik", "y_rep")}
    return dataclasses.replace(draws, variables=kept)


def pathfinder(
    model: str | Model,
    data: pd.DataFrame | StanData,
    parameterization: str = "recommended",
    *,
    paths: int = 4,
    draws: int = 1000,
    iterations: int = 1000,
    seed: int | None = None,
    inits: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    columns: Mapping[str, str] | None = None,
    variables: Sequence[str] | None = None,
    quiet: bool = False,
) -> StanFit:
    """An approximate fit by Stan's Pathfinder: a first look, not a posterior to report.

    Each of ``paths`` L-BFGS runs picks the normal approximation along its
    path with the best ELBO and draws ``draws`` from it; the pooled draws are
    then resampled by Pareto-smoothed importance weights where those can be
    trusted (Stan's multi-path Pathfinder, CmdStan's defaults otherwise;
    see Returns). It costs a few hundred
    gradients per path where NUTS costs hundreds per draw, but its sds
    tend to be too small and its draws are not a Markov chain, so R-hat,
    ESS and divergences do not exist for it (``fit.diagnostics()`` refuses).
    Every output says ``approximate``: the InferenceData attrs
    (``inference = "pathfinder (approximate)"``, ``approximate = 1``), the
    fit's repr, and the tables built from it.

    Parameters
    ----------
    parameterization : {"recommended", "centered", "noncentered"}
        As in :func:`fit`. The program and the start matter more here than
        for NUTS: L-BFGS follows the density's shape from ``inits``. On 150
        genes of the DepMap sample, the ``gene_effect`` centered program on
        pilot scales from pilot inits (what ``depmap fit --approximate``
        runs) gave gene x line means that correlate 0.994 with NUTS's, where
        the non-centered one from random inits gave 0.79
        (``benchmarks/results/pathfinder``).
    paths, draws, iterations
        Pathfinder's ``num_paths``, its draws per path (and after
        resampling) and the L-BFGS iteration limit. The paths run on
        threads, so 2 cores serve 2 paths at a time.
    seed, columns, variables
        As in :func:`fit`.
    inits : mapping or sequence of mappings, optional
        One start for every path, or one per path (cycled).

    Returns
    -------
    StanFit
        One "chain": ``draws`` draws resampled by Pareto-smoothed importance
        weights where their Pareto k is at most 0.7, else the ``paths x
        draws`` draws of the paths' approximations as they are (k and which
        was done are in ``fit.attrs``: ``pathfinder_pareto_k``,
        ``pathfinder_resampled``; a warning says so). ``sample_stats`` has
        ``lp`` and ``lp_approx`` (Stan's and the approximation's log density).
    """
    from pystanmods.engines import approximate

    model = get_model(model)
    parameterization = model.check_parameterization(parameterization)
    if paths < 1 or draws < 1 or iterations < 1:
        raise ValueError(f"paths, draws and iterations must be positive, got {paths}, {draws}, {iterations}")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31 - 1))
    stan_data = data if isinstance(data, StanData) else model.prepare(data, columns, compute_log_lik=False,
                                                                       compute_y_rep=False)
    program = approximate.program_for(model, parameterization)
    start = time.perf_counter()
    executable = approximate.build(program, quiet=quiet)
    build_seconds = time.perf_counter() - start
    starts = None if inits is None else [inits] if isinstance(inits, Mapping) else list(inits)
    draws_ = approximate.run(executable, stan_data.data, seed=seed, paths=paths, draws=draws,
                             iterations=iterations, inits=starts)
    if variables is not None:
        draws_ = _keep(draws_, variables)
    attrs = {
        "model": model.name,
        "parameterization": parameterization if model.hierarchical else "none",
        "program": program.name,
        "engine": "pathfinder",
        "inference": "pathfinder (approximate)",
        "approximate": 1,
        "stan_version": approximate.stan_version(),
        "seed": seed,
        "pathfinder_paths": paths,
        "pathfinder_draws": draws,
        "pathfinder_iterations": iterations,
        "pathfinder_failed_paths": draws_.extra["failed_paths"],
        "pathfinder_pareto_k": draws_.extra["pareto_k"],
        "pathfinder_resampled": int(draws_.extra["resampled"]),
        "sampling_seconds": draws_.sampling_seconds,
        "compile_seconds": build_seconds,
        "pystanmods_version": _version(),
    }
    if draws_.extra["failed_paths"] and not quiet:
        warnings.warn(f"{model.name}: {draws_.extra['failed_paths']} of {paths} Pathfinder paths failed and were "
                      "dropped; the draws come from the others", stacklevel=2)
    if not draws_.extra["resampled"] and not quiet:
        warnings.warn(
            f"{model.name}: Pathfinder's importance ratios have Pareto k {draws_.extra['pareto_k']:.2f} (above "
            f"{approximate.PARETO_K_LIMIT}): the approximation is far from the posterior, so its draws are kept "
            "as the paths gave them, not resampled; read its means, not its intervals",
            stacklevel=2,
        )
    idata = to_inference_data(draws_, stan_data, model.outcome, attrs)
    return StanFit(idata)


def log_prob(
    model: str | Model,
    data: pd.DataFrame | StanData,
    params: Mapping[str, Any],
    parameterization: str = "noncentered",
    engine: str | Engine | None = None,
    *,
    jacobian: bool = False,
) -> float:
    """Stan's log density of ``model`` at constrained parameter values.

    Like Stan's own, it drops the constants of ``~`` statements.
    """
    model = get_model(model)
    engine = get_engine(engine)
    stan_data = data if isinstance(data, StanData) else model.prepare(data)
    compiled = compile_model(model, parameterization, engine)
    return engine.log_prob(compiled.program, compiled.directory, stan_data.data, dict(params), jacobian=jacobian)


def _version() -> str:
    from pystanmods import __version__

    return __version__
