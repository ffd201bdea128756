"""Structured Hessian at the mode + Laplace draws; prototype."""
import time, numpy as np
import httpstan.models
from pystanmods.depmap import prepare
from pystanmods.depmap.release import read_release
from pystanmods.models.gene_effect import GeneEffect, pilot
from pystanmods.engines import get_engine
from pystanmods.engines.asyncio_compat import run_outside_loop
from pystanmods.sampling import compile_model
from pystanmods.data.stan_json import plain as _plain
import sys
rel = read_release("benchmarks/data/depmap-sample")
genes = None
if len(sys.argv) > 1:
    import pandas as pd
    f0, _ = prepare(rel, covariates=["copy_number"], multi_aligned="keep", verbose=False); genes = sorted(f0["gene"].unique())[: int(sys.argv[1])]
frame, report = prepare(rel, genes=genes, covariates=["copy_number"], multi_aligned="keep", verbose=False)
model = GeneEffect()
sd = model.prepare(frame, compute_log_lik=False, compute_y_rep=False)
scales, inits = pilot(sd.data); sd.data.update(scales)
engine = get_engine("pystan")
compiled = compile_model(model, "centered", engine, quiet=True)
posterior = engine._posterior(compiled.program, compiled.directory, sd.data, None)
module = run_outside_loop(httpstan.models.import_services_extension_module, posterior.model_name)
plain = _plain(sd.data)
x0 = np.array(module.transform_inits(plain, {k: (v.tolist() if hasattr(v,'tolist') else v) for k,v in inits.items()}))
n = len(x0)
names = module.get_param_names(plain); dims = module.get_dims(plain)
layout = {}; pos = 0
for nm, d in zip(names, dims):
    size = int(np.prod(d)) if d else 1
    if pos >= n: break
    layout[nm] = (pos, size, d); pos += size
assert pos == n, (pos, n)
G = sd.data["G"]; S = sd.data["S"]; sg = np.asarray(sd.data["sgrna_gene"]) - 1
group = np.full(n, -1)
for nm, gof in (("mu_g", np.arange(G)), ("log_tau_g", np.arange(G)), ("k_s", sg), ("omega_s", sg)):
    p, size, d = layout[nm]; group[p:p+size] = gof
print("n", n, "local", (group>=0).sum(), "global", (group<0).sum())
# colours: position of each local coordinate within its gene's block; each global alone
local = np.flatnonzero(group >= 0)
position = np.zeros(n, int)
order = np.argsort(group[local], kind="stable")
gl = group[local][order]
starts = np.r_[0, np.flatnonzero(np.diff(gl)) + 1]
pos_in = np.arange(len(gl)) - np.repeat(starts, np.diff(np.r_[starts, len(gl)]))
position[local[order]] = pos_in
width = pos_in.max() + 1
glob = np.flatnonzero(group < 0)
def grad(x):
    return np.asarray(module.log_prob_grad(plain, list(x), True))
import os
mode = np.load("/tmp/lap/mode.npy") if os.path.exists("/tmp/lap/mode.npy") and len(sys.argv) == 1 else None
if mode is None:
    import scipy.optimize as so
    def f(x):
        xl = list(x); return -module.log_prob(plain, xl, True), -np.asarray(module.log_prob_grad(plain, xl, True))
    t = time.perf_counter(); r = so.minimize(f, x0, jac=True, method="L-BFGS-B", options={"maxiter": 5000, "maxcor": 20, "gtol": 1e-7, "ftol": 1e-13}); print("opt", r.nit, r.nfev, time.perf_counter()-t, r.message)
    mode = r.x
h = 1e-4
t = time.perf_counter()
H = {}
cols = [("c", j, (group >= 0) & (position == j)) for j in range(width)] + [("g", int(i), np.arange(n) == i) for i in glob]
Hloc = np.zeros((len(local),)) 
rowsets = []
from scipy import sparse
rows, colsi, vals = [], [], []
for kind, j, mask in cols:
    e = mask.astype(float) * h
    d = (grad(mode + e) - grad(mode - e)) / (2 * h)
    if kind == "g":
        rows.append(np.arange(n)); colsi.append(np.full(n, j)); vals.append(d)
    else:
        # rows: the local coordinates of each gene, column: that gene's coordinate at position j
        perturbed = np.flatnonzero(mask)
        col_of_gene = np.full(G, -1); col_of_gene[group[perturbed]] = perturbed
        r = local[col_of_gene[group[local]] >= 0]
        rows.append(r); colsi.append(col_of_gene[group[r]]); vals.append(d[r])
print("hessian calls", 2 * len(cols), time.perf_counter() - t)
Hs = sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(colsi))), shape=(n, n)).tocsr()
# global columns fill global rows of local columns by symmetry
Hd = Hs.toarray() if n < 3000 else None
np.save("/tmp/lap/H_struct_%d.npy" % n, Hs.toarray()) if n < 3000 else sparse.save_npz("/tmp/lap/H_struct.npz", Hs)
if len(sys.argv) > 1:
    t = time.perf_counter()
    D = np.zeros((n, n))
    for i in range(n):
        e = np.zeros(n); e[i] = h
        D[:, i] = (grad(mode + e) - grad(mode - e)) / (2 * h)
    print("dense", time.perf_counter() - t)
    Dsym = (D + D.T) / 2
    # structured: symmetrise by taking global columns and local blocks
    Hf = Hs.toarray()
    Hf[np.ix_(glob, local)] = Hf[np.ix_(local, glob)].T  # from the global columns
    print("max |struct - dense|", np.abs(Hf - Dsym).max(), "max |dense|", np.abs(Dsym).max(), "asym", np.abs(D - D.T).max())
    ev = np.linalg.eigvalsh(-Dsym); print("min/max eig of -H", ev.min(), ev.max())
