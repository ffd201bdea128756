"""Centered against non-centered program on one 4-line lineage of the simulated release.

The figures quoted in docs/gene-effects.md ("Which program"); output in parameterization.txt.
Run from the repository root: .venv/bin/python benchmarks/results/by_lineage/parameterization.py
"""

import tempfile
import time

from pystanmods.depmap import fit_gene_effects, simulated_release

if __name__ == "__main__":
    release = simulated_release(tempfile.mkdtemp(), seed=1)
    lines = ["ACH-900001", "ACH-900002", "ACH-900003", "ACH-900004"]  # the Lung lineage
    for parameterization in ("centered", "noncentered"):
        start = time.time()
        result = fit_gene_effects(release, cell_lines=lines, parameterization=parameterization, verbose=False,
                                  show_progress=False, chains=4, iter_warmup=1000, iter_sampling=1000, seed=1,
                                  adapt_delta=0.95)
        print(parameterization, round(time.time() - start, 1), result.fit.diagnostics(warn=False).as_dict(), flush=True)
