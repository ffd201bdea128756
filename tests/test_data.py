"""Data wrappers: tidy frames to Stan data with 1-based indices, and every bad input named."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import pystanmods as psm
from pystanmods.data import DataError, encode, write_stan_json


def model5_frame() -> pd.DataFrame:
    return psm.get_model("model5").simulate(seed=1, n_cell_lines=4).data


# ------------------------------------------------------------- indices


def test_indices_are_one_based_and_labels_become_coords() -> None:
    frame = model5_frame()
    prepared = psm.get_model("model5").prepare(frame)
    data = prepared.data
    assert data["N"] == len(frame)
    for key, size in (("sgrna", "S"), ("cell_line", "C")):
        assert data[key].min() == 1 and data[key].max() == data[size]
    assert prepared.coords["gene"] == sorted(frame.gene.unique())
    assert prepared.coords["cell_line"] == sorted(frame.cell_line.unique())
    # The label of each row's code is the row's own label.
    labels = np.array(prepared.coords["sgrna"])[data["sgrna"] - 1]
    assert (labels == frame.sgrna.to_numpy()).all()
    # Each guide points to its own gene.
    guide_gene = dict(zip(frame.sgrna, frame.gene))
    genes = np.array(prepared.coords["gene"])[data["sgrna_gene"] - 1]
    assert list(genes) == [guide_gene[s] for s in prepared.coords["sgrna"]]


def test_categorical_order_is_kept_and_unused_levels_get_no_parameter() -> None:
    series = pd.Series(pd.Categorical(["b", "a", "b"], categories=["b", "c", "a"]))
    index = encode(series)
    assert index.labels == ["b", "a"]
    assert index.codes.tolist() == [1, 2, 1]


def test_ragged_design_is_accepted() -> None:
    frame = psm.get_model("model5").simulate(seed=2, missing_fraction=0.3).data
    data = psm.get_model("model5").standata(frame)
    assert data["N"] == len(frame) < 15 * 20


def test_columns_mapping_takes_depmap_names() -> None:
    frame = model5_frame().rename(columns={"gene": "hugo_symbol", "cell_line": "depmap_id", "logfc": "lfc"})
    mapping = {"gene": "hugo_symbol", "cell_line": "depmap_id", "logfc": "lfc"}
    prepared = psm.get_model("model5").prepare(frame, mapping)
    assert prepared.data["N"] == len(frame)
    assert prepared.coords["gene"][0].startswith("gene")


def test_output_flags_are_data() -> None:
    data = psm.get_model("model1").standata(psm.get_model("model1").simulate(seed=1).data, compute_log_lik=False)
    assert data["compute_log_lik"] == 0 and data["compute_y_rep"] == 1


def test_replicate_rows_collapse_to_their_sufficient_statistics() -> None:
    frame = psm.get_model("model5").simulate(seed=3, n_cell_lines=5, n_replicates=3, missing_fraction=0.2).data
    data = psm.get_model("model5").standata(frame)
    # Three replicate screens: each guide x cell line is one unit of 3 rows.
    assert data["U"] * 3 == data["N"] and set(data["unit_n"]) == {3.0}
    grouped = frame.groupby(["sgrna", "cell_line"])["logfc"]
    np.testing.assert_allclose(np.sort(data["unit_logfc"]), np.sort(grouped.mean().to_numpy()), rtol=1e-12)
    ss = float(((frame["logfc"] - grouped.transform("mean")) ** 2).sum())
    assert data["ss_logfc"] == pytest.approx(ss, rel=1e-12)
    # Units point at the guide and cell line of their rows.
    units = set(zip(data["unit_sgrna"], data["unit_cell_line"]))
    assert units == set(zip(data["sgrna"], data["cell_line"]))


def test_flat_model_collapses_guides_of_a_gene_too() -> None:
    frame = psm.get_model("model5_flat").simulate(seed=3, n_cell_lines=4).data
    data = psm.get_model("model5_flat").standata(frame)
    assert data["U"] == data["G"] * data["C"] and data["unit_n"].sum() == data["N"]


def test_write_stan_json_round_trip(tmp_path) -> None:
    data = psm.get_model("model5").standata(model5_frame())
    path = tmp_path / "data.json"
    write_stan_json(path, data)
    loaded = json.loads(path.read_text())
    assert loaded["N"] == data["N"]
    assert loaded["sgrna"] == data["sgrna"].tolist()
    assert loaded["logfc"] == pytest.approx(data["logfc"].tolist())


# ------------------------------------------------------------ bad input


def _error(model: str, frame: pd.DataFrame, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        psm.get_model(model).prepare(frame, **kwargs)
    return str(info.value)


def test_missing_column_is_named_with_row_count() -> None:
    message = _error("model5", model5_frame().drop(columns="sgrna"))
    assert "'sgrna'" in message and f"{len(model5_frame())} rows" in message


def test_model_needing_a_column_the_data_lacks() -> None:
    # Model 4 needs RNA expression; Model 5 data has none.
    message = _error("model4", model5_frame())
    assert "'rna'" in message and "model4" in message


def test_nan_in_outcome() -> None:
    frame = model5_frame()
    frame.loc[frame.index[:3], "logfc"] = np.nan
    message = _error("model5", frame)
    assert "'logfc'" in message and "3 of" in message and "NaN" in message


def test_inf_in_covariate() -> None:
    frame = psm.get_model("model2").simulate(seed=1).data
    frame.loc[frame.index[5], "rna"] = np.inf
    message = _error("model2", frame)
    assert "'rna'" in message and "infinite" in message and "1 of" in message and "inf" in message


def test_non_numeric_values_are_shown() -> None:
    frame = psm.get_model("model2").simulate(seed=1).data
    frame["rna"] = frame["rna"].astype(object)
    frame.loc[frame.index[:2], "rna"] = "high"
    message = _error("model2", frame)
    assert "'rna'" in message and "'high'" in message and "2 of" in message


def test_sgrna_in_two_genes() -> None:
    frame = model5_frame()
    guide = frame.sgrna.iloc[0]
    rows = frame.index[frame.sgrna == guide][:2]
    frame.loc[rows[1], "gene"] = "geneOTHER"
    message = _error("model5", frame)
    assert "'sgrna'" in message and repr(guide) in message and "more than one" in message
    assert f"in {int((frame.sgrna == guide).sum())} rows" in message


def test_empty_frame() -> None:
    message = _error("model5", model5_frame().iloc[:0])
    assert "empty" in message and "0 rows" in message


def test_missing_labels() -> None:
    frame = model5_frame()
    frame.loc[frame.index[:4], "cell_line"] = None
    message = _error("model5", frame)
    assert "'cell_line'" in message and "4 of" in message


def test_unknown_column_mapping() -> None:
    message = _error("model5", model5_frame(), columns={"lineage": "OncotreeLineage"})
    assert "lineage" in message


def test_model1_refuses_several_genes() -> None:
    frame = psm.get_model("model2").simulate(seed=1).data
    message = _error("model1", frame)
    assert "'gene'" in message and "5 levels" in message


def test_model3_needs_rna_constant_within_a_unit() -> None:
    frame = psm.get_model("model3").simulate(seed=1).data
    frame.loc[frame.index[0], "rna"] += 1.0
    message = _error("model3", frame)
    assert "'rna'" in message


def test_not_a_frame() -> None:
    with pytest.raises(DataError, match="DataFrame"):
        psm.get_model("model1").prepare({"rna": [1.0], "logfc": [0.0]})  # type: ignore[arg-type]


# ------------------------------------------------------------ simulators


@pytest.mark.parametrize("name", ["model1", "model2", "model3", "model4", "model5", "model5_flat"])
def test_simulation_is_reproducible_and_fits_its_model(name: str) -> None:
    model = psm.get_model(name)
    a, b = model.simulate(seed=5), model.simulate(seed=5)
    pd.testing.assert_frame_equal(a.data, b.data)
    assert not model.simulate(seed=6).data.equals(a.data)
    model.prepare(a.data)  # the simulator's frame is valid input


def test_model5_defaults_are_the_seed_notebooks() -> None:
    simulation = psm.get_model("model5").simulate(seed=103)
    data = simulation.data
    assert data.cell_line.nunique() == 20 and data.gene.nunique() == 5
    assert data.groupby("gene").sgrna.nunique().sort_values().tolist() == [1, 2, 3, 4, 5]
    assert simulation.generating["sigma"] == 0.5 and simulation.generating["sigma_beta"] == 1.0
    # The truth is on the model's footing: cell-line effects centred, the shift moved to the guides.
    assert abs(simulation.truth["beta_c"].sum()) < 1e-9
    shift = simulation.generating["beta_c"].mean()
    np.testing.assert_allclose(simulation.truth["alpha_s"], np.array(psm.get_model("model5").defaults["alpha_s"]) + shift)


def test_simulation_overrides_and_unknown_settings() -> None:
    model = psm.get_model("model2")
    simulation = model.simulate(seed=1, n_genes=3, n_cell_lines=7)
    assert simulation.data.gene.nunique() == 3 and len(simulation.data) == 21
    with pytest.raises(ValueError, match="no setting"):
        model.simulate(seed=1, n_gnees=3)


def test_model_lookup() -> None:
    assert psm.get_model("Model 5").name == "model5"
    assert psm.get_model("5").name == "model5"
    assert psm.get_model("model5-flat").name == "model5_flat"
    assert {"model1", "model5_flat"} <= set(psm.list_models())
    with pytest.raises(KeyError, match="no model named"):
        psm.get_model("model99")


def test_stan_files_exist_for_every_parameterization() -> None:
    for name in psm.list_models():
        model = psm.get_model(name)
        for parameterization in model.parameterizations:
            assert model.stan_file(parameterization).is_file()


def test_plain_values_for_json_and_pystan() -> None:
    # The one numpy-to-JSON conversion (it was written five times).
    import json

    from pystanmods.data import plain

    value = {"a": np.arange(3), "b": np.float64(0.5), "c": [np.int64(2), (np.ones((2, 1)), "x")], "d": None}
    out = plain(value)
    assert out == {"a": [0, 1, 2], "b": 0.5, "c": [2, [[[1.0], [1.0]], "x"]], "d": None}
    assert type(out["b"]) is float and type(out["c"][0]) is int
    json.dumps(out)  # raises TypeError on any numpy value left


def test_preview_shows_three_values_then_an_ellipsis() -> None:
    from pystanmods.data.validate import preview

    assert preview(["a", "b"]) == "'a', 'b'"
    assert preview(iter(range(5))) == "0, 1, 2, ..."
