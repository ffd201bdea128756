"""Joint-mode search on the gene_effect centered program: where L-BFGS takes the hierarchical sds.

``python funnel.py N_GENES MAX_ITERATIONS`` (the log: 25 genes, stopped after 501 calls).
"""
import sys
import time

import numpy as np
import scipy.optimize as so

from common import density

module, plain, x0, layout, _ = density(int(sys.argv[1]))
watch = ["log_sigma_mu", "log_sigma_log_tau", "log_sigma_omega", "log_sigma_q", "log_sigma_beta", "log_sigma_kappa", "log_tau_sigma"]
calls = [0]
def f(x):
    calls[0] += 1
    xl = list(x)
    return -module.log_prob(plain, xl, True), -np.asarray(module.log_prob_grad(plain, xl, True))
def report(x):
    if calls[0] % 250 < 2:
        lp = -f(x)[0]
        print(f"calls {calls[0]:5d} lp {lp:12.2f} " + " ".join(f"{w}={x[layout[w]][0]:+.2f}" for w in watch), flush=True)
start = time.perf_counter()
r = so.minimize(f, x0, jac=True, method="L-BFGS-B", callback=report,
                options={"maxiter": int(sys.argv[2]), "maxcor": 20, "gtol": 1e-7, "ftol": 1e-13})
print(f"genes {sys.argv[1]} unconstrained {len(x0)}: {r.message}; {r.nit} iterations, {calls[0]} calls, "
      f"{time.perf_counter() - start:.0f} s; lp {-r.fun:.2f}; max |grad| {np.abs(r.jac).max():.3g}")
print(" ".join(f"{w}={r.x[layout[w]][0]:+.3f}" for w in watch))
print("log_tau_g at the end: sd over genes", float(np.std(r.x[layout['log_tau_g']])), "range", float(np.ptp(r.x[layout['log_tau_g']])))
