"""Genes whose parameters have R-hat > 1.1 in one exp.py fit: look.py FIT.nc (its data_200.pkl beside it)."""
import arviz as az, numpy as np, pickle, sys
from pathlib import Path
idata = az.from_netcdf(sys.argv[1]); p = idata.posterior
data, genes = pickle.load(open(Path(sys.argv[1]).parent / "data_200.pkl", "rb")); genes = sorted(genes)
sg = np.asarray(data["sgrna_gene"]) - 1
s = az.summary(idata, var_names=["mu_g","k_s" if "k_s" in p else "logit_k_s","omega_s","log_tau_g"], kind="diagnostics")
bad = s[s.r_hat > 1.1].index
print(len(bad), "bad of", len(s))
import re, collections
gs = collections.Counter()
for n in bad:
    name, i = re.match(r"(\w+)\[(\d+)\]", n).groups(); i = int(i)
    g = i if name in ("mu_g", "log_tau_g") else sg[i]
    gs[g] += 1
print("genes with bad params:", len(gs), [(genes[g], c) for g, c in gs.most_common(10)])
for g, _ in gs.most_common(4):
    guides = np.where(sg == g)[0]
    print(genes[g], "mu_g chain means", p.mu_g.isel(mu_g_dim_0=g).mean("draw").values.round(2), "log_tau", p.log_tau_g.isel(log_tau_g_dim_0=g).mean("draw").values.round(2))
    kname = "k_s" if "k_s" in p else "logit_k_s"
    for s_ in guides:
        print("   guide", s_, kname, p[kname].isel({f"{kname}_dim_0": s_}).mean("draw").values.round(2), "omega", p.omega_s.isel(omega_s_dim_0=s_).mean("draw").values.round(2))
for v in ["sigma_mu","sigma_logit_k","sigma_omega","sigma_q","mu_0","mu_log_tau","sigma_log_tau"]:
    print(v, p[v].mean("draw").values.round(3))
