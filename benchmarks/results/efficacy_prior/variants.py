import numpy as np
from scipy.special import expit
from pystanmods.models import gene_effect as ge

def base(code, data, scales, inits):
    return code, scales, inits

def _guide_means(data, scales):
    n = np.asarray(data["unit_n"], float); y = np.asarray(data["unit_logfc"], float); x = np.asarray(data["unit_x"], float)
    line = np.asarray(data["unit_cell_line"]) - 1; guide = np.asarray(data["unit_sgrna"]) - 1; S = int(data["S"]); C = int(data["C"])
    beta = ge.helmert_matrix(C - 1) @ scales["beta_c_loc"]
    s2 = np.exp(2 * scales["log_sigma_c_loc"])
    w = n / s2[line]
    r = y - beta[line] - scales["kappa_c_loc"][line] * x
    info = np.bincount(guide, weights=w, minlength=S)
    return np.bincount(guide, weights=w * r, minlength=S) / info, info

def ms(code, data, scales, inits):
    code = code.replace("vector<offset=omega_s_loc, multiplier=omega_s_scale>[S] omega_s;",
                        "vector<offset=omega_s_loc, multiplier=omega_s_scale>[S] m_s;")
    code = code.replace("  vector[S] logit_k_s = 2 + sigma_logit_k * logit_k_s_z;\n",
                        "  vector[S] logit_k_s = 2 + sigma_logit_k * logit_k_s_z;\n"
                        "  vector[S] omega_s = m_s - inv_logit(logit_k_s) .* mu_g[sgrna_gene];\n")
    m, info = _guide_means(data, scales)
    scales = dict(scales); inits = dict(inits)
    scales["omega_s_loc"] = m
    scales["omega_s_scale"] = 1 / np.sqrt(info)
    sg = np.asarray(data["sgrna_gene"]) - 1
    inits["m_s"] = expit(2) * inits["mu_g"][sg]
    del inits["omega_s"]
    return code, scales, inits

def kc(code, data, scales, inits):
    code = code.replace("vector<multiplier=logit_k_s_scale>[S] logit_k_s_z;", "vector<offset=2, multiplier=logit_k_s_scale>[S] logit_k_s;")
    code = code.replace("  vector[S] logit_k_s = 2 + sigma_logit_k * logit_k_s_z;\n", "")
    code = code.replace("logit_k_s_z ~ std_normal();", "logit_k_s ~ normal(2, sigma_logit_k);")
    scales = dict(scales); inits = dict(inits)
    scales["logit_k_s_scale"] = 0.5 * scales["logit_k_s_scale"]
    inits["logit_k_s"] = 2 + 0.5 * inits.pop("logit_k_s_z")
    return code, scales, inits

def ms_kc(code, data, scales, inits):
    c, sc, i = ms(code, data, scales, inits)
    return kc(c, data, sc, i)

VARIANTS = {"base": base, "ms": ms, "kc": kc, "ms_kc": ms_kc}

def kt(code, data, scales, inits):
    code = code.replace("vector<multiplier=logit_k_s_scale>[S] logit_k_s_z;", "vector<lower=0, upper=1>[S] k_s;")
    code = code.replace("  vector[S] logit_k_s = 2 + sigma_logit_k * logit_k_s_z;\n", "  vector[S] logit_k_s = logit(k_s);\n")
    code = code.replace("logit_k_s_z ~ std_normal();",
                        "k_s ~ normal(1, sigma_logit_k);\n  target += -S * log_diff_exp(log(0.5), normal_lcdf(0 | 1, sigma_logit_k));")
    code = code.replace("sigma_logit_k ~ normal(0, 1);", "sigma_logit_k ~ normal(0, 0.5);")
    scales = dict(scales); inits = dict(inits)
    inits.pop("logit_k_s_z"); inits["k_s"] = np.full(int(data["S"]), 0.9)
    inits["log_sigma_logit_k"] = float(np.log(0.2))
    scales["k_s_scale"] = np.full(int(data["S"]), 0.05)
    return code, scales, inits

def ms_kt(code, data, scales, inits):
    c, sc, i = ms(code, data, scales, inits)
    return kt(c, data, sc, i)

VARIANTS.update({"kt": kt, "ms_kt": ms_kt})

def ktf(code, data, scales, inits):
    code, scales, inits = kt(code, data, scales, inits)
    code = code.replace("real<multiplier=inv_sqrt(2 * S)> log_sigma_logit_k;", "")
    code = code.replace("real<lower=0> sigma_logit_k = exp(log_sigma_logit_k);", "real<lower=0> sigma_logit_k = 0.3;")
    code = code.replace("sigma_logit_k ~ normal(0, 0.5);", "")
    code = code.replace("+ log_sigma_logit_k ", "")
    inits.pop("log_sigma_logit_k")
    return code, scales, inits
VARIANTS["ktf"] = ktf

def ms_ktf(code, data, scales, inits):
    c, sc, i = ms(code, data, scales, inits)
    return ktf(c, data, sc, i)
VARIANTS["ms_ktf"] = ms_ktf
