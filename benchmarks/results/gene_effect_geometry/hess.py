"""Stiff and wide directions of the posterior at one draw: the Hessian of the log
density in the sampler's (unconstrained) coordinates, by central differences of
Stan's gradient, scaled by the coordinates' posterior sds (what a perfectly
adapted diagonal metric does). Curvature c along a unit direction means a
conditional sd of 1/sqrt(c) posterior sds there; NUTS's step size follows the
largest c.

    python hess.py FIT.nc 150      (FIT.nc from fit_subset.py with the same gene count)
"""
import sys
import time

import arviz as az
import numpy as np
from common import stan_data

from pystanmods.engines import get_engine
from pystanmods.engines.pystan import run_outside_loop
from pystanmods.models.gene_effect import helmert_matrix
from pystanmods.sampling import compile_model

nc_file, n_genes = sys.argv[1], int(sys.argv[2])
data, _ = stan_data(n_genes)
compiled = compile_model("gene_effect", "centered")
posterior = get_engine(None)._posterior(compiled.program, compiled.directory, data, None)
P = az.from_netcdf(nc_file).posterior
G, S, C = int(data["G"]), int(data["S"]), int(data["C"])
helmert = helmert_matrix(C - 1)


def params_at(chain: int, draw: int) -> dict:
    sel = P.isel(chain=chain, draw=draw)
    p = {v: sel[v].to_numpy() for v in ("mu_0", "mu_g", "mu_log_tau", "log_tau_g", "k_s", "omega_s", "kappa_0",
                                         "kappa_c", "mu_sigma", "log_sigma_c")}
    for v in ("sigma_mu", "sigma_log_tau", "sigma_omega", "sigma_q", "sigma_beta", "sigma_kappa", "tau_sigma"):
        p["log_" + v] = float(np.log(sel[v]))
    p["log_q_c_raw"] = helmert.T @ sel["log_q_c"].to_numpy()
    p["beta_c_raw"] = helmert.T @ sel["beta_c"].to_numpy()
    p.update(b_0=np.zeros(0), sigma_b=np.zeros(0), b_g_z=np.zeros((G, 0)))
    return {k: (np.asarray(v).tolist() if np.ndim(v) else float(v)) for k, v in p.items()}


draws = np.array([run_outside_loop(posterior.unconstrain_pars, params_at(0, d)) for d in range(0, P.sizes["draw"], 2)])
sd = draws.std(0)
theta0 = draws[-1]
n = theta0.size
layout = []
for v, size in (("mu_0", 1), ("log_sigma_mu", 1), ("mu_g", G), ("mu_log_tau", 1), ("log_sigma_log_tau", 1),
                ("log_tau_g", G), ("k_s", S), ("log_sigma_omega", 1), ("omega_s", S), ("log_sigma_q", 1),
                ("log_q_c_raw", C - 1), ("log_sigma_beta", 1), ("beta_c_raw", C - 1), ("kappa_0", 1),
                ("log_sigma_kappa", 1), ("kappa_c", C), ("mu_sigma", 1), ("log_tau_sigma", 1), ("log_sigma_c", C)):
    layout += [f"{v}[{j}]" for j in range(size)]
assert len(layout) == n, (len(layout), n)


def grad(x: np.ndarray) -> np.ndarray:
    return np.asarray(run_outside_loop(posterior.grad_log_prob, x.tolist()))


t = time.time()
h = 1e-4
H = np.empty((n, n))
for i in range(n):
    e = np.zeros(n)
    e[i] = h * sd[i]
    H[:, i] = (grad(theta0 + e) - grad(theta0 - e)) / (2 * h)  # column i of H times sd_i
H = 0.5 * (H * sd[:, None] + (H * sd[:, None]).T)  # D H D, symmetrised
print(f"unconstrained coordinates {n}; hessian by {2 * n} gradients in {time.time() - t:.0f} s")
w, V = np.linalg.eigh(-H)
print("largest curvatures (posterior-sd units):", w[-10:][::-1].round(1))
print("smallest:", w[:10].round(3))
for k in range(1, 9):
    v = V[:, -k]
    idx = np.argsort(-np.abs(v))[:8]
    print(f"stiff #{k} curvature {w[-k]:.0f}:", [(layout[i], round(float(v[i]), 2)) for i in idx])
for k in range(4):
    v = V[:, k]
    idx = np.argsort(-np.abs(v))[:8]
    print(f"wide #{k} curvature {w[k]:.3f}:", [(layout[i], round(float(v[i]), 2)) for i in idx])
