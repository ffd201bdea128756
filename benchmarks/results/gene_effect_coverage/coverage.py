import numpy as np, pystanmods as psm
from pystanmods.depmap.matrix import gene_effect_summaries
M = psm.get_model("gene_effect")
import sys; sim = M.simulate(seed=int(sys.argv[1]))
sd = M.prepare(sim.data, compute_theta=True)
fit = psm.fit("gene_effect", sd, parameterization="recommended", seed=1, show_progress=False, iter_sampling=2000)
d = fit.diagnostics(warn=False)
print("rhat", d.max_rhat, "ess", d.min_ess_bulk, "div", d.divergences)
t = gene_effect_summaries(fit, prob=0.9, threshold=-0.5)
genes = sorted(sim.data["gene"].unique()); cells = sorted(sim.data["cell_line"].unique())
g = t["gene"].map({x: i for i, x in enumerate(genes)}).to_numpy(); c = t["cell_line"].map({x: i for i, x in enumerate(cells)}).to_numpy()
truth = sim.truth["theta"][g, c]
cov = int(((t["q_low"] <= truth) & (truth <= t["q_high"])).sum())
print("covered", cov, "of", len(t), cov / len(t))
print("P mean", t["p_dependency"].mean(), "share below", (truth < -0.5).mean())
rec = fit.recovery({k: sim.truth[k] for k in ("mu_g", "k_s", "log_sigma_c", "log_q_c")})
print(rec.groupby("parameter")["covered"].agg(["sum", "count"]))
import pandas as pd
t["truth"] = truth; t["miss"] = ~((t["q_low"] <= truth) & (truth <= t["q_high"]))
t["z"] = (t["raw_mean"] - truth) / t["raw_sd"] if "raw_sd" in t else np.nan
