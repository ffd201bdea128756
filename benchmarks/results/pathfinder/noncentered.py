"""Pathfinder on gene_effect's non-centered program from random starts, against the NUTS table of
``sample_150`` (what ``pystanmods.pathfinder(model, data)`` does without the pilot): why
``depmap fit --approximate`` runs the centered program on pilot scales instead.

    PYTHONPATH=. python benchmarks/results/pathfinder/noncentered.py > benchmarks/results/pathfinder/noncentered_150.json
"""

import json
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

import pystanmods  # noqa: E402
from benchmarks.pathfinder_compare import DATA, _peers, agreement  # noqa: E402
from pystanmods.depmap import prepare  # noqa: E402
from pystanmods.depmap.matrix import gene_effect_summaries  # noqa: E402
from pystanmods.depmap.release import read_release  # noqa: E402
from pystanmods.models.gene_effect import GeneEffect  # noqa: E402

frame, _ = prepare(read_release(DATA), genes=_peers().genes(150), covariates=["copy_number"], multi_aligned="keep",
                   verbose=False)
model = GeneEffect()
fit = pystanmods.pathfinder(model, model.prepare(frame, compute_log_lik=False, compute_y_rep=False), "noncentered",
                            seed=1, quiet=True)
# Unscaled effects on both sides (the NUTS table's raw_ columns), so that the controls' scaling does not enter.
approx = gene_effect_summaries(fit)[["gene", "cell_line", "raw_mean", "raw_sd"]]
nuts = pd.read_csv(HERE / "sample_150_nuts.csv.gz")[["gene", "cell_line", "raw_mean", "raw_sd"]]
rename = {"raw_mean": "mean", "raw_sd": "sd"}
approx, nuts = approx.rename(columns=rename), nuts.rename(columns=rename)
approx["p_dependency"] = nuts["p_dependency"] = 0.0  # no calls compared here
result = {"program": fit.attrs["program"], "seconds": fit.sampling_seconds,
          "pareto_k": fit.attrs["pathfinder_pareto_k"], "failed_paths": fit.attrs["pathfinder_failed_paths"],
          "unscaled_effects": {k: v for k, v in agreement(approx, nuts).items() if not k.startswith("calls")}}
print(json.dumps(result, indent=2))
