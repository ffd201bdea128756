"""One tool's fit of the gene_effect model to a gene subset of the DepMap sample; one JSON line out.

    python compare.py TOOL N_GENES [CHAINS WARMUP DRAWS SEED] >> runs.jsonl

N_GENES ``all``: every gene of the sample (883). N_GENES ``sim:N``: in place of
the sample, ``GeneEffect().simulate`` with N genes in the design of
``benchmarks.lineage`` (40 cell lines, 1-6 guides per gene, 2 replicate
screens, 5% of guide x line cells missing, copy number), seed 11: the
simulated lineage subset of issue 16, part 4. The true values are known
there, so the run also reports how often the central 90% intervals of
each effect vector cover them (``theta``, the gene x cell-line effects,
only where the program draws it).

TOOL: ``pystanmods`` (embedded engine, ``fit_gene_effects`` as ``depmap fit``
runs it: the centered program on pilot scales from jittered pilot inits),
``nutpie`` or ``pymc`` (``benchmarks.peers.gene_effect``, non-centered, on
the Stan data that ``GeneEffect().prepare`` makes of the same frame). Genes:
N_GENES drawn at random (seed 7) from the sample's guide map; all 41 lines;
copy number as the cutting-toxicity covariate, multi-aligned guides kept.
Min bulk ESS and max R-hat are over the constrained quantities both
programs have (the hyperparameters and every effect vector), so the two
parameterizations are measured on the same things. Peak RSS: the largest
of this process's and its children's (chains run in separate processes
under the embedded engine, in threads under nutpie).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "benchmarks" / "data" / "depmap-sample"
QUANTITIES = ("mu_0", "sigma_mu", "mu_g", "mu_log_tau", "sigma_log_tau", "log_tau_g", "k_s", "sigma_omega",
              "omega_s", "sigma_q", "log_q_c", "sigma_beta", "beta_c", "kappa_0", "sigma_kappa", "kappa_c",
              "mu_sigma", "tau_sigma", "log_sigma_c")
REPORTED_MEANS = ("mu_0", "sigma_mu", "mu_log_tau", "sigma_log_tau", "sigma_omega", "sigma_q", "sigma_beta",
                  "kappa_0", "mu_sigma", "tau_sigma")


def genes(n_genes: int) -> list[str]:
    """n_genes drawn at random (seed 7) from the sample's guide map."""
    symbols = sorted(pd.read_csv(DATA / "AvanaGuideMap.csv")["gene"].dropna().map(lambda s: s.split(" (")[0]).unique())
    return [str(g) for g in np.random.default_rng(7).choice(symbols, n_genes, replace=False)]


def simulated(n_genes: int):
    """The simulated lineage subset: ``benchmarks.lineage``'s design at ``n_genes`` genes."""
    from benchmarks.lineage import CELL_LINES, GUIDES_PER_GENE, MISSING, REPLICATES
    from pystanmods.models.gene_effect import GeneEffect

    return GeneEffect().simulate(seed=SIMULATION_SEED, n_genes=n_genes, n_cell_lines=CELL_LINES,
                                 guides_per_gene=GUIDES_PER_GENE, n_replicates=REPLICATES, missing_fraction=MISSING)


#: The seed of the simulated lineage subset (``sim:N``).
SIMULATION_SEED = 11


def coverage(posterior, truth: dict, names=("theta", "mu_g", "log_tau_g", "k_s", "omega_s", "log_q_c", "beta_c",
                                            "kappa_c", "log_sigma_c"), prob: float = 0.9) -> dict:
    """Share of true values inside the central ``prob`` intervals, per variable present in both."""
    out = {}
    for name in names:
        if name not in posterior or name not in truth:
            continue
        draws = posterior[name].stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
        lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        true = np.asarray(truth[name], dtype=float).reshape(lo.shape)
        out[name] = float(np.mean((true >= lo) & (true <= hi)))
    return out


def _commit() -> str:
    """The repository's HEAD, so that a run names the programs it sampled."""
    import subprocess

    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def summary(posterior, sample_stats) -> dict:
    from benchmarks.metrics import free_parameter_summary

    min_ess, worst, max_rhat = free_parameter_summary(posterior, QUANTITIES)
    steps = "n_steps" if "n_steps" in sample_stats else "tree_size"
    return {"min_ess_bulk": min_ess, "worst": worst, "max_rhat": max_rhat,
            "divergences": int(sample_stats["diverging"].sum()),
            "leapfrog_per_draw": float(sample_stats[steps].mean()),
            "means": {name: float(posterior[name].mean()) for name in REPORTED_MEANS}}


def main() -> None:
    tool = sys.argv[1]
    chains, warmup, draws, seed = (int(a) for a in (sys.argv[3:7] if len(sys.argv) > 3 else (2, 300, 300, 1)))
    sim = simulated(int(sys.argv[2].removeprefix("sim:"))) if sys.argv[2].startswith("sim:") else None
    pick = None if sys.argv[2] == "all" or sim is not None else genes(int(sys.argv[2]))
    if sim is not None:
        n_genes = int(sys.argv[2].removeprefix("sim:"))
    else:
        n_genes = len(set(pd.read_csv(DATA / "AvanaGuideMap.csv")["gene"].dropna())) if pick is None else len(pick)
    load = os.getloadavg()
    start = time.perf_counter()
    out = {"tool": tool, "genes": n_genes, "chains": chains, "warmup": warmup, "draws": draws, "seed": seed,
           "load_at_start": [round(x, 2) for x in load], "commit": _commit(),
           "data": f"simulated lineage subset, seed {SIMULATION_SEED}" if sim is not None else "DepMap sample"}
    if tool == "pystanmods" and sim is not None:
        # What fit_gene_effects does after reading a release: the centered program
        # on the pilot's scales, from jittered pilot inits.
        from pystanmods.models.gene_effect import GeneEffect, jittered_inits, pilot
        from pystanmods.sampling import fit as run_fit

        model = GeneEffect()
        stan_data = model.prepare(sim.data, compute_log_lik=False, compute_y_rep=False)
        scales, inits = pilot(stan_data.data)
        stan_data.data.update(scales)
        fit = run_fit(model, stan_data, parameterization="centered", chains=chains, iter_warmup=warmup,
                      iter_sampling=draws, seed=seed, show_progress=False,
                      inits=jittered_inits(inits, scales, chains, seed))
        out.update(program="gene_effect_centered (pilot scales)", sampling_seconds=fit.sampling_seconds,
                   N=len(sim.data), coverage_90=coverage(fit.idata.posterior, sim.truth),
                   **summary(fit.idata.posterior, fit.idata.sample_stats))
    elif tool == "pystanmods":
        from pystanmods.depmap import gene_effects as ge
        from pystanmods.depmap.release import read_release

        res = ge.fit_gene_effects(read_release(DATA), genes=pick, chains=chains, iter_warmup=warmup,
                                  iter_sampling=draws, seed=seed, show_progress=False, verbose=False)
        fit = res.fit
        out.update(program="gene_effect_centered (pilot scales)", sampling_seconds=fit.sampling_seconds,
                   N=len(res.frame), **summary(fit.idata.posterior, fit.idata.sample_stats))
    elif tool in ("nutpie", "pymc"):
        from benchmarks.peers import gene_effect
        from pystanmods.depmap import prepare
        from pystanmods.depmap.release import read_release
        from pystanmods.models.gene_effect import GeneEffect

        if sim is not None:
            frame = sim.data
        else:
            frame, _ = prepare(read_release(DATA), genes=pick, covariates=["copy_number"], multi_aligned="keep",
                               verbose=False)
        data = GeneEffect().prepare(frame, compute_log_lik=False, compute_y_rep=False).data
        model = gene_effect(data, "noncentered")
        t = time.perf_counter()
        if tool == "nutpie":
            import nutpie

            compiled = nutpie.compile_pymc_model(model)
            out["compile_seconds"] = time.perf_counter() - t
            t = time.perf_counter()
            idata = nutpie.sample(compiled, draws=draws, tune=warmup, chains=chains, cores=chains, seed=seed,
                                  progress_bar=False)
            out["sampling_seconds"] = time.perf_counter() - t
        else:
            import pymc as pm

            with model:
                idata = pm.sample(draws=draws, tune=warmup, chains=chains, cores=chains, random_seed=seed,
                                  progressbar=False, compute_convergence_checks=False)
            out["sampling_seconds"] = float(idata.posterior.attrs.get("sampling_time", time.perf_counter() - t))
        out.update(program="benchmarks.peers.gene_effect (non-centered)", N=int(data["N"]),
                   **summary(idata.posterior, idata.sample_stats))
        if sim is not None:
            out["coverage_90"] = coverage(idata.posterior, sim.truth)
    else:
        raise SystemExit(f"unknown tool {tool!r}: pystanmods, nutpie or pymc")
    out["wall_seconds"] = time.perf_counter() - start
    out["ess_per_second"] = out["min_ess_bulk"] / out["sampling_seconds"]
    out["peak_rss_mb"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                             resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    out["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
