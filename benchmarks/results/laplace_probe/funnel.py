"""Joint-mode search on the gene_effect centered program: where L-BFGS goes."""
import sys, time, numpy as np, scipy.optimize as so
import httpstan.models
from pystanmods.depmap import prepare
from pystanmods.depmap.release import read_release
from pystanmods.models.gene_effect import GeneEffect, pilot
from pystanmods.engines import get_engine
from pystanmods.engines.asyncio_compat import run_outside_loop
from pystanmods.sampling import compile_model
from pystanmods.engines.pystan import plain as _plain
rel = read_release("benchmarks/data/depmap-sample")
f0, _ = prepare(rel, covariates=["copy_number"], multi_aligned="keep", verbose=False)
genes = sorted(f0["gene"].unique())[: int(sys.argv[1])]
frame, _ = prepare(rel, genes=genes, covariates=["copy_number"], multi_aligned="keep", verbose=False)
model = GeneEffect()
sd = model.prepare(frame, compute_log_lik=False, compute_y_rep=False)
scales, inits = pilot(sd.data); sd.data.update(scales)
engine = get_engine("pystan")
compiled = compile_model(model, "centered", engine, quiet=True)
posterior = engine._posterior(compiled.program, compiled.directory, sd.data, None)
module = run_outside_loop(httpstan.models.import_services_extension_module, posterior.model_name)
plain = _plain(sd.data)
x0 = np.array(module.transform_inits(plain, {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in inits.items()}))
names, dims = module.get_param_names(plain), module.get_dims(plain)
layout, pos = {}, 0
for nm, d in zip(names, dims):
    if pos >= len(x0):
        break
    size = int(np.prod(d)) if d else 1
    layout[nm] = slice(pos, pos + size)
    pos += size
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
print(f"genes {len(genes)} unconstrained {len(x0)}: {r.message}; {r.nit} iterations, {calls[0]} calls, "
      f"{time.perf_counter() - start:.0f} s; lp {-r.fun:.2f}; max |grad| {np.abs(r.jac).max():.3g}")
print(" ".join(f"{w}={r.x[layout[w]][0]:+.3f}" for w in watch))
print("log_tau_g at the end: sd over genes", float(np.std(r.x[layout['log_tau_g']])), "range", float(np.ptp(r.x[layout['log_tau_g']])))
