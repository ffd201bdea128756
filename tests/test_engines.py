"""The two engines behind one interface: choice, option mapping, notebooks, and parity."""

from __future__ import annotations

import asyncio

import arviz as az
import numpy as np
import pytest

import pystanmods as psm
from pystanmods.engines import SamplerOptions, default_engine_name, get_engine
from pystanmods.engines.cmdstan import find_cmdstan
from pystanmods.sampling import compile_model
from tests.helpers import random_parameters

SHORT = {"chains": 2, "iter_warmup": 300, "iter_sampling": 300, "show_progress": False}


def test_environment_variable_overrides_the_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYSTANMODS_ENGINE", "pystan")
    assert default_engine_name() == "pystan"
    monkeypatch.setenv("PYSTANMODS_ENGINE", "cmdstan")
    assert default_engine_name() == "cmdstan"


def test_default_is_cmdstan_exactly_when_one_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYSTANMODS_ENGINE", raising=False)
    assert default_engine_name() == ("cmdstan" if find_cmdstan() is not None else "pystan")


def test_unknown_engine() -> None:
    with pytest.raises(ValueError, match="unknown engine 'stan9'"):
        get_engine("stan9")


def test_sampler_options_keep_cmdstanpy_names_and_map_for_httpstan() -> None:
    options = SamplerOptions.from_kwargs(
        chains=3, iter_warmup=200, iter_sampling=100, seed=5, adapt_delta=0.95, max_treedepth=12,
        inits={"sigma": 1.0}, thin=2,
    )
    httpstan = options.for_httpstan()
    assert httpstan["num_chains"] == 3 and httpstan["num_warmup"] == 200 and httpstan["num_samples"] == 100
    assert httpstan["delta"] == 0.95 and httpstan["max_depth"] == 12 and httpstan["num_thin"] == 2
    assert httpstan["init"] == [{"sigma": 1.0}] * 3
    assert "seed" not in httpstan  # PyStan takes the seed in stan.build
    cmdstanpy = options.for_cmdstanpy()
    assert cmdstanpy["adapt_delta"] == 0.95 and cmdstanpy["max_treedepth"] == 12 and cmdstanpy["seed"] == 5
    assert SamplerOptions.from_kwargs(inits=0.5).for_httpstan()["init_radius"] == 0.5


def test_bad_sampler_options() -> None:
    with pytest.raises(TypeError, match="target_accept"):
        SamplerOptions.from_kwargs(target_accept=0.9)
    with pytest.raises(ValueError, match="adapt_delta"):
        SamplerOptions.from_kwargs(adapt_delta=1.5)
    with pytest.raises(ValueError, match="inits has 1 entries for 2 chains"):
        SamplerOptions.from_kwargs(chains=2, inits=[{"sigma": 1.0}]).chain_inits()


def test_pystan_engine_runs_inside_a_running_event_loop() -> None:
    """As in a Jupyter notebook, where PyStan 3 alone fails with 'asyncio.run() cannot
    be called from a running event loop'."""
    simulation = psm.get_model("model1").simulate(seed=1)

    async def in_notebook() -> psm.StanFit:
        return psm.fit("model1", simulation.data, engine="pystan", seed=1, **SHORT)

    fit = asyncio.run(in_notebook())
    assert fit.idata.posterior.sizes["draw"] == 300


def test_same_seed_same_draws() -> None:
    simulation = psm.get_model("model1").simulate(seed=1)
    a = psm.fit("model1", simulation.data, engine="pystan", seed=9, **SHORT)
    b = psm.fit("model1", simulation.data, engine="pystan", seed=9, **SHORT)
    np.testing.assert_array_equal(a.idata.posterior["beta"].values, b.idata.posterior["beta"].values)


def test_a_chain_that_cannot_start_is_an_error() -> None:
    simulation = psm.get_model("model1").simulate(seed=1)
    with pytest.raises(RuntimeError, match="Initialization failed"):
        psm.fit("model1", simulation.data, engine="pystan", inits={"sigma": -1.0}, **SHORT)


# ------------------------------------------------------------ parity


@pytest.mark.cmdstan
@pytest.mark.parametrize("name", ["model2", "model5"])
def test_engines_agree_on_the_log_density(name: str) -> None:
    model = psm.get_model(name)
    data = model.standata(model.simulate(seed=3, n_cell_lines=6).data)
    rng = np.random.default_rng(11)
    points = [random_parameters(name, "noncentered", data, rng) for _ in range(3)]
    values = {}
    for engine_name in ("pystan", "cmdstan"):
        compiled = compile_model(name, "noncentered", engine_name)
        engine = get_engine(engine_name)
        values[engine_name] = np.array(
            [engine.log_prob(compiled.program, compiled.directory, data, p, jacobian=True) for p in points]
        )
    # Both engines drop the same constants; differences between points cancel
    # them anyway, and what is left must agree to round-off.
    np.testing.assert_allclose(
        values["pystan"][1:] - values["pystan"][0], values["cmdstan"][1:] - values["cmdstan"][0], rtol=1e-8, atol=1e-8
    )


@pytest.mark.cmdstan
def test_engines_agree_on_the_posterior() -> None:
    """Model 2 fitted on both engines: each posterior mean agrees within Monte Carlo error.

    The difference of two independent estimates has sd sqrt(mcse_a^2 + mcse_b^2);
    with 15 scalars, |diff| < 4.5 of those sds fails a correct pair with
    probability about 15 x 7e-6, while a different model or likelihood moves
    means by many posterior sds (hundreds of MCSEs).
    """
    simulation = psm.get_model("model2").simulate(seed=103)
    fits = {
        engine: psm.fit("model2", simulation.data, parameterization="centered", engine=engine, seed=4,
                        show_progress=False)
        for engine in ("pystan", "cmdstan")
    }
    assert fits["cmdstan"].engine == "cmdstan" and fits["pystan"].engine == "pystan"
    names = ["mu_alpha", "sigma_alpha", "mu_beta", "sigma_beta", "alpha_g", "beta_g", "sigma"]
    summaries = {e: az.summary(f.idata, var_names=names) for e, f in fits.items()}
    a, b = summaries["pystan"], summaries["cmdstan"]
    z = (a["mean"] - b["mean"]) / np.sqrt(a["mcse_mean"] ** 2 + b["mcse_mean"] ** 2)
    assert (z.abs() < 4.5).all(), z.to_string()
    # The two results have the same layout: groups, variables and coords.
    assert set(fits["pystan"].idata.groups()) == set(fits["cmdstan"].idata.groups())
    assert set(fits["pystan"].idata.posterior.data_vars) == set(fits["cmdstan"].idata.posterior.data_vars)
    assert list(fits["pystan"].idata.posterior.gene.values) == list(fits["cmdstan"].idata.posterior.gene.values)


def test_embedded_engine_refuses_draws_it_could_not_collect(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 10^6-row Model 5 fit has 27,884 values per draw; 4 x 1000 draws of it on 2 cores
    need about 6.2 GB: 2 running chains' compressed output and the copies made at a chain's end."""
    from pystanmods.engines.pystan import OutputTooLarge, check_output_memory

    options = SamplerOptions(chains=4, iter_sampling=1000)
    with pytest.raises(OutputTooLarge, match=r"about 6\.2 GB to collect 4 x 1000 draws of 27,884 values.*thin=2"):
        check_output_memory(27_884, options, available=4 * 10**9, cores=2)
    # Thinning by 2 halves what is collected, and fits.
    check_output_memory(27_884, SamplerOptions(chains=4, iter_sampling=1000, thin=2), available=4 * 10**9, cores=2)
    # Small fits never come near it.
    check_output_memory(300, options, available=2 * 10**9)
    monkeypatch.setenv("PYSTANMODS_MEMORY_CHECK", "0")
    check_output_memory(27_884, options, available=4 * 10**9, cores=2)


def test_streamed_draws_are_pystans_draws() -> None:
    """The embedded engine starts the chains itself and streams their fit files
    (pystanmods.engines.httpstan_fits) rather than through PyStan's ``sample``,
    which held about 250 bytes per drawn value. With the same seed the two
    must give bit-identical draws, in the same layout: the lineage program has
    matrices (column-major in Stan's output) and thinning changes the count."""
    import httpstan.cache

    name, seed = "model_lineage", 7
    model = psm.get_model(name)
    data = model.standata(model.simulate(seed=2).data)
    compiled = compile_model(name, "centered", "pystan")
    engine = get_engine("pystan")
    options = SamplerOptions.from_kwargs(chains=2, iter_warmup=60, iter_sampling=41, thin=2, seed=seed,
                                         show_progress=False)
    posterior = engine._posterior(compiled.program, compiled.directory, data, seed)
    fits = httpstan.cache.model_directory(posterior.model_name) / "fits"
    before = set(fits.glob("*"))
    ours = engine.sample(compiled.program, compiled.directory, data, options)
    assert set(fits.glob("*")) == before, "the engine leaves no fit files in httpstan's cache"

    theirs = posterior.sample(num_chains=2, num_warmup=60, num_samples=41, num_thin=2)
    for fit_file in set(fits.glob("*")) - before:
        fit_file.unlink()
    assert ours.variables["theta_gl"].shape == (2, 21, *posterior.dims[posterior.param_names.index("theta_gl")])
    assert list(ours.variables) == list(posterior.param_names)
    for variable, dims in zip(theirs.param_names, theirs.dims):
        # PyStan puts draws last, draw-major and chain-minor.
        values = np.asarray(theirs[variable]).reshape(*dims, 21, 2)
        np.testing.assert_array_equal(np.moveaxis(values, (-1, -2), (0, 1)), ours.variables[variable], err_msg=variable)
    np.testing.assert_array_equal(np.asarray(theirs["n_leapfrog__"]).reshape(21, 2).T, ours.sample_stats["n_steps"])
