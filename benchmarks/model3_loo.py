"""Pareto k of Model 3's two log-likelihoods on the recovery tests' data.

Model 3's per-row ``log_lik`` is conditional on a theta drawn per unit, so
leaving one replicate out moves that unit's theta and PSIS sees it as an
influential point; ``log_lik_unit`` integrates theta out and leaves a whole
gene x cell-line unit out. This fits Model 3 to the data of
``tests/test_recovery.py`` (``simulate(seed=103)``: 5 genes x 20 cell lines x
3 replicates) and Model 4 to the same rows, and reports PSIS-LOO with each.

    python -m benchmarks.model3_loo [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import arviz as az
import numpy as np

import pystanmods as psm
from benchmarks.metrics import write_json
from pystanmods.stanfit.compare import _unit_log_lik


def summary(loo: az.ELPDData) -> dict:
    k = np.asarray(loo.pareto_k)
    return {"elpd_loo": float(loo.elpd_loo), "se": float(loo.se), "p_loo": float(loo.p_loo), "n": int(k.size),
            "max_k": float(k.max()), "k_over_0.7": int((k > 0.7).sum()), "k_over_0.5": int((k > 0.5).sum())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--seed", type=int, default=20240)
    args = parser.parse_args(argv)
    settings = {"chains": 4, "iter_warmup": 1000, "iter_sampling": 1000, "seed": args.seed, "compute_log_lik": True,
                "show_progress": False}
    frame = psm.get_model("model3").simulate(seed=103).data
    fit3 = psm.fit("model3", frame, "recommended", **settings)
    fit4 = psm.fit("model4", frame, "recommended", **settings)
    result = {"data": "model3.simulate(seed=103)", "rows": len(frame), "settings": {**settings}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result["model3_row"] = summary(az.loo(fit3.idata, pointwise=True))
        result["model3_unit"] = summary(az.loo(_unit_log_lik("model3", fit3, "logfc"), pointwise=True))
        result["model4_row"] = summary(az.loo(fit4.idata, pointwise=True))
        result["model4_unit"] = summary(az.loo(_unit_log_lik("model4", fit4, "logfc"), pointwise=True))
        table = psm.compare({"model3": fit3, "model4": fit4})
    result["compare_level"] = table.attrs["level"]
    result["compare"] = table[["rank", "elpd_loo", "elpd_diff", "dse", "n_high_pareto_k"]].reset_index().to_dict("records")
    result["diagnostics"] = {"model3": fit3.diagnostics(warn=False).as_dict(), "model4": fit4.diagnostics(warn=False).as_dict()}
    write_json(args.out, "model3_loo.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
