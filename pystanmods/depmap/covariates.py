"""Join the Omics covariates to a logFC frame by cell line (ModelID) and Entrez ID.

Choices and why:

* **Keys.** Genes are joined on the Entrez ID of their ``SYMBOL (ENTREZ)``
  label, which stays fixed when a symbol is renamed between tables.
* **rna.** The expression table holds log2(TPM + 1); it is kept as
  ``rna_log2tpm``. ``rna`` is that value z-scored within each gene across the
  distinct cell lines of the *final* frame (each cell line counted once,
  however many guides or replicates it has; sample standard deviation), so a
  model's RNA slope is per standard deviation of that gene's expression in the
  analysed cell lines and its intercept is the effect at average expression. A
  gene whose expression does not vary over those cell lines (or is seen in only
  one) gets ``rna = 0``: it carries no information about a slope; such genes are
  counted in the report. ``rna`` is one value per gene x cell line, as Models 3
  and 4 require.
* **copy_number.** ``OmicsCNGene`` is read as relative copy number (1 = the
  cell line's ploidy). Some releases store ``log2(relative CN + 1)``; pass
  ``copy_number_scale="log2p1"`` for those and it is inverted. Negative values
  under ``"relative"`` are an error since they signal a log scale.
  ``log2_copy_number = log2(max(copy_number, 2**-5))``: homozygous deletions are
  recorded as ~1e-9, whose log (-30) would dominate any linear term, while every
  real copy-loss state (down to one copy in a 16-ploid genome) lies above 2**-5.
  Floored cells are counted.
* **is_mutated.** 1 when the mutation table lists a protein-altering somatic
  mutation of the gene in the cell line: every class the table holds counts
  (missense, nonsense, frameshift, splice, in-frame indel) except synonymous
  changes, whose ``ProteinChange`` names the same amino acid on both sides
  (``p.F725F``) or is ``p.=``: they leave the protein unchanged, so they cannot
  explain a change in the knockout's effect. Ignored synonymous rows are
  counted (``mutations_synonymous_ignored``). The sample release's table
  already lists only likely drivers (``LikelyGoF`` and ``LikelyDriver`` are
  True on every row), so there ``is_mutated`` means "carries a likely driver
  mutation"; with a full release's table, ``mutation_filter`` restricts the
  count to rows where a flag column is True (e.g. ``"LikelyDriver"``,
  ``"Driver"``, ``"LikelyGoF"``, ``"LikelyLoF"``). 0 when the cell line
  appears in the table (it was profiled) but not with that gene; NA when the
  cell line is absent from the table, since absence may mean it was never
  sequenced.
* **lineage.** ``OncotreeLineage`` of ``Model.csv`` by ModelID.
"""

from __future__ import annotations

from collections.abc import Sequence

import re

import numpy as np
import pandas as pd

from pystanmods.data import DataError
from pystanmods.depmap.release import Release

#: Covariates in the order the missing-value policy is applied.
COVARIATES = ("rna", "copy_number", "is_mutated", "lineage")
#: Source table of each covariate (attribute of Release, file name for messages).
SOURCES = {
    "rna": ("expression", "OmicsExpressionProteinCodingGenesTPMLogp1.csv"),
    "copy_number": ("copy_number", "OmicsCNGene.csv"),
    "is_mutated": ("mutations", "OmicsSomaticMutations.csv"),
    "lineage": ("models", "Model.csv"),
}
CN_FLOOR = 2.0**-5
#: ``p.F725F`` or ``p.=``: the protein is unchanged.
SYNONYMOUS = re.compile(r"^p\.(?:=|([A-Z*])\d+\1)$")
COPY_NUMBER_SCALES = ("relative", "log2p1")


def available(release: Release) -> list[str]:
    """Covariates whose source table is in the release."""
    return [c for c in COVARIATES if getattr(release, SOURCES[c][0]) is not None]


def resolve(release: Release, covariates: Sequence[str] | None) -> list[str]:
    """The covariates to join: all available by default; a requested one must exist."""
    if covariates is None:
        return available(release)
    wanted = list(dict.fromkeys(covariates))
    unknown = [c for c in wanted if c not in COVARIATES]
    if unknown:
        raise ValueError(f"unknown covariate {', '.join(map(repr, unknown))}; covariates are {list(COVARIATES)}")
    absent = [c for c in wanted if getattr(release, SOURCES[c][0]) is None]
    if absent:
        names = ", ".join(f"{c} needs {SOURCES[c][1]}" for c in absent)
        raise FileNotFoundError(f"covariate table not found in release directory {release.directory}: {names}")
    return [c for c in COVARIATES if c in wanted]


def _lookup(matrix: pd.DataFrame, cells: pd.Series, entrez: pd.Series) -> np.ndarray:
    """matrix[cell, entrez] for each row; NA where either is absent."""
    rows = matrix.index.get_indexer(cells.astype(str))
    cols = matrix.columns.get_indexer(entrez.astype(int))
    values = np.full(len(cells), np.nan)
    ok = (rows >= 0) & (cols >= 0)
    values[ok] = matrix.to_numpy()[rows[ok], cols[ok]]
    return values


def join(
    frame: pd.DataFrame,
    release: Release,
    covariates: Sequence[str],
    *,
    mutation_filter: str | None = None,
    copy_number_scale: str = "relative",
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Add the raw covariate columns; returns the frame and counts of adjusted cells."""
    frame = frame.copy()
    info: dict[str, int] = {}
    if "rna" in covariates:
        assert release.expression is not None
        frame["rna_log2tpm"] = _lookup(release.expression, frame["cell_line"], frame["entrez_id"])
    if "copy_number" in covariates:
        assert release.copy_number is not None
        if copy_number_scale not in COPY_NUMBER_SCALES:
            raise ValueError(f"copy_number_scale must be one of {COPY_NUMBER_SCALES}, got {copy_number_scale!r}")
        cn = _lookup(release.copy_number, frame["cell_line"], frame["entrez_id"])
        file = release.files.get("copy_number")
        if copy_number_scale == "log2p1":
            cn = np.exp2(cn) - 1.0
        negative = cn < 0
        if negative.any():
            raise DataError(
                f"{file}: relative copy number must be >= 0; {int(negative.sum())} joined rows are negative, "
                f"e.g. {cn[negative][0]:.4g} (is the table on a log scale? see copy_number_scale)"
            )
        frame["copy_number"] = cn
        floored = cn < CN_FLOOR
        info["copy_number_floored"] = int(floored.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            frame["log2_copy_number"] = np.log2(np.maximum(cn, CN_FLOOR))
    if "is_mutated" in covariates:
        mutations = release.mutations
        assert mutations is not None
        profiled = set(mutations["ModelID"])
        rows = mutations
        if "ProteinChange" in mutations:
            synonymous = mutations["ProteinChange"].astype("string").str.strip().str.fullmatch(SYNONYMOUS).fillna(False)
            info["mutations_synonymous_ignored"] = int(synonymous.sum())
            rows = mutations[~synonymous.to_numpy(dtype=bool)]
        if mutation_filter is not None:
            flags = [c for c in mutations.columns if mutations[c].dtype == bool]
            if mutation_filter not in flags:
                raise DataError(
                    f"{release.files.get('mutations')}: mutation_filter {mutation_filter!r} is not a True/False "
                    f"column of the table; such columns are {flags}"
                )
            rows = rows[rows[mutation_filter]]
        hits = pd.MultiIndex.from_arrays([rows["ModelID"], rows["entrez_id"].astype(int)]).unique()
        keys = pd.MultiIndex.from_arrays([frame["cell_line"].astype(str), frame["entrez_id"].astype(int)])
        value = pd.array(keys.isin(hits).astype(int), dtype="Int8")
        value[~frame["cell_line"].isin(profiled).to_numpy()] = pd.NA
        frame["is_mutated"] = value
    if "lineage" in covariates:
        models = release.models
        assert models is not None
        lineage = models.set_index("ModelID")["OncotreeLineage"]
        frame["lineage"] = frame["cell_line"].map(lineage).astype("string")
    return frame, info


def missing_mask(frame: pd.DataFrame, covariate: str) -> pd.Series:
    """Rows lacking a covariate (raw value, before standardising)."""
    column = {"rna": "rna_log2tpm"}.get(covariate, covariate)
    return frame[column].isna()


def standardise_rna(frame: pd.DataFrame) -> tuple[pd.Series, int]:
    """z-score ``rna_log2tpm`` within gene over distinct cell lines; constant genes get 0."""
    units = frame[["entrez_id", "cell_line", "rna_log2tpm"]].dropna().drop_duplicates(["entrez_id", "cell_line"])
    stats = units.groupby("entrez_id")["rna_log2tpm"].agg(["mean", "std"])
    constant = stats["std"].isna() | (stats["std"] <= 1e-12 * (1 + stats["mean"].abs()))
    mean = frame["entrez_id"].map(stats["mean"])
    sd = frame["entrez_id"].map(stats["std"].where(~constant, np.nan))
    z = (frame["rna_log2tpm"] - mean) / sd
    z = z.where(~frame["entrez_id"].map(constant).fillna(False).astype(bool), 0.0)
    z = z.where(frame["rna_log2tpm"].notna(), np.nan)
    return z.astype(float), int(constant.sum())
