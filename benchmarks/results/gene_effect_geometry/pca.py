"""Principal directions of the within-chain posterior draws (all sampled coordinates,
standardised): the widest collective directions, and where the two chains disagree.

    python pca.py FIT.nc
"""
import sys
import numpy as np, arviz as az
from scipy.special import logit
idata = az.from_netcdf(sys.argv[1]); post = idata.posterior
names, cols = [], []
def add(v, f=lambda x: x):
    x = f(post[v].to_numpy())  # chain, draw, ...
    x = x.reshape(x.shape[0], x.shape[1], -1)
    for j in range(x.shape[2]):
        names.append(f"{v}[{j}]" if x.shape[2] > 1 else v); cols.append(x[:, :, j])
for v in ("mu_0", "mu_log_tau", "kappa_0", "mu_sigma"): add(v)
for v in ("sigma_mu", "sigma_log_tau", "sigma_omega", "sigma_q", "sigma_beta", "sigma_kappa", "tau_sigma"): add(v, np.log)
for v in ("mu_g", "log_tau_g", "omega_s", "log_q_c", "beta_c", "kappa_c", "log_sigma_c"): add(v)
add("k_s", logit)
X = np.stack(cols, axis=-1)  # chain, draw, p
print("params", X.shape)
# Chain means in units of the pooled within-chain sd: where the chains disagree.
W = X - X.mean(axis=1, keepdims=True)
sd = W.reshape(-1, X.shape[2]).std(0)
d = np.abs(X.mean(1)[0] - X.mean(1)[1]) / sd
top = np.argsort(-d)[:15]
print("chain-mean gaps (within-chain sds):", [(names[i], round(float(d[i]), 1)) for i in top])
for c in range(X.shape[0]):
    Z = W[c] / W[c].std(0)
    u, s, vt = np.linalg.svd(Z, full_matrices=False)
    lam = s**2 / Z.shape[0]
    print(f"chain {c}: top eigenvalues of the correlation matrix {lam[:6].round(1)} (noise level ~{(1+np.sqrt(Z.shape[1]/Z.shape[0]))**2:.1f})")
    for k in range(3):
        v = vt[k]; idx = np.argsort(-np.abs(v))[:10]
        groups = {}
        for i in np.flatnonzero(np.abs(v) > 0.03):
            g = names[i].split("[")[0]; groups[g] = groups.get(g, 0) + v[i] ** 2
        print(f"  PC{k}: share by variable {dict((g, round(x, 2)) for g, x in sorted(groups.items(), key=lambda t: -t[1]))}")
        print("     top", [(names[i], round(float(v[i]), 2)) for i in idx])
    # Autocorrelation time of the PC scores vs of single params.
    pc0 = u[:, 0]
    ac = np.corrcoef(pc0[:-1], pc0[1:])[0, 1]
    print(f"  lag-1 autocorrelation of PC0 score {ac:.3f}")
