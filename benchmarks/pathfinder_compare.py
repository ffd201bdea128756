"""Pathfinder against NUTS on the same data (issue 16, part 2: a fast first look).

    python -m benchmarks.pathfinder_compare sample N_GENES --out DIR [--warmup 1000 --draws 1000]
    python -m benchmarks.pathfinder_compare simulated N_GENES --out DIR

``sample``: N genes of the committed DepMap sample (drawn as
``benchmarks/results/gene_effect_peers/compare.py`` draws them, seed 7), all
its lines, fitted by ``fit_gene_effects`` twice, with ``method="pathfinder"``
and with NUTS (2 chains, the centered program on pilot scales, as ``depmap
fit``). Per gene x cell line it compares the scaled effects: the correlation
of the means, the ratio of the sds (Pathfinder over NUTS), and whether both
call a dependency (P(effect < -0.5) above 0.5).

``simulated``: ``compare.simulated(N)`` (the peer table's lineage subset);
Pathfinder only (centered program, pilot scales, a jittered start per path,
as ``depmap fit --approximate`` runs 40 lines), against the truth: the 90% coverage of each effect vector,
set beside the NUTS runs of the peer table on the same data
(``runs_o1_sim.jsonl``).

Writes ``DIR/<kind>_<N>.json`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data" / "depmap-sample"
CALL = 0.5


def _peers():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gene_effect_peers_compare", ROOT / "benchmarks" / "results" / "gene_effect_peers" / "compare.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def agreement(approx: pd.DataFrame, nuts: pd.DataFrame) -> dict:
    """How the two fits' gene x cell-line summaries agree."""
    # The tables' attrs hold per-draw arrays, which pandas cannot compare when merging.
    approx, nuts = approx.copy(), nuts.copy()
    approx.attrs, nuts.attrs = {}, {}
    both = approx.merge(nuts, on=["gene", "cell_line"], suffixes=("_pf", "_nuts"))
    ratio = both["sd_pf"] / both["sd_nuts"]
    call_pf, call_nuts = both["p_dependency_pf"] > CALL, both["p_dependency_nuts"] > CALL
    return {
        "pairs": len(both),
        "mean_correlation": float(np.corrcoef(both["mean_pf"], both["mean_nuts"])[0, 1]),
        "mean_abs_difference_over_nuts_sd": float((abs(both["mean_pf"] - both["mean_nuts"]) / both["sd_nuts"]).median()),
        "sd_ratio_median": float(ratio.median()),
        "sd_ratio_q10_q90": [float(ratio.quantile(0.1)), float(ratio.quantile(0.9))],
        "calls_nuts": int(call_nuts.sum()),
        "calls_pathfinder": int(call_pf.sum()),
        "calls_both": int((call_pf & call_nuts).sum()),
        "calls_agree_share": float((call_pf == call_nuts).mean()),
    }


def sample(n_genes: int, warmup: int, draws: int, seed: int, out_dir: Path, reuse_nuts: bool = False) -> dict:
    from pystanmods.depmap.gene_effects import fit_gene_effects
    from pystanmods.depmap.release import read_release

    pick = _peers().genes(n_genes)
    release = read_release(DATA)
    out: dict = {"data": "DepMap sample", "genes": n_genes, "seed": seed}
    t = time.perf_counter()
    approx = fit_gene_effects(release, genes=pick, method="pathfinder", seed=seed, verbose=False)
    out["pathfinder"] = {"wall_seconds": time.perf_counter() - t, "seconds": approx.seconds,
                         "build_seconds": approx.fit.compile_seconds, "run_seconds": approx.fit.sampling_seconds}
    approx.table.to_csv(out_dir / f"sample_{n_genes}_pathfinder.csv.gz", index=False)
    if reuse_nuts:
        # The NUTS fit of an earlier run of this script (same genes and seed), as it recorded it.
        out["nuts"] = json.loads((out_dir / f"sample_{n_genes}.json").read_text())["nuts"]
        out["nuts"]["reused"] = True
        table = pd.read_csv(out_dir / f"sample_{n_genes}_nuts.csv.gz")
    else:
        t = time.perf_counter()
        nuts = fit_gene_effects(release, genes=pick, chains=2, iter_warmup=warmup, iter_sampling=draws, seed=seed,
                                verbose=False, show_progress=False)
        d = nuts.fit.diagnostics(warn=False)
        out["nuts"] = {"wall_seconds": time.perf_counter() - t, "seconds": nuts.seconds, "chains": 2,
                       "warmup": warmup, "draws": draws, "sampling_seconds": nuts.fit.sampling_seconds,
                       "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk, "divergences": d.divergences}
        # Kept, so that other comparisons need no refit.
        nuts.table.to_csv(out_dir / f"sample_{n_genes}_nuts.csv.gz", index=False)
        table = nuts.table
    out["pathfinder"].update(pareto_k=approx.fit.attrs["pathfinder_pareto_k"],
                             resampled=approx.fit.attrs["pathfinder_resampled"],
                             program=approx.fit.attrs["program"])
    out["agreement"] = agreement(approx.table, table)
    return out


def simulated(n_genes: int, seed: int) -> dict:
    import pystanmods
    from pystanmods.models.gene_effect import GeneEffect, jittered_inits, pilot

    peers = _peers()
    sim = peers.simulated(n_genes)
    model = GeneEffect()
    stan_data = model.prepare(sim.data, compute_log_lik=False, compute_y_rep=False)
    t = time.perf_counter()
    # As depmap fit --approximate runs 40 lines: the centered program on pilot scales, one jittered start per path.
    scales, inits = pilot(stan_data.data)
    stan_data.data.update(scales)
    fit = pystanmods.pathfinder(model, stan_data, "centered", seed=seed, quiet=True,
                                inits=jittered_inits(inits, scales, 4, seed))
    out: dict = {"data": f"simulated lineage subset, seed {peers.SIMULATION_SEED}", "genes": n_genes, "seed": seed,
                 "N": len(sim.data),
                 "pathfinder": {"wall_seconds": time.perf_counter() - t, "build_seconds": fit.compile_seconds,
                                "run_seconds": fit.sampling_seconds},
                 "pareto_k": fit.attrs["pathfinder_pareto_k"], "resampled": fit.attrs["pathfinder_resampled"],
                 "coverage_90": peers.coverage(fit.idata.posterior, sim.truth)}
    post = fit.idata.posterior
    out["mean_correlation_with_truth"] = {
        name: float(np.corrcoef(post[name].mean(("chain", "draw")).to_numpy().ravel(),
                                np.asarray(sim.truth[name]).ravel())[0, 1])
        for name in ("mu_g", "log_tau_g", "k_s", "log_q_c", "kappa_c", "log_sigma_c") if name in post}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("sample", "simulated"))
    parser.add_argument("genes", type=int)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse-nuts", action="store_true",
                        help="sample: take the NUTS fit from an earlier run's files in --out instead of refitting")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = (sample(args.genes, args.warmup, args.draws, args.seed, args.out, args.reuse_nuts) if args.kind == "sample"
              else simulated(args.genes, args.seed))
    text = json.dumps(result, indent=2, default=float)
    (args.out / f"{args.kind}_{args.genes}.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
