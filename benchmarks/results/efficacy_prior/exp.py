"""Variant experiments of the centered gene_effect program on a gene subset.

Run from a checkout of e12c9ba, whose program and Python the variants edit and
use (see README.md): the program, the release and pystanmods all come from the
checkout that PYTHONPATH points at. Outputs go to $EFFICACY_PRIOR_OUT
(default out/efficacy_prior, created).
"""
import os, sys, time, re, json, pickle
from pathlib import Path
import numpy as np, pandas as pd
import arviz as az
import stan
import pystanmods
from pystanmods.depmap.release import read_release
from pystanmods.depmap.prepare import prepare
from pystanmods.models import get_model
from pystanmods.models import gene_effect as ge

variant = sys.argv[1]; ngenes = int(sys.argv[2]); warm = int(sys.argv[3]); samp = int(sys.argv[4])
depth = int(sys.argv[5]) if len(sys.argv) > 5 else 8
ROOT = Path(pystanmods.__file__).resolve().parents[1]
OUT = Path(os.environ.get("EFFICACY_PRIOR_OUT", "out/efficacy_prior"))
OUT.mkdir(parents=True, exist_ok=True)
code = (ROOT / "stan" / "gene_effect_centered.stan").read_text()
if "logit_k_s" not in code:
    sys.exit(f"{ROOT} is not a checkout of e12c9ba (its gene_effect program has no logit_k_s): "
             "git worktree add /tmp/pystanmods-e12c9ba e12c9ba, then run with PYTHONPATH=/tmp/pystanmods-e12c9ba")
rel = read_release(ROOT / "benchmarks" / "data" / "depmap-sample")
cache = OUT / f"data_{ngenes}.pkl"
try:
    data, genes = pickle.load(open(cache, "rb"))
except FileNotFoundError:
    frame0, _ = prepare(rel, covariates=["copy_number"], multi_aligned="keep", verbose=False)
    allg = np.array(sorted(frame0["gene"].unique()))
    rng = np.random.default_rng(1)
    genes = list(allg if ngenes >= len(allg) else rng.choice(allg, ngenes, replace=False))
    frame = frame0[frame0["gene"].isin(genes)]
    sd = get_model("gene_effect").prepare(frame, compute_log_lik=False, compute_y_rep=False)
    data = sd.data
    pickle.dump((data, genes), open(cache, "wb"))
data = dict(data)
scales, inits = ge.pilot(data)
sys.path.insert(0, str(Path(__file__).resolve().parent))
mod = __import__("variants").VARIANTS[variant]
code, scales, inits = mod(code, data, scales, inits)
data.update({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in scales.items()})
for k, v in list(data.items()):
    if isinstance(v, np.ndarray): data[k] = v.tolist()
chains = 2
init = ge.jittered_inits(inits, scales, chains, seed=3)
t = time.time()
post = stan.build(code, data=data, random_seed=1)
tb = time.time() - t
t = time.time()
fit = post.sample(num_chains=chains, num_warmup=warm, num_samples=samp, init=init, max_depth=depth)
ts = time.time() - t
names = [n for n in post.param_names if n not in ("theta", "log_lik", "y_rep")]
idata = az.from_pystan(posterior=fit, posterior_model=post)
s = az.summary(idata, var_names=[n for n in names if n in idata.posterior], kind="diagnostics")
worst = s.sort_values("r_hat").tail(8)
ss = fit.to_frame()
st = idata.sample_stats
print(json.dumps({"variant": variant, "genes": ngenes, "warm": warm, "samp": samp, "build_s": round(tb), "sample_s": round(ts),
      "step": [float(v) for v in st.step_size.mean("draw").values],
      "n_leapfrog_mean": float(ss["n_leapfrog__"].mean()), "div": int(ss["divergent__"].sum()),
      "max_rhat": float(s.r_hat.max()), "min_ess_bulk": float(s.ess_bulk.min()), "median_ess_bulk": float(s.ess_bulk.median())}))
print(worst)
idata.to_netcdf(OUT / f"{variant}_{ngenes}_{warm}.nc")
