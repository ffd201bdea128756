"""A DepMap release to the tidy modeling frame, in one call."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from pystanmods.data import DataError

from pystanmods.depmap import covariates as cov
from pystanmods.depmap.logfc import MIN_PDNA_RPM, PSEUDOCOUNT, compute_logfc, select_guides, select_sequences
from pystanmods.depmap.release import Release, read_release
from pystanmods.depmap.report import PrepareReport

MISSING_POLICIES = ("drop", "keep")

#: Share of the count matrix's guides that the guide map must describe. A
#: release's guide map covers its count matrix (the sample release: all 260
#: guides); far fewer means a truncated file or one from another release.
MIN_GUIDE_MAP_COVERAGE = 0.9

#: Output column order; absent covariates are left out.
COLUMNS = (
    "gene", "entrez_id", "sgrna", "cell_line", "screen_id", "replicate", "sequence_id", "pdna_batch", "days",
    "logfc", "counts_initial", "counts_final", "n_alignments",
    "rna", "rna_log2tpm", "copy_number", "log2_copy_number", "is_mutated", "lineage",
)


class Prepared(NamedTuple):
    """The tidy frame and the report of how it was made."""

    frame: pd.DataFrame
    report: PrepareReport


def prepare(
    release: str | Path | Release,
    *,
    genes: Sequence[str] | None = None,
    cell_lines: Sequence[str] | None = None,
    missing: str = "keep",
    covariates: Sequence[str] | None = None,
    mutation_filter: str | None = None,
    copy_number_scale: str = "relative",
    keep_counts: bool = False,
    multi_aligned: str = "drop",
    pseudocount: float = PSEUDOCOUNT,
    min_pdna_rpm: float = MIN_PDNA_RPM,
    min_guide_map_coverage: float = MIN_GUIDE_MAP_COVERAGE,
    verbose: bool = True,
) -> Prepared:
    """Turn a DepMap release into one row per sgRNA x replicate with logFC and covariates.

    Parameters
    ----------
    release : str, Path or Release
        Release directory (files under their DepMap names) or a read release.
    genes : sequence of str, optional
        Genes to keep, as symbols (``KRAS``), labels (``KRAS (3845)``) or
        Entrez IDs (``3845``). Default: all.
    cell_lines : sequence of str, optional
        ModelIDs (``ACH-000004``) to keep. Default: all screened.
    missing : {"keep", "drop"}
        A row whose cell line or gene lacks a joined covariate keeps it as NA
        (``keep``) or is dropped (``drop``); either way the rows are counted per
        covariate. With ``drop`` the covariates are applied in the order rna,
        copy_number, is_mutated, lineage and a row is counted under the first
        one it lacks. Restrict ``covariates`` to those a model needs so that
        ``drop`` does not discard rows for a covariate you will not use.
    covariates : sequence of str, optional
        Subset of ``rna``, ``copy_number``, ``is_mutated``, ``lineage`` to join.
        Default: every one whose table is in the release.
    mutation_filter : str, optional
        A True/False column of the mutation table (e.g. ``"LikelyDriver"``);
        only mutations flagged True count for ``is_mutated``. Default: any
        listed somatic mutation counts.
    copy_number_scale : {"relative", "log2p1"}
        How ``OmicsCNGene`` is stored (see :mod:`pystanmods.depmap.covariates`).
    multi_aligned : {"drop", "keep"}
        Guides that cut several places: dropped (default) or, when all their
        alignments are of one gene, kept with ``n_alignments`` (see
        :data:`pystanmods.depmap.logfc.MULTI_ALIGNED`).
    keep_counts : bool
        Add ``counts_initial`` (mean raw pDNA count of the batch) and
        ``counts_final`` (raw replicate count).
    pseudocount : float
        Added to reads per million before the ratio (Chronos: 1).
    min_pdna_rpm : float
        Rows whose pDNA batch reference is below this many reads per million
        are dropped as ``low_pdna`` (DepMap: 1); 0 keeps them.
    min_guide_map_coverage : float
        Least share of the count matrix's guides that the guide map must list
        (default 0.9); below it the release is taken as truncated and rejected.
        Above it, unlisted guides give a warning, and without a gene selection
        their rows are counted under ``rows_dropped["not_in_guide_map"]``.
    verbose : bool
        Print the report.

    Returns
    -------
    Prepared
        ``(frame, report)``. The frame's columns use the package's canonical
        names (``gene``, ``cell_line``, ``sgrna``, ``logfc``, ``rna``, ...), so it
        fits every model whose columns it has (see :func:`supported_models`).

    Notes
    -----
    The logFC steps are documented in :mod:`pystanmods.depmap.logfc`, the
    covariate joins in :mod:`pystanmods.depmap.covariates`.
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")
    if not min_pdna_rpm >= 0:
        raise ValueError(f"min_pdna_rpm must be >= 0, got {min_pdna_rpm!r}")
    if not pseudocount > 0:
        raise ValueError(f"pseudocount must be > 0 (log of zero counts), got {pseudocount!r}")
    rel = release if isinstance(release, Release) else read_release(release)
    joined = cov.resolve(rel, covariates)

    sequences = select_sequences(rel, cell_lines)
    guides = select_guides(rel, genes, multi_aligned)
    coverage_note = check_guide_map_coverage(rel, guides.guides_in, guides.dropped["not_in_guide_map"],
                                             min_guide_map_coverage)
    result = compute_logfc(
        rel, sequences, guides, pseudocount=pseudocount, keep_counts=keep_counts, min_pdna_rpm=min_pdna_rpm
    )
    frame, adjusted = cov.join(
        result.frame, rel, joined, mutation_filter=mutation_filter, copy_number_scale=copy_number_scale
    )

    rows_dropped = dict(result.rows_dropped)
    rows_in = result.rows_in
    if genes is None:
        # Every guide was requested, so a guide the map lacks loses its row in
        # each kept replicate. (With a gene selection such a guide cannot be
        # attributed to a requested gene; it is counted among the guides only.)
        unmapped = len(sequences.replicates) * guides.dropped["not_in_guide_map"]
        rows_dropped = {"not_in_guide_map": unmapped, **rows_dropped}
        rows_in += unmapped
    for name in joined:
        lacking = cov.missing_mask(frame, name)
        if missing == "drop":
            rows_dropped[f"missing_{name}"] = int(lacking.sum())
            frame = frame[~lacking]
    frame = frame.reset_index(drop=True)
    if "rna" in joined:
        frame["rna"], adjusted["genes_constant_rna"] = cov.standardise_rna(frame)
    if "copy_number" in joined:
        # Count floored cells among the rows that remain.
        adjusted["copy_number_floored"] = int((frame["copy_number"] < cov.CN_FLOOR).sum())

    frame = frame[[c for c in COLUMNS if c in frame.columns]]
    frame = frame.sort_values(["gene", "sgrna", "cell_line", "screen_id", "replicate"], kind="stable")
    frame = frame.reset_index(drop=True)

    rows_na = {name: int(cov.missing_mask(frame, name).sum()) for name in joined}
    coverage = {}
    for name in joined:
        has = ~cov.missing_mask(frame, name)
        coverage[name] = {
            "rows": int(has.sum()),
            "cell_lines": int(frame.loc[has, "cell_line"].nunique()),
            "genes": int(frame.loc[has, "gene"].nunique()),
        }
    # Cell lines and genes whose every row was dropped after the logFC grid
    # was built (NA counts, low pDNA, missing covariates).
    lines_grid = set(sequences.replicates["cell_line_name"])
    genes_grid = set(guides.selected["entrez_id"])
    cell_lines = {
        "in": sequences.cell_lines_in,
        "dropped": {**sequences.cell_lines_dropped, "no_rows_left": len(lines_grid - set(frame["cell_line"]))},
        "kept": int(frame["cell_line"].nunique()),
    }
    genes_count = {
        "in": guides.genes_in,
        "dropped": {**guides.genes_dropped, "no_rows_left": len(genes_grid - set(frame["entrez_id"]))},
        "kept": int(frame["entrez_id"].nunique()),
    }
    report = PrepareReport(
        release=str(rel.directory),
        files=dict(rel.files),
        sequences_in=len(rel.sequence_map),
        pdna_in=sequences.pdna_in,
        pdna_failed_qc=sequences.pdna_failed_qc,
        replicates_in=sequences.replicates_in,
        replicates_dropped=dict(sequences.dropped),
        screens_in=sequences.screens_in,
        screens_failed_qc=list(sequences.screens_failed_qc),
        guides_in=guides.guides_in,
        guides_dropped={**guides.dropped, "no_rows_left": len(set(guides.selected["sgrna"]) - set(frame["sgrna"]))},
        guides_without_counts=guides.without_counts,
        na_cells=result.na_cells,
        rows_in=rows_in,
        rows_dropped=rows_dropped,
        rows_out=len(frame),
        missing=missing,
        covariates=list(joined),
        rows_na=rows_na,
        coverage=coverage,
        adjusted=adjusted,
        kept={
            "genes": int(frame["gene"].nunique()),
            "cell_lines": int(frame["cell_line"].nunique()),
            "guides": int(frame["sgrna"].nunique()),
            "screens": int(frame["screen_id"].nunique()),
            "replicates": int(frame["sequence_id"].nunique()),
        },
        cell_lines=cell_lines,
        genes=genes_count,
        genes_not_found=guides.genes_not_found,
        cell_lines_not_found=sequences.cell_lines_not_found,
        notes=list(rel.notes) + ([coverage_note] if coverage_note else []),
    )
    if verbose:
        print(report)
    return Prepared(frame, report)


def check_guide_map_coverage(release: Release, guides_in: int, unmapped: int, minimum: float) -> str | None:
    """Reject a guide map that lists too few of the count matrix's guides; warn when it misses any.

    Returns the warning's text for the report's notes, or None when every guide is listed.
    """
    if not 0 <= minimum <= 1:
        raise ValueError(f"min_guide_map_coverage must lie in [0, 1], got {minimum!r}")
    if not unmapped:
        return None
    guide_map = release.files.get("guide_map", "the guide map")
    counts = release.files.get("readcounts", "the read counts")
    covered = guides_in - unmapped
    text = (
        f"{guide_map} lists {covered} of the {guides_in} guides of {counts} ({covered / guides_in:.1%}); "
        f"{unmapped} guides have no gene and are dropped"
    )
    if covered < minimum * guides_in:
        raise DataError(
            f"{text}. The guide map looks truncated or from another release; "
            f"pass min_guide_map_coverage (--min-guide-map-coverage) below {covered / guides_in:.2f} "
            "if it is meant to cover only part of the library"
        )
    warnings.warn(text, UserWarning, stacklevel=3)
    return text
