"""Compile, fit and evaluate the catalogue's models on either engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pystanmods.compile.cache import CompiledModel, compile_program
from pystanmods.engines import Engine, Program, SamplerOptions, get_engine
from pystanmods.models import Model, StanData, get_model
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
    parameterization: str = "noncentered",
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
    parameterization: str = "noncentered",
    engine: str | Engine | None = None,
    chains: int = 4,
    iter_warmup: int = 1000,
    iter_sampling: int = 1000,
    seed: int | None = None,
    *,
    columns: Mapping[str, str] | None = None,
    compute_log_lik: bool = True,
    compute_y_rep: bool = True,
    **sampler_options: Any,
) -> StanFit:
    """Fit a model of the catalogue to tidy data.

    Parameters
    ----------
    model : str or Model
        A name from :func:`pystanmods.list_models`.
    data : pandas.DataFrame or StanData
        Tidy data, one row per observation, or the result of ``model.prepare``.
    parameterization : {"noncentered", "centered", "recommended"}
        Which program of a hierarchical model to run; ``"recommended"`` is
        the model's own choice for data like the seed's (``model.recommended``).
    engine : {"cmdstan", "pystan"}, optional
        Default: CmdStan when installed, else the embedded engine;
        ``$PYSTANMODS_ENGINE`` overrides.
    chains, iter_warmup, iter_sampling, seed
        As in cmdstanpy. Without a seed one is drawn and recorded in the fit.
    columns : mapping, optional
        Canonical column name to the name used in ``data``.
    compute_log_lik, compute_y_rep : bool
        Keep pointwise log-likelihoods and replicated data (same compiled program).
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
    stan_data = (
        data
        if isinstance(data, StanData)
        else model.prepare(data, columns, compute_log_lik=compute_log_lik, compute_y_rep=compute_y_rep)
    )
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31 - 1))
    if sampler_options.get("adapt_delta") is None and model.adapt_delta is not None:
        sampler_options["adapt_delta"] = model.adapt_delta
    options = SamplerOptions.from_kwargs(
        chains=chains, iter_warmup=iter_warmup, iter_sampling=iter_sampling, seed=seed, **sampler_options
    )
    compiled = compile_model(model, parameterization, engine)
    draws = engine.sample(compiled.program, compiled.directory, stan_data.data, options)
    attrs = {
        "model": model.name,
        "parameterization": parameterization if model.hierarchical else "none",
        "program": compiled.program.name,
        "engine": engine.name,
        "stan_version": engine.stan_version(),
        "seed": seed,
        "iter_warmup": iter_warmup,
        "iter_sampling": iter_sampling,
        "adapt_delta": options.value("adapt_delta"),
        "max_treedepth": options.value("max_treedepth"),
        "thin": options.value("thin"),
        "sampling_seconds": draws.sampling_seconds,
        "compile_seconds": compiled.compile_seconds,
        "compile_cached": int(compiled.cached),
        "pystanmods_version": _version(),
    }
    idata = to_inference_data(draws, stan_data, model.outcome, attrs)
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
