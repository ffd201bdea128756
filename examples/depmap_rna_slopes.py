"""The DepMap sample's RNA slopes with and without a gene x cell-line term.

Model 4 (``logfc ~ N(alpha_g + gamma_c + beta_g * rna, sigma)``) treats the
guides and replicates of a gene in one cell line as independent, so its RNA
slope ``beta_g`` counts every sgRNA x replicate row as information about how
the gene's dependency varies between cell lines; there are only as many cell
lines as that. Model 3 has the gene x cell-line effect
``theta ~ N(gamma_g + delta_g * rna, sigma_g)``, so its slope ``delta_g`` is
learnt from the cell lines. Both are fitted to the committed sample's genes
with expression; the table gives each slope's posterior mean, sd, 90% interval
and P(slope < 0), and the ratio of the two sds.

    python examples/depmap_rna_slopes.py [--out out/depmap]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from pystanmods import depmap

warnings.filterwarnings("ignore", message=".*ArviZ is undergoing.*", category=FutureWarning)

RELEASE = Path(__file__).resolve().parent.parent / "tests" / "data" / "depmap-sample"
#: The genes of examples/depmap_sample.py that have expression in the sample.
GENES = ("MYB", "SPI1", "SOX10", "ESR1", "GATA3", "KRAS", "MCL1", "HNRNPH1")


def slopes(fit, variable: str, model: str) -> pd.DataFrame:
    draws = fit.idata.posterior[variable]
    genes = [str(g) for g in draws["gene"].values]
    values = draws.stack(sample=("chain", "draw")).transpose("gene", "sample").to_numpy()
    return pd.DataFrame({
        "gene": genes, "model": model, "mean": values.mean(axis=1), "sd": values.std(axis=1),
        "q05": np.quantile(values, 0.05, axis=1), "q95": np.quantile(values, 0.95, axis=1),
        "p_below_0": (values < 0).mean(axis=1),
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default=str(RELEASE))
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--iter", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20240)
    parser.add_argument("--out", type=Path, default=Path("out/depmap"))
    args = parser.parse_args(argv)

    frame, _ = depmap.prepare(args.release, genes=list(GENES), missing="keep", verbose=False)
    settings = {"engine": "pystan", "chains": args.chains, "iter_warmup": args.iter, "iter_sampling": args.iter,
                "seed": args.seed, "adapt_delta": 0.95, "refresh": 0}
    tables = []
    for model, parameterization, variable in (("model4", "centered", "beta_g"), ("model3", "noncentered", "delta_g")):
        usable = depmap.check_frame(frame, model, verbose=False)
        fit = depmap.fit_frame(model, usable, parameterization=parameterization, verbose=False, **settings)
        print(f"{model} ({parameterization}): {len(usable)} rows, {usable['gene'].nunique()} genes, "
              f"{usable['cell_line'].nunique()} cell lines; {fit.diagnostics(warn=False)}")
        tables.append(slopes(fit, variable, model))
    table = pd.concat(tables, ignore_index=True)
    wide = table.pivot(index="gene", columns="model", values="sd")
    table["sd_ratio_model3_to_model4"] = table["gene"].map(wide["model3"] / wide["model4"])
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "rna_slopes.csv", index=False)
    print(table.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
