"""Models C, A, B and lineage: log density against numpy/scipy, and bad inputs.

No sampling here. The log density check compares *differences* between
random parameter values (Stan drops the constants of `~` statements); any
modelling slip (a wrong index, a prior on the wrong scale, a mixture summed
over the wrong axis) moves them by O(1), round-off by 1e-8.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import pystanmods as psm
from pystanmods.data import DataError
from pystanmods.data.transform import centre_within_cell_line
from pystanmods.engines import get_engine
from pystanmods.models import PARAMETERIZATIONS
from pystanmods.models.ragged import ModelB
from pystanmods.sampling import compile_model
from tests.conftest import engines
from tests.helpers_extended import REFERENCE_LOG_DENSITY, random_parameters

MODELS = ("model_c", "model_a", "model_b", "model_lineage")


def _small_data(name: str) -> dict:
    """A small ragged data set; Model B's has genes with and without a mutation effect."""
    model = psm.get_model(name)
    overrides: dict = {"missing_fraction": 0.25}
    if name == "model_lineage":
        overrides["cell_lines_per_lineage"] = (2, 3, 2)
    else:
        overrides["n_cell_lines"] = 6
    if name == "model_b":
        # Gene 1 never mutated, gene 2 always: both must map to the fixed zero slot.
        overrides.update(n_genes=5, mutation_frequency=(0.0, 1.0, 0.5, 0.5, 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sim = model.simulate(seed=11, **overrides)
        return model.prepare(sim.data).data


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize("name", MODELS)
def test_log_density_matches_numpy(name: str, parameterization: str, engine: str) -> None:
    data = _small_data(name)
    rng = np.random.default_rng(2025)
    points = [random_parameters(name, parameterization, data, rng) for _ in range(4)]
    compiled = compile_model(name, parameterization, engine)
    eng = get_engine(engine)
    stan_lp = np.array([eng.log_prob(compiled.program, compiled.directory, data, p, jacobian=False) for p in points])
    reference = REFERENCE_LOG_DENSITY[name]
    numpy_lp = np.array([reference(data, p, parameterization == "centered") for p in points])
    np.testing.assert_allclose(stan_lp[1:] - stan_lp[0], numpy_lp[1:] - numpy_lp[0], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("grainsize", [1, 7])
@pytest.mark.parametrize("name", MODELS)
def test_threaded_likelihood_matches_numpy(name: str, grainsize: int, engine: str) -> None:
    """The reduce_sum path (grainsize > 0) is the same density as the vectorised one.

    Slices of 1 row and of 7 rows (the data have about 70 to 200 rows, so the
    last slice is a partial one) catch an off-by-one at a slice's ends.
    """
    data = {**_small_data(name), "grainsize": grainsize}
    rng = np.random.default_rng(2026)
    points = [random_parameters(name, "noncentered", data, rng) for _ in range(4)]
    compiled = compile_model(name, "noncentered", engine)
    eng = get_engine(engine)
    stan_lp = np.array([eng.log_prob(compiled.program, compiled.directory, data, p, jacobian=False) for p in points])
    numpy_lp = np.array([REFERENCE_LOG_DENSITY[name](data, p, False) for p in points])
    np.testing.assert_allclose(stan_lp[1:] - stan_lp[0], numpy_lp[1:] - numpy_lp[0], rtol=1e-8, atol=1e-8)


def test_within_chain_models_have_the_grainsize_flag() -> None:
    """A model marked within_chain has the flag in both programs, and no other model has it."""
    for model in psm.models.all_models():
        for parameterization in PARAMETERIZATIONS:
            code = model.stan_code(parameterization)
            assert ("int<lower=0> grainsize;" in code) == model.within_chain, model.program_name(parameterization)
            assert ("reduce_sum(" in code) == model.within_chain


def test_model_b_mutation_slots_are_explicit() -> None:
    data = _small_data("model_b")
    # gene1 is never mutated and gene2 always: M = 3 and both get slot M + 1.
    assert data["M"] == 3
    np.testing.assert_array_equal(data["gene_mutation_slot"], [4, 4, 1, 2, 3])


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_model_b_sigma_zeta_prior_reaches_the_program(parameterization: str, engine: str) -> None:
    """Another sigma_zeta prior moves the program's log density by the change
    of the lognormal log density of sigma_zeta, by value against scipy.

    Stan's ``~`` drops the prior's normalising constant (-log(log_sd)), so
    the changes are compared between points: for each point, the density
    under lognormal(log(1.5), 1.0) minus that under the default, less the
    same at point 0. sigma_zeta differs by O(1) between the random points,
    so this is O(1) unless the program reads the two data fields (a program
    with the default written in gives 0 here).
    """
    data = _small_data("model_b")
    # The defaults reach the data, and they are the record's prior.
    assert psm.get_model("model_b").record.priors["sigma_zeta"] == (
        "lognormal", np.log(data["sigma_zeta_prior_median"]), data["sigma_zeta_prior_log_sd"])
    other = {**data, **ModelB(sigma_zeta_prior_median=1.5, sigma_zeta_prior_log_sd=1.0).prior_data}
    assert (other["sigma_zeta_prior_median"], other["sigma_zeta_prior_log_sd"]) == (1.5, 1.0)
    rng = np.random.default_rng(2027)
    points = [random_parameters("model_b", parameterization, data, rng) for _ in range(4)]
    compiled = compile_model("model_b", parameterization, engine)
    eng = get_engine(engine)
    moved = np.array([eng.log_prob(compiled.program, compiled.directory, other, p, jacobian=False)
                      - eng.log_prob(compiled.program, compiled.directory, data, p, jacobian=False) for p in points])
    sigma_zeta = np.array([float(p["sigma_zeta"]) for p in points])
    expected = stats.lognorm.logpdf(sigma_zeta, 1.0, scale=1.5) - stats.lognorm.logpdf(sigma_zeta, 0.5, scale=0.75)
    assert np.ptp(expected) > 0.5  # the check has something to see
    np.testing.assert_allclose(moved[1:] - moved[0], expected[1:] - expected[0], rtol=1e-8, atol=1e-8)
    # And the whole density under the other prior matches the numpy reference.
    stan_lp = np.array([eng.log_prob(compiled.program, compiled.directory, other, p, jacobian=False) for p in points])
    numpy_lp = np.array([REFERENCE_LOG_DENSITY["model_b"](other, p, parameterization == "centered") for p in points])
    np.testing.assert_allclose(stan_lp[1:] - stan_lp[0], numpy_lp[1:] - numpy_lp[0], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize(
    ("argument", "value"),
    [("sigma_zeta_prior_median", 0.0), ("sigma_zeta_prior_median", -0.75), ("sigma_zeta_prior_median", float("nan")),
     ("sigma_zeta_prior_median", float("inf")), ("sigma_zeta_prior_median", "0.75"),
     ("sigma_zeta_prior_log_sd", 0.0), ("sigma_zeta_prior_log_sd", -0.5), ("sigma_zeta_prior_log_sd", float("inf")),
     ("sigma_zeta_prior_log_sd", None), ("tau_zeta", 0.0), ("tau_zeta", float("nan"))],
)
def test_model_b_bad_prior_arguments_are_refused(argument: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"{argument} must be a finite positive number, got {re.escape(repr(value))}"):
        ModelB(**{argument: value})


def test_model_b_sigma_zeta_prior_median_must_exceed_tau_zeta() -> None:
    # sigma_zeta is declared above tau_zeta; a prior centred below it is refused.
    with pytest.raises(ValueError, match=r"sigma_zeta_prior_median must exceed tau_zeta \(0.2\), got 0.1"):
        ModelB(tau_zeta=0.2, sigma_zeta_prior_median=0.1)
    assert ModelB(tau_zeta=0.2, sigma_zeta_prior_median=0.3).prior_data == {
        "sigma_zeta_prior_median": 0.3, "sigma_zeta_prior_log_sd": 0.5}


def test_lineage_check_can_fail() -> None:
    """The lineage reference notices cell lines assigned to the wrong lineage."""
    name = "model_lineage"
    data = _small_data(name)
    rng = np.random.default_rng(5)
    points = [random_parameters(name, "noncentered", data, rng) for _ in range(2)]
    compiled = compile_model(name, "noncentered", "pystan")
    eng = get_engine("pystan")
    stan = [eng.log_prob(compiled.program, compiled.directory, data, p, jacobian=False) for p in points]
    wrong_data = {**data, "cell_line_lineage": np.roll(data["cell_line_lineage"], 1)}
    wrong = [REFERENCE_LOG_DENSITY[name](wrong_data, p, False) for p in points]
    assert not np.isclose(stan[1] - stan[0], wrong[1] - wrong[0], rtol=1e-6)


# ----------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("name", MODELS)
def test_sgrna_in_two_genes_is_refused(name: str) -> None:
    model = psm.get_model(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        frame = model.simulate(seed=3).data
    first = frame["sgrna"].iloc[0]
    rows = frame.index[frame["sgrna"] == first]
    other = sorted(set(frame["gene"]) - {frame.loc[rows[0], "gene"]})[0]
    frame.loc[rows[0], "gene"] = other
    with pytest.raises(DataError, match=rf"'sgrna' value '{first}' maps to more than one 'gene'"):
        model.prepare(frame)


def test_missing_lineage_names_the_cell_line() -> None:
    model = psm.get_model("model_lineage")
    frame = model.simulate(seed=3).data
    frame.loc[frame["cell_line"] == "cell04", "lineage"] = None
    n = int((frame["cell_line"] == "cell04").sum())
    with pytest.raises(DataError, match=rf"'lineage' is missing for cell line\(s\) 'cell04' \(1 cell lines, {n} of"):
        model.prepare(frame)


def test_cell_line_in_two_lineages_is_refused() -> None:
    model = psm.get_model("model_lineage")
    frame = model.simulate(seed=3).data
    rows = frame.index[frame["cell_line"] == "cell02"]
    frame.loc[rows[0], "lineage"] = "lineageC"
    with pytest.raises(DataError, match="cell line 'cell02' more than one lineage"):
        model.prepare(frame)


def test_one_lineage_is_refused() -> None:
    model = psm.get_model("model_lineage")
    frame = model.simulate(seed=3).data.assign(lineage="lung")
    with pytest.raises(DataError, match="at least two lineages.*'lung'"):
        model.prepare(frame)


def test_bad_mutation_values_are_refused() -> None:
    model = psm.get_model("model_b")
    frame = model.simulate(seed=3).data
    frame["is_mutated"] = frame["is_mutated"].astype(float)
    frame.loc[frame.index[:4], "is_mutated"] = 2.0
    with pytest.raises(DataError, match=r"'is_mutated' must be 0/1.*4 of \d+ rows"):
        model.prepare(frame)


def test_mutation_varying_within_gene_and_cell_line_is_refused() -> None:
    model = psm.get_model("model_b")
    frame = model.simulate(seed=3).data
    pair = frame.groupby(["gene", "cell_line"]).size()
    gene, cell = pair[pair > 1].index[0]
    row = frame.index[(frame["gene"] == gene) & (frame["cell_line"] == cell)][0]
    frame.loc[row, "is_mutated"] = 1 - frame.loc[row, "is_mutated"]
    with pytest.raises(DataError, match="'is_mutated' takes more than one value within gene x cell_line"):
        model.prepare(frame)


def test_model_b_warns_about_uninformative_genes() -> None:
    model = psm.get_model("model_b")
    frame = model.simulate(seed=3, n_genes=4, mutation_frequency=(0.0, 0.5, 0.5, 0.5)).data
    with pytest.warns(UserWarning, match="1 of 4 genes are mutated in none or all"):
        prepared = model.prepare(frame)
    assert prepared.coords["mutated_gene"] == ["gene2", "gene3", "gene4"]


def test_missing_covariate_names_the_column() -> None:
    model = psm.get_model("model_a")
    frame = model.simulate(seed=3).data.drop(columns="log2_copy_number")
    with pytest.raises(DataError, match="needs column 'log2_copy_number'"):
        model.prepare(frame)
    frame = model.simulate(seed=3).data
    frame.loc[frame.index[:2], "rna"] = np.nan
    with pytest.raises(DataError, match="'rna'"):
        model.prepare(frame)


def test_centre_rna_within_cell_line() -> None:
    sim = psm.get_model("model_a").simulate(seed=4, rna_cell_line_sd=2.0)
    centred = centre_within_cell_line(sim.data)
    # Mean over distinct genes of each cell line, not over rows, is zero.
    per_pair = sim.data.assign(rna=centred).drop_duplicates(["gene", "cell_line"])
    np.testing.assert_allclose(per_pair.groupby("cell_line")["rna"].mean(), 0, atol=1e-12)
    data = psm.models.ragged.ModelA(centre_rna=True).prepare(sim.data).data
    np.testing.assert_allclose(data["rna"], centred.to_numpy())
    assert not np.allclose(psm.get_model("model_a").prepare(sim.data).data["rna"], data["rna"])


def test_simulators_are_seeded_and_ragged() -> None:
    for name in MODELS:
        model = psm.get_model(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            a, b = model.simulate(seed=9).data, model.simulate(seed=9).data
        pd.testing.assert_frame_equal(a, b)
    frame = psm.get_model("model_a").simulate(seed=1, missing_fraction=0.3, n_genes=10, n_cell_lines=20).data
    cells = frame.groupby(["sgrna", "cell_line"]).ngroups
    # 30 guides x 20 cell lines, 30 % missing: 420 expected, sd about 11.
    assert 370 < cells < 470
    with pytest.raises(ValueError, match="no setting"):
        psm.get_model("model_c").simulate(seed=1, n_cells=3)
