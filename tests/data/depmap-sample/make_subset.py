"""Rebuild this subset from the full sample release (not needed to run the tests).

Usage: python tests/data/depmap-sample/make_subset.py SOURCE_DIR [DEST_DIR]

Keeps every sequenced sample (so the QC failures, the three pDNA batches and the
cell lines without mutation data stay in) and a fixed list of genes chosen so that
every table has hits: genes with expression, genes with mutations, common-essential
and non-essential controls, genes whose guides have NA read counts, genes whose
guides align more than once, a gene with 8 guides and genes with 2, and the one
gene without copy number, genes with homozygous deletions. Values are copied
unchanged; only rows/columns are dropped (the sequence map and the mutation
table are copied whole).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

GENES = [
    # expression (and several with mutations too)
    "MYB (4602)", "SPI1 (6688)", "SOX10 (6663)", "ESR1 (2099)", "GATA3 (2625)", "FLI1 (2313)",
    "KRAS (3845)", "EGFR (1956)", "MCL1 (4170)", "CCND1 (595)", "FOXA1 (3169)", "PAX8 (7849)",
    "IRF4 (3662)", "HNF1B (6928)", "TEAD1 (7003)", "HNRNPH1 (3187)", "UBE2D2 (7322)", "MDM2 (4193)",
    "KLF5 (688)", "GRHL2 (79977)", "TFAP2C (7022)", "SOX9 (6662)", "CDX2 (1045)", "AKT1 (207)",
    "ERBB3 (2065)", "FLT3 (2322)", "JUN (3725)", "YAP1 (10413)", "GATA1 (2623)", "CEBPA (1050)",
    # mutations (U2AF1 and GNAQ guides also align more than once)
    "BRAF (673)", "NRAS (4893)", "PIK3CA (5290)", "CTNNB1 (1499)", "XPO1 (7514)", "SF3B1 (23451)",
    "U2AF1 (7307)", "GNAQ (2776)", "HRAS (3265)", "ERBB2 (2064)",
    # common essentials (ARPC4 has 8 guides) and non-essentials
    "AAMP (14)", "ABCE1 (6059)", "ACTL6A (86)", "AHCY (191)", "ALG1 (56052)", "ANAPC5 (51433)",
    "AQR (9716)", "ARPC4 (10093)",
    "ABCG8 (64241)", "ACTL7A (10881)", "ACTL9 (284382)", "ADAM18 (8749)", "AFM (173)",
    "AIPL1 (23746)", "ALPI (248)", "APOA4 (337)",
    # NA read counts
    "CHAF1A (10036)", "MED31 (51003)", "GHRH (2691)", "TEX45 (374877)",
    # two guides; no copy number; homozygous deletions (relative CN ~1e-9) in some lines
    "RAC1 (5879)", "SDHA (6389)", "POU2AF3 (120376)", "IFNA2 (3440)", "OR5P2 (120065)",
]

MATRICES = ("OmicsCNGene.csv", "OmicsExpressionProteinCodingGenesTPMLogp1.csv")
# The mutation table is copied whole: a cell line counts as profiled for mutations
# when it appears in the table, so cutting it to the kept genes would turn
# "profiled, not mutated" (0) into "unknown" (NA) for lines mutated elsewhere.
COPIED = ("AvanaSequenceMap.csv", "OmicsSomaticMutations.csv")


def main(source: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    guides = pd.read_csv(source / "AvanaGuideMap.csv")
    unknown = sorted(set(GENES) - set(guides["gene"]))
    if unknown:
        raise SystemExit(f"genes not in the guide map: {unknown}")
    guides = guides[guides["gene"].isin(GENES)]
    guides.to_csv(dest / "AvanaGuideMap.csv", index=False)
    counts = pd.read_csv(source / "AvanaReadcounts.csv", index_col=0)
    # Integer columns stay integers; columns with NA are floats in pandas, written without ".0".
    counts.loc[:, guides["sgrna"].tolist()].to_csv(dest / "AvanaReadcounts.csv", float_format="%.0f")
    for name in COPIED:
        (dest / name).write_bytes((source / name).read_bytes())
    for name in MATRICES:
        table = pd.read_csv(source / name, index_col=0)
        table.loc[:, [g for g in table.columns if g in GENES]].to_csv(dest / name)
    for name in ("AchillesCommonEssentialControls.csv", "AchillesNonessentialControls.csv"):
        table = pd.read_csv(source / name)
        table[table["Gene"].isin(GENES)].to_csv(dest / name, index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parent)
