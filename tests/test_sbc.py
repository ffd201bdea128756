"""Simulation-based calibration: the simulator's prior is the Stan program's,
SBC passes for calibrated models and flags a mis-specified simulator."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from pystanmods.models import PARAMETERIZATIONS, get_model, list_models
from pystanmods.sbc.designs import designs
from tests.test_templates import block, constant_priors

#: Every model of the catalogue: a new one is checked with no change here.
CATALOGUE = list_models()


@pytest.mark.parametrize("name", CATALOGUE)
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_simulator_priors_are_the_stan_programs(name: str, parameterization: str) -> None:
    model = get_model(name)
    code = model.stan_code(parameterization)
    written = constant_priors(block(code, "model"), set(re.findall(r"real<lower=0>\s+(\w+)\s*[;=]", code)),
                              model.prior_data)
    # Every constant prior in the program is drawn by the simulator, and no
    # other (the record's priors are checked against the program in
    # tests/test_templates.py; this is the simulator's side).
    assert set(model.draw_prior(np.random.default_rng(1))) == set(written)


@pytest.mark.parametrize("name", CATALOGUE)
def test_prior_draws_follow_the_stated_distributions(name: str) -> None:
    """4000 draws of each top-level parameter against its scipy distribution.
    Kolmogorov-Smirnov at 0.001 per parameter: about 65 tests, so a correct
    sampler fails somewhere with probability below 7% (fixed seed, so never
    by chance in CI), while a wrong scale (10% off) moves D by ~0.03 > 0.03 critical."""
    model = get_model(name)
    rng = np.random.default_rng(7)
    draws = [model.draw_prior(rng) for _ in range(4000)]
    for parameter, (family, *args) in model.priors.items():
        values = np.array([d[parameter] for d in draws])
        if family == "normal":
            dist = stats.norm(args[0], args[1])
        elif family == "halfnormal":
            dist = stats.halfnorm(scale=args[0])
        elif family == "lognormal":
            dist = stats.lognorm(s=args[1], scale=np.exp(args[0]))
        elif family == "beta":
            dist = stats.beta(args[0], args[1])
        else:
            dist = stats.expon(scale=1 / args[0])
        assert stats.kstest(values, dist.cdf).pvalue > 0.001, (parameter, family, args)


def test_sbc_run_sends_the_instance_and_its_prior_to_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker that looked the model up by name would simulate and fit the
    # default prior whatever instance was passed to sbc.run.
    from pystanmods import sbc
    from pystanmods.models.ragged import ModelB

    class Sent(Exception):
        pass

    sent = {}

    def capture(tasks, handle, **kwargs):
        sent.update(tasks)
        raise Sent

    monkeypatch.setattr("pystanmods.batch.cluster.run_tasks", capture)
    keys = []
    for model in (ModelB(), ModelB(sigma_zeta_prior_median=1.5, sigma_zeta_prior_log_sd=0.3)):
        sent.clear()
        with pytest.raises(Sent):
            sbc.run(model, 2, progress=False, plots=False, sizes=dict(ModelB.record.sbc))
        assert all(task.args[0] is model for task in sent.values())
        keys.append({task.key for task in sent.values()})
    assert not keys[0] & keys[1]  # no result of one prior handed back for the other


def test_prior_simulation_keeps_sum_to_zero_effects_and_truth() -> None:
    for name, effect in (("model4", "gamma_c"), ("model5", "beta_c"), ("model5_flat", "beta_c"),
                         ("model_c", "beta_c"), ("model_a", "beta_c"), ("model_b", "beta_c"),
                         ("model_lineage", "delta_c"), ("model_lineage", "beta_c")):
        simulation = get_model(name).simulate_prior(seed=3)
        assert abs(float(np.sum(simulation.truth[effect]))) < 1e-9
        assert simulation.generating["from_prior"] is True
    with pytest.raises(ValueError, match="drawn from the prior"):
        get_model("model1").simulate_prior(seed=1, alpha=0.0)


def test_gene_effect_sbc_ranks_theta_in_block_order() -> None:
    """SBC of gene_effect ranks each theta_gc draw against its own truth: the
    program writes theta per block (gene x cell line, sorted by the labels'
    codes), the simulator holds a G x C matrix. The truth is matched here
    through the block labels, a path independent of sbc_inputs' indices,
    with missing cells so that blocks are not a full grid."""
    model = get_model("gene_effect")
    simulation = model.simulate_prior(seed=5, n_genes=7, n_cell_lines=5, missing_fraction=0.3)
    prepared, truth = model.sbc_inputs(simulation)
    assert prepared.data["compute_theta"] == 1 and prepared.data["compute_log_lik"] == 0
    genes = sorted(simulation.data["gene"].unique())
    cells = sorted(simulation.data["cell_line"].unique())
    expected = [simulation.truth["theta"][genes.index(g), cells.index(c)]
                for g, c in (label.split(" | ") for label in prepared.coords["block"])]
    np.testing.assert_array_equal(truth["theta"], expected)
    assert len(expected) == prepared.data["B"] and not np.array_equal(expected, np.ravel(simulation.truth["theta"])[:len(expected)])
    for name in ("mu_g", "k_s", "sigma_mu"):
        assert truth[name] is simulation.truth[name]


def test_designs_carry_each_models_sampler_settings() -> None:
    by_label = {d.label: d for d in designs()}
    # gene_effect's sbc_fit reaches its centered program as it is; its non-centered
    # program's sbc_fit_by_program entry overrides the draws and adds its own settings.
    assert by_label["gene_effect-centered"].settings == {"chains": 2, "iter_warmup": 1000, "iter_sampling": 1000}
    assert by_label["gene_effect-noncentered"].settings == {"chains": 2, "iter_warmup": 1000, "iter_sampling": 2000,
                                                           "adapt_delta": 0.99, "max_treedepth": 12}
    # Model C's sbc_fit applies to its centered program's design too; chains
    # comes from the catalogue default (FIT_SETTINGS), the rest from the record.
    assert by_label["model_c-centered"].settings == {"chains": 2, "iter_warmup": 1000, "iter_sampling": 2000,
                                                     "adapt_delta": 0.999}
    assert by_label["model2-centered"].settings == {"chains": 2, "iter_warmup": 1000, "iter_sampling": 2000,
                                                    "adapt_delta": 0.999}


def test_make_sbc_reruns_the_committed_runs() -> None:
    """Every run that ``make sbc`` redoes (the Makefile's SBC_RUNS) is committed
    in docs/sbc-results, with its ranks, under exactly the sizes and sampler
    settings its record's design gives now: a record changed without a rerun,
    or a run committed under other settings, fails here."""
    from pystanmods.sbc.committed import makefile_runs
    from pystanmods.sbc.core import FIT_DEFAULTS

    root = Path(__file__).resolve().parents[1]
    makefile = (root / "Makefile").read_text()
    labels = makefile_runs(root)
    command = re.search(r"^sbc:.*\n\t(.*)$", makefile, re.M).group(1)
    assert "--sims 100" in command and "--seed 1" in command and "--only $(SBC_RUNS)" in command
    by_label = {d.label: d for d in designs()}
    assert labels and set(labels) <= set(by_label)
    run_keys = {"n_sims", "seed", "sizes", "prior_scale", "alpha", "max_retries", "engine"}
    for label in labels:
        folder = root / "docs" / "sbc-results" / label
        for name in ("ranks.csv", "fits.csv", "uniformity.csv"):
            assert (folder / name).is_file(), f"{label}: {name} not committed"
        report = (folder / "report.md").read_text()
        settings = json.loads(re.search(r"```\n(\{.*?\})\n```", report, re.S).group(1))
        design = by_label[label]
        assert settings["n_sims"] == 100 and settings["seed"] == 1 and settings["alpha"] == 0.05, label
        assert settings["prior_scale"] == 1.0, label
        assert settings["sizes"] == json.loads(json.dumps(design.sizes)), label
        fit = {k: v for k, v in settings.items() if k not in run_keys}
        assert fit == {**FIT_DEFAULTS, **design.settings}, label


def test_readme_sbc_table_matches_the_committed_runs() -> None:
    """The README's SBC table is what the committed files of every SBC_RUNS run
    say, line for line, and each report's verdict is the one its fits and
    uniformity tests give by the 10% rule (a hand edit of either fails here)."""
    from pystanmods.sbc import committed

    root = Path(__file__).resolve().parents[1]
    assert committed.readme_block((root / "README.md").read_text()) == committed.table(root)
    for label in committed.makefile_runs(root):
        result = committed.load(root / "docs" / "sbc-results" / label)
        verdict = re.search(r"\*\*Verdict:\*\* \S+ \S+: (\w+)", result.out.joinpath("report.md").read_text())
        assert verdict.group(1) == result.status, label


def test_readme_sbc_table_check_can_fail(tmp_path: Path) -> None:
    """Divergent fits added to a committed run change its row, and its verdict
    once they take it past the 10% limit (Model 4 non-centered): at the limit
    it still passes, one fit beyond it is inconclusive."""
    import math
    import shutil

    from pystanmods.sbc import committed
    from pystanmods.sbc.core import NONCONVERGED_LIMIT, RHAT_LIMIT

    folder = Path(__file__).resolve().parents[1] / "docs" / "sbc-results" / "model4-noncentered"
    copy = tmp_path / "model4-noncentered"
    shutil.copytree(folder, copy)
    result = committed.load(copy)
    before = committed.row("model4-noncentered", result)
    fits = result.fits
    clean = (fits["divergences"] == 0) & (fits["max_rhat"] < RHAT_LIMIT)
    at_limit = math.floor(NONCONVERGED_LIMIT * len(fits) + 1e-9) - int((~clean).sum())
    assert before["verdict"] == "PASS" and at_limit >= 0
    rows = []
    for added in (at_limit, at_limit + 1):
        changed = fits.copy()
        changed.loc[fits.index[clean][:added], "divergences"] = 1
        changed.to_csv(copy / "fits.csv", index=False)
        rows.append(committed.row("model4-noncentered", committed.load(copy)))
    assert rows[0]["verdict"] == "PASS" and rows[1]["verdict"] == "INCONCLUSIVE"
    assert before["not converged"] != rows[1]["not converged"]


def test_lineage_prior_draws_are_already_identified() -> None:
    """Drawn under the program's constraints, the truth is the draw itself:
    nothing of theta_gl moves into lambda_l, epsilon_g or mu_epsilon."""
    simulation = get_model("model_lineage").simulate_prior(seed=4, cell_lines_per_lineage=(2, 3, 5))
    truth, drawn = simulation.truth, simulation.generating
    w = np.array([2, 3, 5]) / 10
    assert abs(float(w @ truth["lambda_l"])) < 1e-12
    np.testing.assert_allclose(truth["theta_gl"].sum(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(truth["theta_gl"] @ w, 0, atol=1e-12)
    for name in ("lambda_l", "delta_c", "theta_gl", "epsilon_g", "mu_epsilon"):
        np.testing.assert_allclose(truth[name], drawn[name], atol=1e-12)


def test_model_b_prior_follows_the_program_where_it_has_no_zeta() -> None:
    from pystanmods.models.ragged import ModelB

    for parameterization in PARAMETERIZATIONS:
        assert re.search(r"real<lower=tau_zeta>\s+sigma_zeta;", ModelB().stan_code(parameterization))
    # sigma_zeta's lognormal is truncated at the instance's tau_zeta.
    model = ModelB(tau_zeta=0.7)
    rng = np.random.default_rng(1)
    assert min(model.draw_prior(rng)["sigma_zeta"] for _ in range(300)) > 0.7
    with pytest.raises(ValueError, match="tau_zeta"):
        ModelB().simulate_prior(seed=1, tau_zeta=0.1)
    # And from the instance's sigma_zeta prior (data of the program): 4000
    # draws, KS at 0.001, where the default lognormal(log(0.75), 0.5) is far
    # off (D about 0.6). Truncation at tau_zeta = 0.05 removes under 1e-9.
    model = ModelB(sigma_zeta_prior_median=1.5, sigma_zeta_prior_log_sd=0.3)
    rng = np.random.default_rng(3)
    draws = np.array([model.draw_prior(rng)["sigma_zeta"] for _ in range(4000)])
    assert stats.kstest(draws, stats.lognorm(s=0.3, scale=1.5).cdf).pvalue > 0.001
    assert stats.kstest(draws, stats.lognorm(s=0.5, scale=0.75).cdf).pvalue < 1e-10
    # Genes mutated everywhere or nowhere get no effect, so their intercepts
    # stay draws from their own prior and only informative genes carry zeta_g.
    simulation = ModelB().simulate_prior(seed=2, n_genes=4, n_cell_lines=6, mutation_frequency=(1.0, 0.5, 0.5, 0.0))
    drawn = simulation.generating
    assert drawn["informative"] == ["gene2", "gene3"]
    assert drawn["zeta_g"][0] == 0 and drawn["zeta_g"][3] == 0
    np.testing.assert_allclose(simulation.truth["zeta_g"], drawn["zeta_g"][1:3])
    np.testing.assert_allclose(simulation.truth["epsilon_g"], drawn["epsilon_g"], atol=1e-12)


# ---------------------------------------------------------------- SBC runs

distributed = pytest.importorskip("distributed")

#: Family-wise level of the per-parameter uniformity tests (Holm). A
#: calibrated model fails with probability at most ALPHA; the seeds are fixed.
ALPHA = 0.01
SMALL_FITS = {"chains": 2, "iter_warmup": 250, "iter_sampling": 200}
#: A pass also needs at most 10% of fits with a divergence or R-hat >= 1.01,
#: and R-hat's own noise crosses 1.01 in most fits of 2 x 200 draws (Model 1:
#: 25 of 40 fits; 2 x 1000 draws: 0 of 40; Model 2 below at adapt_delta 0.99:
#: 1 of 30).
CONVERGING_FITS = {"chains": 2, "iter_warmup": 500, "iter_sampling": 1000}


@pytest.fixture(scope="module")
def client():
    from pystanmods.batch.cluster import dask_client

    with dask_client(n_workers=2) as dask:
        yield dask


@pytest.fixture(autouse=True)
def _quiet_arviz() -> None:
    warnings.filterwarnings("ignore", message=".*eval_points.*")


def test_sbc_model1_passes_and_writes_the_report(client, tmp_path) -> None:
    from pystanmods import sbc

    result = sbc.run("model1", 40, client=client, alpha=ALPHA, out=tmp_path, progress=False, **CONVERGING_FITS)
    assert result.passed, (result.verdict(), result.uniformity)
    assert result.n_failed == 0
    assert len(result.ranks) == 40 * 3
    # Thinning keeps about bulk-ESS draws, never more than were drawn.
    assert (result.ranks["n_draws"] <= 2000).all() and (result.ranks["rank"] <= result.ranks["n_draws"]).all()
    for variable in ("alpha", "beta", "sigma"):
        assert (tmp_path / "plots" / f"{variable}_ranks.png").stat().st_size > 1000
        assert (tmp_path / "plots" / f"{variable}_ecdf.png").stat().st_size > 1000
    report = (tmp_path / "report.md").read_text()
    assert "PASS" in report and "thinned" in report
    for table in ("ranks.csv", "fits.csv", "uniformity.csv"):
        assert (tmp_path / table).is_file()


def test_sbc_model2_passes(client) -> None:
    from pystanmods import sbc

    result = sbc.run("model2", 30, client=client, alpha=ALPHA, sizes={"n_genes": 3, "n_cell_lines": 10},
                     progress=False, adapt_delta=0.99, **CONVERGING_FITS)
    assert result.passed, (result.verdict(), result.uniformity)
    assert result.n_failed == 0
    assert len(result.uniformity) == 5 + 2 * 3


def test_sbc_flags_a_simulator_whose_prior_sd_is_twice_the_models(client) -> None:
    """With three data points per set the prior still shapes the posterior,
    so truths drawn from a prior twice as wide land in the posterior's tails.
    (With 20 points the likelihood dominates and no SBC could tell.)"""
    from pystanmods import sbc

    result = sbc.run("model1", 50, client=client, alpha=ALPHA, prior_scale=2.0, sizes={"n_cell_lines": 3},
                     progress=False, **SMALL_FITS)
    assert result.status == "FAIL" and not result.passed
    assert "beta" in result.flagged


def test_sbc_rejects_bad_arguments() -> None:
    from pystanmods import sbc

    with pytest.raises(ValueError, match="n_genes_x"):
        sbc.run("model2", 10, sizes={"n_genes_x": 3})
    with pytest.raises(ValueError, match="alpha"):
        sbc.run("model1", 10, alpha=2)


def test_sbc_cli_bad_input_exits_2(tmp_path, capsys) -> None:
    from pystanmods.cli.sbc import main

    assert main(["model2", "--sims", "5", "--out", str(tmp_path), "--set", "n_genez=3"]) == 2
    assert "n_genez" in capsys.readouterr().err
    assert main(["model2", "--sims", "5", "--out", str(tmp_path), "--set", "n_genes"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("design", designs(), ids=lambda d: d.label)
def test_sbc_every_model_slow(client, tmp_path, design) -> None:
    """100 simulations of every model and parameterization, outside CI; on
    the programs of ``make sbc`` (its SBC_RUNS) the same runs, whose results
    are in docs/sbc.md."""
    from pystanmods import sbc

    result = sbc.run(design.model, 100, design.parameterization, client=client, alpha=0.05, sizes=design.sizes,
                     out=tmp_path / design.label, progress=False, **design.settings)
    print(result.verdict())
    # A pass includes the 10% convergence rule; on these designs most runs of
    # the last full run were INCONCLUSIVE by it (docs/sbc.md).
    assert result.passed, (result.verdict(), result.uniformity)


def _result(divergences: list[int], rhats: list[float], rejected: bool = False, failed: int = 0):
    """An SBCResult from made-up fit diagnostics and one uniformity test."""
    import pandas as pd

    from pystanmods.sbc.core import SBCResult

    n = len(divergences)
    fits = pd.DataFrame({
        "sim": range(n), "status": ["ok"] * (n - failed) + ["failed"] * failed, "attempts": 1,
        "divergences": divergences, "max_rhat": rhats, "treedepth_hits": 0, "min_ess_bulk": 400.0,
    })
    uniformity = pd.DataFrame({"parameter": ["sigma"], "p_holm": [0.001 if rejected else 0.5],
                               "rejected": [rejected]})
    return SBCResult("model1", "none", pd.DataFrame(), fits, uniformity, alpha=0.05)


def test_sbc_run_with_over_ten_percent_unconverged_fits_is_inconclusive() -> None:
    """The rule of docs/sbc.md: a run where more than 10% of the fits had a
    divergence or R-hat >= 1.01 is INCONCLUSIVE, not a pass, however uniform
    its ranks. 2 of 20 bad fits (10%) still passes; 3 of 20 does not; and a
    divergence and a high R-hat in the same fit count once."""
    clean = _result([0] * 20, [1.001] * 20)
    assert clean.status == "PASS" and clean.passed and clean.nonconverged_share == 0

    at_limit = _result([1, 0] + [0] * 18, [1.001, 1.02] + [1.001] * 18)
    assert at_limit.nonconverged == 2 and at_limit.nonconverged_share == pytest.approx(0.10)
    assert at_limit.status == "PASS"

    over = _result([3, 0, 0] + [0] * 17, [1.05, 1.01, 1.001] + [1.001] * 17)
    # 1.01 itself counts as not converged (R-hat >= 1.01).
    assert over.nonconverged == 2
    over = _result([3, 0, 2] + [0] * 17, [1.05, 1.01, 1.001] + [1.001] * 17)
    assert over.nonconverged == 3 and over.nonconverged_share == pytest.approx(0.15)
    assert over.status == "INCONCLUSIVE" and not over.passed
    assert "3 of 20 fits (15%) had divergences or R-hat >= 1.01" in over.verdict()
    assert over.diagnostics_summary()["nonconverged_share"] == pytest.approx(0.15)

    # A NaN R-hat is not evidence of convergence.
    assert _result([0] * 20, [float("nan")] * 3 + [1.0] * 17).status == "INCONCLUSIVE"
    # A rejection is a FAIL whatever the convergence; a failed fit is inconclusive.
    assert _result([1] * 20, [1.2] * 20, rejected=True).status == "FAIL"
    assert _result([0] * 20, [1.0] * 20, failed=1).status == "INCONCLUSIVE"
