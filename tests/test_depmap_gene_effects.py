"""`pystanmods depmap fit` end to end on the committed real subset, and the guide choices it makes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

from pystanmods.depmap import prepare

SAMPLE = Path(__file__).parent / "data" / "depmap-sample"


def test_multi_aligned_guides_of_one_gene_are_kept_on_request() -> None:
    dropped, report_drop = prepare(SAMPLE, verbose=False)
    kept, report_keep = prepare(SAMPLE, multi_aligned="keep", verbose=False)
    guide_map = pd.read_csv(SAMPLE / "AvanaGuideMap.csv")
    multi = set(guide_map.loc[guide_map["nAlignments"].fillna(1) > 1, "sgrna"])
    assert multi, "the subset has guides aligning to several places"
    assert not (set(dropped["sgrna"]) & multi)
    assert multi & set(kept["sgrna"])
    assert (kept.loc[kept["sgrna"].isin(multi), "n_alignments"] > 1).all()
    assert (kept.loc[~kept["sgrna"].isin(multi), "n_alignments"] == 1).all()
    # Every row is still accounted for in both reports.
    for report in (report_drop, report_keep):
        assert report.rows_in == report.rows_out + sum(report.rows_dropped.values())
    assert report_keep.guides_dropped["multiple_alignments"] < report_drop.guides_dropped["multiple_alignments"]


def test_depmap_fit_writes_depmaps_layout_and_separates_controls(tmp_path: Path) -> None:
    lines = sorted(pd.read_csv(SAMPLE / "AvanaSequenceMap.csv").query("cell_line_name != 'pDNA'")["cell_line_name"].unique())[:8]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pystanmods.cli.main", "depmap", "fit", str(SAMPLE), "--all",
               "--cell-lines", *lines, "--chains", "2", "--iter-warmup", "150", "--iter-sampling", "150",
               "--seed", "3", "--quiet", "-o", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("gene_effect.csv", "gene_dependency.csv", "gene_effect_long.csv", "guide_efficacy.csv",
                 "control_separation.csv", "fit.nc", "qc.png", "README.txt"):
        assert (out / name).is_file(), name
    # 8 lines are a small design: the default ("recommended") is then the non-centered program.
    assert az.from_netcdf(out / "fit.nc").posterior.attrs["parameterization"] == "noncentered"
    effect = pd.read_csv(out / "gene_effect.csv", index_col=0)
    dependency = pd.read_csv(out / "gene_dependency.csv", index_col=0)
    assert effect.index.name == "ModelID" and set(effect.index) <= set(lines)
    assert all(c.endswith(")") and " (" in c for c in effect.columns)  # SYMBOL (ENTREZ_ID)
    assert effect.shape == dependency.shape
    assert ((dependency.to_numpy() >= 0) & (dependency.to_numpy() <= 1)).all()
    # Scaled per draw to the controls: the median over lines of the nonessential
    # line medians of the posterior means sits near 0 and the essentials' near -1.
    essential = pd.read_csv(SAMPLE / "AchillesCommonEssentialControls.csv")["Gene"]
    nonessential = pd.read_csv(SAMPLE / "AchillesNonessentialControls.csv")["Gene"]
    ess = effect.columns.intersection(essential)
    non = effect.columns.intersection(nonessential)
    assert abs(effect[non].median(axis=1).median()) < 0.2
    assert abs(effect[ess].median(axis=1).median() + 1) < 0.2
    # Real common essentials are far more depleted than nonessentials in every
    # screen (Chronos: per-line AUROC 0.91-0.99 on the whole sample); a wrong
    # index, sign or scaling puts the AUROC near 0.5 or below.
    qc = pd.read_csv(out / "control_separation.csv", index_col=0)
    assert len(qc) == len(effect)
    assert qc["auroc"].median() > 0.85 and qc["nnmd"].median() < -2
    long = pd.read_csv(out / "gene_effect_long.csv")
    assert {"mean", "sd", "q_low", "q_high", "p_dependency", "lfsr", "raw_mean", "raw_sd", "gene_max_rhat",
            "gene_min_ess_bulk"} <= set(long.columns)
    assert (long["gene_max_rhat"] > 0.99).all() and (long["gene_min_ess_bulk"] > 0).all()
    assert (long["q_low"] <= long["mean"]).all() and (long["mean"] <= long["q_high"]).all()
    efficacy = pd.read_csv(out / "guide_efficacy.csv")
    assert ((efficacy["efficacy_mean"] > 0) & (efficacy["efficacy_mean"] < 1)).all()
    assert np.isfinite(efficacy["offset_mean"]).all()


def test_depmap_fit_with_covariates_counts_its_drops_and_writes_slopes(tmp_path: Path) -> None:
    lines = sorted(pd.read_csv(SAMPLE / "AvanaSequenceMap.csv").query("cell_line_name != 'pDNA'")["cell_line_name"].unique())[:8]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pystanmods.cli.main", "depmap", "fit", str(SAMPLE), "--all",
               "--cell-lines", *lines, "--covariates", "is_mutated", "rna", "--chains", "2", "--iter-warmup", "150",
               "--iter-sampling", "150", "--seed", "3", "--quiet", "-o", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stderr[-3000:]
    # The subset's mutation table lacks 3 of these 8 lines and expression covers
    # 30 of its 65 genes: both drops are counted, none silent.
    slopes = pd.read_csv(out / "covariate_slopes.csv")
    assert set(slopes["covariate"]) == {"is_mutated", "rna"}
    population = slopes[slopes["gene"] == "(all genes)"]
    assert len(population) == 2
    genes = pd.read_csv(out / "gene_effect.csv", index_col=0).columns
    assert set(slopes.loc[slopes["gene"] != "(all genes)", "gene"]) == set(genes)
    assert len(genes) == 30
    assert ((slopes["q_low"] <= slopes["mean"]) & (slopes["mean"] <= slopes["q_high"])).all()
    assert slopes["p_negative"].between(0, 1).all()
    assert "covariate_slopes.csv" in (out / "README.txt").read_text()


def test_depmap_fit_covariates_are_checked(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "pystanmods.cli.main", "depmap", "fit", str(SAMPLE), "--covariates",
                          "expression", "-o", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "invalid choice: 'expression'" in run.stderr
    from pystanmods.depmap.gene_effects import fit_gene_effects

    with pytest.raises(FileNotFoundError, match="lineage needs Model.csv"):
        fit_gene_effects(SAMPLE, genes=["KRAS"], covariates=["lineage"], verbose=False)
    with pytest.raises(ValueError, match="distinct names"):
        fit_gene_effects(SAMPLE, genes=["KRAS"], covariates=["rna", "rna"], verbose=False)


def test_depmap_fit_checks_its_output_directory_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run = subprocess.run([sys.executable, "-m", "pystanmods.cli.main", "depmap", "fit", str(SAMPLE),
                          "-o", str(blocker)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "is not a directory" in run.stderr


@pytest.mark.parametrize("flag", ["--threshold", "--prob"])
def test_depmap_fit_rejects_a_bad_setting(flag: str, tmp_path: Path) -> None:
    value = "2" if flag == "--prob" else "nan"
    run = subprocess.run([sys.executable, "-m", "pystanmods.cli.main", "depmap", "fit", str(SAMPLE), flag, value,
                          "--genes", "KRAS", "-o", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and run.stderr.startswith("pystanmods: error:")


def test_gene_convergence_points_at_the_gene_whose_chains_disagree() -> None:
    # Two chains that agree on gene A and its guides, and disagree on one guide
    # offset of gene B only (its chains centred 3 sd apart, as a gene with two
    # modes gives): B's row carries the large R-hat, A's stays near 1.
    import arviz as az
    from types import SimpleNamespace

    from pystanmods.depmap.gene_effects import gene_convergence

    rng = np.random.default_rng(0)
    draws = {name: rng.normal(size=(2, 500, n)) for name, n in (("mu_g", 2), ("log_tau_g", 2), ("k_s", 3), ("omega_s", 3))}
    draws["omega_s"][1, :, 2] += 3.0
    idata = az.from_dict(posterior=draws, coords={"gene": ["A", "B"], "sgrna": ["a1", "a2", "b1"]},
                         dims={"mu_g": ["gene"], "log_tau_g": ["gene"], "k_s": ["sgrna"], "omega_s": ["sgrna"]})
    frame = pd.DataFrame({"sgrna": ["a1", "a2", "b1"], "gene": ["A", "A", "B"]})
    out = gene_convergence(SimpleNamespace(idata=idata), frame).set_index("gene")
    assert out.loc["B", "gene_max_rhat"] > 1.5
    assert out.loc["A", "gene_max_rhat"] < 1.02
    assert out.loc["A", "gene_min_ess_bulk"] > 300 and out.loc["B", "gene_min_ess_bulk"] < 50


@pytest.mark.parametrize("n_lines, program", [(19, "noncentered"), (20, "centered")])
def test_recommended_program_follows_the_number_of_cell_lines(monkeypatch: pytest.MonkeyPatch, n_lines: int,
                                                               program: str) -> None:
    """``depmap fit``'s default picks the centered program from CENTERED_FROM_LINES lines up, else non-centered."""
    import pystanmods.sampling
    from pystanmods.depmap.gene_effects import CENTERED_FROM_LINES, fit_gene_effects

    class Chosen(Exception):
        pass

    def fake_fit(model: object, data: object, parameterization: str, **options: object) -> None:
        raise Chosen(parameterization, "inits" in options and options["inits"] is not None)

    monkeypatch.setattr(pystanmods.sampling, "fit", fake_fit)
    assert CENTERED_FROM_LINES == 20
    genes = ["KRAS", "MYC", "RPL3"]
    usable = sorted(prepare(SAMPLE, genes=genes, verbose=False)[0]["cell_line"].unique())  # lines passing QC
    with pytest.raises(Chosen) as chosen:
        fit_gene_effects(SAMPLE, genes=genes, cell_lines=usable[:n_lines], verbose=False)
    # The centered program is sampled from the pilot's jittered inits; the non-centered from Stan's.
    assert chosen.value.args == (program, program == "centered")
