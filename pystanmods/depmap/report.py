"""What preparing a DepMap release kept and dropped, and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class PrepareReport:
    """Counts of everything :func:`pystanmods.depmap.prepare` kept or dropped.

    Every drop has a reason, and each count is exclusive: a unit dropped for
    one reason is not counted again under a later one, so that, e.g.,
    ``rows_in == rows_out + sum(rows_dropped.values())``.

    Attributes
    ----------
    release : str
        The release directory.
    files : dict
        Table to the file read, or None for an absent optional table.
    sequences_in, pdna_in, pdna_failed_qc : int
        Rows of the sequence map; pDNA samples; pDNA samples left out of their
        batch reference for failing QC.
    replicates_in : int
        Screened (non-pDNA) samples.
    replicates_dropped : dict
        ``failed_qc``, ``not_selected`` (cell line not requested),
        ``no_pdna_reference`` (no usable pDNA in its batch).
    screens_in : int
        Distinct ScreenIDs among screened samples.
    screens_failed_qc : list of str
        Screens none of whose replicates pass QC.
    guides_in : int
        Guides (columns) of the count matrix.
    guides_dropped : dict
        ``not_in_guide_map``, ``drop_reason``, ``multiple_alignments``,
        ``no_gene``, ``not_used_by_chronos``, ``not_selected`` (gene not requested),
        ``no_rows_left`` (every row of the guide dropped later, e.g. NA counts).
    guides_without_counts : int
        Guide-map guides absent from the count matrix (never entered).
    na_cells : dict
        NA read counts among the used replicates x selected guides
        (``replicates``) and among the pDNA samples x selected guides (``pdna``).
    rows_in : int
        Replicates kept x guides kept (plus, without a gene selection, the
        guides missing from the guide map): the sgRNA x replicate grid.
    rows_dropped : dict
        ``not_in_guide_map`` (without a gene selection: each kept replicate's
        row of a count-matrix guide the guide map lacks), ``na_count``
        (replicate count NA), ``na_pdna`` (batch reference NA), ``low_pdna``, and
        with ``missing="drop"`` ``missing_<covariate>`` for each covariate.
    rows_out : int
        Rows of the returned frame.
    missing : str
        The missing-covariate policy, ``"drop"`` or ``"keep"``.
    covariates : list of str
        Covariates joined.
    rows_na : dict
        Covariate to rows of the returned frame where it is NA (``keep``).
    coverage : dict
        Covariate to ``{"rows", "cell_lines", "genes"}`` with a value in the
        returned frame.
    adjusted : dict
        Values changed by a documented rule: ``copy_number_floored``,
        ``genes_constant_rna``.
    kept : dict
        Distinct ``genes``, ``cell_lines``, ``guides``, ``screens`` and
        ``replicates`` (sequenced samples) in the returned frame.
    cell_lines, genes : dict
        ``{"in", "dropped", "kept"}``: screened cell lines (genes targeted by
        the count matrix's guides), those lost per reason (``failed_qc``,
        ``not_selected``, ``no_pdna_reference``; ``no_usable_guide``,
        ``not_selected``; both ``no_rows_left`` when every row was dropped
        later) and those in the frame; ``in == kept + sum(dropped)``.
    genes_not_found, cell_lines_not_found : list of str
        Requested genes or cell lines absent from the release (or whose guides
        all failed the filters).
    notes : list of str
    """

    release: str
    files: dict[str, str | None]
    sequences_in: int
    pdna_in: int
    pdna_failed_qc: int
    replicates_in: int
    replicates_dropped: dict[str, int]
    screens_in: int
    screens_failed_qc: list[str]
    guides_in: int
    guides_dropped: dict[str, int]
    guides_without_counts: int
    na_cells: dict[str, int]
    rows_in: int
    rows_dropped: dict[str, int]
    rows_out: int
    missing: str
    covariates: list[str]
    rows_na: dict[str, int]
    coverage: dict[str, dict[str, int]]
    adjusted: dict[str, int]
    kept: dict[str, int]
    cell_lines: dict[str, Any] = field(default_factory=dict)
    genes: dict[str, Any] = field(default_factory=dict)
    genes_not_found: list[str] = field(default_factory=list)
    cell_lines_not_found: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def replicates_kept(self) -> int:
        return self.replicates_in - sum(self.replicates_dropped.values())

    @property
    def guides_kept(self) -> int:
        return self.guides_in - sum(self.guides_dropped.values())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        def reasons(counts: dict[str, int]) -> str:
            shown = [f"{k.replace('_', ' ')} {v}" for k, v in counts.items() if v]
            return "; ".join(shown) if shown else "none"

        absent = [k for k, v in self.files.items() if v is None]
        lines = [
            f"DepMap release {self.release}",
            f"  tables read      {', '.join(v for v in self.files.values() if v)}",
            f"  tables absent    {', '.join(absent) if absent else 'none'}",
            f"screens/samples",
            f"  sequenced samples {self.sequences_in} ({self.pdna_in} pDNA, {self.replicates_in} screened replicates)",
            f"  replicates kept   {self.replicates_kept} of {self.replicates_in}; dropped: {reasons(self.replicates_dropped)}",
            f"  screens failing QC {len(self.screens_failed_qc)} of {self.screens_in}"
            + (f" ({', '.join(self.screens_failed_qc)})" if self.screens_failed_qc else ""),
            f"  pDNA failing QC   {self.pdna_failed_qc} of {self.pdna_in}",
            f"  cell lines kept   {self.cell_lines.get('kept', 0)} of {self.cell_lines.get('in', 0)}; "
            f"dropped: {reasons(self.cell_lines.get('dropped', {}))}",
            "guides and genes",
            f"  guides kept       {self.guides_kept} of {self.guides_in}; dropped: {reasons(self.guides_dropped)}",
            f"  in guide map without counts {self.guides_without_counts}",
            f"  genes kept        {self.genes.get('kept', 0)} of {self.genes.get('in', 0)}; "
            f"dropped: {reasons(self.genes.get('dropped', {}))}",
            "NA read counts",
            f"  cells             {self.na_cells.get('replicates', 0)} in replicates, {self.na_cells.get('pdna', 0)} in pDNA",
            "rows (sgRNA x replicate)",
            f"  rows in           {self.rows_in}",
            f"  rows dropped      {sum(self.rows_dropped.values())}: {reasons(self.rows_dropped)}",
            f"  rows out          {self.rows_out}",
            f"covariates (missing={self.missing})",
        ]
        if not self.covariates:
            lines.append("  none joined")
        for cov in self.covariates:
            cover = self.coverage.get(cov, {})
            lines.append(
                f"  {cov:<17} rows {cover.get('rows', 0)}/{self.rows_out}, cell lines {cover.get('cell_lines', 0)}/"
                f"{self.kept.get('cell_lines', 0)}, genes {cover.get('genes', 0)}/{self.kept.get('genes', 0)}"
                + (f"; NA in {self.rows_na[cov]} rows" if self.rows_na.get(cov) else "")
            )
        adjusted = reasons(self.adjusted)
        if adjusted != "none":
            lines.append(f"  adjusted: {adjusted}")
        lines.append(
            "kept   " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.kept.items())
        )
        if self.genes_not_found:
            lines.append(f"genes not found: {', '.join(self.genes_not_found)}")
        if self.cell_lines_not_found:
            lines.append(f"cell lines not found: {', '.join(self.cell_lines_not_found)}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)
