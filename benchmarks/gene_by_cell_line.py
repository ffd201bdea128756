"""How much a missing gene x cell-line term narrows the gene-level intervals.

Models 4, 5, 5-flat, A, B and C have no gene x cell-line effect: every row of
a gene in one cell line (its guides and replicates) is an independent draw
around ``alpha_g + gamma_c + beta_g * rna``. Real screens have such an effect
(a gene matters more in some cell lines than its RNA says), and then those rows
share it. Data are simulated here with one, ``theta_gc ~ N(0, sigma_gc)``, and
``n`` rows per gene x cell line; Model 4 (no such term) and Model 3 (which has
it, ``theta ~ N(gamma_g + delta_g * rna, sigma_g)``) are fitted to the same
rows, and the posterior sd of each gene's intercept and RNA slope compared.

For C cell lines a gene's intercept is a mean over C units. Model 4 puts
sigma_gc into its residual and counts C n rows, so its sd is about
sqrt((sigma^2 + sigma_gc^2) / (C n)); the unit means actually scatter with
sqrt((sigma_gc^2 + sigma^2 / n) / C). The ratio,
sqrt((n sigma_gc^2 + sigma^2) / (sigma_gc^2 + sigma^2)), grows with the rows per
unit and with sigma_gc / sigma: DepMap's 4 guides x 3 replicates give n = 12.

    python -m benchmarks.gene_by_cell_line [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import pystanmods as psm
from benchmarks.metrics import write_json


def simulate(seed: int, n_genes: int, n_cells: int, n_rows: int, sigma: float, sigma_gc: float) -> pd.DataFrame:
    """Gene intercepts and RNA slopes, a gene x cell-line effect, ``n_rows`` rows per unit."""
    rng = np.random.default_rng(seed)
    alpha_g = rng.normal(-1.0, 1.0, n_genes)
    beta_g = rng.normal(-0.5, 0.5, n_genes)
    g = np.repeat(np.arange(n_genes), n_cells)
    c = np.tile(np.arange(n_cells), n_genes)
    rna = rng.normal(0.0, 1.0, g.size)
    theta = alpha_g[g] + beta_g[g] * rna + rng.normal(0.0, sigma_gc, g.size)
    unit = np.repeat(np.arange(g.size), n_rows)
    return pd.DataFrame({
        "gene": [f"gene{i + 1:02d}" for i in g[unit]],
        "cell_line": [f"cell{i + 1:02d}" for i in c[unit]],
        "rna": rna[unit],
        "logfc": rng.normal(theta[unit], sigma),
    })


def posterior_sd(fit: psm.StanFit, name: str) -> np.ndarray:
    return fit.idata.posterior[name].std(dim=("chain", "draw")).to_numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--genes", type=int, default=8)
    parser.add_argument("--cell-lines", type=int, default=20)
    parser.add_argument("--rows", type=int, default=12, help="rows per gene x cell line (guides x replicates)")
    parser.add_argument("--sigma", type=float, default=0.3)
    parser.add_argument("--sigma-gc", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    frame = simulate(args.seed, args.genes, args.cell_lines, args.rows, args.sigma, args.sigma_gc)
    settings = {"chains": 4, "iter_warmup": 1000, "iter_sampling": 1000, "seed": args.seed,
                "compute_log_lik": False, "compute_y_rep": False}
    fit4 = psm.fit("model4", frame, "centered", **settings)
    fit3 = psm.fit("model3", frame, "noncentered", **settings)
    for fit in (fit4, fit3):
        fit.diagnostics()  # warns on divergences or high R-hat
    ratio_intercept = posterior_sd(fit3, "gamma_g") / posterior_sd(fit4, "alpha_g")
    ratio_slope = posterior_sd(fit3, "delta_g") / posterior_sd(fit4, "beta_g")
    s2, v = args.sigma**2, args.sigma_gc**2
    predicted = float(np.sqrt((args.rows * v + s2) / (v + s2)))
    result = {
        "design": {"genes": args.genes, "cell_lines": args.cell_lines, "rows_per_unit": args.rows,
                   "sigma": args.sigma, "sigma_gc": args.sigma_gc, "seed": args.seed},
        "intercept_sd_ratio_median": float(np.median(ratio_intercept)),
        "intercept_sd_ratio_range": [float(ratio_intercept.min()), float(ratio_intercept.max())],
        "slope_sd_ratio_median": float(np.median(ratio_slope)),
        "slope_sd_ratio_range": [float(ratio_slope.min()), float(ratio_slope.max())],
        "predicted_intercept_ratio": predicted,
        "model4_diagnostics": fit4.diagnostics(warn=False).as_dict(),
        "model3_diagnostics": fit3.diagnostics(warn=False).as_dict(),
    }
    write_json(args.out, "gene_by_cell_line.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
