"""pystanmods.depmap: reading a release, logFC, covariate joins, reports and errors.

Every expected value is computed here directly from the committed CSV files
(tests/data/depmap-sample, a real DepMap subset), not from the package.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pystanmods import depmap
from pystanmods.cli import depmap as cli
from pystanmods.data import DataError

SAMPLE = Path(__file__).parent / "data" / "depmap-sample"


# ------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def raw() -> dict[str, pd.DataFrame]:
    """The sample release's tables, read plainly."""
    return {
        "counts": pd.read_csv(SAMPLE / "AvanaReadcounts.csv", index_col=0),
        "seq": pd.read_csv(SAMPLE / "AvanaSequenceMap.csv"),
        "guides": pd.read_csv(SAMPLE / "AvanaGuideMap.csv"),
        "cn": pd.read_csv(SAMPLE / "OmicsCNGene.csv", index_col=0),
        "expr": pd.read_csv(SAMPLE / "OmicsExpressionProteinCodingGenesTPMLogp1.csv", index_col=0),
        "mut": pd.read_csv(SAMPLE / "OmicsSomaticMutations.csv"),
    }


@pytest.fixture(scope="module")
def prepared() -> depmap.Prepared:
    """The whole subset, all covariates, missing values kept, counts kept."""
    return depmap.prepare(SAMPLE, keep_counts=True, verbose=False)


def copy_release(tmp_path: Path) -> Path:
    """A writable copy of the sample release to break."""
    dest = tmp_path / "release"
    shutil.copytree(SAMPLE, dest)
    return dest


def assert_conserved(report: depmap.PrepareReport) -> None:
    """Every unit is kept or dropped for exactly one reason."""
    assert report.rows_in == report.rows_out + sum(report.rows_dropped.values())
    assert report.replicates_in == report.replicates_kept + sum(report.replicates_dropped.values())
    assert report.guides_in == report.guides_kept + sum(report.guides_dropped.values())
    assert report.guides_kept == report.kept["guides"]
    for unit in (report.cell_lines, report.genes):
        assert unit["in"] == unit["kept"] + sum(unit["dropped"].values())
    assert report.cell_lines["kept"] == report.kept["cell_lines"]
    assert report.genes["kept"] == report.kept["genes"]


# ------------------------------------------------------------------- logFC
@pytest.mark.parametrize(
    ("sgrna", "sequence_id"),
    [
        # KRAS, a replicate of pDNA batch Avana-3
        ("AGAGGAGTACAGTGCAATGA", "HEL-311Cas9_RepA_p4_Avana-3"),
        # MYB, the other replicate of that screen
        ("ACTGGAATTCTACAATGCGT", "HEL-311Cas9_RepB_p4_Avana-3"),
        # AAMP in a replicate of batch Avana-4 (a different pDNA reference)
        ("CGATAATCTCTTCATCACCA", "T47D-311Cas9-RepA-p6_Avana-4"),
    ],
)
def test_logfc_equals_direct_computation(raw: dict, prepared: depmap.Prepared, sgrna: str, sequence_id: str) -> None:
    counts, seq, guides = raw["counts"], raw["seq"], raw["guides"]
    assert sgrna in guides["sgrna"].values and sequence_id in counts.index
    # The guides that enter each sample's total: one alignment, no DropReason.
    usable = guides.loc[(guides["nAlignments"] == 1) & guides["DropReason"].isna(), "sgrna"]
    batch = seq.set_index("sequence_ID").loc[sequence_id, "pDNA_batch"]
    pdna = seq.loc[(seq["cell_line_name"] == "pDNA") & (seq["pDNA_batch"] == batch), "sequence_ID"]
    assert len(pdna) == 1  # one pDNA sample per batch in this release

    def rpm(sample: str) -> float:
        row = counts.loc[sample, usable]
        return 1e6 * row[sgrna] / np.nansum(row.to_numpy(dtype=float)) + 1.0

    expected = np.log2(rpm(sequence_id) / rpm(pdna.iloc[0]))
    frame = prepared.frame
    got = frame.loc[(frame["sgrna"] == sgrna) & (frame["sequence_id"] == sequence_id)]
    assert len(got) == 1
    assert got["logfc"].iloc[0] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert got["counts_final"].iloc[0] == counts.loc[sequence_id, sgrna]
    assert got["counts_initial"].iloc[0] == counts.loc[pdna.iloc[0], sgrna]
    assert got["pdna_batch"].iloc[0] == batch


def test_logfc_does_not_depend_on_the_gene_selection(prepared: depmap.Prepared) -> None:
    # Normalisation is over every quality-filtered guide, not the selected ones.
    small = depmap.prepare(SAMPLE, genes=["KRAS", "MYB (4602)", "2099"], verbose=False).frame
    assert set(small["gene"]) == {"KRAS", "MYB", "ESR1"}
    merged = small.merge(prepared.frame, on=["sgrna", "sequence_id"], suffixes=("", "_all"))
    assert len(merged) == len(small)
    np.testing.assert_allclose(merged["logfc"], merged["logfc_all"], rtol=1e-12)


def test_one_row_per_sgrna_and_replicate(prepared: depmap.Prepared) -> None:
    frame = prepared.frame
    assert not frame.duplicated(["sgrna", "sequence_id"]).any()
    assert frame["logfc"].notna().all() and np.isfinite(frame["logfc"]).all()
    for column in ("gene", "entrez_id", "sgrna", "cell_line", "replicate", "pdna_batch", "logfc"):
        assert column in frame
    assert set(frame["replicate"]) <= {"A", "B", "C", "D"}


# ------------------------------------------------------- counts conserved
def test_counts_match_the_source_tables(raw: dict, prepared: depmap.Prepared) -> None:
    counts, seq, guides = raw["counts"], raw["seq"], raw["guides"]
    report = prepared.report
    screened = seq[seq["cell_line_name"] != "pDNA"]
    failed = screened[~screened["PassesQC"]]
    assert report.replicates_in == len(screened) == 92
    assert report.replicates_dropped["failed_qc"] == len(failed) == 6
    # Screens none of whose replicates pass.
    passing = set(screened.loc[screened["PassesQC"], "ScreenID"])
    assert report.screens_failed_qc == sorted(set(failed["ScreenID"]) - passing)
    assert report.cell_lines["in"] == screened["cell_line_name"].nunique()
    assert report.cell_lines["dropped"]["failed_qc"] == len(set(screened["cell_line_name"]) - set(
        screened.loc[screened["PassesQC"], "cell_line_name"]))

    assert report.guides_in == counts.shape[1] == 260
    assert report.guides_dropped["multiple_alignments"] == int((guides["nAlignments"] > 1).sum()) == 14
    assert report.genes["in"] == guides["gene"].nunique() == 65
    # U2AF1 and GNAQ have only multiply-aligned guides.
    single = set(guides.loc[guides["nAlignments"] == 1, "gene"])
    assert report.genes["dropped"]["no_usable_guide"] == len(set(guides["gene"]) - single) == 2

    kept_reps = screened.loc[screened["PassesQC"], "sequence_ID"]
    kept_guides = guides.loc[guides["nAlignments"] == 1, "sgrna"]
    assert report.rows_in == len(kept_reps) * len(kept_guides)
    assert report.rows_dropped["na_count"] == int(counts.loc[kept_reps, kept_guides].isna().to_numpy().sum())
    assert_conserved(report)
    assert report.rows_out == len(prepared.frame)


def test_low_pdna_rows_are_dropped_and_counted(raw: dict, prepared: depmap.Prepared) -> None:
    counts, seq, guides = raw["counts"], raw["seq"], raw["guides"]
    usable = guides.loc[guides["nAlignments"] == 1, "sgrna"]
    pdna = seq[seq["cell_line_name"] == "pDNA"].set_index("sequence_ID")
    reps = seq[(seq["cell_line_name"] != "pDNA") & seq["PassesQC"]]
    expected = 0
    for sample, batch in pdna["pDNA_batch"].items():
        row = counts.loc[sample, usable]
        low = (1e6 * row / row.sum()) < 1.0
        n_reps_in_batch = int((reps["pDNA_batch"] == batch).sum())
        not_na = counts.loc[reps.loc[reps["pDNA_batch"] == batch, "sequence_ID"], usable].notna()
        expected += int(not_na.loc[:, low.to_numpy()].to_numpy().sum())
        assert n_reps_in_batch > 0
    assert expected > 0  # the subset has such guides
    assert prepared.report.rows_dropped["low_pdna"] == expected
    without = depmap.prepare(SAMPLE, min_pdna_rpm=0, covariates=[], verbose=False)
    assert without.report.rows_dropped["low_pdna"] == 0
    assert without.report.rows_out == prepared.report.rows_out + expected


def test_selection_and_missing_drop_conserve_counts() -> None:
    lines = ["ACH-000004", "ACH-000147", "ACH-999999"]
    frame, report = depmap.prepare(
        SAMPLE, genes=["KRAS", "POU2AF3", "NOSUCHGENE"], cell_lines=lines, missing="drop", verbose=False
    )
    assert report.genes_not_found == ["NOSUCHGENE"]
    assert report.cell_lines_not_found == ["ACH-999999"]
    assert set(frame["cell_line"]) <= set(lines)
    assert_conserved(report)
    # POU2AF3 has no copy number and no expression: dropped under rna first.
    assert "POU2AF3" not in set(frame["gene"])
    assert report.rows_dropped["missing_rna"] > 0
    assert report.genes["dropped"]["no_rows_left"] >= 1
    for column in ("rna", "copy_number", "is_mutated"):
        assert frame[column].notna().all()


def test_missing_keep_counts_na_rows(prepared: depmap.Prepared) -> None:
    frame, report = prepared
    for covariate, column in (("rna", "rna"), ("copy_number", "copy_number"), ("is_mutated", "is_mutated")):
        assert report.rows_na[covariate] == int(frame[column].isna().sum())
        assert report.coverage[covariate]["rows"] + report.rows_na[covariate] == len(frame)
    text = str(report)
    assert "rows dropped" in text and "cell lines kept" in text and "genes kept" in text


# ------------------------------------------------------------- covariates
@pytest.mark.parametrize(
    ("gene", "label", "cell_line"),
    [("MYB", "MYB (4602)", "ACH-000004"), ("SOX10", "SOX10 (6663)", "ACH-000147"), ("KRAS", "KRAS (3845)", "ACH-000004")],
)
def test_covariates_match_source_matrices(raw: dict, prepared: depmap.Prepared, gene: str, label: str, cell_line: str) -> None:
    frame = prepared.frame
    rows = frame[(frame["gene"] == gene) & (frame["cell_line"] == cell_line)]
    assert len(rows) > 0
    assert (rows["entrez_id"] == int(label.split("(")[1].rstrip(")"))).all()
    assert rows["rna_log2tpm"].iloc[0] == pytest.approx(raw["expr"].loc[cell_line, label])
    cn = raw["cn"].loc[cell_line, label]
    assert rows["copy_number"].iloc[0] == pytest.approx(cn)
    assert rows["log2_copy_number"].iloc[0] == pytest.approx(np.log2(max(cn, 2.0**-5)))
    mut = raw["mut"]
    listed = ((mut["ModelID"] == cell_line) & (mut["Gene"] == label)).any()
    assert (rows["is_mutated"] == int(listed)).all()
    # rna: z-score of log2(TPM+1) over the gene's distinct cell lines in the frame.
    units = frame.loc[frame["gene"] == gene, ["cell_line", "rna_log2tpm"]].drop_duplicates("cell_line")
    values = raw["expr"].loc[units["cell_line"], label]
    z = (raw["expr"].loc[cell_line, label] - values.mean()) / values.std(ddof=1)
    assert (rows["rna"] - z).abs().max() < 1e-9


def test_mutated_and_unprofiled_cells(raw: dict, prepared: depmap.Prepared) -> None:
    frame, mut = prepared.frame, raw["mut"]
    # A listed (cell line, gene) pair that is screened here is 1.
    hits = mut.assign(gene=mut["Gene"].str.split(" ").str[0])
    pairs = hits.merge(frame[["gene", "cell_line", "is_mutated"]], left_on=["gene", "ModelID"], right_on=["gene", "cell_line"])
    assert len(pairs) > 0 and (pairs["is_mutated"] == 1).all()
    # A screened line absent from the mutation table is NA, not 0.
    unprofiled = set(frame["cell_line"]) - set(mut["ModelID"])
    assert unprofiled
    assert frame.loc[frame["cell_line"].isin(unprofiled), "is_mutated"].isna().all()


def test_copy_number_gaps_and_deletions(raw: dict, prepared: depmap.Prepared) -> None:
    frame = prepared.frame
    # POU2AF3 has no column in the copy-number table.
    assert "POU2AF3 (120376)" not in raw["cn"].columns
    assert frame.loc[frame["gene"] == "POU2AF3", "copy_number"].isna().all()
    floored = frame["copy_number"] < 2.0**-5
    assert floored.sum() == prepared.report.adjusted["copy_number_floored"] > 0
    assert (frame.loc[floored, "log2_copy_number"] == -5).all()


def test_lineage_from_model_table(tmp_path: Path) -> None:
    release = copy_release(tmp_path)
    pd.DataFrame(
        {"ModelID": ["ACH-000004", "ACH-000147"], "OncotreeLineage": ["Myeloid", "Breast"], "Other": [1, 2]}
    ).to_csv(release / "Model.csv", index=False)
    frame, report = depmap.prepare(release, genes=["KRAS"], covariates=["lineage"], verbose=False)
    assert (frame.loc[frame["cell_line"] == "ACH-000004", "lineage"] == "Myeloid").all()
    assert (frame.loc[frame["cell_line"] == "ACH-000147", "lineage"] == "Breast").all()
    assert report.rows_na["lineage"] == int((~frame["cell_line"].isin(["ACH-000004", "ACH-000147"])).sum())


def test_optional_tables_may_be_absent(tmp_path: Path) -> None:
    release = copy_release(tmp_path)
    (release / "OmicsExpressionProteinCodingGenesTPMLogp1.csv").unlink()
    (release / "OmicsSomaticMutations.csv").unlink()
    frame, report = depmap.prepare(release, genes=["KRAS"], verbose=False)
    assert "rna" not in frame and "is_mutated" not in frame and "copy_number" in frame
    assert report.files["expression"] is None
    assert "model5" in depmap.supported_models(frame) and "model4" not in depmap.supported_models(frame)
    with pytest.raises(FileNotFoundError, match="OmicsExpressionProteinCodingGenesTPMLogp1.csv"):
        depmap.prepare(release, covariates=["rna"], verbose=False)


# ----------------------------------------------------------------- errors
def test_missing_required_file(tmp_path: Path) -> None:
    release = copy_release(tmp_path)
    (release / "AvanaGuideMap.csv").unlink()
    with pytest.raises(FileNotFoundError, match="AvanaGuideMap.csv"):
        depmap.read_release(release)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        depmap.read_release(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("AvanaSequenceMap.csv", "pDNA_batch", "pDNABatch"),
        ("AvanaGuideMap.csv", "sgrna", "guide"),
        ("OmicsSomaticMutations.csv", "ModelID", "Model"),
    ],
)
def test_renamed_column(tmp_path: Path, file: str, old: str, new: str) -> None:
    release = copy_release(tmp_path)
    table = pd.read_csv(release / file)
    table.rename(columns={old: new}).to_csv(release / file, index=False)
    with pytest.raises(DataError, match=rf"{file}: missing column '{old}' \({len(table)} rows"):
        depmap.read_release(release)


def test_gene_label_not_symbol_entrez(tmp_path: Path) -> None:
    release = copy_release(tmp_path)
    guides = pd.read_csv(release / "AvanaGuideMap.csv")
    guides.loc[guides["gene"] == "KRAS (3845)", "gene"] = "KRAS"
    guides.to_csv(release / "AvanaGuideMap.csv", index=False)
    with pytest.raises(DataError, match=r"AvanaGuideMap.csv: column 'gene' .*SYMBOL \(ENTREZ_ID\).* 4 of 260 do not, e\.g\. 'KRAS'"):
        depmap.read_release(release)

    release = copy_release(tmp_path / "b")
    cn = pd.read_csv(release / "OmicsCNGene.csv", index_col=0)
    cn.rename(columns={"MYB (4602)": "MYB_4602"}).to_csv(release / "OmicsCNGene.csv")
    with pytest.raises(DataError, match=r"OmicsCNGene.csv: column headers .* 1 of 64 do not, e\.g\. 'MYB_4602'"):
        depmap.read_release(release)


def test_sequence_map_names_samples_absent_from_counts(tmp_path: Path) -> None:
    release = copy_release(tmp_path)
    counts = pd.read_csv(release / "AvanaReadcounts.csv", index_col=0)
    counts.drop(index=["HEL-311Cas9_RepA_p4_Avana-3"]).to_csv(release / "AvanaReadcounts.csv")
    with pytest.raises(DataError, match=r"AvanaSequenceMap.csv: 1 of 95 sequence_ID values have no row in AvanaReadcounts.csv: 'HEL-311Cas9_RepA_p4_Avana-3'"):
        depmap.read_release(release)


def test_all_na_rows(tmp_path: Path) -> None:
    release = copy_release(tmp_path)
    counts = pd.read_csv(release / "AvanaReadcounts.csv", index_col=0)
    counts.loc["HEL-311Cas9_RepB_p4_Avana-3"] = np.nan
    counts.to_csv(release / "AvanaReadcounts.csv")
    with pytest.raises(DataError, match=r"AvanaReadcounts.csv: 1 of 95 rows have no read counts at all \(all NA\): 'HEL-311Cas9_RepB_p4_Avana-3'"):
        depmap.read_release(release)


def test_all_na_covariate_row(tmp_path: Path) -> None:
    # A cell line whose copy-number row is empty lacks copy number: NA, counted.
    release = copy_release(tmp_path)
    cn = pd.read_csv(release / "OmicsCNGene.csv", index_col=0)
    cn.loc["ACH-000004"] = np.nan
    cn.to_csv(release / "OmicsCNGene.csv")
    frame, report = depmap.prepare(release, genes=["KRAS"], covariates=["copy_number"], missing="drop", verbose=False)
    assert "ACH-000004" not in set(frame["cell_line"])
    assert report.rows_dropped["missing_copy_number"] > 0
    assert report.cell_lines["dropped"]["no_rows_left"] == 1
    assert_conserved(report)


def test_non_numeric_counts(tmp_path: Path) -> None:
    release = copy_release(tmp_path)
    text = (release / "AvanaReadcounts.csv").read_text().splitlines()
    fields = text[1].split(",")
    fields[3] = "lots"
    text[1] = ",".join(fields)
    (release / "AvanaReadcounts.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"AvanaReadcounts.csv: read counts must be numeric.*'lots'"):
        depmap.read_release(release)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="missing must be one of"):
        depmap.prepare(SAMPLE, missing="impute", verbose=False)
    with pytest.raises(DataError, match="none of the 1 requested genes"):
        depmap.prepare(SAMPLE, genes=["NOSUCHGENE"], verbose=False)
    with pytest.raises(DataError, match="none of the 1 requested cell lines"):
        depmap.prepare(SAMPLE, cell_lines=["ACH-999999"], verbose=False)


# ---------------------------------------------------------- frame -> models
def test_frame_fits_models_without_renaming(prepared: depmap.Prepared) -> None:
    from pystanmods.models import get_model

    frame = prepared.frame
    supported = depmap.supported_models(frame)
    assert {"model2", "model3", "model4", "model5", "model5_flat"} <= set(supported)
    for name in ("model4", "model5"):
        usable = depmap.check_frame(frame, name, verbose=False)
        stan = get_model(name).prepare(usable)
        assert stan.data["N"] == len(usable)
    # Model 4 uses rows with expression only; the others are counted as dropped.
    usable = depmap.check_frame(frame, "model4", verbose=False)
    assert len(usable) == int(frame["rna"].notna().sum())
    with pytest.raises(DataError, match="model4: .* rows have NA"):
        depmap.check_frame(frame, "model4", missing="error")


# ------------------------------------------------------------------ CLI
def test_cli_prepare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    genes = tmp_path / "genes.txt"
    genes.write_text("KRAS\n# a comment\nMYB (4602)\n\n")
    out = tmp_path / "out" / "tidy.csv"
    assert cli.main(["prepare", str(SAMPLE), "--genes-file", str(genes), "--missing", "drop", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    frame = pd.read_csv(out)
    assert set(frame["gene"]) == {"KRAS", "MYB"}
    assert f"wrote {len(frame)} rows" in printed and "rows dropped" in printed and "cell lines kept" in printed


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["prepare", str(tmp_path / "missing"), "-o", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pystanmods: error:") and "does not exist" in err and "\n" not in err


def test_synonymous_mutations_do_not_count(tmp_path: Path) -> None:
    release = copy_release(tmp_path)
    mut = pd.read_csv(release / "OmicsSomaticMutations.csv")
    # ACH-000004 is profiled; give it a synonymous KRAS change and a missense MYB one.
    extra = pd.DataFrame(
        {
            "ModelID": ["ACH-000004", "ACH-000004"],
            "Gene": ["KRAS (3845)", "MYB (4602)"],
            "DNAChange": ["c.1A>G", "c.2A>G"],
            "ProteinChange": ["p.G12G", "p.G13D"],
            "LikelyGoF": [True, True],
            "Driver": [False, False],
            "LikelyDriver": [True, True],
        }
    )
    before = int(mut["ProteinChange"].str.fullmatch(r"p\.([A-Z*])\d+\1").sum())
    pd.concat([mut, extra]).to_csv(release / "OmicsSomaticMutations.csv", index=False)
    frame, report = depmap.prepare(release, genes=["KRAS", "MYB"], covariates=["is_mutated"], verbose=False)
    cell = frame[frame["cell_line"] == "ACH-000004"]
    assert (cell.loc[cell["gene"] == "KRAS", "is_mutated"] == 0).all()
    assert (cell.loc[cell["gene"] == "MYB", "is_mutated"] == 1).all()
    assert report.adjusted["mutations_synonymous_ignored"] == before + 1


def test_mutation_filter(tmp_path: Path) -> None:
    # Driver is False on most rows of the sample table: filtering on it can only remove hits.
    frame_all = depmap.prepare(SAMPLE, genes=["PIK3CA", "BRAF"], covariates=["is_mutated"], verbose=False).frame
    frame_drv = depmap.prepare(
        SAMPLE, genes=["PIK3CA", "BRAF"], covariates=["is_mutated"], mutation_filter="Driver", verbose=False
    ).frame
    assert frame_drv["is_mutated"].sum() < frame_all["is_mutated"].sum()
    with pytest.raises(DataError, match="mutation_filter 'Nope'"):
        depmap.prepare(SAMPLE, genes=["KRAS"], covariates=["is_mutated"], mutation_filter="Nope", verbose=False)


def _fit_of(model: str, posterior: dict, dims: dict, coords: dict, constant_data: dict | None = None):
    import arviz as az

    from pystanmods.stanfit.fit import StanFit

    idata = az.from_dict(posterior=posterior, constant_data=constant_data, coords=coords, dims=dims)
    idata.posterior.attrs["model"] = model
    return StanFit(idata)


def test_gene_effect_table_from_draws() -> None:
    rng = np.random.default_rng(3)
    # Gene "a" all negative, gene "b" all positive draws, "c" a known normal.
    draws = np.stack([-1 - rng.random((2, 500)), 1 + rng.random((2, 500)), rng.normal(0.5, 2.0, (2, 500))], axis=-1)
    # Observations of genes a, a, b, c through guides 1, 1, 2, 3 (guide s in gene s).
    fit = _fit_of(
        "model5", {"epsilon_g": draws}, {"epsilon_g": ["gene"]}, {"gene": ["a", "b", "c"]},
        {"sgrna": np.array([1, 1, 2, 3]), "sgrna_gene": np.array([1, 2, 3])},
    )
    table = depmap.gene_effect_table(fit)
    assert list(table.columns) == ["model", "variable", "gene", "n_obs", "mean", "sd", "q5", "q95", "p_negative"]
    assert list(table["gene"]) == ["a", "b", "c"]
    assert list(table["p_negative"][:2]) == [1.0, 0.0]
    flat = draws[..., 2].ravel()
    c = table.iloc[2]
    assert c["mean"] == pytest.approx(flat.mean()) and c["sd"] == pytest.approx(flat.std(ddof=1))
    assert c["q5"] == pytest.approx(np.quantile(flat, 0.05)) and c["q95"] == pytest.approx(np.quantile(flat, 0.95))
    assert c["p_negative"] == pytest.approx((flat < 0).mean())
    assert list(table["n_obs"]) == [2, 1, 1]
    # The interval's columns follow prob (they were q05/q95 whatever prob was).
    wide = fit.gene_effects(prob=0.95)
    assert wide.iloc[2]["q2.5"] == pytest.approx(np.quantile(flat, 0.025))
    assert wide.iloc[2]["q97.5"] == pytest.approx(np.quantile(flat, 0.975))


def test_gene_effect_table_of_model3_reads_gamma_g() -> None:
    # Model 3's gene effect is gamma_g (its slope delta_g); the table used to
    # look for alpha_g and raised KeyError on every Model 3 fit.
    rng = np.random.default_rng(4)
    gamma, delta = rng.normal(-1, 0.1, (2, 100, 2)), rng.normal(0.5, 0.1, (2, 100, 2))
    fit = _fit_of(
        "model3", {"gamma_g": gamma, "delta_g": delta}, {"gamma_g": ["gene"], "delta_g": ["gene"]},
        {"gene": ["g1", "g2"]},
        # Three units (g1 in two cell lines, g2 in one), replicates 2, 2 and 1.
        {"unit": np.array([1, 1, 2, 2, 3]), "unit_gene": np.array([1, 1, 2])},
    )
    table = depmap.gene_effect_table(fit)
    assert list(table["variable"]) == ["gamma_g", "gamma_g"]
    assert table["mean"].to_numpy() == pytest.approx(gamma.mean(axis=(0, 1)))
    assert list(table["n_obs"]) == [4, 1]
    both = fit.gene_effects(variables=["gamma_g", "delta_g"])
    assert list(both["variable"]) == ["gamma_g", "gamma_g", "delta_g", "delta_g"]


def test_count_rows_absent_from_sequence_map_are_reported(tmp_path: Path) -> None:
    release = copy_release(tmp_path)
    counts = pd.read_csv(release / "AvanaReadcounts.csv", index_col=0)
    counts.loc["EXTRA-SEQUENCE"] = counts.iloc[0]
    counts.to_csv(release / "AvanaReadcounts.csv")
    rel = depmap.read_release(release)
    assert "EXTRA-SEQUENCE" not in rel.readcounts.index
    assert rel.notes == [
        "AvanaReadcounts.csv: 1 of 96 rows are not in AvanaSequenceMap.csv and were left out: 'EXTRA-SEQUENCE'"
    ]
    report = depmap.prepare(rel, genes=["KRAS"], verbose=False).report
    assert "note: AvanaReadcounts.csv: 1 of 96 rows" in str(report)


def test_each_guide_drop_reason_is_counted(tmp_path: Path) -> None:
    release = copy_release(tmp_path)
    guides = pd.read_csv(release / "AvanaGuideMap.csv")
    single = guides.index[guides["nAlignments"] == 1]
    flagged, no_gene, unused, absent = single[:4]
    guides["DropReason"] = guides["DropReason"].astype(object)
    guides.loc[flagged, "DropReason"] = "in_dropped_guides"
    guides.loc[no_gene, "gene"] = np.nan
    guides.loc[unused, "UsedByChronos"] = False
    guides.drop(index=[absent]).to_csv(release / "AvanaGuideMap.csv", index=False)
    report = depmap.prepare(release, covariates=[], verbose=False).report
    dropped = report.guides_dropped
    assert (dropped["not_in_guide_map"], dropped["drop_reason"], dropped["no_gene"], dropped["not_used_by_chronos"]) == (1, 1, 1, 1)
    assert dropped["multiple_alignments"] == 14
    assert_conserved(report)
