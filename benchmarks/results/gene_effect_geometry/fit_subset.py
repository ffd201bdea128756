"""Fit the gene_effect model to a gene subset of the sample as `depmap fit` does
(centered on pilot scales, 2 chains x (500 + 500), seed 1, max tree depth 10); save the fit.

    python fit_subset.py 150 OUT.nc
"""
import json
import sys
import time

from common import DATA, subset

from pystanmods.depmap import gene_effects as ge
from pystanmods.depmap.release import read_release

n_genes, out = int(sys.argv[1]), sys.argv[2]
pick = subset(n_genes)
t = time.time()
res = ge.fit_gene_effects(read_release(DATA), genes=pick, chains=2, iter_warmup=500, iter_sampling=500, seed=1,
                          max_treedepth=10, show_progress=False, verbose=False)
res.fit.idata.to_netcdf(out)
print(json.dumps({"genes": len(pick), "seconds": round(time.time() - t, 1), "fit_seconds": res.seconds}))
