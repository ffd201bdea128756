"""Log fold changes from raw read counts, following DepMap/Chronos conventions.

The steps and why:

1. **Screens.** A sequenced replicate with ``PassesQC == False`` is dropped
   (DepMap's own QC: low-quality replicates are excluded from Chronos). A
   screen (``ScreenID``) is reported as failed when none of its replicates pass.
   pDNA samples failing QC are left out of their batch reference.
2. **Guides.** Dropped, in this order, each guide counted once under the first
   reason that applies: not in the guide map (no gene to assign); a
   ``DropReason`` in the guide map (DepMap flagged it); more than one genomic
   alignment (``nAlignments > 1`` or several guide-map rows): a guide cutting
   several loci confounds their effects and adds a cutting-toxicity signal
   (Chronos' ``filter_guides`` likewise removes guides mapped to several
   genes); with ``multi_aligned="keep"`` only guides listed under several
   genes are dropped here, and the others keep their cut-site count in
   ``n_alignments`` (see :data:`MULTI_ALIGNED`); no gene (nothing to attribute the effect to); ``UsedByChronos ==
   False`` when that column exists (DepMap excluded the guide from its own
   gene effects).
3. **Normalisation.** Each sample (replicate or pDNA) is scaled to reads per
   million over the guides that survive step 2, then a pseudocount of 1 is
   added, as in Chronos' ``calculate_fold_change`` (``1e6 * counts / total + 1``).
   Normalising over the quality-filtered guides, not over a user's gene
   selection, makes a guide's logFC independent of which genes are selected.
   NA counts are left out of a sample's total (they are unknown, not zero).
4. **Reference.** The pDNA samples are normalised the same way and averaged
   (mean of normalised values, NA skipped) per ``pDNA_batch``; each replicate
   is compared with the reference of its own batch, because libraries of
   different batches were amplified separately. Chronos takes the median of
   the batch's pDNA samples; with one or two pDNA samples per batch (as in the
   sample release) the two agree. A replicate whose batch has no usable pDNA
   sample is dropped and counted.
5. **Low pDNA.** A guide whose batch reference is below one read per million
   (before the pseudocount) is dropped in that batch (``low_pdna``), as the
   Achilles pipeline removes "guides with pDNA counts less than one millionth
   of the pDNA pool": a guide barely present in the library at the start
   cannot show depletion, and its ratio is dominated by the pseudocount.
   ``min_pdna_rpm=0`` switches this off.
6. **logFC** ``= log2(normalised replicate / batch reference)``, one row per
   sgRNA x replicate. A row whose replicate count or reference is NA has no
   logFC; it is dropped and counted (``na_count`` / ``na_pdna``), never imputed.
   Each row is counted under the first reason that applies, in the order
   ``na_count``, ``na_pdna``, ``low_pdna``.

Not done here, on purpose: Chronos' own normalisation to the mode or to
negative-control guides, its removal of outgrowths and its exclusion of genes
with fewer than two guides (``filter_guides``) are modelling choices of Chronos;
the frame keeps raw logFC so that the Stan models see the data as measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pystanmods.data import DataError
from pystanmods.depmap.release import PDNA, Release

PSEUDOCOUNT = 1.0
#: A guide whose pDNA batch reference is below this many reads per million
#: (before the pseudocount) has no logFC in that batch (see step 5).
MIN_PDNA_RPM = 1.0
#: Guide drop reasons, in the order they are applied.
GUIDE_REASONS = ("not_in_guide_map", "drop_reason", "multiple_alignments", "no_gene", "not_used_by_chronos")
#: Replicate drop reasons, in the order they are applied.
REPLICATE_REASONS = ("failed_qc", "not_selected", "no_pdna_reference")


@dataclass
class SequenceSelection:
    """Which sequenced samples enter the logFC."""

    replicates: pd.DataFrame
    pdna: pd.DataFrame
    replicates_in: int
    dropped: dict[str, int]
    pdna_in: int
    pdna_failed_qc: int
    screens_in: int
    screens_failed_qc: list[str]
    cell_lines_not_found: list[str] = field(default_factory=list)
    #: Screened cell lines in the sequence map, and those lost at each step
    #: (a line is counted under the step that removed its last replicate).
    cell_lines_in: int = 0
    cell_lines_dropped: dict[str, int] = field(default_factory=dict)


@dataclass
class GuideSelection:
    """Which guides enter the normalisation and which the output."""

    qc: pd.DataFrame  # one row per guide passing quality filters: sgrna, symbol, entrez_id, gene
    selected: pd.DataFrame  # the subset for the requested genes
    guides_in: int
    dropped: dict[str, int]
    without_counts: int
    genes_not_found: list[str] = field(default_factory=list)
    #: Genes targeted by guides of the count matrix, and those lost at each
    #: step (``no_usable_guide``: every guide failed a filter; ``not_selected``).
    genes_in: int = 0
    genes_dropped: dict[str, int] = field(default_factory=dict)


def select_sequences(release: Release, cell_lines: Sequence[str] | None = None) -> SequenceSelection:
    """Split the sequence map into used replicates and pDNA, counting every drop."""
    seq = release.sequence_map.copy()
    file = release.files.get("sequence_map", "sequence map")
    passes = seq["PassesQC"] if "PassesQC" in seq else pd.Series(True, index=seq.index)
    is_pdna = seq["cell_line_name"] == PDNA
    pdna_all = seq[is_pdna]
    pdna = pdna_all[passes[is_pdna]]
    reps = seq[~is_pdna].copy()
    reps["cell_line_name"] = reps["cell_line_name"].astype(str)
    reps["screen_id"] = reps["ScreenID"].astype(str) if "ScreenID" in reps else reps["cell_line_name"]
    reps["replicate"] = (
        reps["Replicate"].astype("string").fillna(reps["sequence_ID"]) if "Replicate" in reps else reps["sequence_ID"]
    )
    dropped: dict[str, int] = {}
    lines_in = set(reps["cell_line_name"])
    lines_dropped: dict[str, int] = {}
    rep_pass = passes[~is_pdna]
    failed_screens = sorted(
        set(reps.loc[~rep_pass, "screen_id"]) - set(reps.loc[rep_pass, "screen_id"])
    )
    screens_in = reps["screen_id"].nunique()
    dropped["failed_qc"] = int((~rep_pass).sum())
    reps = reps[rep_pass]
    lines_dropped["failed_qc"] = len(lines_in) - reps["cell_line_name"].nunique()

    not_found: list[str] = []
    if cell_lines is not None:
        wanted = list(dict.fromkeys(str(c).strip() for c in cell_lines))
        known = set(seq.loc[~is_pdna, "cell_line_name"].astype(str))
        not_found = [c for c in wanted if c not in known]
        if len(not_found) == len(wanted):
            raise DataError(
                f"none of the {len(wanted)} requested cell lines is screened in {file} "
                f"(cell_line_name): {', '.join(map(repr, wanted[:3]))}{', ...' if len(wanted) > 3 else ''}"
            )
        keep = reps["cell_line_name"].isin(wanted)
        dropped["not_selected"] = int((~keep).sum())
        lines_before = reps["cell_line_name"].nunique()
        reps = reps[keep]
        lines_dropped["not_selected"] = lines_before - reps["cell_line_name"].nunique()
    else:
        dropped["not_selected"] = 0
        lines_dropped["not_selected"] = 0

    has_ref = reps["pDNA_batch"].isin(set(pdna["pDNA_batch"]))
    dropped["no_pdna_reference"] = int((~has_ref).sum())
    lines_before = reps["cell_line_name"].nunique()
    reps = reps[has_ref]
    lines_dropped["no_pdna_reference"] = lines_before - reps["cell_line_name"].nunique()
    if reps.empty:
        raise DataError(
            f"{file}: no replicate is left to compute logFC from "
            f"({', '.join(f'{k}: {v}' for k, v in dropped.items() if v)})"
        )
    return SequenceSelection(
        replicates=reps,
        pdna=pdna,
        replicates_in=int((~is_pdna).sum()),
        dropped=dropped,
        pdna_in=int(is_pdna.sum()),
        pdna_failed_qc=int((~passes[is_pdna]).sum()),
        screens_in=int(screens_in),
        screens_failed_qc=failed_screens,
        cell_lines_not_found=not_found,
        cell_lines_in=len(lines_in),
        cell_lines_dropped=lines_dropped,
    )


def _gene_matches(guides: pd.DataFrame, token: str) -> pd.Series:
    """Guides of a gene named by symbol, ``SYMBOL (ENTREZ)`` or Entrez ID."""
    token = token.strip()
    if token.isdigit():
        return guides["entrez_id"] == int(token)
    return (guides["symbol"] == token) | (guides["gene"] == token)


#: What to do with a guide that cuts several places: ``drop`` it (the
#: default, for the catalogue models, which have no cutting-toxicity term) or
#: ``keep`` it when every alignment is of one gene, as DepMap's Chronos run
#: does, with its number of cut sites in ``n_alignments`` (the gene_effect
#: model adds their cutting toxicity). A guide listed under several genes is
#: dropped either way: its effect cannot be given to one gene.
MULTI_ALIGNED = ("drop", "keep")


def select_guides(
    release: Release, genes: Sequence[str] | None = None, multi_aligned: str = "drop"
) -> GuideSelection:
    """Quality-filter the guides of the count matrix, then select genes (see :data:`MULTI_ALIGNED`)."""
    if multi_aligned not in MULTI_ALIGNED:
        raise ValueError(f"multi_aligned must be one of {MULTI_ALIGNED}, got {multi_aligned!r}")
    gm = release.guide_map
    columns = list(release.readcounts.columns)
    guides_in = len(columns)
    rows_per_guide = gm.groupby("sgrna").size()
    # One row per guide: a guide listed several times aligns to several loci.
    first = gm.drop_duplicates("sgrna").set_index("sgrna")
    table = pd.DataFrame({"sgrna": columns}).set_index("sgrna", drop=False)
    in_map = table.index.isin(first.index)
    dropped: dict[str, int] = {"not_in_guide_map": int((~in_map).sum())}
    table = table[in_map].join(first, how="left")
    table["n_rows"] = rows_per_guide.reindex(table.index).to_numpy()

    flagged = pd.Series(False, index=table.index)
    if "DropReason" in gm:
        reason = gm.assign(flag=gm["DropReason"].notna() & (gm["DropReason"].astype(str).str.strip() != ""))
        flagged = reason.groupby("sgrna")["flag"].any().reindex(table.index).fillna(False).astype(bool)
    dropped["drop_reason"] = int(flagged.sum())
    table = table[~flagged]

    sites = table["nAlignments"].fillna(1) if "nAlignments" in table else pd.Series(1.0, index=table.index)
    table["n_alignments"] = np.maximum(sites.to_numpy(dtype=float), table["n_rows"].to_numpy(dtype=float))
    if multi_aligned == "drop":
        multi = table["n_alignments"] > 1
    else:
        genes_per_guide = gm.groupby("sgrna")["entrez_id"].nunique(dropna=False)
        multi = genes_per_guide.reindex(table.index).fillna(1) > 1
    dropped["multiple_alignments"] = int(multi.sum())
    table = table[~multi]

    no_gene = table["entrez_id"].isna()
    dropped["no_gene"] = int(no_gene.sum())
    table = table[~no_gene]

    if "UsedByChronos" in table:
        unused = ~table["UsedByChronos"].astype(bool)
        dropped["not_used_by_chronos"] = int(unused.sum())
        table = table[~unused]
    else:
        dropped["not_used_by_chronos"] = 0

    # Genes are counted over every guide-map row of a guide in the count
    # matrix, so a gene reached only by multiply-aligned guides counts as lost.
    genes_in = set(gm.loc[gm["sgrna"].isin(columns), "entrez_id"].dropna().astype(int))
    qc = table[["sgrna", "gene", "symbol", "entrez_id", "n_alignments"]].reset_index(drop=True)
    qc["entrez_id"] = qc["entrez_id"].astype(int)
    qc["symbol"] = qc["symbol"].astype(str)
    if qc.empty:
        raise DataError(
            f"{release.files.get('guide_map')}: no guide passes the guide filters "
            f"({', '.join(f'{k}: {v}' for k, v in dropped.items() if v)})"
        )
    not_found: list[str] = []
    selected = qc
    if genes is not None:
        wanted = list(dict.fromkeys(str(g).strip() for g in genes if str(g).strip()))
        keep = pd.Series(False, index=qc.index)
        for token in wanted:
            hit = _gene_matches(qc, token)
            if not hit.any():
                not_found.append(token)
            keep |= hit
        if not keep.any():
            raise DataError(
                f"none of the {len(wanted)} requested genes has a guide that passes the filters in "
                f"{release.files.get('guide_map')}: {', '.join(map(repr, wanted[:3]))}"
                f"{', ...' if len(wanted) > 3 else ''}"
            )
        selected = qc[keep].reset_index(drop=True)
    dropped["not_selected"] = len(qc) - len(selected)
    without_counts = int((~first.index.isin(columns)).sum())
    genes_qc = set(qc["entrez_id"])
    genes_dropped = {
        "no_usable_guide": len(genes_in - genes_qc),
        "not_selected": len(genes_qc - set(selected["entrez_id"])),
    }
    return GuideSelection(
        qc, selected, guides_in, dropped, without_counts, not_found, genes_in=len(genes_in), genes_dropped=genes_dropped
    )


def reads_per_million(counts: pd.DataFrame, pseudocount: float = PSEUDOCOUNT) -> pd.DataFrame:
    """Scale each row to a million reads over its non-NA guides, plus ``pseudocount``."""
    totals = counts.sum(axis=1, skipna=True)
    empty = totals <= 0
    if empty.any():
        raise DataError(
            f"read counts: {int(empty.sum())} samples have no reads over the kept guides, "
            f"e.g. {', '.join(map(repr, totals.index[empty][:3]))}"
        )
    return counts.div(totals, axis=0) * 1e6 + pseudocount


@dataclass
class LogFCResult:
    """Long logFC table and the counts of what was dropped on the way."""

    frame: pd.DataFrame
    rows_in: int
    rows_dropped: dict[str, int]
    na_cells: dict[str, int]


def compute_logfc(
    release: Release,
    sequences: SequenceSelection,
    guides: GuideSelection,
    *,
    pseudocount: float = PSEUDOCOUNT,
    keep_counts: bool = False,
    min_pdna_rpm: float = MIN_PDNA_RPM,
) -> LogFCResult:
    """One row per selected sgRNA x replicate with its logFC (see the module docstring)."""
    reps, pdna = sequences.replicates, sequences.pdna
    used = list(reps["sequence_ID"]) + list(pdna["sequence_ID"])
    raw = release.readcounts.loc[used, guides.qc["sgrna"].tolist()]
    rpm = reads_per_million(raw, pseudocount)
    selected = guides.selected["sgrna"].tolist()

    batch_of_pdna = pdna.set_index("sequence_ID")["pDNA_batch"]
    pdna_ids = list(pdna["sequence_ID"])
    reference = rpm.loc[pdna_ids, selected].groupby(batch_of_pdna.loc[pdna_ids].to_numpy()).mean()
    raw_reference = raw.loc[pdna_ids, selected].groupby(batch_of_pdna.loc[pdna_ids].to_numpy()).mean()

    rep_ids = list(reps["sequence_ID"])
    batches = reps["pDNA_batch"].to_numpy()
    numerator = rpm.loc[rep_ids, selected].to_numpy()
    denominator = reference.loc[batches].to_numpy()
    with np.errstate(invalid="ignore"):
        lfc = np.log2(numerator / denominator)

    n_reps, n_guides = numerator.shape
    rep_index = np.repeat(np.arange(n_reps), n_guides)
    guide_index = np.tile(np.arange(n_guides), n_reps)
    na_rep = np.isnan(numerator).ravel()
    na_ref = np.isnan(denominator).ravel() & ~na_rep
    # The reference in reads per million before the pseudocount was added.
    with np.errstate(invalid="ignore"):
        low_ref = ((denominator - pseudocount) < min_pdna_rpm).ravel() & ~na_rep & ~na_ref
    sel = guides.selected
    frame = pd.DataFrame(
        {
            "gene": sel["symbol"].to_numpy()[guide_index],
            "entrez_id": sel["entrez_id"].to_numpy()[guide_index],
            "sgrna": sel["sgrna"].to_numpy()[guide_index],
            "cell_line": reps["cell_line_name"].to_numpy()[rep_index],
            "screen_id": reps["screen_id"].to_numpy()[rep_index],
            "replicate": reps["replicate"].astype(str).to_numpy()[rep_index],
            "sequence_id": reps["sequence_ID"].to_numpy()[rep_index],
            "pdna_batch": reps["pDNA_batch"].astype(str).to_numpy()[rep_index],
            "n_alignments": sel["n_alignments"].to_numpy()[guide_index].astype(int),
        }
    )
    if "days" in reps:
        frame["days"] = reps["days"].to_numpy()[rep_index]
    frame["logfc"] = lfc.ravel()
    if keep_counts:
        frame["counts_initial"] = raw_reference.loc[batches].to_numpy().ravel()
        frame["counts_final"] = raw.loc[rep_ids, selected].to_numpy().ravel()
    keep = ~(na_rep | na_ref | low_ref)
    frame = frame[keep].reset_index(drop=True)
    na_cells = {
        "replicates": int(np.isnan(raw.loc[rep_ids, selected].to_numpy()).sum()),
        "pdna": int(np.isnan(raw.loc[pdna_ids, selected].to_numpy()).sum()),
    }
    return LogFCResult(
        frame=frame,
        rows_in=n_reps * n_guides,
        rows_dropped={"na_count": int(na_rep.sum()), "na_pdna": int(na_ref.sum()), "low_pdna": int(low_ref.sum())},
        na_cells=na_cells,
    )
