"""The model records: one place per model, read by everything else, and refusing what is inconsistent."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from pystanmods import depmap
from pystanmods.data import DataError
from pystanmods.engines.base import Draws
from pystanmods.models import all_models, get_model
from pystanmods.models.base import CATALOGUE, Model, register
from pystanmods.models.record import Effect, ModelRecord, UnitRule
from pystanmods.sbc.designs import designs
from pystanmods.stanfit.convert import to_inference_data

MODEL2 = get_model("model2").record


def test_a_record_cannot_be_changed_in_place() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        MODEL2.recommended = "noncentered"  # type: ignore[misc]
    with pytest.raises(TypeError):
        MODEL2.priors["sigma"] = ("exponential", 1.0)  # type: ignore[index]


def test_records_declare_consistent_facts() -> None:
    for model in all_models():
        record = model.record
        assert model.name == record.name and model.priors is record.priors
        assert dict(model.variable_dims) == record.dims()
        # Internal coordinates are exactly the _z/_raw names of the group effects.
        assert all(name.endswith(("_z", "_raw")) for name in record.internal())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"recommended": "sideways"}, "recommended 'sideways'"),
        ({"gene_effects": ("alpha_gene",)}, "alpha_gene is named as a result but has no declared dims"),
        ({"hyperparameters": ("alpha_g",)}, "hyperparameter alpha_g has dims"),
        ({"priors": {"sigma": ("halfnormal", 1.0, 2.0)}}, "prior of sigma"),
        ({"effects": ()}, "hierarchical exactly when it has group effects"),
        ({"sbc_fit_by_program": {"noncentred": {"max_treedepth": 12}}}, "names 'noncentred', not a program"),
    ],
)
def test_an_inconsistent_record_is_refused(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(MODEL2, **change)


def test_register_needs_a_record_of_its_own_and_a_new_name() -> None:
    with pytest.raises(TypeError, match="has no record of its own"):

        @register
        class Nameless(Model):
            pass

    with pytest.raises(ValueError, match="two models are named 'model2'"):

        @register
        class Copy(Model):
            record = MODEL2

    assert type(CATALOGUE["model2"]).__name__ == "Model2"


def test_a_fact_set_outside_the_record_is_refused() -> None:
    with pytest.raises(TypeError, match="sets priors outside its record"):

        class Split(Model):
            record = MODEL2
            priors = {"sigma": ("exponential", 1.0)}


def test_an_undeclared_variable_is_an_error_not_x_dim_0() -> None:
    model = get_model("model2")
    stan_data = model.prepare(model.simulate(seed=1, n_genes=3).data)
    draws = {"alpha_g": np.zeros((1, 4, 3)), "sigma": np.ones((1, 4))}
    ok = Draws(draws, {"lp": np.zeros((1, 4))}, 0.0)
    idata = to_inference_data(ok, stan_data, "logfc", {"model": "model2"})
    assert idata.posterior["alpha_g"].dims == ("chain", "draw", "gene")
    draws["kappa_g"] = np.zeros((1, 4, 3))  # written by a program, declared nowhere
    with pytest.raises(ValueError, match=r"\['kappa_g'\] have no dims in the model's record"):
        to_inference_data(ok, stan_data, "logfc", {"model": "model2"})


def test_one_per_unit_rule_with_one_tolerance() -> None:
    rule = UnitRule("rna")
    frame = pd.DataFrame({"gene": ["a", "a", "b"], "cell_line": ["c1", "c1", "c1"], "rna": [1.0, 1.0 + 1e-14, 2.0]})
    rule.check(frame, "m")  # round-off is the same value
    frame.loc[1, "rna"] = 1.1
    with pytest.raises(DataError, match=r"m: column 'rna' takes more than one value within gene x cell_line in 1 of 2"):
        rule.check(frame, "m")
    # Labels (a lineage) are compared as text; a missing value is the column
    # reader's to refuse, not a second value.
    labels = pd.DataFrame({"gene": ["a", "a", "b", "b"], "cell_line": ["c1"] * 4,
                           "lineage": ["skin", "skin", "lung", None]})
    UnitRule("lineage").check(labels, "m")
    labels.loc[1, "lineage"] = "bone"
    with pytest.raises(DataError, match=r"column 'lineage' takes more than one value within gene x cell_line in 1 of 2 "
                                        r"units \(2 rows\), e.g. gene 'a', cell_line 'c1' \('bone' to 'skin'\)"):
        UnitRule("lineage").check(labels, "m")
    # The same rule, through each model that declares it (the three copies
    # before this had tolerances 0, 1e-12 absolute and 1e-12 relative).
    for name in ("model3", "model4", "model_a"):
        model = get_model(name)
        data = model.simulate(seed=2).data
        data.loc[data.index[0], "rna"] += 0.5
        with pytest.raises(DataError, match=f"{name}: column 'rna' takes more than one value"):
            model.prepare(data)
        assert UnitRule("rna") in model.record.unit_rules
        with pytest.raises(DataError, match="takes more than one value"):
            depmap.check_frame(data, name, verbose=False)


def test_sbc_designs_are_the_records() -> None:
    found = {(d.model, d.parameterization): d.sizes for d in designs()}
    for model in all_models():
        for parameterization in ("centered", "noncentered") if model.hierarchical else ("centered",):
            assert found[(model.name, parameterization)] == dict(model.record.sbc)


def test_a_program_s_own_sbc_settings_reach_only_its_design() -> None:
    record = dataclasses.replace(MODEL2, sbc_fit_by_program={"noncentered": {"max_treedepth": 12}})
    with pytest.raises(TypeError):
        record.sbc_fit_by_program["noncentered"]["max_treedepth"] = 13  # type: ignore[index]
    model5 = {d.parameterization: d.settings for d in designs(["model5"])}
    assert model5["noncentered"]["max_treedepth"] == 12
    assert "max_treedepth" not in model5["centered"]
    assert {k: v for k, v in model5["noncentered"].items() if k != "max_treedepth"} == model5["centered"]


def test_gene_effect_table_reads_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    import arviz as az

    from pystanmods.stanfit.fit import StanFit

    draws = np.random.default_rng(1).normal(size=(1, 20, 2))
    idata = az.from_dict(posterior={"gamma_g": draws, "delta_g": -draws}, coords={"gene": ["a", "b"]},
                         dims={"gamma_g": ["gene"], "delta_g": ["gene"]})
    idata.posterior.attrs["model"] = "model3"
    fit = StanFit(idata)
    assert list(fit.gene_effects()["variable"].unique()) == ["gamma_g"]
    # A record naming another variable changes the table: nothing else holds the fact.
    model = get_model("model3")
    monkeypatch.setattr(type(model), "record", dataclasses.replace(model.record, gene_effects=("delta_g",)))
    assert list(fit.gene_effects()["variable"].unique()) == ["delta_g"]


def test_info_prints_the_record(capsys: pytest.CaptureFixture[str]) -> None:
    from pystanmods.cli.main import main

    assert main(["info", "model3"]) == 0
    out = capsys.readouterr().out
    for line in get_model("model3").record.describe():
        assert line in out
    assert "gene effects: gamma_g" in out and "rna: one value per gene x cell_line" in out


def test_record_effect_rule() -> None:
    plain = Effect("alpha_g", ("gene",))
    zero_sum = Effect("beta_c", ("cell_line",), free_dims=("cell_line_free",))
    assert (plain.sampled("centered"), plain.sampled("noncentered")) == ("alpha_g", "alpha_g_z")
    assert (zero_sum.sampled("centered"), zero_sum.sampled("noncentered")) == ("beta_c_raw", "beta_c_z")
    assert zero_sum.internal() == {"beta_c_z": ("cell_line_free",), "beta_c_raw": ("cell_line_free",)}
    assert isinstance(MODEL2, ModelRecord)
