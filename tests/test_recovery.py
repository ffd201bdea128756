"""Parameter recovery of the seed's Models 1-5 on data simulated with the seed's settings.

Each model x parameterization is fitted once per engine (4 chains x 1000
warmup + 1000 draws, fixed seeds) and judged three ways:

* the diagnostics gate: no divergences and R-hat < 1.01 (Vehtari et al. 2021)
  for the recommended parameterization; the other one must at least have
  R-hat < 1.05, so that its recovery figures mean something;
* group-level effects: how many 90% intervals cover the truth, judged in
  aggregate against a binomial bound (one interval per effect would fail by
  chance somewhere among dozens);
* hyperparameters: each within Z_MAX posterior sds of its true value.
"""

from __future__ import annotations

import numpy as np
import pytest

import pystanmods as psm
from pystanmods.models import PARAMETERIZATIONS
from tests.conftest import RECOVERY_DIAGNOSTICS, engines
from tests.helpers import coverage_floor

SEED_MODELS = ("model1", "model2", "model3", "model4", "model5", "model5_flat")

#: Under a calibrated posterior (truth - mean) / sd is close to N(0, 1). With
#: about 30 hyperparameters across the programs and two engines, |z| < 4 keeps
#: the chance that a correct model fails anywhere under 0.5% (Bonferroni:
#: 60 x P(|N(0,1)| > 4) = 0.004), while a mis-specified or non-identified
#: hyperparameter lands many sds away.
Z_MAX = 4.0

#: Seeds of the simulation (the seed notebook's RANDOM_SEED) and of the sampler.
DATA_SEED = 103
FIT_SEED = 20240


def _cases() -> list:
    """Every model x parameterization x engine; cmdstan cases keep their marker."""
    cases = []
    for name in SEED_MODELS:
        model = psm.get_model(name)
        for parameterization in PARAMETERIZATIONS if model.hierarchical else ("centered",):
            for engine in engines():
                engine_name, marks = (engine, ()) if isinstance(engine, str) else (engine.values[0], engine.marks)
                cases.append(
                    pytest.param(name, parameterization, engine_name, marks=marks,
                                 id=f"{name}-{parameterization}-{engine_name}")
                )
    return cases


_FITS: dict[tuple[str, str, str], tuple] = {}


def _fit(name: str, parameterization: str, engine: str) -> tuple:
    """One fit per case, shared by the three checks."""
    key = (name, parameterization, engine)
    if key not in _FITS:
        model = psm.get_model(name)
        simulation = model.simulate(seed=DATA_SEED)
        fit = psm.fit(
            model, simulation.data, parameterization=parameterization, engine=engine,
            seed=FIT_SEED, show_progress=False,
        )
        _FITS[key] = (model, simulation, fit)
    return _FITS[key]


@pytest.mark.parametrize(("name", "parameterization", "engine"), _cases())
def test_recovery(name: str, parameterization: str, engine: str) -> None:
    model, simulation, fit = _fit(name, parameterization, engine)
    diagnostics = fit.diagnostics(warn=False)
    recommended = (not model.hierarchical) or parameterization == model.recommended
    RECOVERY_DIAGNOSTICS.append(
        f"{name:<12} {parameterization:<12} {engine:<8} adapt_delta {fit.attrs['adapt_delta']:<5} "
        f"max R-hat {diagnostics.max_rhat:.4f}  min bulk ESS {diagnostics.min_ess_bulk:5.0f}  "
        f"divergences {diagnostics.divergences}  {fit.sampling_seconds:.1f} s"
    )
    if recommended:
        assert diagnostics.divergences == 0, str(diagnostics)
        assert diagnostics.max_rhat < 1.01, str(diagnostics)
    else:
        assert diagnostics.max_rhat < 1.05, str(diagnostics)

    table = fit.recovery(simulation.truth)
    # Every true value is accounted for in the table.
    expected_rows = sum(np.size(v) for v in simulation.truth.values())
    assert len(table) == expected_rows

    groups = table[table["parameter"].isin(model.group_parameters)]
    if len(groups):
        floor = coverage_floor(len(groups))
        assert groups["covered"].sum() >= floor, (
            f"{int(groups['covered'].sum())} of {len(groups)} group-level 90% intervals cover the truth; "
            f"a calibrated posterior covers at least {floor} except with probability 0.001\n"
            + groups.to_string()
        )

    hyper = table[table["parameter"].isin(model.hyperparameters)]
    assert len(hyper) > 0
    worst = hyper.loc[hyper["z"].abs().idxmax()]
    assert abs(worst["z"]) < Z_MAX, f"{worst['parameter']} is {worst['z']:.1f} sds from its truth\n{hyper.to_string()}"


def test_recovery_check_can_fail() -> None:
    """The same checks reject a posterior that answers the wrong question:
    Model 5 fitted to data whose cell-line effects were drawn ten times wider
    and whose guides were shuffled between genes misses the seed's truth."""
    model = psm.get_model("model5")
    simulation = model.simulate(seed=DATA_SEED)
    wrong = model.simulate(seed=DATA_SEED + 1, sigma_beta=10.0, alpha_s=tuple(np.array(model.defaults["alpha_s"])[::-1]))
    fit = psm.fit(model, wrong.data, engine="pystan", seed=FIT_SEED, chains=2, iter_warmup=500,
                  iter_sampling=500, show_progress=False)
    table = fit.recovery(simulation.truth)
    groups = table[table["parameter"].isin(model.group_parameters)]
    hyper = table[table["parameter"].isin(model.hyperparameters)]
    assert groups["covered"].sum() < coverage_floor(len(groups)) or hyper["z"].abs().max() >= Z_MAX
