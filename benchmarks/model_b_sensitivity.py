"""Model B: how P(mutation matters) moves with the fixed scale tau_zeta.

Fits Model B to the simulation of ``tests/test_models_extended.py`` (12 genes,
the mutation of 6 shifting logFC by 0.8-1.5 and of 6 doing nothing; seed 103)
with several ``tau_zeta`` (passed as data, so no recompile) and reports each
gene's posterior mean of ``p_matters_g``. The sigma_zeta prior is written in
the program, so its sensitivity needs an edited template and is not run here.

    python -m benchmarks.model_b_sensitivity [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

import pystanmods as psm
from pystanmods.models.ragged import ModelB

MATTERS = np.array([True, False] * 6)
ZETA = np.where(MATTERS, [0.8, 1.0, -1.2, 1.5, -0.9, 1.1, -1.3, 0.8, 1.2, -1.0, 0.9, -1.4], 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--tau", type=float, nargs="+", default=[0.025, 0.05, 0.1, 0.2])
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sim = psm.get_model("model_b").simulate(seed=103, matters=MATTERS, zeta_g=ZETA, mutation_frequency=0.4)
    rows = []
    for tau in args.tau:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            fit = psm.fit(ModelB(tau_zeta=tau), sim.data, "recommended", seed=103, chains=4, iter_warmup=500,
                          iter_sampling=1000, adapt_delta=0.9, compute_log_lik=False, compute_y_rep=False,
                          show_progress=False)
        p = fit.idata.posterior["p_matters_g"].mean(dim=("chain", "draw"))
        genes = [str(g) for g in p[p.dims[0]].values]
        d = fit.diagnostics(warn=False)
        rows.append({"tau_zeta": tau, "p_matters": dict(zip(genes, map(float, p.values))),
                     "max_rhat": d.max_rhat, "divergences": d.divergences})
        print(tau, np.round(p.values, 2), f"R-hat {d.max_rhat:.3f}, divergences {d.divergences}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model_b_sensitivity.json").write_text(
        json.dumps({"matters": MATTERS.tolist(), "zeta": ZETA.tolist(), "runs": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
