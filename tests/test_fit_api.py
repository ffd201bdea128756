"""What a fit returns: InferenceData with the data's labels, summaries, diagnostics, netCDF."""

from __future__ import annotations

import numpy as np
import pytest

import pystanmods as psm
from pystanmods.stanfit.diagnostics import diagnose
from tests.conftest import engines

SHORT = {"chains": 2, "iter_warmup": 300, "iter_sampling": 300, "show_progress": False}


@pytest.fixture(scope="module")
def model5_fit() -> tuple[psm.StanFit, object]:
    simulation = psm.get_model("model5").simulate(seed=4, n_cell_lines=8, missing_fraction=0.1)
    fit = psm.fit("model5", simulation.data, parameterization="centered", engine="pystan", seed=3, **SHORT)
    return fit, simulation


def test_inference_data_groups_and_coords(model5_fit) -> None:
    fit, simulation = model5_fit
    idata = fit.idata
    for group in ("posterior", "posterior_predictive", "log_likelihood", "observed_data", "sample_stats"):
        assert group in idata.groups()
    data = simulation.data
    assert list(idata.posterior.alpha_s.dims) == ["chain", "draw", "sgrna"]
    assert list(idata.posterior.sgrna.values) == sorted(data.sgrna.unique())
    assert list(idata.posterior.beta_c.dims) == ["chain", "draw", "cell_line"]
    assert list(idata.posterior.cell_line.values) == sorted(data.cell_line.unique())
    assert list(idata.posterior.epsilon_g.dims)[-1] == "gene"
    assert idata.log_likelihood.logfc.shape == (2, 300, len(data))
    assert idata.posterior_predictive.logfc.dims[-1] == "obs"
    np.testing.assert_allclose(idata.observed_data.logfc.values, data.logfc.values)
    # The zero-sum constraint holds draw by draw.
    assert float(np.abs(idata.posterior.beta_c.sum("cell_line")).max()) < 1e-8
    assert fit.attrs["engine"] == "pystan" and fit.attrs["seed"] == 3


def test_summary_leaves_out_internal_coordinates(model5_fit) -> None:
    fit, _ = model5_fit
    summary = fit.summary()
    assert any(i.startswith("alpha_s[") for i in summary.index)
    assert not any("_raw" in i or "_z[" in i for i in summary.index)
    assert {"mean", "sd", "r_hat", "ess_bulk"} <= set(summary.columns)


def test_netcdf_round_trip(model5_fit, tmp_path) -> None:
    fit, _ = model5_fit
    path = tmp_path / "fit.nc"
    fit.to_netcdf(path)
    loaded = psm.StanFit.from_netcdf(path)
    assert loaded.model == "model5" and loaded.parameterization == "centered"
    np.testing.assert_array_equal(loaded.idata.posterior.alpha_s.values, fit.idata.posterior.alpha_s.values)


def test_log_lik_and_y_rep_can_be_switched_off_without_recompiling() -> None:
    simulation = psm.get_model("model2").simulate(seed=1)
    fit = psm.fit("model2", simulation.data, parameterization="centered", engine="pystan", seed=1,
                  compute_log_lik=False, compute_y_rep=False, **SHORT)
    assert "log_likelihood" not in fit.idata.groups()
    assert "posterior_predictive" not in fit.idata.groups()
    assert fit.attrs["compile_cached"] == 1


def test_fit_keeps_only_the_chosen_variables() -> None:
    simulation = psm.get_model("model2").simulate(seed=1)
    fit = psm.fit("model2", simulation.data, parameterization="centered", engine="pystan", seed=1,
                  variables=["alpha_g", "sigma"], compute_y_rep=False, **SHORT)
    assert set(fit.idata.posterior.data_vars) == {"alpha_g", "sigma"}
    assert "log_likelihood" in fit.idata.groups()  # log_lik follows its own flag
    with pytest.raises(ValueError, match="alpha_q"):
        psm.fit("model2", simulation.data, parameterization="centered", engine="pystan", seed=1,
                variables=["alpha_q"], **SHORT)


def test_pointwise_outputs_over_the_memory_budget_are_left_out_by_default(monkeypatch) -> None:
    simulation = psm.get_model("model2").simulate(seed=1)
    n = len(simulation.data)
    # Just under what log_lik and y_rep of 2 x 300 draws need (8 bytes each).
    monkeypatch.setenv("PYSTANMODS_GQ_BUDGET", str(2 * n * 600 * 8 - 1))
    with pytest.warns(UserWarning, match="log_lik and y_rep left out"):
        fit = psm.fit("model2", simulation.data, parameterization="centered", engine="pystan", seed=1, **SHORT)
    assert not {"log_likelihood", "posterior_predictive"} & set(fit.idata.groups())
    # Asked for explicitly, log_lik is kept whatever it costs; y_rep still goes.
    with pytest.warns(UserWarning, match="y_rep left out"):
        fit = psm.fit("model2", simulation.data, parameterization="centered", engine="pystan", seed=1,
                      compute_log_lik=True, **SHORT)
    assert "log_likelihood" in fit.idata.groups() and "posterior_predictive" not in fit.idata.groups()
    monkeypatch.setenv("PYSTANMODS_GQ_BUDGET", str(2 * n * 600 * 8))
    fit = psm.fit("model2", simulation.data, parameterization="centered", engine="pystan", seed=1, **SHORT)
    assert {"log_likelihood", "posterior_predictive"} <= set(fit.idata.groups())


def test_diagnostics_warn_in_plain_words() -> None:
    """A deliberately starved fit (20 warmup iterations, 2 chains of 30 draws) fails
    the ESS check, and the warning says so in words."""
    simulation = psm.get_model("model5").simulate(seed=4)
    fit = psm.fit("model5", simulation.data, parameterization="noncentered", engine="pystan", seed=3,
                  chains=2, iter_warmup=20, iter_sampling=30, show_progress=False)
    with pytest.warns(UserWarning, match="too few effective draws"):
        result = fit.diagnostics()
    assert not result.ok
    assert "WARNING" in str(result)


def test_diagnose_counts_divergences_and_treedepth(model5_fit) -> None:
    fit, _ = model5_fit
    idata = fit.idata.copy()
    idata.sample_stats["diverging"][0, :5] = True
    idata.sample_stats["tree_depth"][1, :3] = 10
    result = diagnose(idata, max_treedepth=10)
    assert result.divergences == int(fit.idata.sample_stats.diverging.sum()) + 5 - int(
        fit.idata.sample_stats.diverging[0, :5].sum()
    )
    assert result.treedepth_hits >= 3
    assert any("divergent" in p for p in result.problems)


def test_default_program_is_the_recommended_one(model5_fit) -> None:
    # Model 5 recommends centered; the default used to be noncentered for every model.
    _, simulation = model5_fit
    fit = psm.fit("model5", simulation.data, engine="pystan", seed=1, chains=1, iter_warmup=50, iter_sampling=50,
                  show_progress=False)
    assert fit.parameterization == psm.get_model("model5").recommended == "centered"


def test_command_line_and_batch_default_to_the_recommended_program() -> None:
    import inspect

    from pystanmods.batch import fit_groups
    from pystanmods.batch.groups import fit_settings
    from pystanmods.cli.main import build_parser

    for command in (["fit", "model5", "d.csv", "-o", "f.nc"], ["batch", "model5", "d.csv", "--by", "x", "--out", "out"]):
        assert build_parser().parse_args(command).parameterization == "recommended"
    # A batch fit's settings are fit()'s defaults: the recommended program, and
    # None for log_lik/y_rep, so fit()'s memory budget decides as for one fit.
    settings, _ = fit_settings(psm.get_model("model5"), {"chains": 2})
    assert settings["parameterization"] == "centered" and settings["chains"] == 2
    assert settings["compute_log_lik"] is None and settings["compute_y_rep"] is None
    with pytest.raises(TypeError, match="not settings of each group"):
        fit_settings(psm.get_model("model5"), {"chain": 2})
    assert "compute_log_lik" not in inspect.signature(fit_groups).parameters  # no copy of fit()'s signature


def test_recommended_parameterization_alias() -> None:
    model = psm.get_model("model5")
    assert model.program_name("recommended") == model.program_name(model.recommended)
    with pytest.raises(ValueError, match="parameterization"):
        model.program_name("sideways")


@pytest.mark.parametrize("engine", engines())
def test_threads_per_chain_takes_the_threaded_path(engine: str) -> None:
    model = psm.get_model("model_a")
    sim = model.simulate(seed=3, n_cell_lines=5, missing_fraction=0.1)
    fit = psm.fit(model, sim.data, "noncentered", engine=engine, chains=2, iter_warmup=150,
                  iter_sampling=100, seed=1, threads_per_chain=2, show_progress=False)
    n = len(sim.data)
    # About four slices per thread, and the fit records what it ran.
    assert fit.attrs["threads_per_chain"] == 2
    assert fit.attrs["grainsize"] == -(-n // 8)
    assert fit.idata.posterior["sigma"].shape == (2, 100)
    assert np.isfinite(fit.idata.sample_stats["lp"].values).all()
    serial = model.prepare(sim.data)
    assert serial.data["grainsize"] == 0


def test_threads_per_chain_is_refused_where_it_would_change_nothing() -> None:
    sim = psm.get_model("model5").simulate(seed=3)
    with pytest.raises(ValueError, match=r"model5 has no threaded likelihood.*model_a"):
        psm.fit("model5", sim.data, engine="pystan", threads_per_chain=2)
    with pytest.raises(ValueError, match="threads_per_chain must be at least 1"):
        psm.fit("model_a", psm.get_model("model_a").simulate(seed=3).data, engine="pystan", threads_per_chain=0)
