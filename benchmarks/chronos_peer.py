"""Chronos, DepMap's production model, as a peer: run it on a release folder as its README says.

Steps, each from Chronos's own README and vignette (nothing tuned):

1. read the raw read counts, the sequence map and the guide map as the
   vignette does, with the nonessential genes' guides as negative controls;
2. ``chronos.normalize_readcounts`` and ``chronos.nan_outgrowths`` (in place);
3. ``chronos.Chronos(...)`` with the negative controls and otherwise defaults,
   and ``train()`` with defaults;
4. scale the gene effect so that the median over lines of each line's
   nonessential median is 0 and that of the essential medians is -1;
5. ``chronos.alternate_CN`` with the release's gene-level copy number.

Then the per-line control separation of the final matrix is scored with
:func:`pystanmods.depmap.qc.control_separation`, the same function that scores
this package's matrices, and the wall time of each step is recorded.

Run it with ``python -m benchmarks.chronos_peer RELEASE_DIR --out DIR``; it needs
the ``[bench]`` extra (``crispr-chronos``, TensorFlow on the CPU). The figures
and the matrices go to ``--out``; a failure writes its error and whatever was
measured before it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pystanmods.depmap.qc import CONTROL_FILES, control_separation, read_controls


def read_inputs(release: Path) -> dict[str, Any]:
    """The tables Chronos takes, as its vignette reads them, plus copy number and the control lists.

    The vignette keeps every sequence and every guide of the map (the sample's
    guides are all ``UsedByChronos``) and uses the guides of the nonessential
    genes as negative-control sgRNAs.
    """
    counts = pd.read_csv(release / "AvanaReadcounts.csv", index_col=0)
    sequences = pd.read_csv(release / "AvanaSequenceMap.csv", dtype={"sequence_ID": str})
    guides = pd.read_csv(release / "AvanaGuideMap.csv")
    essential = read_controls(release / CONTROL_FILES["essential"])
    nonessential = read_controls(release / CONTROL_FILES["nonessential"])
    return {
        "readcounts": counts,
        "sequence_map": sequences,
        "guide_gene_map": guides,
        "negative_control_sgrnas": guides.loc[guides["gene"].isin(nonessential), "sgrna"],
        "copy_number": pd.read_csv(release / "OmicsCNGene.csv", index_col=0),
        "essential": essential,
        "nonessential": nonessential,
    }


def scale_to_controls(gene_effect: pd.DataFrame, essential: list[str], nonessential: list[str]) -> pd.DataFrame:
    """Chronos's README scaling: nonessential line medians centred at 0, essential at -1."""
    shifted = gene_effect - gene_effect.reindex(columns=nonessential).median(axis=1).median()
    return shifted / shifted.reindex(columns=essential).median(axis=1).abs().median()


def run(release: Path, out: Path, seed: int = 1) -> dict[str, Any]:
    """Run Chronos on ``release``; write matrices and figures into ``out``; return the figures."""
    import chronos
    import tensorflow as tf

    tf.random.set_seed(seed)
    np.random.seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "tool": "chronos",
        "version": getattr(chronos, "__version__", None),
        "release": str(release),
        "machine": platform.platform(),
        "seconds": {},
    }
    try:
        start = time.perf_counter()
        inputs = read_inputs(release)
        record["seconds"]["read"] = time.perf_counter() - start
        lines = inputs["sequence_map"]["cell_line_name"]
        record["sizes"] = {
            "sequences": int(len(inputs["sequence_map"])),
            "guides": int(inputs["readcounts"].shape[1]),
            "genes": int(inputs["guide_gene_map"]["gene"].nunique()),
            "cell_lines": int(lines[lines != "pDNA"].nunique()),
            "negative_control_sgrnas": int(len(inputs["negative_control_sgrnas"])),
        }
        t = time.perf_counter()
        counts = chronos.normalize_readcounts(
            inputs["readcounts"], inputs["negative_control_sgrnas"], inputs["sequence_map"]
        )
        chronos.nan_outgrowths(
            readcounts=counts, guide_gene_map=inputs["guide_gene_map"], sequence_map=inputs["sequence_map"]
        )
        model = chronos.Chronos(
            readcounts={"avana": counts},
            sequence_map={"avana": inputs["sequence_map"]},
            guide_gene_map={"avana": inputs["guide_gene_map"]},
            negative_control_sgrnas={"avana": inputs["negative_control_sgrnas"]},
        )
        record["seconds"]["setup"] = time.perf_counter() - t
        t = time.perf_counter()
        model.train()
        record["seconds"]["train"] = time.perf_counter() - t
        t = time.perf_counter()
        raw = model.gene_effect
        scaled = scale_to_controls(raw, inputs["essential"], inputs["nonessential"])
        # alternate_CN refuses genes without copy number: those keep their
        # scaled, uncorrected scores, and their count is recorded.
        cn = inputs["copy_number"]
        lines = scaled.index.intersection(cn.index)
        genes = scaled.columns.intersection(cn.columns)
        corrected = scaled.copy()
        corrected.loc[lines, genes], _shifts = chronos.alternate_CN(
            scaled.loc[lines, genes], cn.loc[lines, genes]
        )
        record["seconds"]["copy_number"] = time.perf_counter() - t
        record["seconds"]["total"] = time.perf_counter() - start
        record["cn_corrected"] = {
            "lines": int(len(lines)),
            "genes": int(len(genes)),
            "genes_without_copy_number": sorted(set(scaled.columns) - set(genes)),
            "lines_without_copy_number": sorted(set(scaled.index) - set(lines)),
        }
        raw.to_csv(out / "chronos_gene_effect_raw.csv")
        corrected.to_csv(out / "chronos_gene_effect.csv")
        model.guide_efficacy.to_csv(out / "chronos_guide_efficacy.csv")
        qc = control_separation(corrected, inputs["essential"], inputs["nonessential"])
        qc.to_csv(out / "chronos_control_separation.csv")
        record["auroc"] = {"median": float(qc["auroc"].median()), "worst": float(qc["auroc"].min())}
        record["nnmd"] = {"median": float(qc["nnmd"].median()), "worst": float(qc["nnmd"].max())}
    except Exception as error:  # keep what was measured, then fail loudly
        record["error"] = "".join(traceback.format_exception_only(type(error), error)).strip()
        (out / "chronos.json").write_text(json.dumps(record, indent=2))
        raise
    (out / "chronos.json").write_text(json.dumps(record, indent=2))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("release", type=Path, help="DepMap release folder (Avana read counts, maps, CN, controls)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the matrices and chronos.json")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    record = run(args.release, args.out, seed=args.seed)
    print(json.dumps({k: record[k] for k in ("seconds", "sizes", "auroc", "nnmd")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
