"""The command line, run as a user runs it: a separate process, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import pystanmods as psm
import pystanmods.data.errors as psm_errors


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pystanmods.cli.main", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_list_and_info() -> None:
    listed = run("list")
    assert listed.returncode == 0
    for name in ("model1", "model2", "model3", "model4", "model5", "model5_flat"):
        assert name in listed.stdout
    info = run("info", "model5")
    assert info.returncode == 0
    assert "alpha_s" in info.stdout and "model5_centered.stan" in info.stdout
    # Every model of the catalogue states its limitations, and info prints them.
    words = " ".join(info.stdout.split())  # undo the wrapping
    assert "limitations:" in words and "No gene x cell-line term" in words and "sqrt((C - 1) / C)" in words


def test_simulate_standata_fit(tmp_path: Path) -> None:
    csv, truth, data_json, nc = (tmp_path / n for n in ("d.csv", "t.json", "d.json", "fit.nc"))
    result = run("simulate", "model2", "-o", str(csv), "--seed", "3", "--set", "n_genes=3", "--truth", str(truth))
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(csv)
    assert frame.gene.nunique() == 3
    assert len(json.loads(truth.read_text())["alpha_g"]) == 3

    result = run("standata", "model2", str(csv), "-o", str(data_json))
    assert result.returncode == 0, result.stderr
    data = json.loads(data_json.read_text())
    assert data["N"] == len(frame) and min(data["gene"]) == 1 and max(data["gene"]) == 3

    result = run("fit", "model2", str(csv), "-o", str(nc), "--parameterization", "centered", "--engine", "pystan",
                 "--chains", "2", "--iter-warmup", "200", "--iter-sampling", "200", "--seed", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "max R-hat" in result.stdout
    fit = psm.StanFit.from_netcdf(nc)
    assert fit.model == "model2" and fit.idata.posterior.sizes["draw"] == 200


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("info", "model99"), "no model named 'model99'"),
        (("fit", "model5", "missing.csv", "-o", "x.nc"), "data file missing.csv not found"),
        (("simulate", "model5", "-o", "x.csv", "--set", "n_cells=3"), "no setting"),
        (("compile",), "pass --all"),
    ],
)
def test_bad_input_is_one_line_without_traceback(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("pystanmods: error:")]
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_bad_data_is_named_in_one_line(tmp_path: Path) -> None:
    frame = psm.get_model("model5").simulate(seed=1).data
    frame.loc[:4, "logfc"] = None
    csv = tmp_path / "bad.csv"
    frame.to_csv(csv, index=False)
    result = run("standata", "model5", str(csv), "-o", str(tmp_path / "d.json"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'logfc'" in result.stderr and "5 of" in result.stderr


def test_compile_reports_cached_models() -> None:
    result = run("compile", "model1", "--engine", "pystan", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "model1" in result.stdout and "cached" in result.stdout


def test_standata_grainsize(tmp_path: Path) -> None:
    """--grainsize sets the threaded path for direct CmdStan use, and is refused where there is none."""
    frame = psm.get_model("model_a").simulate(seed=1).data
    csv = tmp_path / "a.csv"
    frame.to_csv(csv, index=False)
    out = tmp_path / "a.json"
    result = run("standata", "model_a", str(csv), "-o", str(out), "--grainsize", "50")
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["grainsize"] == 50
    result = run("standata", "model_a", str(csv), "-o", str(out))
    assert json.loads(out.read_text())["grainsize"] == 0
    frame5 = psm.get_model("model5").simulate(seed=1).data
    frame5.to_csv(tmp_path / "m5.csv", index=False)
    refused = run("standata", "model5", str(tmp_path / "m5.csv"), "-o", str(out), "--grainsize", "50")
    assert refused.returncode == 2 and "model5 has no threaded likelihood" in refused.stderr


@pytest.mark.parametrize("bug", [TypeError("bug"), KeyError("bug"), RuntimeError("bug")])
def test_programming_errors_keep_their_traceback(monkeypatch: pytest.MonkeyPatch, bug: Exception) -> None:
    # A bug must not look like a user's mistake (Model 3's gene-effect table
    # raised KeyError and the CLI printed one line with exit 2).
    from pystanmods.cli import main as cli

    def broken(args: object) -> int:
        raise bug

    monkeypatch.setattr(cli, "cmd_list", broken)
    with pytest.raises(type(bug), match="bug"):
        cli.main(["list"])


@pytest.mark.parametrize(
    "problem",
    [psm_errors.DataError("bad column"), psm_errors.SetupError("no CmdStan"), psm_errors.UnknownModelError("no model")],
)
def test_bad_input_and_setup_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], problem: Exception
) -> None:
    from pystanmods.cli import main as cli

    def refused(args: object) -> int:
        raise problem

    monkeypatch.setattr(cli, "cmd_list", refused)
    assert cli.main(["list"]) == 2
    assert capsys.readouterr().err == f"pystanmods: error: {problem}\n"
