"""Issue 17, the input-and-output rows: each bad input ends in one clear line
(exit 2 on the command line) or a correct result, and nothing computed is lost.

Each test was first run against the code before the fix and failed there (the
input was silently accepted, or ended in a traceback); the messages asserted
are the ones a user needs to fix the input: the column or file, the value and
the row count.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pystanmods as psm
from pystanmods import depmap
from pystanmods.cli.main import main
from pystanmods.data import DataError, InitializationError
from tests.conftest import engines

SAMPLE = Path(__file__).parent / "data" / "depmap-sample"
EXPRESSION = "OmicsExpressionProteinCodingGenesTPMLogp1.csv"

#: Tiny fits: these tests check messages and files, not posteriors.
TINY = {"chains": 1, "iter_warmup": 30, "iter_sampling": 30, "seed": 1, "show_progress": False}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command line in this process: exit status, stdout, stderr."""
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line_error(status: int, err: str) -> str:
    """The single stderr line of a bad-input exit (status 2, no traceback)."""
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pystanmods: error: "), err
    assert "Traceback" not in err
    return lines[0]


def model1_frame(n: int = 20) -> pd.DataFrame:
    return psm.get_model("model1").simulate(seed=1, n_cell_lines=n).data


def copy_release(tmp_path: Path) -> Path:
    dest = tmp_path / "release"
    shutil.copytree(SAMPLE, dest)
    return dest


# --------------------------------------------------------------- labels
def test_csv_labels_are_read_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # genes 001 and 1 are two genes: read as numbers they were merged (G = 4, not 5).
    frame = psm.get_model("model2").simulate(seed=3, n_genes=5, n_cell_lines=4).data
    frame["gene"] = frame["gene"].map(dict(zip(sorted(frame["gene"].unique()), ["001", "1", "2", "3", "4"])))
    csv, out = tmp_path / "d.csv", tmp_path / "d.json"
    frame.to_csv(csv, index=False)
    status, _, err = cli(capsys, "standata", "model2", str(csv), "-o", str(out))
    assert status == 0, err
    data = json.loads(out.read_text())
    assert data["G"] == 5 and data["N"] == len(frame)
    # A mapped label column is read as text too.
    frame.rename(columns={"gene": "symbol"}).to_csv(csv, index=False)
    status, _, err = cli(capsys, "standata", "model2", str(csv), "-o", str(out), "--column", "gene=symbol")
    assert status == 0, err
    assert json.loads(out.read_text())["G"] == 5


def test_mixed_label_types_that_collide_are_an_error() -> None:
    frame = psm.get_model("model2").simulate(seed=3, n_genes=5, n_cell_lines=4).data
    genes = sorted(frame["gene"].unique())
    clash = dict(zip(genes, [1, "1", "g2", "g3", "g4"]))  # int 1 and str "1" would be one gene
    with pytest.raises(DataError) as raised:
        psm.get_model("model2").prepare(frame.assign(gene=frame["gene"].map(clash)))
    message = str(raised.value)
    assert "column 'gene'" in message and "1 (int)" in message and "'1' (str)" in message
    assert f"in 8 of {len(frame)} rows" in message  # 4 cell lines x the two genes that read "1"
    # Mixed types that do not collide are kept apart, as written.
    distinct = dict(zip(genes, [1, "2", "g2", "g3", "g4"]))
    assert psm.get_model("model2").prepare(frame.assign(gene=frame["gene"].map(distinct))).data["G"] == 5


def test_labels_that_look_like_numbers_survive_a_fit_and_its_netcdf(tmp_path: Path) -> None:
    # "001" and "1", "07" and "7" are four labels: kept apart in the fit's
    # coords and, read back from netCDF, still text, not numbers.
    frame = psm.get_model("model5").simulate(seed=1, n_cell_lines=4).data
    genes, cells = ["001", "1", "2", "3", "4"], ["07", "7", "a", "b"]
    frame["gene"] = frame["gene"].map(dict(zip(sorted(frame["gene"].unique()), genes)))
    frame["cell_line"] = frame["cell_line"].map(dict(zip(sorted(frame["cell_line"].unique()), cells)))
    fit = psm.fit("model5", frame, engine="pystan", **TINY)
    assert fit.idata.posterior.gene.values.tolist() == genes
    assert fit.idata.posterior.cell_line.values.tolist() == cells
    fit.to_netcdf(tmp_path / "f.nc")
    back = psm.StanFit.from_netcdf(tmp_path / "f.nc")
    assert back.idata.groups() == fit.idata.groups()
    for group in fit.idata.groups():
        for name, coord in fit.idata[group].coords.items():
            loaded = back.idata[group].coords[name].values
            assert loaded.dtype.kind == coord.values.dtype.kind, (group, name, loaded.dtype)
            assert loaded.tolist() == coord.values.tolist(), (group, name)
    assert back.attrs == fit.attrs


# ------------------------------------------- non-finite release matrices
@pytest.mark.parametrize(
    ("file", "what"),
    [(EXPRESSION, "expression"), ("OmicsCNGene.csv", "copy number"), ("AvanaReadcounts.csv", "read counts")],
)
def test_infinite_values_in_release_matrices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], file: str, what: str
) -> None:
    release = copy_release(tmp_path)
    table = pd.read_csv(release / file, index_col=0).astype(float)
    row, column = table.index[2], table.columns[3]
    table.loc[row, column] = np.inf
    table.loc[table.index[4], table.columns[3]] = -np.inf
    table.to_csv(release / file)
    out = tmp_path / "tidy.csv"
    status, _, err = cli(capsys, "depmap", "prepare", str(release), "-o", str(out))
    line = one_line_error(status, err)
    assert file in line and f"{what} must be finite" in line and "2 cells are infinite" in line
    assert "in 2 rows and 1 columns" in line and repr(str(row)) in line
    assert not out.exists()


# ------------------------------------------------ extreme values, Stan
def test_extreme_values_are_caught_before_stan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = model1_frame()
    frame.loc[[3, 7], "logfc"] = [1e300, -2e7]
    with pytest.raises(DataError) as raised:
        psm.get_model("model1").prepare(frame)
    message = str(raised.value)
    assert "column 'logfc'" in message and "in 2 of 20 rows" in message and "1e+300" in message
    # The boundary itself passes: 1e6 is accepted, the check is strictly above.
    frame.loc[[3, 7], "logfc"] = [1e6, -1e6]
    psm.get_model("model1").prepare(frame)
    frame.loc[3, "rna"] = 1e9
    csv = tmp_path / "d.csv"
    frame.to_csv(csv, index=False)
    status, _, err = cli(capsys, "fit", "model1", str(csv), "-o", str(tmp_path / "f.nc"), "--quiet")
    line = one_line_error(status, err)
    assert "column 'rna'" in line and "1 of 20 rows" in line and "1e+09" in line


SUM_TO_ZERO_CELL_LINES = ["model4", "model5", "model5_flat", "model_c", "model_a", "model_b"]


@pytest.mark.parametrize("name", SUM_TO_ZERO_CELL_LINES)
def test_one_cell_line_is_refused_where_effects_sum_to_zero(name: str) -> None:
    model = psm.get_model(name)
    frame = model.simulate(seed=1).data
    one = frame[frame["cell_line"] == frame["cell_line"].iloc[0]]
    with pytest.warns() if name == "model_b" else _nothing():
        with pytest.raises(DataError) as raised:
            model.prepare(one)
    message = str(raised.value)
    assert f"{name} needs at least two levels of 'cell_line', got 1 over {len(one)} rows" in message
    assert "sum to zero" in message
    two = frame[frame["cell_line"].isin(sorted(frame["cell_line"].unique())[:2])]
    with pytest.warns() if name == "model_b" else _nothing():
        assert model.prepare(two).data["C"] == 2


@pytest.mark.parametrize("name", ["model1", "model2", "model3"])
def test_one_cell_line_is_fine_without_a_cell_line_effect(name: str) -> None:
    model = psm.get_model(name)
    frame = model.simulate(seed=1).data
    one = frame[frame["cell_line"] == frame["cell_line"].iloc[0]]
    assert model.prepare(one).data["N"] == len(one)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_model5_one_cell_line_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = psm.get_model("model5").simulate(seed=1, n_cell_lines=1).data
    csv = tmp_path / "d.csv"
    frame.to_csv(csv, index=False)
    status, _, err = cli(capsys, "fit", "model5", str(csv), "-o", str(tmp_path / "f.nc"), "--quiet")
    assert "model5 needs at least two levels of 'cell_line'" in one_line_error(status, err)


@pytest.mark.parametrize("engine", engines())
def test_initialization_failure_names_the_setting(engine: str) -> None:
    # sigma = 1e-300 is inside its support, but every residual over it is inf:
    # a real Stan initialization failure.
    with pytest.raises(InitializationError) as raised:
        psm.fit("model1", model1_frame(), engine=engine, inits={"sigma": 1e-300}, **TINY)
    message = str(raised.value)
    assert "model1: Stan could not initialise (" in message and ") with 20 rows" in message
    assert "inits setting ({'sigma': 1e-300})" in message


def test_initialization_failure_names_the_column(monkeypatch: pytest.MonkeyPatch) -> None:
    # Values under the 1e6 bound can still defeat Stan's random starts; the
    # message then names the column furthest off scale. The engine is replaced
    # by one that fails as Stan does, to check the translation alone.
    from pystanmods.engines.pystan import PyStanEngine

    def fails(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Initialization failed.")

    monkeypatch.setattr(PyStanEngine, "sample", fails)
    frame = model1_frame()
    frame.loc[5, "logfc"] = 5e5
    with pytest.raises(InitializationError) as raised:
        psm.fit("model1", frame, engine="pystan", **TINY)
    assert "column 'logfc' reaches 500000 (row 5)" in str(raised.value)
    monkeypatch.setattr(PyStanEngine, "sample", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("other")))
    with pytest.raises(RuntimeError, match="^other$"):  # other engine errors pass through untouched
        psm.fit("model1", model1_frame(), engine="pystan", **TINY)


# ------------------------------------------------ truncated guide map
def _truncate_guide_map(release: Path, keep: float) -> int:
    guides = pd.read_csv(release / "AvanaGuideMap.csv")
    kept = guides.iloc[: int(len(guides) * keep)]
    kept.to_csv(release / "AvanaGuideMap.csv", index=False)
    counts = pd.read_csv(release / "AvanaReadcounts.csv", index_col=0, nrows=1)
    return int((~counts.columns.isin(kept["sgrna"])).sum())


def test_truncated_guide_map_fails_with_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    release = copy_release(tmp_path)
    unmapped = _truncate_guide_map(release, 0.6)
    out = tmp_path / "tidy.csv"
    status, _, err = cli(capsys, "depmap", "prepare", str(release), "-o", str(out))
    line = one_line_error(status, err)
    assert f"AvanaGuideMap.csv lists {260 - unmapped} of the 260 guides of AvanaReadcounts.csv" in line
    assert f"{unmapped} guides have no gene" in line and "truncated" in line
    assert not out.exists()
    # Meant to be partial: allowed explicitly, and every lost row is counted.
    with pytest.warns(UserWarning, match=f"{unmapped} guides have no gene"):
        frame, report = depmap.prepare(release, covariates=[], min_guide_map_coverage=0.5, verbose=False)
    replicates = report.replicates_kept
    assert report.rows_dropped["not_in_guide_map"] == replicates * unmapped
    assert report.rows_in == report.rows_out + sum(report.rows_dropped.values())
    assert report.rows_out == len(frame)
    assert "not in guide map" in str(report) and f"note: AvanaGuideMap.csv lists {260 - unmapped} of" in str(report)


def test_guide_map_missing_a_few_guides_warns_and_counts_rows(tmp_path: Path) -> None:
    release = copy_release(tmp_path)
    unmapped = _truncate_guide_map(release, 0.97)
    assert 0 < unmapped < 26
    with pytest.warns(UserWarning, match=f"lists {260 - unmapped} of the 260 guides"):
        report = depmap.prepare(release, covariates=[], verbose=False).report
    full = depmap.prepare(SAMPLE, covariates=[], verbose=False).report
    assert report.rows_in == full.rows_in  # the grid is the release's, lost rows counted
    assert report.rows_dropped["not_in_guide_map"] == report.replicates_kept * unmapped
    assert report.rows_in == report.rows_out + sum(report.rows_dropped.values())


# --------------------------------------------------------------- outputs
@pytest.fixture
def read_only_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    directory = tmp_path / "locked"
    directory.mkdir()
    directory.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.access(directory, os.W_OK):
        # Root ignores permission bits, so a read-only directory is writable
        # for it and correctly let through; judge by the owner's bits instead,
        # as every other user's access is judged.
        from pystanmods import outputs

        def by_owner_bits(path: Path, mode: int) -> bool:
            bits = os.stat(path).st_mode
            return not (mode & os.W_OK and not bits & stat.S_IWUSR) and not (mode & os.X_OK and not bits & stat.S_IXUSR)

        monkeypatch.setattr(outputs, "_writable", by_owner_bits)
    yield directory
    directory.chmod(stat.S_IRWXU)


def _refused_before_any_work(capsys: pytest.CaptureFixture[str], cases: list[tuple[str, ...]], reason: str) -> None:
    for args in cases:
        status, out, err = cli(capsys, *args)
        line = one_line_error(status, err)
        assert reason in line, line
        assert out == ""  # failed before doing anything: no report, no sampling


def test_output_paths_are_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "d.csv"
    model1_frame().to_csv(csv, index=False)
    directory = tmp_path / "adir"
    directory.mkdir()
    under_a_file = str(csv / "sub" / "out")  # its parent can never be created
    _refused_before_any_work(capsys, [
        ("fit", "model1", str(csv), "-o", str(directory), "--quiet"),
        ("standata", "model1", str(csv), "-o", str(directory)),
        ("simulate", "model1", "-o", str(tmp_path / "ok.csv"), "--truth", str(directory)),
        ("depmap", "prepare", str(SAMPLE), "-o", str(directory)),
    ], "is a directory; give a file path inside it")
    _refused_before_any_work(capsys, [
        ("fit", "model1", str(csv), "-o", under_a_file + ".nc", "--quiet"),
        ("simulate", "model1", "-o", under_a_file + ".csv"),
        ("batch", "model1", str(csv), "--by", "gene", "--out", under_a_file),
        ("sbc", "model1", "--sims", "4", "--out", under_a_file),
    ], "is a file, not a directory")
    _refused_before_any_work(capsys, [
        ("batch", "model1", str(csv), "--by", "gene", "--out", str(csv)),
        ("sbc", "model1", "--sims", "4", "--out", str(csv)),
    ], "exists and is not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "d.csv"] and not any(directory.iterdir())


def test_read_only_output_directories_are_refused(
    tmp_path: Path, read_only_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "d.csv"
    model1_frame().to_csv(csv, index=False)
    _refused_before_any_work(capsys, [
        ("fit", "model1", str(csv), "-o", str(read_only_dir / "sub" / "f.nc"), "--quiet"),
        ("simulate", "model1", "-o", str(read_only_dir / "d.csv")),
        ("depmap", "prepare", str(SAMPLE), "-o", str(read_only_dir / "tidy.csv")),
        ("batch", "model1", str(csv), "--by", "gene", "--out", str(read_only_dir / "runs")),
        ("sbc", "model1", "--sims", "4", "--out", str(read_only_dir / "sbc")),
    ], "no write permission")
    assert not any(read_only_dir.iterdir())


def test_a_failed_write_after_sampling_saves_the_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    csv = tmp_path / "d.csv"
    model1_frame().to_csv(csv, index=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    status, _, err = cli(capsys, "fit", "model1", str(csv), "-o", "/dev/full", "--quiet", "--engine", "pystan",
                         "--chains", "1", "--iter-warmup", "30", "--iter-sampling", "30", "--seed", "1")
    line = one_line_error(status, err)
    (saved,) = list(work.glob("pystanmods-fit-*.nc"))
    assert "could not write the fit to /dev/full" in line and f"saved to {saved.resolve()}" in line
    fit = psm.StanFit.from_netcdf(saved)
    assert fit.model == "model1" and fit.idata.posterior.sizes["draw"] == 30
    # The same for the tidy frame of depmap prepare.
    status, _, err = cli(capsys, "depmap", "prepare", str(SAMPLE), "--genes", "KRAS", "-o", "/dev/full")
    line = one_line_error(status, err)
    (tidy,) = list(work.glob("pystanmods-tidy-frame-*.csv"))
    assert f"saved to {tidy.resolve()}" in line and len(pd.read_csv(tidy)) > 0


def test_batch_resume_refits_a_truncated_netcdf(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from pystanmods.batch import fit_groups
    from pystanmods.batch.cluster import dask_client

    frame = pd.concat([model1_frame().assign(gene=g) for g in ("A", "B")], ignore_index=True)
    fit = {"chains": 1, "iter_warmup": 60, "iter_sampling": 60, "progress": False}
    with dask_client(n_workers=1) as client:
        first = fit_groups("model1", frame, by="gene", out=tmp_path, client=client, **fit)
        assert first.ok
        path = first.path("A")
        with open(path, "r+b") as handle:
            handle.truncate(path.stat().st_size // 2)
        again = fit_groups("model1", frame, by="gene", out=tmp_path, client=client, **fit)
    actions = dict(zip(again.summary["group"], again.summary["action"]))
    assert actions == {"A": "fitted", "B": "skipped"}
    assert again.ok and psm.StanFit.from_netcdf(again.path("A")).idata.posterior.sizes["draw"] == 60


def test_a_finished_netcdf_is_checked_against_its_record(tmp_path: Path) -> None:
    # The resume check itself, without a cluster: a file that still opens but
    # is not the one written is refitted, and so is a file of a record written
    # before checksums were kept, once it no longer opens.
    import arviz as az

    from pystanmods.batch.groups import file_sha256, finished_file_ok

    path = tmp_path / "A.nc"
    az.from_dict(posterior={"mu": np.arange(40.0).reshape(2, 20)}).to_netcdf(str(path))
    whole = path.read_bytes()
    record = {"file_sha256": file_sha256(path)}
    assert finished_file_ok(path, record) and finished_file_ok(path, {})
    # Same size, one byte changed.
    changed = bytearray(whole)
    changed[len(whole) // 2] ^= 0xFF
    path.write_bytes(bytes(changed))
    assert not finished_file_ok(path, record)
    # Cut short: the checksum differs, and the file of an older record no longer opens.
    path.write_bytes(whole[: len(whole) // 2])
    assert not finished_file_ok(path, record) and not finished_file_ok(path, {})
    path.unlink()
    assert not finished_file_ok(path, record) and not finished_file_ok(path, {})


# --------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"thin": 0}, "thin must be at least 1, got 0"),
        ({"seed": "abc"}, "seed must be a whole number, got 'abc'"),
        ({"chains": 2.5}, "chains must be a whole number, got 2.5"),
        ({"iter_sampling": 0}, "iter_sampling must be at least 1, got 0"),
    ],
)
def test_sampler_options_are_validated(options: dict, expected: str) -> None:
    settings = {**TINY, **options}
    with pytest.raises(ValueError, match=expected.replace("(", r"\(")):
        psm.fit("model1", model1_frame(), engine="pystan", **settings)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"max_retries": -1}, "max_retries must be at least 0, got -1"),
        ({"sizes": {"n_cell_lines": 0}}, "size n_cell_lines must be at least 1, got 0"),
        ({"prior_scale": -1.0}, "prior_scale must be a positive number, got -1.0"),
        ({"prior_scale": 0}, "prior_scale must be a positive number, got 0"),
    ],
)
def test_sbc_options_are_validated_up_front(kwargs: dict, expected: str) -> None:
    pytest.importorskip("distributed")
    from pystanmods import sbc

    # Raised before any cluster starts or any model compiles.
    with pytest.raises(ValueError, match=expected):
        sbc.run("model1", 4, **kwargs)


def test_sbc_max_retries_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = cli(capsys, "sbc", "model1", "--sims", "4", "--max-retries", "-1", "--out", str(tmp_path / "s"))
    assert "max_retries must be at least 0, got -1" in one_line_error(status, err)
    assert not (tmp_path / "s").exists()


def test_a_mapping_to_a_missing_column_is_an_error() -> None:
    # Decided: an error, not a warning (see resolve_columns): the mapping says
    # what the user meant, and a warning is lost in a batch's worker logs.
    frame = psm.get_model("model2").simulate(seed=3, n_genes=3).data
    with pytest.raises(DataError) as raised:
        psm.get_model("model2").prepare(frame, {"cell_line": "celline"})
    message = str(raised.value)
    assert "maps 'cell_line' to 'celline', which is not a column of the data" in message
    assert f"({len(frame)} rows" in message
    # A canonical name the model does not take at all was, and is, an error.
    with pytest.raises(DataError, match=r"\['sgrna'\], which model2 does not use"):
        psm.get_model("model2").prepare(frame, {"sgrna": "guide"})
    # A correct optional mapping still works.
    renamed = frame.rename(columns={"cell_line": "celline"})
    assert "cell_line" in psm.get_model("model2").prepare(renamed, {"cell_line": "celline"}).frame


# ------------------------------------------------------------ benchmarks
def test_the_recorded_scale_point_command_needs_no_hidden_argument(tmp_path: Path) -> None:
    from benchmarks.run import RESULTS, parse
    from benchmarks.scale import point_file

    recorded = json.loads((RESULTS / "goal_1e6.json").read_text())["command"]
    argv = recorded.replace("[--thin 2]", "--thin 2").split()[3:]  # drop "python -m benchmarks.run"
    args = parse(argv)  # parses as written
    assert (args.scale_point, args.tool, args.chains, args.thin) == (1e6, "pystanmods-centered", 4, 2)
    assert args.point_out is None and args.out == RESULTS
    assert point_file(args.out, args.tool, 1000000) == RESULTS / "scale_point_pystanmods-centered_1000000.json"


def test_a_failing_scale_point_keeps_what_it_measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import scale
    from benchmarks.run import main as bench

    def measured_then_failed(*args: object, point: scale.ScalePoint, **kwargs: object) -> None:
        point.n_obs, point.grad_seconds, point.sampling_seconds = 999_671, 4.07, 2737.7
        raise AttributeError("'NoneType' object has no attribute 'write_text'")

    monkeypatch.setattr(scale, "run_point", measured_then_failed)
    status = bench(["--scale-point", "1000000", "--tool", "pystanmods-centered", "--out", str(tmp_path)])
    assert status == 1
    saved = json.loads((tmp_path / "scale_point_pystanmods-centered_1000000.json").read_text())
    assert saved["error"] == "AttributeError: 'NoneType' object has no attribute 'write_text'"
    assert (saved["n_obs"], saved["grad_seconds"], saved["sampling_seconds"]) == (999_671, 4.07, 2737.7)
    assert saved["peak_rss_mib"] > 0 and saved["wall_seconds"] >= 0
    assert "what it measured is in" in capsys.readouterr().err
    # An unwritable --out is refused before anything runs.
    monkeypatch.setattr(scale, "run_point", lambda *a, **k: pytest.fail("ran despite a bad --out"))
    assert bench(["--scale-point", "1000", "--out", str(tmp_path / "scale_point_pystanmods-centered_1000000.json")]) == 2


def test_a_tiny_scale_point_runs_as_written(tmp_path: Path) -> None:
    from benchmarks.run import main as bench

    status = bench(["--scale-point", "300", "--tool", "pystanmods", "--chains", "1", "--warmup", "20",
                    "--draws", "20", "--seed", "1", "--cores", "1", "--out", str(tmp_path)])
    assert status == 0
    point = json.loads((tmp_path / "scale_point_pystanmods_300.json").read_text())
    assert point["error"] == "" and point["n_obs"] > 200 and point["draws"] == 20
    assert point["grad_seconds"] > 0 and point["sampling_seconds"] > 0 and point["leapfrog_steps"] > 0
