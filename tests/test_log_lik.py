"""``log_lik`` by value: each program's pointwise log density at a few
posterior draws against numpy's normal density of the same rows.

LOO and ``compare()`` read these numbers; a wrong index, a missing term of
the mean or a wrong scale in generated quantities would change them while
leaving their shape (the only thing other tests check) alone. The mean is
rebuilt here from the equations in each program's header, from the draws of
the constrained parameters and the Stan data, with 0-based numpy indexing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

import pystanmods as psm

#: A short run: the check is of values at whatever draws come out, not of
#: convergence, so 1 chain and a few draws suffice.
SHORT = {"chains": 1, "iter_warmup": 100, "iter_sampling": 4, "seed": 5, "compute_log_lik": True}


def _i(d: dict, name: str) -> np.ndarray:
    return np.asarray(d[name], dtype=int) - 1


def _x(d: dict, name: str) -> np.ndarray:
    return np.asarray(d[name], dtype=float)


def _model3_mean(d: dict, p: dict) -> np.ndarray:
    return p["theta"][_i(d, "unit")]


def _guides_mean(d: dict, p: dict) -> np.ndarray:
    return p["alpha_s"][_i(d, "sgrna")] + p["beta_c"][_i(d, "cell_line")]


def _row_gene(d: dict) -> np.ndarray:
    """The gene of each row, through its guide (the programs' transformed data)."""
    return _i(d, "sgrna_gene")[_i(d, "sgrna")]


def _model_a_mean(d: dict, p: dict) -> np.ndarray:
    s = _i(d, "sgrna")
    return (_guides_mean(d, p) + p["delta_g"][_row_gene(d)] * _x(d, "rna")
            + p["kappa_s"][s] * _x(d, "copy_number"))


def _model_b_mean(d: dict, p: dict) -> np.ndarray:
    # Genes without a mutation effect point at slot M + 1, which holds 0.
    zeta = np.append(p["zeta_g"], 0.0)
    slot = _i(d, "gene_mutation_slot")[_row_gene(d)]
    return _model_a_mean(d, p) + _x(d, "is_mutated") * zeta[slot]


def _lineage_mean(d: dict, p: dict) -> np.ndarray:
    lineage = _i(d, "cell_line_lineage")[_i(d, "cell_line")]
    return _guides_mean(d, p) + p["theta_gl"][_row_gene(d), lineage]


#: Model -> the mean of each row, from the Stan data and one draw.
MEANS: dict[str, Callable[[dict, dict], np.ndarray]] = {
    "model1": lambda d, p: p["alpha"] + p["beta"] * _x(d, "rna"),
    "model2": lambda d, p: p["alpha_g"][_i(d, "gene")] + p["beta_g"][_i(d, "gene")] * _x(d, "rna"),
    "model3": _model3_mean,
    "model4": lambda d, p: (p["alpha_g"][_i(d, "gene")] + p["gamma_c"][_i(d, "cell_line")]
                            + p["beta_g"][_i(d, "gene")] * _x(d, "rna")),
    "model5": _guides_mean,
    "model5_flat": lambda d, p: p["gamma_g"][_i(d, "gene")] + p["beta_c"][_i(d, "cell_line")],
    "model_c": _guides_mean,
    "model_a": _model_a_mean,
    "model_b": _model_b_mean,
    "model_lineage": _lineage_mean,
}


def _scale(name: str, d: dict, p: dict) -> np.ndarray:
    if name == "model_c":
        return p["sigma_c"][_i(d, "cell_line")]
    return np.full(int(d["N"]), p["sigma"])


def reference_log_lik(name: str, d: dict, p: dict) -> np.ndarray:
    return stats.norm.logpdf(_x(d, "logfc"), MEANS[name](d, p), _scale(name, d, p))


def _draws(fit, index: int) -> dict[str, np.ndarray]:
    posterior = fit.idata.posterior
    return {k: np.asarray(posterior[k].values[0, index], dtype=float) for k in posterior.data_vars}


@pytest.mark.parametrize("name", list(MEANS))
def test_log_lik_matches_numpy_at_posterior_draws(name: str) -> None:
    model = psm.get_model(name)
    simulation = model.simulate(seed=3)
    data = model.prepare(simulation.data).data
    fit = psm.fit(model, simulation.data, "recommended", **SHORT)
    log_lik = np.asarray(fit.idata.log_likelihood[model.outcome].values)[0]
    assert log_lik.shape == (SHORT["iter_sampling"], int(data["N"]))
    for draw in range(SHORT["iter_sampling"]):
        expected = reference_log_lik(name, data, _draws(fit, draw))
        # Stan computes the same formula in double precision: round-off only.
        np.testing.assert_allclose(log_lik[draw], expected, rtol=1e-8, atol=1e-10, err_msg=f"{name}, draw {draw}")


def test_log_lik_check_can_fail() -> None:
    """The comparison notices a slip the shape checks cannot: the cell-line
    effects read with the gene index, or sigma off by 1%."""
    name = "model4"
    model = psm.get_model(name)
    simulation = model.simulate(seed=3)
    data = model.prepare(simulation.data).data
    fit = psm.fit(model, simulation.data, "recommended", **SHORT)
    log_lik = np.asarray(fit.idata.log_likelihood[model.outcome].values)[0, 0]
    p = _draws(fit, 0)
    np.testing.assert_allclose(log_lik, reference_log_lik(name, data, p), rtol=1e-8, atol=1e-10)
    wrong_index = {**data, "cell_line": np.minimum(np.asarray(data["gene"]), int(data["C"]))}
    assert not np.allclose(log_lik, reference_log_lik(name, wrong_index, p), rtol=1e-6)
    assert not np.allclose(log_lik, reference_log_lik(name, data, {**p, "sigma": p["sigma"] * 1.01}), rtol=1e-6)


def test_model3_unit_log_lik_is_the_multivariate_normal_of_its_replicates() -> None:
    """Model 3's log_lik_unit, theta integrated out, against the density of
    each unit's replicates as one multivariate normal with covariance
    sigma^2 I + sigma_g^2 11' (scipy), at posterior draws. Units of 1 to 4
    rows, so that the n_u terms are exercised."""
    model = psm.get_model("model3")
    frame = model.simulate(seed=3, n_replicates=4).data
    keep = np.random.default_rng(4).random(len(frame)) > 0.3  # ragged: units of 1-4 replicates
    frame = frame.loc[keep].reset_index(drop=True)
    data = model.prepare(frame).data
    fit = psm.fit(model, frame, "recommended", **SHORT)
    assert "log_lik_unit" not in fit.idata.log_likelihood  # az.loo(idata) keeps one variable
    unit_lik = np.asarray(fit.idata.posterior["log_lik_unit"].values)[0]
    unit, unit_gene, y = _i(data, "unit"), _i(data, "unit_gene"), _x(data, "logfc")
    sizes = np.bincount(unit)
    assert sizes.min() == 1 and sizes.max() == 4
    for draw in range(SHORT["iter_sampling"]):
        p = _draws(fit, draw)
        expected = []
        for u in range(int(data["U"])):
            y_u = y[unit == u]
            cov = p["sigma"] ** 2 * np.eye(y_u.size) + p["sigma_g"][unit_gene[u]] ** 2
            expected.append(stats.multivariate_normal.logpdf(y_u, np.full(y_u.size, p["mu_theta"][u]), cov))
        np.testing.assert_allclose(unit_lik[draw], expected, rtol=1e-8, atol=1e-10)


def test_compare_leaves_out_units_when_model3_is_compared() -> None:
    """compare() with a Model 3 fit switches to leave-one-unit-out: Model 3's
    log_lik_unit against the other fit's rows summed per gene x cell line."""
    import warnings

    from pystanmods.stanfit.compare import _unit_log_lik

    frame = psm.get_model("model3").simulate(seed=3).data
    settings = {**SHORT, "chains": 2, "iter_sampling": 100}
    fit3 = psm.fit("model3", frame, "recommended", **settings)
    fit4 = psm.fit("model4", frame, "recommended", **settings)
    units4 = _unit_log_lik("model4", fit4, "logfc")
    rows = np.asarray(fit4.idata.log_likelihood["logfc"].values)
    labels = frame["gene"].astype(str) + "|" + frame["cell_line"].astype(str)
    first = sorted(set(labels))[0]
    np.testing.assert_allclose(units4.log_likelihood["logfc"].sel(unit=first).values,
                               rows[..., (labels == first).to_numpy()].sum(axis=-1), rtol=1e-12)
    assert units4.log_likelihood["logfc"].sizes["unit"] == labels.nunique()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = psm.compare({"model3": fit3, "model4": fit4})
        rows_table = psm.compare({"model3": fit3, "model4": fit4}, level="row")
    assert table.attrs["level"] == "unit" and rows_table.attrs["level"] == "row"
    with pytest.raises(ValueError, match="level"):
        psm.compare({"model3": fit3, "model4": fit4}, level="gene")
