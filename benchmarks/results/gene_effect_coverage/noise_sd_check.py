"""Does gene_effect put the per-line noise sd below the truth on its default simulation?

For each seed, the default simulation (24 genes x 10 lines, fixed hyperparameters) is fitted
with the non-centered program, 2 x (1000 + 1000), and each line's
z = (true log sigma_c - posterior mean) / posterior sd is printed; a posterior that sits below
the truth gives a positive mean z. The check behind docs/sbc.md's note on the SBC lean.

    python benchmarks/results/gene_effect_coverage/noise_sd_check.py 31,32,33,34,35,36
"""
import contextlib
import io
import sys

import numpy as np

import pystanmods as psm

model = psm.get_model("gene_effect")
zs = []
for seed in [int(s) for s in sys.argv[1].split(",")]:
    sim = model.simulate(seed=seed)
    with contextlib.redirect_stderr(io.StringIO()):
        fit = psm.fit(model, sim.data, "noncentered", seed=1, show_progress=False, compute_log_lik=False,
                      compute_y_rep=False, chains=2)
    draws = fit.idata.posterior["log_sigma_c"].stack(s=("chain", "draw")).values
    z = (sim.truth["log_sigma_c"] - draws.mean(1)) / draws.std(1)
    zs.append(z)
    print(seed, "max R-hat", round(fit.diagnostics().max_rhat, 4), "z", z.round(2), flush=True)
z = np.concatenate(zs)
print(f"all: mean z {z.mean():.3f} (se {z.std() / np.sqrt(z.size):.3f}), n {z.size}")
