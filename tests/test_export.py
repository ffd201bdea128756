"""``pystanmods export``: a model's program and data written for direct CmdStan use."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import pystanmods as psm
from tests.test_cli import run


@pytest.fixture(scope="module")
def model5_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    csv = tmp_path_factory.mktemp("data") / "model5.csv"
    psm.get_model("model5").simulate(seed=103).data.to_csv(csv, index=False)
    return csv


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("pystanmods: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_export_writes_the_program_and_standatas_json(tmp_path: Path, model5_csv: Path) -> None:
    result = run("export", "model5", "--parameterization", "centered", "--data", str(model5_csv), "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["model5_centered.json", "model5_centered.stan"]
    assert (out / "model5_centered.stan").read_text() == psm.get_model("model5").stan_code("centered")
    # The JSON is standata's, byte for byte, and holds the data model5.standata builds.
    standata = run("standata", "model5", str(model5_csv), "-o", "s.json", cwd=tmp_path)
    assert standata.returncode == 0, standata.stderr
    assert (out / "model5_centered.json").read_bytes() == (tmp_path / "s.json").read_bytes()
    import pandas as pd

    expected = psm.get_model("model5").standata(pd.read_csv(model5_csv))
    written = json.loads((out / "model5_centered.json").read_text())
    assert set(written) == set(expected)
    assert written["N"] == expected["N"] == 300
    assert written["logfc"] == pytest.approx(list(expected["logfc"]), rel=1e-15)
    # It says how to build the executable beside them, with the absolute path make needs.
    assert f'make -C "$CMDSTAN" {out.resolve() / "model5_centered"}' in result.stdout


def test_export_without_data_writes_only_the_program(tmp_path: Path) -> None:
    result = run("export", "model1", str(tmp_path / "new" / "dir"))
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "new" / "dir").iterdir()] == ["model1.stan"]
    result = run("export", "model_a", "--parameterization", "recommended", str(tmp_path))
    recommended = psm.get_model("model_a").program_name("recommended")
    assert result.returncode == 0 and (tmp_path / f"{recommended}.stan").is_file()


def test_export_passes_data_options_to_standata(tmp_path: Path) -> None:
    csv = tmp_path / "a.csv"
    psm.get_model("model_a").simulate(seed=1).data.to_csv(csv, index=False)
    result = run("export", "model_a", "--data", str(csv), "--grainsize", "30", "--no-y-rep", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "out" / "model_a_noncentered.json").read_text())
    assert data["grainsize"] == 30 and data["compute_y_rep"] == 0 and data["compute_log_lik"] == 1


def test_bad_model_is_one_line(tmp_path: Path) -> None:
    line = one_error_line(run("export", "model99", "out", cwd=tmp_path))
    assert "no model named 'model99'" in line
    assert not (tmp_path / "out").exists()


def test_unwritable_directory_is_one_line(tmp_path: Path) -> None:
    # A path under a regular file cannot be made, even by root (chmod would not stop root).
    (tmp_path / "afile").write_text("")
    line = one_error_line(run("export", "model5", str(tmp_path / "afile" / "out")))
    assert "cannot write into" in line and "afile" in line


def test_bad_data_leave_no_program_behind(tmp_path: Path) -> None:
    frame = psm.get_model("model5").simulate(seed=1).data
    frame.loc[:4, "logfc"] = None
    csv = tmp_path / "bad.csv"
    frame.to_csv(csv, index=False)
    line = one_error_line(run("export", "model5", "--data", str(csv), "out", cwd=tmp_path))
    assert "'logfc'" in line and "5 of" in line
    assert list((tmp_path / "out").iterdir()) == []


def test_data_options_need_data(tmp_path: Path) -> None:
    line = one_error_line(run("export", "model_a", "--grainsize", "30", "out", cwd=tmp_path))
    assert "--grainsize" in line and "--data" in line
