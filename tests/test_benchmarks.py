"""The benchmark harness: its report logic on synthetic numbers, and a tiny real run."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.metrics import RunResult, markdown_table, ratios, stan_parameter_names, write_results


def _run(tool: str, parameterization: str, ess: float, seconds: float, rhat: float = 1.0, divergences: int = 0) -> RunResult:
    return RunResult("model5", tool, parameterization, 300, 4, 1000, 1000, min_ess_bulk=ess,
                     sampling_seconds=seconds, max_rhat=rhat, divergences=divergences)


def test_flags_ratios_and_report(tmp_path):
    ours = _run("pystanmods", "identified", 2000, 4.0)  # 500 ESS/s
    seed_pymc = _run("pymc", "seed", 100, 10.0, rhat=1.05)  # 10 ESS/s, R-hat too high
    nutpie = _run("nutpie", "identified", 3000, 3.0, divergences=2)  # 1000 ESS/s, diverged
    failed = RunResult("model5", "pymc", "identified", 300, 4, 1000, 1000, error="boom")
    assert ours.ess_per_second == pytest.approx(500)
    assert ours.trustworthy and not seed_pymc.trustworthy and not nutpie.trustworthy and not failed.trustworthy
    assert not _run("pystanmods", "identified", 1, 1, rhat=1.01).trustworthy  # the bound itself fails

    rows = {q.peer: q for q in ratios([ours, seed_pymc, nutpie, failed])}
    assert set(rows) == {"pymc (seed)", "nutpie (identified)"}  # failed runs are left out
    assert rows["pymc (seed)"].ratio == pytest.approx(50) and rows["pymc (seed)"].counts_as_win
    assert rows["nutpie (identified)"].ratio == pytest.approx(0.5) and not rows["nutpie (identified)"].counts_as_win

    # An untrustworthy run of ours wins nothing, however fast.
    fast_but_bad = _run("pystanmods", "identified", 10_000, 1.0, divergences=1)
    assert not any(q.counts_as_win for q in ratios([fast_but_bad, seed_pymc]))

    table = markdown_table([ours, seed_pymc, failed], ratios([ours, seed_pymc]))
    assert "**no**" in table and "failed: boom" in table and "50.00×" in table
    paths = write_results(tmp_path, "compare", [ours, seed_pymc, nutpie], {"note": "synthetic"})
    saved = json.loads(paths["json"].read_text())
    assert [r["trustworthy"] for r in saved["runs"]] == [True, False, False]
    assert paths["csv"].read_text().count("\n") == 4
    assert math.isnan(RunResult("m", "t", "p", 1, 1, 1, 1).ess_per_second)


def test_stan_parameter_names():
    code = "data {\n int N;\n}\nparameters {\n  real mu;  // grand mean\n  real<lower=0> sigma;\n  vector[C - 1] beta_c_z;\n}\nmodel {\n}\n"
    assert stan_parameter_names(code) == ["mu", "sigma", "beta_c_z"]


def test_quick_run_of_model1_without_peers(tmp_path):
    """A pystanmods-only run of the harness on Model 1 (no pymc needed)."""
    from benchmarks.run import compare

    results = compare(["model1"], ["pystanmods"], chains=2, warmup=150, draws=150, cores=1, seed=1)
    (result,) = results
    assert not result.error and result.n_obs == 20
    assert result.min_ess_bulk > 0 and result.sampling_seconds > 0 and result.ess_per_second > 0
    assert result.worst_parameter.split("[")[0] in {"alpha", "beta", "sigma"}
    paths = write_results(tmp_path, "compare", results, {})
    assert "pystanmods (identified)" in paths["md"].read_text()


def test_peer_models_share_the_stan_data():
    """The PyMC versions of Models 4 and 5 build from the same Stan data dict."""
    pytest.importorskip("pymc")
    import pystanmods
    from benchmarks import peers

    for name in ("model4", "model5"):
        model = pystanmods.get_model(name)
        data = model.prepare(model.simulate(seed=1).data).data
        seed = peers.BUILDERS[name](data, "seed")
        identified = peers.BUILDERS[name](data, "identified")
        # The identified model has one grand mean fewer, like the Stan program.
        assert len(peers.free_names(seed)) == len(peers.free_names(identified)) + 1
        stan_names = stan_parameter_names(model.stan_code("noncentered"))
        assert sorted(peers.free_names(identified)) == sorted(stan_names)


def test_optimise_medians_and_report():
    from benchmarks.optimise import Variant, _median, markdown

    rounds = [Variant("units (after)", terms=50, sampling_seconds=s, leapfrog_per_chain=1000.0, ms_per_leapfrog=s,
                      min_ess_bulk=100.0, ess_per_second=100.0 / s, max_rhat=r, divergences=d)
              for s, r, d in ((2.0, 1.001, 0), (4.0, 1.02, 1), (3.0, 1.003, 0))]
    median = _median(rounds)
    # Medians per field, the worst R-hat, divergences summed over rounds.
    assert median.ms_per_leapfrog == 3.0 and median.ess_per_second == pytest.approx(100 / 3)
    assert median.max_rhat == 1.02 and median.divergences == 1
    before = Variant("rows (before)", terms=100, sampling_seconds=6.0, leapfrog_per_chain=1000.0, ms_per_leapfrog=6.0,
                     min_ess_bulk=100.0, ess_per_second=100 / 6, max_rhat=1.001)
    result = {"started": "now", "n_obs": 100, "units": 50, "genes": 2, "sgrnas": 8, "cell_lines": 5, "replicates": 2,
              "chains": 2, "warmup": 10, "draws": 10, "seed": 1, "rounds": 3,
              "variants": [vars(before), vars(median)],
              "speedup_per_leapfrog": {"rows (before)": 1.0, "units (after)": 2.0},
              "ess_per_second_ratio": {"rows (before)": 1.0, "units (after)": 2.0}}
    table = markdown(result)
    assert "| units (after) | 50 | 3.00 | 2.00x |" in table and "3 interleaved rounds" in table


def test_cross_term_nonzeros_follows_the_programs_choice():
    from benchmarks.optimise import cross_term_nonzeros

    # Guides x cell lines, counts n_u:   cell 1  cell 2
    #                          guide 1     2       2
    #                          guide 2     2       -
    #                          guide 3     1       2
    # Cell 1: r = 2 leaves guide 3's count (1 nonzero, not 3); cell 2: r = 2
    # leaves guide 2's missing cell (1, not 2).
    data = {"S": 3, "C": 2, "unit_sgrna": [1, 1, 2, 3, 3], "unit_cell_line": [1, 2, 1, 1, 2],
            "unit_n": [2.0, 2.0, 2.0, 1.0, 2.0]}
    assert cross_term_nonzeros(data) == 2
    # A cell line measured for one guide of three keeps r = 0: its one unit.
    ragged = {"S": 3, "C": 1, "unit_sgrna": [2], "unit_cell_line": [1], "unit_n": [2.0]}
    assert cross_term_nonzeros(ragged) == 1


def test_threads_report_pairs_each_threaded_setting_with_its_serial_one():
    from benchmarks.optimise import Variant
    from benchmarks.threads import markdown, settings

    names = [name for name, _, _ in settings(2)]
    assert [(c, t) for _, c, t in settings(2)] == [(1, None), (1, 2), (2, None), (2, 2)]
    variants = [Variant(n, terms=100, sampling_seconds=10.0, leapfrog_per_chain=1000.0, ms_per_leapfrog=ms,
                        min_ess_bulk=50.0, ess_per_second=5.0, max_rhat=float("-inf") if i < 2 else 1.004)
                for i, (n, ms) in enumerate(zip(names, (4.0, 2.5, 5.0, 5.5)))]
    result = {"started": "now", "n_obs": 100, "genes": 2, "sgrnas": 8, "cell_lines": 50, "warmup": 10, "draws": 10,
              "seed": 5, "rounds": 2, "cores": 2, "variants": [vars(v) for v in variants],
              "speedup_per_leapfrog": {names[1]: 4.0 / 2.5, names[3]: 5.0 / 5.5}}
    table = markdown(result)
    assert "| 1 chain, 2 threads | 2.50 | 1.60x |" in table
    assert "| 2 chains, 2 threads each | 5.50 | 0.91x |" in table and "– (1 chain)" in table
    assert "gradient alone" not in table
    result["gradient"] = {"serial_grad_s": 0.030, "threaded_grad_s": 0.020, "grad_speedup": 1.5, "repeats": 8}
    assert "median of 8 alternated fits each): 30.00 ms serial, 20.00 ms with 2 threads, **1.50x**" in markdown(result)


def test_set_costs_scales_stored_steps_to_warmup_and_draws():
    import numpy as np

    from benchmarks.optimise import Variant, set_costs

    variant = Variant("v", min_ess_bulk=40.0)
    # 2 chains x 10 stored draws of 5 steps, after 10 warmup iterations: 100 steps per chain in 2 s.
    set_costs(variant, 2.0, np.full((2, 10), 5), warmup=10)
    assert variant.leapfrog_per_chain == 100.0 and variant.ms_per_leapfrog == 20.0
    assert variant.ess_per_second == 20.0


def test_model_b_sensitivity_table_is_the_committed_result():
    # Model B's docstring table is read against benchmarks/results/model_b_sensitivity.json:
    # each run's row, its null genes' range and its shifted genes' range, to
    # two decimals. A rerun that moves a figure, or a hand-edited table, fails.
    from pathlib import Path

    from pystanmods.models.ragged import ModelB

    result = json.loads((Path(__file__).parents[1] / "benchmarks/results/model_b_sensitivity.json").read_text())
    labels = [f"gene{i:02d}" for i in range(1, 13)]
    matters = dict(zip(labels, result["matters"]))
    rows = {tuple(float(x.rstrip(",")) for x in line.split()[:3]): line.split()[3:]
            for line in ModelB.__doc__.splitlines()
            if len(line.split()) > 3 and line.split()[0].replace(".", "").isdigit() and line.split()[1].endswith(",")}

    def span(values: list[float]) -> str:
        low, high = (f"{v:.2f}" for v in (min(values), max(values)))
        return f"{low} each" if low == high else f"{low}-{high}"

    assert len(rows) == len(result["runs"]) == 7
    for run in result["runs"]:
        key = (run["tau_zeta"], run["sigma_zeta_prior_median"], run["sigma_zeta_prior_log_sd"])
        shifted = [p for g, p in run["p_matters"].items() if matters[g]]
        null = [p for g, p in run["p_matters"].items() if not matters[g]]
        assert (len(shifted), len(null)) == (5, 6)
        table = rows[key]
        assert " ".join(table[:-2]) == f"{span(shifted)} {span(null)}", key
        s = run["sigma_zeta"]
        assert " ".join(table[-2:]) == f"{s['mean']:.2f} ({s['q05']:.2f}-{s['q95']:.2f})", key
        # As the docstring says: R-hat <= 1.011, one divergence at median 0.3 and at log-sd 1.0, else none.
        assert round(run["max_rhat"], 3) <= 1.011
        assert run["divergences"] == (1 if key[1:] in {(0.3, 0.5), (0.75, 1.0)} else 0), key


def test_gradient_cost_copies_are_the_shipped_likelihood_statements():
    # gradient_cost times the likelihood's parts by adding zero-weighted copies
    # of them; a copy that drifts from the program would time something else.
    # Every statement of a copy but its zero-weighted target must be one of the
    # shipped function's (k2 there is square(k_s) here).
    import re
    from pathlib import Path

    from benchmarks.gradient_cost import BLOCK_PRODUCTS, LINE_PART

    def statements(text: str) -> list[str]:
        return [" ".join(s.split()) for s in re.sub(r"//[^\n]*", "", text).split(";")]

    chunk = Path(__file__).resolve().parents[1] / "stan" / "templates" / "chunks" / "gene_effect_functions.stan"
    shipped = set(statements(chunk.read_text().replace("square(k_s)", "k2")))
    for part in (LINE_PART, BLOCK_PRODUCTS):
        copied = [s.strip("{} ") for s in statements(part.replace("square(k_s)", "k2"))]
        copied = [s for s in copied if s and not s.startswith("target += 0 *")]
        assert len(copied) >= 3
        missing = [s for s in copied if s not in shipped]
        assert not missing, f"gradient_cost copies no longer in the shipped likelihood: {missing}"
