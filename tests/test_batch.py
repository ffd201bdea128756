"""Batch fits per group on a local Dask cluster of two worker processes."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from pystanmods.batch import fit_groups  # noqa: E402
from pystanmods.batch.cluster import dask_client  # noqa: E402
from pystanmods.data import DataError  # noqa: E402
from pystanmods.models import get_model  # noqa: E402
from pystanmods.stanfit import StanFit  # noqa: E402

#: Small fits: these tests check the batch machinery, not the posteriors.
FIT = {"chains": 2, "iter_warmup": 150, "iter_sampling": 150, "progress": False}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    # The worker-kill test kills a chain outright (SIGKILL), which leaves its
    # httpstan socket file behind: in the workers' temporary directory, here
    # one of the tests' own rather than the shared /tmp. Set for the cluster's
    # whole life, since the nanny starts the replacement worker later.
    previous = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp_path_factory.mktemp("workers_tmp"))
    try:
        with dask_client(n_workers=2) as dask:
            yield dask
    finally:
        if previous is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = previous


def lineage_frame(broken: bool = True) -> pd.DataFrame:
    """Model 2 data for three lineages; lineage C has a missing logFC when ``broken``."""
    model = get_model("model2")
    parts = []
    for i, lineage in enumerate("ABC"):
        part = model.simulate(seed=10 + i, n_genes=3, n_cell_lines=12).data
        part["lineage"] = lineage
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    if broken:
        frame.loc[frame.index[frame["lineage"] == "C"][3], "logfc"] = np.nan
    return frame


def test_one_broken_group_is_recorded_and_rerun_redoes_only_it(client, tmp_path: Path) -> None:
    frame = lineage_frame()
    result = fit_groups("model2", frame, by="lineage", out=tmp_path, client=client, **FIT)
    summary = result.summary.set_index("group")
    assert result.failed == ["C"]
    assert list(summary["status"]) == ["ok", "ok", "failed"]
    assert "logfc" in summary.loc["C", "error"]
    for group in "AB":
        fit = StanFit.from_netcdf(result.path(group))
        assert fit.model == "model2"
        # Compiled once here before dispatch: no worker built the model again.
        assert int(summary.loc[group, "compile_cached"]) == 1
        assert fit.idata.posterior.sizes["draw"] == 150
    assert (tmp_path / "summary.csv").is_file()
    assert not list(tmp_path.glob(".*tmp*")) and not list(tmp_path.glob(".*.running"))
    mtimes = {g: result.path(g).stat().st_mtime_ns for g in "AB"}

    again = fit_groups("model2", frame, by="lineage", out=tmp_path, client=client, **FIT)
    assert list(again.summary["action"]) == ["skipped", "skipped", "fitted"]
    assert again.failed == ["C"]

    fixed = fit_groups("model2", lineage_frame(broken=False), by="lineage", out=tmp_path, client=client, **FIT)
    assert list(fixed.summary["action"]) == ["skipped", "skipped", "fitted"]
    assert fixed.ok
    assert {g: fixed.path(g).stat().st_mtime_ns for g in "AB"} == mtimes

    # Other settings are another run: nothing is skipped.
    other = fit_groups("model2", lineage_frame(broken=False), by="lineage", out=tmp_path, client=client,
                       **{**FIT, "iter_sampling": 100})
    assert list(other.summary["action"]) == ["fitted"] * 3


def _kill_tree(pid: int) -> None:
    """SIGKILL a worker and the sampler processes it forked."""
    import psutil

    process = psutil.Process(pid)
    for child in process.children(recursive=True):
        child.send_signal(signal.SIGKILL)
    process.send_signal(signal.SIGKILL)


def test_worker_killed_mid_fit_and_interrupted_run_resume(client, tmp_path: Path) -> None:
    frame = lineage_frame(broken=False)
    settings = {**FIT, "iter_sampling": 1500}  # long enough to be caught mid-fit
    box: dict = {}
    thread = threading.Thread(
        target=lambda: box.update(result=fit_groups("model2", frame, by="lineage", out=tmp_path, client=client,
                                                     **settings))
    )
    thread.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and thread.is_alive():
        for marker in tmp_path.glob(".*.running"):
            try:
                killed = (marker.name, json.loads(marker.read_text())["pid"])
            except (OSError, ValueError):
                continue
            _kill_tree(killed[1])
            break
        time.sleep(0.02)
    thread.join(timeout=300)
    assert killed is not None, "no fit was seen running"
    result = box["result"]
    # The scheduler reran the killed worker's fit elsewhere: every group finished.
    assert result.ok, result.summary[["group", "error"]]
    assert all(StanFit.from_netcdf(result.path(g)).idata.posterior.sizes["draw"] == 1500 for g in "ABC")

    # A run interrupted before B was recorded, leaving a half-written file:
    # the rerun takes neither for finished and redoes B alone.
    (tmp_path / "B.json").unlink()
    (tmp_path / "B.nc").write_bytes(b"\x89HDF half written")
    (tmp_path / ".B.nc.tmp-1234").write_bytes(b"partial")
    resumed = fit_groups("model2", frame, by="lineage", out=tmp_path, client=client, **settings)
    assert list(resumed.summary["action"]) == ["skipped", "fitted", "skipped"]
    assert resumed.ok
    assert StanFit.from_netcdf(resumed.path("B")).model == "model2"


def test_bad_group_column_is_named(tmp_path: Path) -> None:
    frame = lineage_frame(broken=False)
    with pytest.raises(DataError, match="'tissue'"):
        fit_groups("model2", frame, by="tissue", out=tmp_path, progress=False)
    frame.loc[0, "lineage"] = None
    with pytest.raises(DataError, match="1 of 108 rows"):
        fit_groups("model2", frame, by="lineage", out=tmp_path, progress=False)


def test_cli_errors_exit_2(tmp_path: Path, capsys) -> None:
    from pystanmods.cli.batch import main

    data = tmp_path / "lin.csv"
    lineage_frame(broken=False).to_csv(data, index=False)
    assert main(["model2", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["model2", str(data), "--by", "tissue", "--out", str(tmp_path / "o")]) == 2
    assert "'tissue'" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_batch_names_failed_groups_and_exits_1(tmp_path: Path, capsys) -> None:
    from pystanmods.cli.batch import main

    data = tmp_path / "lin.csv"
    lineage_frame().to_csv(data, index=False)
    argv = ["model2", str(data), "--by", "lineage", "--out", str(tmp_path / "o"), "--workers", "2",
            "--chains", "2", "--iter-warmup", "150", "--iter-sampling", "150", "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "1 group(s) failed: C" in err and "logfc" in err
    assert (tmp_path / "o" / "A.nc").is_file() and (tmp_path / "o" / "summary.csv").is_file()


def _half(x: int) -> float:
    if x == 3:
        raise ArithmeticError("three")
    return x / 2


def test_one_runner_passes_each_result_or_error_to_the_handler(client) -> None:
    # The Dask runner shared by fit_groups and sbc.run.
    from pystanmods.batch.cluster import Task, run_tasks

    seen: dict = {}

    def handle(name, result, error):
        seen[name] = repr(error) if error is not None else result
        return None

    tasks = {i: Task(f"pystanmods-test-half-{i}-{id(seen)}", _half, (i,)) for i in range(5)}
    run_tasks(tasks, handle, client=client, progress=False)
    assert seen == {0: 0.0, 1: 0.5, 2: 1.0, 3: "ArithmeticError('three')", 4: 2.0}
