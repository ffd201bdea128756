"""Per gene, the conditioning of its own coordinates (mean, log spread, logit efficacies,
offsets) in the posterior draws, standardised as a diagonal metric would; and per
variable, R-hat and bulk ESS.

    python analyse.py FIT.nc
"""
import sys

import arviz as az
import numpy as np
import pandas as pd
from common import DATA
from scipy.special import logit

idata = az.from_netcdf(sys.argv[1])
post, ss = idata.posterior, idata.sample_stats
print("sample_stats:", list(ss.data_vars))
for v in ss.data_vars:
    a = ss[v].to_numpy()
    if a.ndim == 2 and v in ("n_steps", "tree_depth", "step_size", "diverging", "n_leapfrog", "treedepth", "acceptance_rate"):
        print(f"  {v}: per-chain mean {a.mean(axis=1).round(3)}, max {a.max():.3g}")
def flat(name):
    x = post[name].stack(s=("chain", "draw")).to_numpy()
    return x if x.ndim == 2 else x[None, :]
mu = flat("mu_g"); lt = flat("log_tau_g"); k = flat("k_s"); om = flat("omega_s")
genes = [str(g) for g in post["gene"].to_numpy()]
guides = [str(s) for s in post["sgrna"].to_numpy()]
gmap = pd.read_csv(DATA / "AvanaGuideMap.csv")
gmap["sym"] = gmap["gene"].str.split(" (", regex=False).str[0]
sym = gmap.drop_duplicates("sgrna").set_index("sgrna")["sym"].reindex(guides).to_numpy()
lk = logit(k)
rows = []
for gi, g in enumerate(genes):
    idx = np.flatnonzero(sym == g)
    X = np.vstack([mu[gi], lt[gi], lk[idx], om[idx]])
    names = ["mu", "ltau"] + [f"lk{j}" for j in range(len(idx))] + [f"om{j}" for j in range(len(idx))]
    Z = (X - X.mean(1, keepdims=True)) / X.std(1, keepdims=True)
    R = np.corrcoef(Z)
    w, V = np.linalg.eigh(R)
    narrow = V[:, 0]
    top = np.argsort(-np.abs(narrow))[:4]
    rows.append({"gene": g, "guides": len(idx), "cond": w[-1] / w[0], "mu": mu[gi].mean(), "ltau": lt[gi].mean(),
                 "k_mean": k[idx].mean(), "sd_lk": lk[idx].std(1).mean(),
                 "narrow": " ".join(f"{names[t]}{narrow[t]:+.2f}" for t in top)})
t = pd.DataFrame(rows).sort_values("cond", ascending=False)
pd.set_option("display.width", 200)
print(t.head(25).to_string(index=False))
print("cond quantiles", np.quantile(t["cond"], [0.5, 0.9, 0.99, 1]).round(1))
# Global: the line block and hyperparameters.
hyp = [v for v in ("mu_0", "sigma_mu", "mu_log_tau", "sigma_log_tau", "sigma_omega", "sigma_q", "sigma_beta",
                   "kappa_0", "sigma_kappa", "mu_sigma", "tau_sigma") if v in post]
H = np.vstack([np.log(flat(v)) if v.startswith(("sigma", "tau")) else flat(v) for v in hyp])
print("hyper sd (unconstrained):", dict(zip(hyp, H.std(1).round(4))))
ess = az.ess(post, method="bulk")
rh = az.rhat(post)
for v in hyp + ["mu_g", "log_tau_g", "k_s", "omega_s", "log_q_c", "beta_c", "kappa_c", "log_sigma_c"]:
    if v in ess:
        print(f"  {v:14s} min ESS {float(ess[v].min()):7.0f}  max R-hat {float(rh[v].max()):.3f}")
