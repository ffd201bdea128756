"""A release by lineage, Pathfinder against NUTS, in one run (issue 16, parts 2 and 3).

    python -m benchmarks.by_lineage_approximate --out DIR [--genes 100 --lines 20 --lineages 3]

Simulates a release (``pystanmods.depmap.simulated_release``) of
``--lineages`` lineages of ``--lines`` cell lines each (20 and up: the
centered program, as ``depmap fit`` picks it for a real lineage) and fits it
by lineage twice through :func:`pystanmods.depmap.fit_gene_effects_by`, one
lineage at a time on a one-worker ``LocalCluster``: with NUTS (4 chains x
(1000 + 1000), ``depmap fit``'s defaults) and with ``method="pathfinder"``
(``depmap fit --by lineage --approximate``). Per lineage it compares the two
long tables of scaled gene x cell-line effects as
``benchmarks.pathfinder_compare.agreement`` does (correlation of the means,
sd ratio, dependency calls), and the correlation of each fit's means with the
simulated effects. Writes ``DIR/by_lineage_approximate.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.pathfinder_compare import agreement


def truth_correlation(long: pd.DataFrame, truth: pd.DataFrame) -> float:
    """Correlation of a fit's scaled means with the simulated effects, over its gene x line cells."""
    wide = long.pivot(index="cell_line", columns="gene", values="mean")
    true = truth.loc[wide.index, wide.columns]
    return float(np.corrcoef(wide.to_numpy().ravel(), true.to_numpy().ravel())[0, 1])


def main(argv: list[str] | None = None) -> int:
    from pystanmods.batch.cluster import dask_client
    from pystanmods.depmap import fit_gene_effects_by, simulated_release

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--genes", type=int, default=100)
    parser.add_argument("--lines", type=int, default=20)
    parser.add_argument("--lineages", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "work"
    shutil.rmtree(work, ignore_errors=True)
    release = simulated_release(work / "release", n_lineages=args.lineages, lines_per_lineage=args.lines,
                                n_genes=args.genes, n_essential=max(6, args.genes // 8),
                                n_nonessential=max(6, args.genes // 8), seed=args.seed)
    truth = pd.read_csv(release / "truth_gene_effect.csv", index_col=0)
    result: dict = {"design": {"lineages": args.lineages, "lines_per_lineage": args.lines, "genes": args.genes,
                               "seed": args.seed}, "load_at_start": [round(x, 2) for x in os.getloadavg()]}
    runs = {"nuts": {"chains": 4, "iter_warmup": 1000, "iter_sampling": 1000},
            "pathfinder": {"method": "pathfinder"}}
    tables: dict[str, dict[str, pd.DataFrame]] = {}
    with dask_client(n_workers=1) as client:
        for name, options in runs.items():
            start = time.perf_counter()
            fits = fit_gene_effects_by(release, out=work / "out", client=client, seed=args.seed, progress=False,
                                       **options)
            wall = time.perf_counter() - start
            summary = fits.summary.set_index("lineage")
            ok = summary[summary["status"] == "ok"]
            tables[name] = {lineage: pd.read_csv(fits.out / row.directory / f"{fits.prefix}gene_effect_long.csv")
                            for lineage, row in ok.iterrows()}
            columns = ["status", "fit_seconds", "max_rhat", "min_ess_bulk", "divergences", "pathfinder_pareto_k"]
            result[name] = {"options": options, "wall_seconds": wall,
                            "lineages": json.loads(summary[columns].to_json(orient="index"))}
    result["agreement"] = {}
    for lineage, nuts in tables["nuts"].items():
        approx = tables["pathfinder"].get(lineage)
        if approx is None:
            continue
        result["agreement"][lineage] = {**agreement(approx, nuts),
                                        "truth_correlation_nuts": truth_correlation(nuts, truth),
                                        "truth_correlation_pathfinder": truth_correlation(approx, truth)}
    result["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    (args.out / "by_lineage_approximate.json").write_text(json.dumps(result, indent=2, default=float))
    (args.out / "by_lineage_approximate.md").write_text(markdown(result))
    shutil.rmtree(work, ignore_errors=True)
    print((args.out / "by_lineage_approximate.md").read_text())
    return 0


def markdown(result: dict) -> str:
    d = result["design"]
    lines = [
        "# A release by lineage: Pathfinder against NUTS, one run",
        "",
        f"Simulated release: {d['lineages']} lineages x {d['lines_per_lineage']} cell lines, {d['genes']} genes, "
        f"seed {d['seed']}; one lineage at a time on a one-worker LocalCluster (2 cores). NUTS: 4 chains x "
        f"(1000 + 1000); Pathfinder: 4 paths x 1000 draws. Load average at start {result['load_at_start']}, "
        f"at end {result['load_at_end']}.",
        "",
        f"Whole run: NUTS {result['nuts']['wall_seconds']:.0f} s, Pathfinder {result['pathfinder']['wall_seconds']:.0f} s.",
        "",
        "| lineage | NUTS s | NUTS max R-hat / min bulk ESS / divergences | Pathfinder s | Pareto k | corr. of means "
        "| median abs. diff / NUTS sd | sd ratio, median (10-90%) | calls made NUTS / PF / both | agree "
        "| corr. with truth, NUTS / PF |",
        "|---|---:|---|---:|---:|---:|---:|---|---|---:|---|",
    ]
    for lineage, a in result["agreement"].items():
        n, p = result["nuts"]["lineages"][lineage], result["pathfinder"]["lineages"][lineage]
        lines.append(
            f"| {lineage} | {n['fit_seconds']:.0f} | {n['max_rhat']:.3f} / {n['min_ess_bulk']:.0f} / {n['divergences']:.0f} "
            f"| {p['fit_seconds']:.0f} | {p['pathfinder_pareto_k']:.2f} | {a['mean_correlation']:.3f} "
            f"| {a['mean_abs_difference_over_nuts_sd']:.2f} | {a['sd_ratio_median']:.2f} "
            f"({a['sd_ratio_q10_q90'][0]:.2f}-{a['sd_ratio_q10_q90'][1]:.2f}) | {a['calls_nuts']} / {a['calls_pathfinder']} "
            f"/ {a['calls_both']} | {a['calls_agree_share']:.1%} | {a['truth_correlation_nuts']:.3f} / {a['truth_correlation_pathfinder']:.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
