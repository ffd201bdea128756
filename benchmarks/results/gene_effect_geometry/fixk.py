"""Leapfrog steps of variants of the shipped centered program, on the same data, inits,
seed and settings (2 chains x (300 + 300), max tree depth 10). Run once per variant:

    python fixk.py sampled FIT.nc 150   the shipped program
    python fixk.py fixed FIT.nc 150     k_s as data, fixed at chain 1's posterior means in FIT.nc
                                        (from fit_subset.py): a different model, efficacy known
    python fixk.py eta FIT.nc 150       the same posterior as "sampled", in other coordinates: each
                                        guide's offset sampled as its mean level
                                        eta_s = omega_s + k_s mu_g (omega_s = eta_s - k_s mu_g, a
                                        shift given k_s and mu_g, so no Jacobian)
"""
import json
import sys
import time

import arviz as az
import numpy as np
from common import ROOT, stan_data

from pystanmods.engines.pystan import plain

which, nc_file, n_genes = sys.argv[1], sys.argv[2], int(sys.argv[3])
W, D = 300, 300
data, inits = stan_data(n_genes)
data = plain(dict(data))
code = (ROOT / "stan" / "gene_effect_centered.stan").read_text()
if which == "fixed":
    # The shipped program with k_s moved from parameters (and its prior) to data.
    for line in ("  vector<lower=0, upper=1>[S] k_s;\n", "  k_s ~ normal(1, sigma_k);\n"):
        assert code.count(line) == 1, line
        code = code.replace(line, "")
    end_of_data = code.index("\n}\ntransformed data {")
    code = code[:end_of_data] + "\n  vector<lower=0, upper=1>[S] k_s;" + code[end_of_data:]
    data["k_s"] = az.from_netcdf(nc_file).posterior["k_s"].isel(chain=0).mean("draw").to_numpy().tolist()
    inits = [{n: v for n, v in chain.items() if n != "k_s"} for chain in inits]
    import stan

    posterior = stan.build(code, data=data, random_seed=1)
elif which == "eta":
    old = "  vector<offset=omega_s_loc, multiplier=omega_s_scale>[S] omega_s;\n"
    assert code.count(old) == 1
    code = code.replace(old, "  vector<offset=eta_s_loc, multiplier=omega_s_scale>[S] eta_s;\n")
    anchor = "transformed parameters {\n"
    assert code.count(anchor) == 1
    code = code.replace(anchor, anchor + "  vector[S] omega_s = eta_s - k_s .* mu_g[sgrna_gene];\n")
    end_of_data = code.index("\n}\ntransformed data {")
    code = code[:end_of_data] + "\n  vector[S] eta_s_loc;" + code[end_of_data:]
    gene = np.asarray(data["sgrna_gene"]) - 1
    k0 = float(np.mean(inits[0]["k_s"]))
    data["eta_s_loc"] = (np.asarray(data["omega_s_loc"]) + k0 * np.asarray(data["mu_g_loc"])[gene]).tolist()
    for chain in inits:
        chain["eta_s"] = (np.asarray(chain.pop("omega_s")) + np.asarray(chain["k_s"]) * np.asarray(chain["mu_g"])[gene]).tolist()
    import stan

    posterior = stan.build(code, data=data, random_seed=1)
else:
    from pystanmods.engines import get_engine
    from pystanmods.sampling import compile_model

    compiled = compile_model("gene_effect", "centered")
    posterior = get_engine(None)._posterior(compiled.program, compiled.directory, data, 1)
t = time.time()
fit = posterior.sample(num_chains=2, num_warmup=W, num_samples=D, init=inits, max_depth=10)
seconds = time.time() - t
steps = np.asarray(fit["n_leapfrog__"]).ravel()
draws = {v: np.moveaxis(np.asarray(fit[v]).reshape(-1, 2, D), 0, -1) for v in ("mu_g", "log_tau_g", "omega_s", "beta_c",
                                                                             "log_sigma_c")}
idata = az.from_dict(posterior=draws)
print(json.dumps({
    "variant": which, "genes": int(data["G"]), "warmup": W, "draws": D, "sampling_s": round(seconds, 1),
    "mean_leapfrog_steps": round(float(steps.mean()), 1), "final_step_size": float(np.asarray(fit["stepsize__"]).ravel()[-1]),
    "divergent": int(np.asarray(fit["divergent__"]).sum()),
    "max_rhat": round(max(float(az.rhat(idata)[v].max()) for v in draws), 3),
    "min_ess_bulk": round(min(float(az.ess(idata, method="bulk")[v].min()) for v in draws), 0),
}))
