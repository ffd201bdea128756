"""A release fitted lineage by lineage on Dask (``depmap fit --by lineage``), on simulated releases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from pystanmods.batch.cluster import dask_client  # noqa: E402
from pystanmods.data import DataError  # noqa: E402
from pystanmods.depmap import fit_gene_effects_by, read_release, simulated_release  # noqa: E402
from pystanmods.depmap.by_group import NO_LINEAGE, combine, lineage_groups  # noqa: E402

#: Short fits: these tests check the split, the records and the combination;
#: the end-to-end test's checks hold at these settings (see there).
SAMPLER = ["--chains", "2", "--iter-warmup", "150", "--iter-sampling", "150"]
FIT = {"chains": 2, "iter_warmup": 150, "iter_sampling": 150, "progress": False}
SMALL = {"n_genes": 16, "n_essential": 4, "n_nonessential": 4}


@pytest.fixture(scope="module")
def client():
    with dask_client(n_workers=2) as dask:
        yield dask


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pystanmods.cli.main", "depmap", "fit", *args],
                          capture_output=True, text=True, timeout=900)


def drop_from_models(release: Path, lines: list[str]) -> None:
    models = pd.read_csv(release / "Model.csv")
    models[~models["ModelID"].isin(lines)].to_csv(release / "Model.csv", index=False)


def test_lines_split_by_lineage_and_lines_without_one_are_counted(tmp_path: Path) -> None:
    release = simulated_release(tmp_path / "rel", n_lineages=3, lines_per_lineage=(3, 1, 3), seed=2, **SMALL)
    models = pd.read_csv(release / "Model.csv")
    # One line not in Model.csv, one with an empty lineage: neither is put in a lineage.
    models.loc[models["ModelID"] == "ACH-900006", "OncotreeLineage"] = np.nan
    models[models["ModelID"] != "ACH-900001"].to_csv(release / "Model.csv", index=False)
    # One line whose every replicate fails QC: no fit can use it.
    sequences = pd.read_csv(release / "AvanaSequenceMap.csv")
    sequences.loc[sequences["cell_line_name"] == "ACH-900007", "PassesQC"] = False
    sequences.to_csv(release / "AvanaSequenceMap.csv", index=False)
    groups, unassigned, unusable = lineage_groups(read_release(release))
    assert groups == {"Lung": ["ACH-900002", "ACH-900003"], "Myeloid": ["ACH-900005"], "Skin": ["ACH-900004"]}
    assert unassigned == ["ACH-900001", "ACH-900006"] and unusable == ["ACH-900007"]
    # A requested subset is honoured; a requested line that is not screened is reported.
    groups, unassigned, unusable = lineage_groups(read_release(release), ["ACH-900002", "ACH-900005", "ACH-999"])
    assert groups == {"Lung": ["ACH-900002"], "Myeloid": ["ACH-900005"]} and unassigned == []
    assert unusable == ["ACH-999"]


def test_release_without_model_csv_is_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    release = simulated_release(tmp_path / "rel", lines_per_lineage=2, seed=3, **SMALL)
    (release / "Model.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"Model\.csv not found in release directory .*OncotreeLineage"):
        fit_gene_effects_by(release, out=tmp_path / "out", **FIT)
    run = cli(str(release), "--all", "--by", "lineage", "-o", str(tmp_path / "out"))
    assert run.returncode == 2 and "Model.csv not found" in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    # Refused before any work: no output directory was made.
    assert not (tmp_path / "out").exists()


def test_unknown_options_and_cluster_flags_without_by_are_refused_before_any_work(tmp_path: Path) -> None:
    release = simulated_release(tmp_path / "rel", lines_per_lineage=2, seed=3, **SMALL)
    with pytest.raises(TypeError, match=r"\['iter_warmpu'\] are not settings"):
        fit_gene_effects_by(release, out=tmp_path / "out", iter_warmpu=10)
    with pytest.raises(ValueError, match="covariates of a fit by lineage"):
        fit_gene_effects_by(release, out=tmp_path / "out", covariates=["lineage"])
    assert not (tmp_path / "out").exists()
    run = cli(str(release), "--all", "--workers", "2", "-o", str(tmp_path / "out"))
    assert run.returncode == 2 and "add --by lineage" in run.stderr, run.stderr[-2000:]


def test_combine_stacks_rows_and_leaves_missing_genes_empty(tmp_path: Path) -> None:
    a = pd.DataFrame({"G1 (1)": [-1.0, -0.5], "G2 (2)": [0.1, 0.2]}, index=pd.Index(["ACH-1", "ACH-2"], name="ModelID"))
    b = pd.DataFrame({"G2 (2)": [0.3], "G3 (3)": [-2.0]}, index=pd.Index(["ACH-3"], name="ModelID"))
    for stem, frame in (("A", a), ("B", b)):
        (tmp_path / stem).mkdir()
        for name in ("gene_effect.csv", "gene_dependency.csv"):
            frame.to_csv(tmp_path / stem / name)
    summary = pd.DataFrame({"lineage": ["A", "B", "C"], "status": ["ok", "ok", "failed"],
                            "directory": ["A", "B", ""]})
    combine(tmp_path, summary)
    effect = pd.read_csv(tmp_path / "gene_effect.csv", index_col=0)
    assert effect.index.name == "ModelID" and list(effect.index) == ["ACH-1", "ACH-2", "ACH-3"]
    assert list(effect.columns) == ["G1 (1)", "G2 (2)", "G3 (3)"]
    assert effect.loc["ACH-3", "G2 (2)"] == 0.3 and effect.loc["ACH-1", "G1 (1)"] == -1.0
    assert np.isnan(effect.loc["ACH-3", "G1 (1)"]) and effect[["G3 (3)"]].isna().sum().item() == 2
    # Empty cells in the file, as DepMap writes a gene not screened in a line.
    assert (tmp_path / "gene_effect.csv").read_text().splitlines()[3] == "ACH-3,,0.3,-2.0"
    # A line in two lineages' outputs is refused, not averaged or duplicated.
    b.rename(index={"ACH-3": "ACH-2"}).to_csv(tmp_path / "B" / "gene_effect.csv")
    with pytest.raises(DataError, match="ACH-2"):
        combine(tmp_path, summary)
    # With no finished lineage the stale combined files go.
    combine(tmp_path, summary.assign(status="failed"))
    assert not (tmp_path / "gene_effect.csv").exists()


def test_by_lineage_end_to_end_on_a_local_cluster_then_reused(tmp_path: Path) -> None:
    # Three lineages of 3 lines, a fourth of one line (skipped), and a line
    # that Model.csv does not list (counted, not fitted).
    release = simulated_release(tmp_path / "rel", n_lineages=4, lines_per_lineage=(3, 3, 4, 1), seed=5)
    drop_from_models(release, ["ACH-900010"])
    out = tmp_path / "out"
    command = [str(release), "--all", "--by", "lineage", "--workers", "2", *SAMPLER, "--seed", "4", "--quiet",
               "-o", str(out)]
    run = cli(*command)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "3 of 4 lineages finished (0 from an earlier run), 1 skipped with fewer than 2 lines, " \
           "1 screened lines without a lineage" in run.stdout
    summary = pd.read_csv(out / "lineages.csv").set_index("lineage")
    assert list(summary.index) == ["Bowel", "Lung", "Myeloid", "Skin", NO_LINEAGE]
    assert list(summary["status"]) == ["skipped", "ok", "ok", "ok", "skipped"]
    assert summary.loc["Bowel", "reason"].startswith("1 cell line")
    assert summary.loc[NO_LINEAGE, "models"] == "ACH-900010"
    effect = pd.read_csv(out / "gene_effect.csv", index_col=0)
    dependency = pd.read_csv(out / "gene_dependency.csv", index_col=0)
    truth = pd.read_csv(release / "truth_gene_effect.csv", index_col=0)
    fitted = {lineage: summary.loc[lineage, "models"].split(";") for lineage in ("Lung", "Myeloid", "Skin")}
    assert sum(map(len, fitted.values())) == 9 and fitted["Myeloid"] == ["ACH-900007", "ACH-900008", "ACH-900009"]
    # Rows stack: each lineage's lines, in lineage order, with the release's exact gene labels.
    assert effect.index.name == "ModelID" and list(effect.index) == sum(fitted.values(), [])
    assert sorted(effect.columns) == sorted(truth.columns) and effect.shape == dependency.shape == (9, 30)
    assert not effect.isna().any().any()
    for lineage, lines in fitted.items():
        own = pd.read_csv(out / lineage / "gene_effect.csv", index_col=0)
        pd.testing.assert_frame_equal(effect.loc[lines], own, check_exact=True)
    for k, (lineage, lines) in enumerate(fitted.items()):
        rows = effect.loc[lines]
        # The sign of the scaling: the scale is a distance, so a fit that put
        # the essentials above the nonessentials would show them at +1.
        assert rows.filter(like="ESS").to_numpy().mean() < rows.filter(like="NON").to_numpy().mean() - 0.5
        # The lineage's own selective gene (true theta -1.2 below the others'
        # 0, about -0.8 after scaling) is its lowest SEL gene: rows given to
        # the wrong lineage would put another lineage's SEL gene lowest.
        own_gene = {"Lung": "SEL1", "Skin": "SEL2", "Myeloid": "SEL3"}[lineage]
        means = rows.filter(like="SEL").mean()
        assert means.idxmin().startswith(own_gene), (lineage, means.to_dict())
        # And the lines' effects follow the truth: simulated theta against the
        # posterior means, 30 genes per line; the prepared logFC alone
        # correlates 0.94 with theta, and the fit scales linearly.
        for line in lines:
            assert np.corrcoef(rows.loc[line], truth.loc[line, rows.columns])[0, 1] > 0.8, line

    # A second run finds every lineage finished with the same files and fits nothing.
    again = cli(*command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "3 of 4 lineages finished (3 from an earlier run)" in again.stdout
    assert set(pd.read_csv(out / "lineages.csv").dropna(subset=["action"])["action"]) == {"reused"}
    pd.testing.assert_frame_equal(pd.read_csv(out / "gene_effect.csv", index_col=0), effect, check_exact=True)


def test_a_damaged_lineage_output_is_refitted_and_the_rest_reused(client, tmp_path: Path) -> None:
    release = simulated_release(tmp_path / "rel", n_lineages=2, lines_per_lineage=2, seed=6, **SMALL)
    out = tmp_path / "out"
    first = fit_gene_effects_by(release, out=out, client=client, seed=2, **FIT)
    assert first.ok and list(first.summary["action"]) == ["fitted", "fitted"]
    before = pd.read_csv(out / "gene_effect.csv", index_col=0)
    target = out / "Skin" / "gene_effect.csv"
    target.write_bytes(target.read_bytes()[:40])  # a truncated file, as a full disk leaves it
    second = fit_gene_effects_by(release, out=out, client=client, seed=2, **FIT)
    assert dict(zip(second.summary["lineage"], second.summary["action"])) == {"Lung": "reused", "Skin": "fitted"}
    record = json.loads((out / "Skin.json").read_text())
    assert record["status"] == "ok" and record["action"] == "fitted"
    # The refit has the lineage's own seed, so it writes the same matrix again.
    pd.testing.assert_frame_equal(pd.read_csv(out / "gene_effect.csv", index_col=0), before, check_exact=True)
    # Another setting is another fit: nothing is reused.
    third = fit_gene_effects_by(release, out=out, client=client, seed=2, threshold=-0.3, **FIT)
    assert set(third.summary["action"]) == {"fitted"}


def test_a_failing_lineage_is_reported_and_the_others_finish(client, tmp_path: Path) -> None:
    release = simulated_release(tmp_path / "rel", n_lineages=3, lines_per_lineage=2, seed=7, **SMALL)
    # Skin's screens lost every read of the essential controls' guides: its
    # fit has no essential gene to scale to, and fails on its worker.
    counts = pd.read_csv(release / "AvanaReadcounts.csv", index_col=0)
    guides = pd.read_csv(release / "AvanaGuideMap.csv")
    essential = guides.loc[guides["gene"].str.startswith("ESS"), "sgrna"]
    skin = pd.read_csv(release / "Model.csv").query("OncotreeLineage == 'Skin'")["ModelID"]
    sequences = pd.read_csv(release / "AvanaSequenceMap.csv")
    rows = sequences.loc[sequences["cell_line_name"].isin(skin), "sequence_ID"]
    counts.loc[rows, essential] = np.nan
    counts.to_csv(release / "AvanaReadcounts.csv")
    out = tmp_path / "out"
    run = cli(str(release), "--all", "--by", "lineage", "--scheduler", client.scheduler.address, *SAMPLER,
              "--quiet", "-o", str(out))
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-3000:]
    assert run.stderr.strip().splitlines()[-1] == "pystanmods: 1 lineage(s) failed: Skin"
    summary = pd.read_csv(out / "lineages.csv").set_index("lineage")
    assert dict(summary["status"]) == {"Lung": "ok", "Myeloid": "ok", "Skin": "failed"}
    assert "0 essential" in summary.loc["Skin", "reason"]
    assert "Skin: failed, 2 lines: DataError" in run.stdout
    effect = pd.read_csv(out / "gene_effect.csv", index_col=0)
    assert list(effect.index) == summary.loc["Lung", "models"].split(";") + summary.loc["Myeloid", "models"].split(";")
    assert not (out / "Skin").exists() and not list(out.glob(".Skin*"))
    record = json.loads((out / "Skin.json").read_text())
    assert record["status"] == "failed" and "Traceback" in record["traceback"]


def test_approximate_by_lineage_names_every_file_and_leaves_a_nuts_run_alone(client, tmp_path: Path) -> None:
    # Plumbing and labels, not calibration: Pathfinder against NUTS is measured
    # in benchmarks/results/pathfinder. The centered program's Pathfinder is the
    # one `make models` builds for the tests.
    release = simulated_release(tmp_path / "rel", n_lineages=2, lines_per_lineage=3, seed=8, **SMALL)
    out = tmp_path / "out"
    nuts = fit_gene_effects_by(release, out=out, client=client, seed=2, **FIT)
    nuts_files = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    command = [str(release), "--all", "--by", "lineage", "--approximate", "--parameterization", "centered",
               "--scheduler", client.scheduler.address, "--seed", "2", "--quiet", "-o", str(out)]
    run = cli(*command)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert run.stdout.startswith("APPROXIMATE") and "Lung: ok (fitted)" in run.stdout and "Pareto k" in run.stdout
    # The NUTS run's files are untouched and its records still reuse its lineages.
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()
            and not p.relative_to(out).parts[0].startswith("approximate_")} == nuts_files
    # Every file the approximate run wrote says so in its name, at the top and in each lineage's folder.
    written = [p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.relative_to(out) not in nuts_files]
    assert written and all(p.parts[0].startswith("approximate_") for p in written), written
    assert all(p.name.startswith("approximate_") or p.name == "README.txt" for p in written), written
    summary = pd.read_csv(out / "approximate_lineages.csv").set_index("lineage")
    for lineage in ("Lung", "Skin"):
        assert (out / f"approximate_{lineage}" / "README.txt").read_text().startswith("APPROXIMATE")
    assert list(summary.index) == ["Lung", "Skin"] and list(summary["status"]) == ["ok", "ok"] and set(summary["inference"]) == {"pathfinder (approximate)"}
    assert summary["max_rhat"].isna().all() and summary["pathfinder_pareto_k"].notna().all()
    assert set(pd.read_csv(out / "lineages.csv")["inference"]) == {"nuts"}
    effect = pd.read_csv(out / "approximate_gene_effect.csv", index_col=0)
    truth = pd.read_csv(release / "truth_gene_effect.csv", index_col=0)
    assert list(effect.index) == list(nuts.summary["models"].str.split(";").sum())
    # Rows given to the wrong line or lineage would not follow that line's
    # truth; Pathfinder's means track NUTS's closely (correlation 0.99 on the
    # sample), and NUTS's lines correlate above 0.8 with theta in the
    # end-to-end test above, so 0.7 leaves room only for the approximation.
    for line in effect.index:
        assert np.corrcoef(effect.loc[line], truth.loc[line, effect.columns])[0, 1] > 0.7, line
    again = cli(*command)
    assert again.returncode == 0 and "2 of 2 lineages finished (2 from an earlier run)" in again.stdout
    # Pathfinder takes its own settings, not NUTS's; a misspelt method is refused.
    with pytest.raises(TypeError, match=r"\['chains'\] are not settings of a Pathfinder fit"):
        fit_gene_effects_by(release, out=out, method="pathfinder", chains=2)
    with pytest.raises(ValueError, match="method must be 'nuts' or 'pathfinder', got 'laplace'"):
        fit_gene_effects_by(release, out=out, method="laplace")
