"""Recovery of gene_effect's covariate slopes on one simulation, by the number of cell lines.

    python benchmarks/results/gene_effect_coverage/slopes.py SEED N_CELL_LINES

One expression-like covariate, 24 genes, every block observed, the recommended (non-centered)
program, 4 x (1000 + 2000) draws. Prints the diagnostics, the slope hyperparameters against
their truth, how many gene slopes (and gene means) their 90% intervals cover, and per gene
the true slope, its posterior mean and sd. slopes.txt holds seed 21 at 10 and at 30 lines.
"""
import sys, numpy as np, pystanmods as psm
from pystanmods.models.gene_effect import GeneEffect
seed = int(sys.argv[1])
model = GeneEffect(covariates=("rna",))
sim = model.simulate(seed=seed, missing_fraction=0.0, n_cell_lines=int(sys.argv[2]))
sd = model.prepare(sim.data, compute_theta=True, compute_log_lik=False, compute_y_rep=False)
fit = psm.fit(model, sd, parameterization="recommended", seed=1, show_progress=False, iter_sampling=2000)
d = fit.diagnostics(); print(d)
p = fit.idata.posterior
for k in ("b_0", "sigma_b", "sigma_mu", "mu_log_tau"):
    v = p[k].values.ravel(); print(k, "truth", np.ravel(sim.truth[k])[:1], "mean %.3f sd %.3f q05 %.3f q95 %.3f" % (v.mean(), v.std(), *np.quantile(v, [.05, .95])))
rec = fit.recovery({"b_g": sim.truth["b_g"], "mu_g": sim.truth["mu_g"]})
print(rec.groupby("parameter")["covered"].agg(["sum", "size"]))
b = p["b_g"].values.reshape(-1, 24); t = sim.truth["b_g"][:, 0]
print("truth sd of b_g %.3f, posterior mean sd %.3f, mean post sd %.3f" % (t.std(), b.mean(0).std(), b.std(0).mean()))
print(np.c_[t, b.mean(0), b.std(0)].round(3))

