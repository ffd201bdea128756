"""Chronos and pystanmods's gene_effect model on the same DepMap release, in one run.

``python -m benchmarks.depmap_compare RELEASE_DIR --out DIR [--chains 4 --iter-warmup 1000 --iter-sampling 1000]``

Runs Chronos as its README and vignette do (:mod:`benchmarks.chronos_peer`),
then ``pystanmods.depmap.fit_gene_effects`` with the given sampler settings,
one after the other in this process, and writes ``DIR/depmap_compare.json``
and ``DIR/depmap_compare.md``:

* wall time of each tool (and of each step);
* per cell line, AUROC and NNMD of the common-essential against the
  nonessential controls, for both matrices (median and worst line);
* the correlation of the two gene x cell-line matrices (both scaled to the
  controls; Chronos's copy-number corrected), over the cells both have;
* the cells where they differ by more than 0.5, each with its likely cause:
  copy number (|log2 relative CN| > 1 in that line), guide efficacy (the
  gene's guides' posterior efficacies differ by more than 0.5, or its best
  guide is below 0.5), else noise (the posterior sd of that cell).

Chronos needs the ``[bench]`` extra (``crispr-chronos``, TensorFlow). A failure
writes the error and whatever was measured before it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import chronos_peer
from pystanmods.depmap.qc import control_separation


def _separation(matrix: pd.DataFrame, essential: list[str], nonessential: list[str]) -> dict[str, Any]:
    qc = control_separation(matrix, essential, nonessential)
    return {
        "auroc_median": float(qc["auroc"].median()),
        "auroc_worst": float(qc["auroc"].min()),
        "nnmd_median": float(qc["nnmd"].median()),
        "nnmd_worst": float(qc["nnmd"].max()),
        "lines": int(len(qc)),
    }


def _causes(diff: pd.DataFrame, result: Any, copy_number: pd.DataFrame) -> pd.DataFrame:
    efficacy = result.guide_efficacy.assign(label=result.guide_efficacy["gene"].map(result.gene_labels))
    spread = efficacy.groupby("label")["efficacy_mean"].agg(lambda k: k.max() - k.min())
    best = efficacy.groupby("label")["efficacy_mean"].max()
    sd = result.table.assign(label=result.table["gene"].map(result.gene_labels)).set_index(["cell_line", "label"])["sd"]
    causes = []
    for _, row in diff.iterrows():
        cn = copy_number.at[row["cell_line"], row["gene"]] if (
            row["cell_line"] in copy_number.index and row["gene"] in copy_number.columns) else np.nan
        log2_cn = np.log2(max(cn, 2**-5)) if np.isfinite(cn) else np.nan
        if np.isfinite(log2_cn) and abs(log2_cn) > 1:
            causes.append(f"copy number (log2 relative CN {log2_cn:+.2f})")
        elif spread.get(row["gene"], 0) > 0.5 or best.get(row["gene"], 1) < 0.5:
            causes.append(f"guide efficacy (efficacies span {spread.get(row['gene'], np.nan):.2f}, "
                          f"best {best.get(row['gene'], np.nan):.2f})")
        else:
            causes.append(f"noise (posterior sd {sd.get((row['cell_line'], row['gene']), np.nan):.2f})")
    return diff.assign(cause=causes)


def run(release: Path, out: Path, chains: int, iter_warmup: int, iter_sampling: int, seed: int,
        max_treedepth: int | None = None) -> dict[str, Any]:
    from pystanmods.depmap import fit_gene_effects

    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"release": str(release), "settings": {
        "chains": chains, "iter_warmup": iter_warmup, "iter_sampling": iter_sampling, "seed": seed,
        "max_treedepth": max_treedepth or 10}}
    try:
        with open("/proc/loadavg") as f:
            record["load_at_start"] = f.read().split()[:3]
    except OSError:
        pass
    try:
        chronos = chronos_peer.run(release, out / "chronos", seed=seed)
        record["chronos"] = {k: chronos[k] for k in ("seconds", "sizes", "auroc", "nnmd", "cn_corrected")}
        start = time.perf_counter()
        result = fit_gene_effects(release, chains=chains, iter_warmup=iter_warmup, iter_sampling=iter_sampling,
                                  seed=seed, show_progress=False, verbose=False, max_treedepth=max_treedepth)
        wall = time.perf_counter() - start
        result.write(out / "pystanmods")
        d = result.fit.diagnostics(warn=False)
        record["pystanmods"] = {
            "seconds": {**result.seconds, "wall": wall},
            "sizes": {"rows": int(len(result.frame)), "genes": int(result.frame["gene"].nunique()),
                      "guides": int(result.frame["sgrna"].nunique()), "cell_lines": int(result.frame["cell_line"].nunique())},
            "diagnostics": {"max_rhat": float(d.max_rhat), "min_ess_bulk": float(d.min_ess_bulk),
                            "min_ess_tail": float(d.min_ess_tail), "divergences": int(d.divergences),
                            "treedepth_hits": int(d.treedepth_hits), "ebfmi": [float(x) for x in d.ebfmi],
                            "worst_rhat": d.worst_rhat},
            "leapfrogs_per_draw": float(result.fit.idata.sample_stats["n_steps"].mean()),
        }
        ours = result.gene_effect
        theirs = pd.read_csv(out / "chronos" / "chronos_gene_effect.csv", index_col=0)
        essential = chronos_peer.read_controls(release / chronos_peer.CONTROL_FILES["essential"])
        nonessential = chronos_peer.read_controls(release / chronos_peer.CONTROL_FILES["nonessential"])
        record["separation"] = {"chronos": _separation(theirs, essential, nonessential),
                                "pystanmods": _separation(ours, essential, nonessential)}
        lines = ours.index.intersection(theirs.index)
        genes = ours.columns.intersection(theirs.columns)
        a = ours.loc[lines, genes].stack()
        b = theirs.loc[lines, genes].stack()
        both = a.index.intersection(b.index)
        record["agreement"] = {
            "cells": int(len(both)),
            "pearson": float(np.corrcoef(a[both], b[both])[0, 1]),
            "pearson_gene_means": float(np.corrcoef(ours.loc[lines, genes].mean(), theirs.loc[lines, genes].mean())[0, 1]),
        }
        delta = (a[both] - b[both]).rename("difference").reset_index()
        delta.columns = ["cell_line", "gene", "difference"]
        delta = delta.assign(pystanmods=a[both].to_numpy(), chronos=b[both].to_numpy())
        big = delta[delta["difference"].abs() > 0.5].sort_values("difference", key=np.abs, ascending=False)
        copy_number = pd.read_csv(release / "OmicsCNGene.csv", index_col=0)
        big = _causes(big, result, copy_number)
        big.to_csv(out / "disagreements.csv", index=False)
        record["disagreements"] = {
            "count": int(len(big)),
            "by_cause": big["cause"].str.split(" ").str[0].value_counts().to_dict(),
        }
    except Exception as error:
        record["error"] = "".join(traceback.format_exception_only(type(error), error)).strip()
        (out / "depmap_compare.json").write_text(json.dumps(record, indent=2, default=str))
        raise
    (out / "depmap_compare.json").write_text(json.dumps(record, indent=2, default=str))
    (out / "depmap_compare.md").write_text(markdown(record))
    return record


def markdown(record: dict[str, Any]) -> str:
    c, p = record["chronos"], record["pystanmods"]
    s = record["separation"]
    st = record["settings"]
    d = p["diagnostics"]
    lines = [
        f"# Chronos and pystanmods gene_effect on {record['release']}, one run",
        "",
        f"Load average at start: {record.get('load_at_start')}. pystanmods: {st['chains']} chains x "
        f"({st['iter_warmup']} + {st['iter_sampling']}), max tree depth {st.get('max_treedepth', 10)}, seed {st['seed']}, "
        f"embedded engine; {p.get('leapfrogs_per_draw', float('nan')):.0f} leapfrog steps per kept draw.",
        "",
        "| | Chronos 2.3.11 | pystanmods gene_effect |",
        "|---|---:|---:|",
        f"| wall time, s | {c['seconds']['total']:.0f} | {p['seconds']['wall']:.0f} |",
        f"| of which fitting, s | {c['seconds']['train']:.0f} (train) | {p['seconds']['fit']:.0f} (sampling and compile) |",
        f"| AUROC per line, median / worst | {s['chronos']['auroc_median']:.3f} / {s['chronos']['auroc_worst']:.3f} "
        f"| {s['pystanmods']['auroc_median']:.3f} / {s['pystanmods']['auroc_worst']:.3f} |",
        f"| NNMD per line, median / worst | {s['chronos']['nnmd_median']:.2f} / {s['chronos']['nnmd_worst']:.2f} "
        f"| {s['pystanmods']['nnmd_median']:.2f} / {s['pystanmods']['nnmd_worst']:.2f} |",
        f"| posterior | none (point estimates) | max R-hat {d['max_rhat']:.3f}, min bulk ESS {d['min_ess_bulk']:.0f}, "
        f"{d['divergences']} divergences |",
        "",
        f"Agreement over {record['agreement']['cells']} gene x cell-line cells: Pearson "
        f"{record['agreement']['pearson']:.3f} (gene means {record['agreement']['pearson_gene_means']:.3f}). "
        f"Cells differing by more than 0.5: {record['disagreements']['count']}, by likely cause "
        f"{record['disagreements']['by_cause']} (disagreements.csv).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("release", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--iter-warmup", type=int, default=1000)
    parser.add_argument("--iter-sampling", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-treedepth", type=int, default=None)
    args = parser.parse_args(argv)
    record = run(args.release, args.out, args.chains, args.iter_warmup, args.iter_sampling, args.seed,
                 args.max_treedepth)
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
