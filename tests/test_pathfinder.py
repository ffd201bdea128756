"""Pathfinder, built from the embedded engine's Stan headers: labelled approximate, and close to NUTS where it should be."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import numpy as np
import pytest

import pystanmods
from pystanmods.engines import approximate
from pystanmods.models import get_model


@pytest.fixture(scope="module")
def model1_fits():
    """Model 1 (a regression: a near-normal posterior) on the default simulation, by Pathfinder and by NUTS."""
    model = get_model("model1")
    sim = model.simulate(seed=3)
    approx = pystanmods.pathfinder(model, sim.data, seed=1, draws=2000, quiet=True)
    nuts = pystanmods.fit(model, sim.data, engine="pystan", chains=4, iter_warmup=1000, iter_sampling=1000, seed=1,
                          show_progress=False)
    return approx, nuts


def test_pathfinder_is_labelled_approximate_everywhere(model1_fits):
    approx, _ = model1_fits
    assert approx.approximate
    for group in approx.idata.groups():
        assert approx.idata[group].attrs["inference"] == "pathfinder (approximate)"
        assert approx.idata[group].attrs["approximate"] == 1
    assert "APPROXIMATE" in repr(approx)
    assert approx.idata.posterior.sizes["chain"] == 1 and approx.idata.posterior.sizes["draw"] == 2000
    assert set(approx.idata.sample_stats.data_vars) == {"lp", "lp_approx"}
    # A near-normal posterior: the importance weights are trusted and used.
    assert approx.attrs["pathfinder_pareto_k"] <= approximate.PARETO_K_LIMIT
    assert approx.attrs["pathfinder_resampled"] == 1
    with pytest.raises(ValueError, match="not a Markov chain"):
        approx.diagnostics()


def test_pathfinder_matches_nuts_on_a_near_normal_posterior(model1_fits):
    # Model 1 on 20 cell lines has a posterior close to normal, where
    # Pathfinder's normal approximation should be nearly exact. Monte Carlo
    # error alone: 2000 draws resampled with nearly equal weights from 4 x
    # 2000, against 4000 NUTS draws, puts the difference of means at a few
    # hundredths of a posterior sd (se about 0.03) and the sd ratio within a
    # few per cent. The bounds, 0.25 sd and [0.8, 1.25], leave room for the
    # approximation's own error (seen: 0.02-0.10 sd, ratios 0.92-1.00), and
    # a posterior with twice the data (sds 0.71 times as large, e.g. the
    # likelihood counted twice) fails them: seen 0.59-0.66.
    approx, nuts = model1_fits
    for name in ("alpha", "beta", "sigma"):
        a = approx.idata.posterior[name].to_numpy().ravel()
        b = nuts.idata.posterior[name].to_numpy().ravel()
        assert abs(a.mean() - b.mean()) < 0.25 * b.std(), name
        assert 0.8 < a.std() / b.std() < 1.25, name


def test_pathfinder_keeps_the_data_labels_as_coords():
    model = get_model("gene_effect")
    sim = model.simulate(seed=2)
    # The program that make models builds Pathfinder for (depmap fit --approximate's).
    approx = pystanmods.pathfinder(model, sim.data, "centered", seed=1, draws=200, quiet=True)
    genes = sorted(sim.data["gene"].unique())
    assert list(approx.idata.posterior["mu_g"].coords["gene"].to_numpy()) == genes
    assert list(approx.idata.posterior["k_s"].coords["sgrna"].to_numpy()) == sorted(sim.data["sgrna"].unique())
    # 200 resampled draws, or 200 from each path that did not fail where Pareto k forbade resampling.
    kept = 4 - approx.attrs["pathfinder_failed_paths"]
    draws = 200 if approx.attrs["pathfinder_resampled"] else kept * 200
    assert kept >= 1 and approx.idata.posterior["mu_g"].shape == (1, draws, len(genes))


def test_importance_resampling_only_where_pareto_k_allows():
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 4000
    # Ratios of an approximation close to its target: small k, resampled to the number asked.
    close = pd.DataFrame({"lp__": rng.normal(0, 0.1, n), "lp_approx__": np.zeros(n), "x": np.arange(n)})
    out, k = approximate.importance_resample(close, 1000, seed=1)
    assert k < 0.5 and len(out) == 1000
    # Ratios with a tail as heavy as Pareto's with shape 1/1.5 (k about 1.5): kept as they are.
    heavy = pd.DataFrame({"lp__": np.log(rng.pareto(1 / 1.5, n) + 1), "lp_approx__": np.zeros(n), "x": np.arange(n)})
    out, k = approximate.importance_resample(heavy, 1000, seed=1)
    assert k > approximate.PARETO_K_LIMIT and len(out) == n and list(out["x"]) == list(range(n))


def test_column_major_columns_become_arrays_in_index_order():
    import pandas as pd

    columns = [f"m.{i}.{j}" for j in (1, 2, 3) for i in (1, 2)]  # Stan's order: the first index fastest
    frame = pd.DataFrame([[10 * i + j for j in (1, 2, 3) for i in (1, 2)]], columns=columns)
    frame["s"] = [5.0]
    out = approximate._variables(frame)
    np.testing.assert_array_equal(out["m"][0, 0], [[11, 12, 13], [21, 22, 23]])
    assert out["s"].shape == (1, 1)


def test_ctrl_c_stops_the_pathfinder_process(tmp_path: Path):
    # A stand-in executable that records its pid and runs until killed.
    pid_file = tmp_path / "pid"
    fake = tmp_path / "pathfinder"
    fake.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(2)
    try:
        with pytest.raises(KeyboardInterrupt):
            approximate.run(fake, {"N": 1}, seed=1)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the Pathfinder process {pid} still runs after Ctrl-C")


def test_a_failed_run_says_why(tmp_path: Path):
    fake = tmp_path / "pathfinder"
    fake.write_text("#!/bin/sh\necho 'approximate: cannot read data.json' >&2\nexit 70\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(RuntimeError, match="(?s)exit 70.*cannot read"):
        approximate.run(fake, {"N": 1}, seed=1)


def test_depmap_fit_approximate_labels_every_file(tmp_path: Path):
    from pystanmods.cli.main import main

    out = tmp_path / "out"
    genes = ["KRAS", "SOX10", "RPL3", "AAMP", "ABCE1", "ABCG8", "ACTL7A"]
    assert main(["depmap", "fit", "benchmarks/data/depmap-sample", "--genes", *genes, "--approximate", "--seed", "1",
                 "--quiet", "-o", str(out)]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert "README.txt" in files
    assert all(name.startswith("approximate_") for name in files if name != "README.txt"), files
    assert {"approximate_gene_effect.csv", "approximate_gene_dependency.csv", "approximate_fit.nc"} <= set(files)
    assert (out / "README.txt").read_text().startswith("APPROXIMATE")
    import pandas as pd

    long = pd.read_csv(out / "approximate_gene_effect_long.csv")
    assert set(long["inference"]) == {"pathfinder (approximate)"}
    assert set(pd.read_csv(out / "approximate_guide_efficacy.csv")["inference"]) == {"pathfinder (approximate)"}
    fit = pystanmods.StanFit.from_netcdf(out / "approximate_fit.nc")
    assert fit.approximate and fit.idata.posterior.attrs["inference"] == "pathfinder (approximate)"
