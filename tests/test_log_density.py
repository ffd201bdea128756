"""Stan's log density against an independent numpy/scipy computation.

Stan drops the constants of `~` statements, so the check compares
*differences* of the log density between random parameter values: those are
free of constants and still catch a likelihood added N times, a wrong index
or a wrong prior.
"""

from __future__ import annotations

import numpy as np
import pytest

import pystanmods as psm
from pystanmods.engines import get_engine
from pystanmods.models import PARAMETERIZATIONS, all_models
from pystanmods.sampling import compile_model
from tests.conftest import engines
from tests.helpers import REFERENCE_LOG_DENSITY, helmert_basis, random_parameters

BASE_MODELS = [m.name for m in all_models() if m.name in REFERENCE_LOG_DENSITY]
CASES = [
    (name, p)
    for name in BASE_MODELS
    for p in PARAMETERIZATIONS
    if psm.get_model(name).hierarchical or p == "centered"
]


def _small_data(name: str) -> dict:
    model = psm.get_model(name)
    overrides = {"n_cell_lines": 6}
    if name in ("model5", "model5_flat"):
        # A ragged design makes index errors visible, and replicates make the
        # program's sufficient statistics differ from its rows.
        overrides.update(missing_fraction=0.2, n_replicates=2)
    sim = model.simulate(seed=7, **overrides)
    return model.prepare(sim.data).data


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize(("name", "parameterization"), CASES)
def test_log_density_matches_numpy(name: str, parameterization: str, engine: str) -> None:
    data = _small_data(name)
    rng = np.random.default_rng(2024)
    points = [random_parameters(name, parameterization, data, rng) for _ in range(4)]
    compiled = compile_model(name, parameterization, engine)
    eng = get_engine(engine)
    stan_lp = np.array(
        [eng.log_prob(compiled.program, compiled.directory, data, p, jacobian=False) for p in points]
    )
    reference = REFERENCE_LOG_DENSITY[name]
    numpy_lp = np.array([reference(data, p, parameterization == "centered") for p in points])
    # Differences from the first point cancel the dropped constants; agreement
    # to 1e-8 relative is round-off, while any modelling slip moves them by O(1).
    np.testing.assert_allclose(stan_lp[1:] - stan_lp[0], numpy_lp[1:] - numpy_lp[0], rtol=1e-8, atol=1e-8)


def _layout(name: str, layout: str) -> dict:
    """Model 5 data whose guide x cell-line count matrix takes each form the program handles."""
    model = psm.get_model(name)
    rng = np.random.default_rng(11)
    if layout == "complete":
        frame = model.simulate(seed=7, n_cell_lines=6, missing_fraction=0.0, n_replicates=2).data
    elif layout == "ragged":
        frame = model.simulate(seed=7, n_cell_lines=6, missing_fraction=0.7, n_replicates=2).data
    else:
        # Dropping single replicate rows leaves units of 1 row among units of
        # 2, and cell lines whose most common count differs.
        frame = model.simulate(seed=7, n_cell_lines=6, missing_fraction=0.1, n_replicates=3).data
        frame = frame.loc[rng.random(len(frame)) > 0.25].reset_index(drop=True)
    return model.prepare(frame).data


@pytest.mark.parametrize("layout", ["complete", "ragged", "uneven"])
@pytest.mark.parametrize(("name", "parameterization"), [("model5", "centered"), ("model5_flat", "noncentered")])
def test_model5_cross_term_layouts(name: str, parameterization: str, layout: str) -> None:
    """The count matrix M = 1 r' + E is exact whether E is empty, all of M or in between.

    Complete data leave E empty, mostly missing data make r = 0 (E = M), and
    uneven replicate counts give E entries of both signs.
    """
    data = _layout(name, layout)
    rng = np.random.default_rng(2025)
    points = [random_parameters(name, parameterization, data, rng) for _ in range(4)]
    compiled = compile_model(name, parameterization, "pystan")
    eng = get_engine("pystan")
    stan_lp = np.array(
        [eng.log_prob(compiled.program, compiled.directory, data, p, jacobian=False) for p in points]
    )
    reference = REFERENCE_LOG_DENSITY[name]
    numpy_lp = np.array([reference(data, p, parameterization == "centered") for p in points])
    # As above: round-off only, and a wrong E moves the differences by O(1).
    np.testing.assert_allclose(stan_lp[1:] - stan_lp[0], numpy_lp[1:] - numpy_lp[0], rtol=1e-8, atol=1e-8)


def test_log_density_check_can_fail() -> None:
    """The comparison above notices a wrong index: guides shifted by one row."""
    name, parameterization = "model5", "noncentered"
    data = _small_data(name)
    rng = np.random.default_rng(2024)
    points = [random_parameters(name, parameterization, data, rng) for _ in range(2)]
    compiled = compile_model(name, parameterization, "pystan")
    eng = get_engine("pystan")
    stan = [eng.log_prob(compiled.program, compiled.directory, data, p, jacobian=False) for p in points]
    shifted = {**data, "sgrna": np.roll(data["sgrna"], 1)}
    wrong = [REFERENCE_LOG_DENSITY[name](shifted, p, False) for p in points]
    assert not np.isclose(stan[1] - stan[0], wrong[1] - wrong[0], rtol=1e-6)


def test_helmert_basis_is_orthonormal_and_sums_to_zero() -> None:
    basis = helmert_basis(7)
    np.testing.assert_allclose(basis.T @ basis, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(basis.sum(axis=0), 0, atol=1e-12)
