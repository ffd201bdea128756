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
from pystanmods.stanfit.parity import draw_differences, mean_differences
from tests.conftest import engines
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


#: Same seed, same chains. CmdStan writes draws with 18 significant digits
#: (cmdstan.SIG_FIGS) and 17 already give back a double exactly, so equal
#: arithmetic gives equal draws, as it did at CmdStan's default 6 digits up to
#: that rounding (5e-6; issue 14). The tolerance leaves room only for last-bit
#: differences (one ulp is 2.2e-16 relative) of a math library in the
#: constraining transforms and generated quantities, 4,500 ulps' worth; a
#: difference in the sampler's arithmetic moves a trajectory, and within a few
#: iterations every later draw by a sizeable part of a posterior sd (> 1e-3
#: here), so nothing between the two fails to fail.
SAME_SEED = {"rtol": 1e-12, "atol": 1e-12}

#: Different seeds: posterior means differ by Monte Carlo error, sd
#: sqrt(mcse_a^2 + mcse_b^2). With 15 scalars, |diff| <= 4.5 of those sds
#: fails a correct pair with probability about 15 x 6.8e-6 = 1e-4 (more, some,
#: as MCSEs are estimates), while a wrong likelihood or prior moves means by
#: posterior sds, dozens of MCSEs at 4 x 1000 draws.
Z_MAX = 4.5
MODEL2_SCALARS = ["mu_alpha", "sigma_alpha", "mu_beta", "sigma_beta", "alpha_g", "beta_g", "sigma"]


def _model2_fits(seeds: dict[str, int], **options: object) -> dict[str, psm.StanFit]:
    simulation = psm.get_model("model2").simulate(seed=103)
    return {
        engine: psm.fit("model2", simulation.data, parameterization="centered", engine=engine, seed=seed,
                        show_progress=False, **options)
        for engine, seed in seeds.items()
    }


def _same_layout(a: psm.StanFit, b: psm.StanFit) -> None:
    assert set(a.idata.groups()) == set(b.idata.groups())
    assert set(a.idata.posterior.data_vars) == set(b.idata.posterior.data_vars)
    assert list(a.idata.posterior.gene.values) == list(b.idata.posterior.gene.values)


@pytest.mark.cmdstan
def test_engines_give_the_same_chains_for_the_same_seed() -> None:
    """Model 2 on both engines with seed 4: every draw of every group, sample
    statistics included, agrees within SAME_SEED, the strongest parity there is."""
    fits = _model2_fits({"pystan": 4, "cmdstan": 4})
    assert fits["cmdstan"].engine == "cmdstan" and fits["pystan"].engine == "pystan"
    _same_layout(fits["pystan"], fits["cmdstan"])
    problems = draw_differences(fits["pystan"].idata, fits["cmdstan"].idata, **SAME_SEED)
    assert problems == [], "\n".join(problems)


@pytest.mark.cmdstan
def test_engines_agree_on_the_posterior() -> None:
    """Model 2 on both engines with different seeds (4 and 5): each of the 15
    posterior means agrees within Z_MAX Monte Carlo standard errors."""
    fits = _model2_fits({"pystan": 4, "cmdstan": 5})
    assert fits["cmdstan"].engine == "cmdstan" and fits["pystan"].engine == "pystan"
    _same_layout(fits["pystan"], fits["cmdstan"])
    # Different seeds give different chains; otherwise this would test nothing new.
    assert draw_differences(fits["pystan"].idata, fits["cmdstan"].idata, groups=["posterior"], **SAME_SEED)
    table = mean_differences(fits["pystan"].idata, fits["cmdstan"].idata, MODEL2_SCALARS, z_max=Z_MAX)
    assert len(table) == 15 and table["ok"].all(), table.to_string()


# The comparisons themselves, on the embedded engine alone: they must pass on
# fits that agree and fail on ones that do not.


def test_draw_comparison_passes_identical_chains_and_fails_rounded_or_shifted_ones() -> None:
    fits = _model2_fits({"pystan": 4}, chains=2, iter_warmup=300, iter_sampling=300)
    again = _model2_fits({"pystan": 4}, chains=2, iter_warmup=300, iter_sampling=300)
    a, b = fits["pystan"].idata, again["pystan"].idata
    assert draw_differences(a, b, **SAME_SEED) == []

    # CmdStan's default 6 significant digits (no sig_figs) would fail it.
    rounded = b.copy()
    sigma = rounded.posterior["sigma"].values
    rounded.posterior["sigma"].values = np.vectorize(lambda v: float(f"{v:.6g}"))(sigma)
    problems = draw_differences(a, rounded, **SAME_SEED)
    assert len(problems) == 1 and problems[0].startswith("posterior.sigma: ")

    # One value moved by 1e-9 of itself fails; a missing variable is a difference too.
    shifted = b.copy()
    shifted.posterior["mu_alpha"].values[1, 17] *= 1 + 1e-9
    problems = draw_differences(a, shifted, **SAME_SEED)
    assert problems == [problems[0]] and "1 of 600 values differ; largest at (1, 17)" in problems[0]
    assert draw_differences(a, _without(b, "sigma"), **SAME_SEED) == ["posterior.sigma only in fit a"]
    assert draw_differences(a, b, **SAME_SEED) == [], "the copies left the fit they came from alone"


def _without(idata: az.InferenceData, name: str) -> az.InferenceData:
    copy = idata.copy()
    copy.posterior = copy.posterior.drop_vars(name)
    return copy


def test_mean_comparison_passes_independent_chains_and_fails_a_shift() -> None:
    """Two embedded-engine fits with seeds 4 and 5 agree within Monte Carlo error;
    moving one gene's draws by 10 combined MCSEs (so at least 10 - 4.5) fails that gene alone."""
    a = _model2_fits({"pystan": 4})["pystan"].idata
    b = _model2_fits({"pystan": 5})["pystan"].idata
    table = mean_differences(a, b, MODEL2_SCALARS, z_max=Z_MAX)
    assert len(table) == 15 and table["ok"].all(), table.to_string()
    assert (table["mcse_a"] > 0).all() and table["z"].abs().max() > 0  # unrounded, and not the same chains

    row = table.loc["alpha_g[0]"]
    shifted = b.copy()
    shifted.posterior["alpha_g"].values[..., 0] += 10 * np.hypot(row["mcse_a"], row["mcse_b"])
    moved = mean_differences(a, shifted, MODEL2_SCALARS, z_max=Z_MAX)
    assert list(moved.index[~moved["ok"]]) == ["alpha_g[0]"], moved.to_string()


def test_mean_comparison_of_constant_draws_is_never_nan() -> None:
    """A scalar constant in both fits has MCSE 0 in both: equal values agree (z = 0),
    unequal ones do not (z infinite), where the old table gave 0/0 = NaN."""
    def fit(constant: float, x: np.ndarray) -> az.InferenceData:
        return az.from_dict(posterior={"c": np.full((4, 100), constant), "x": x})

    x = np.random.default_rng(1).normal(size=(4, 100))
    same = mean_differences(fit(2.0, x), fit(2.0, x + 0.01), ["c", "x"], z_max=Z_MAX)
    assert same.loc["c", "ok"] and same.loc["c", "z"] == 0 and same.loc["c", "mcse_a"] == 0
    differ = mean_differences(fit(2.0, x), fit(2.5, x), ["c"], z_max=Z_MAX)
    assert not differ.loc["c", "ok"] and differ.loc["c", "z"] == -np.inf
    nan = x.copy()
    nan[0, 0] = np.nan
    assert not mean_differences(fit(2.0, nan), fit(2.0, x), ["x"], z_max=Z_MAX).loc["x", "ok"]


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


# stanc's --O1 (struct-of-arrays autodiff vectors) in the builds of both engines.
SOA_VECTOR = "stan::math::var_value<Eigen::Matrix<double,-1,1>>"
TINY_PROGRAM = "parameters { vector[3] x; } model { target += -0.5 * dot_self(exp(x) - 1); }"


def test_stanc_options_reach_the_embedded_engines_stanc() -> None:
    """Registered arguments change the C++ (SoA vectors appear); unregistered builds are httpstan's."""
    from pystanmods.engines import pystan as embedded

    plain, _ = embedded._stanc_with_options(TINY_PROGRAM, "model_tiny")
    embedded._STANC_ARGS["model_tiny_o1"] = ["--O1"]
    try:
        optimised, _ = embedded._stanc_with_options(TINY_PROGRAM, "model_tiny_o1")
    finally:
        embedded._STANC_ARGS.pop("model_tiny_o1")
    assert SOA_VECTOR not in plain and "--warn-pedantic --print-cpp" in plain
    assert SOA_VECTOR in optimised and "--warn-pedantic --O1 --print-cpp" in optimised
    with pytest.raises(ValueError, match="Ill-typed|Syntax|Semantic"):
        embedded._stanc_with_options("parameters { real x } model {}", "model_broken")


def test_stanc_options_are_part_of_the_cache_key() -> None:
    """A build with other stanc options is another model, never the cached one."""
    from pystanmods.engines.base import Program

    engine = get_engine("pystan")
    default = engine.default_compile_options()
    assert default["stanc_options"] == ["--O1"]
    with_o1 = Program("tiny", TINY_PROGRAM, default)
    without = Program("tiny", TINY_PROGRAM, {**default, "stanc_options": []})
    assert engine._model_name(with_o1) != engine._model_name(without)


@pytest.mark.parametrize("engine_name", engines())
def test_shipped_programs_are_built_with_stanc_O1(engine_name: str) -> None:
    """The cached build of a model records the stanc flags it was made with."""
    compiled = compile_model("model2", "centered", engine_name, quiet=True)
    if engine_name == "pystan":
        (cpp,) = (compiled.directory / "httpstan").glob("*.cpp")
        flags = [line for line in cpp.read_text().splitlines() if '"stancflags = ' in line]
    else:
        import subprocess

        (exe,) = compiled.engine.binaries(compiled.program, compiled.directory)
        info = subprocess.run([str(exe), "info"], capture_output=True, text=True, check=True).stdout
        flags = [line for line in info.splitlines() if line.strip().startswith("stancflags")]
    assert len(flags) == 1 and "--O1" in flags[0], flags
