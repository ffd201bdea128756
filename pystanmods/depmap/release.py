"""Read and validate the tables of a DepMap release directory.

Every table is looked up by its DepMap file name. A missing required table is a
:class:`FileNotFoundError`; a malformed one is a :class:`DataError` naming the
file, the column and the rows, so the message alone says what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pystanmods.data import DataError
from pystanmods.data.validate import preview as _preview

#: File names of each table, first match wins. Recent releases call the raw
#: counts ``AvanaRawReadcounts.csv``; the Chronos sample data ``AvanaReadcounts.csv``.
READCOUNTS = ("AvanaReadcounts.csv", "AvanaRawReadcounts.csv")
SEQUENCE_MAP = ("AvanaSequenceMap.csv",)
GUIDE_MAP = ("AvanaGuideMap.csv",)
COPY_NUMBER = ("OmicsCNGene.csv",)
EXPRESSION = ("OmicsExpressionProteinCodingGenesTPMLogp1.csv",)
MUTATIONS = ("OmicsSomaticMutations.csv",)
MODELS = ("Model.csv",)

#: ``SYMBOL (ENTREZ)``, the gene label of every DepMap table.
GENE_LABEL = re.compile(r"^\s*(\S.*?)\s+\((\d+)\)\s*$")

SEQUENCE_COLUMNS = ("sequence_ID", "cell_line_name", "pDNA_batch")
GUIDE_COLUMNS = ("sgrna", "gene")
PDNA = "pDNA"


@dataclass
class Release:
    """The tables of one DepMap release, validated.

    Attributes
    ----------
    directory : Path
    readcounts : pandas.DataFrame
        Raw counts, rows ``sequence_ID``, columns sgRNA sequences (float, NA kept).
    sequence_map, guide_map : pandas.DataFrame
        As in the release; the guide map gains ``symbol`` and ``entrez_id``.
    copy_number, expression : pandas.DataFrame or None
        Rows ModelID, columns Entrez IDs (int); ``gene_symbols`` maps them back.
    mutations : pandas.DataFrame or None
        ``ModelID, entrez_id`` plus the release's flag columns.
    models : pandas.DataFrame or None
        ``ModelID, OncotreeLineage`` from ``Model.csv``.
    files : dict
        Table name to the file read, or ``None`` when absent (optional tables).
    notes : list of str
        What was adapted while reading (e.g. a transposed count matrix).
    """

    directory: Path
    readcounts: pd.DataFrame
    sequence_map: pd.DataFrame
    guide_map: pd.DataFrame
    copy_number: pd.DataFrame | None = None
    expression: pd.DataFrame | None = None
    mutations: pd.DataFrame | None = None
    models: pd.DataFrame | None = None
    files: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def parse_gene_labels(labels: Sequence[object], file: str, column: str) -> tuple[list[str], list[int]]:
    """Split ``SYMBOL (ENTREZ)`` labels into symbols and Entrez IDs.

    Raises
    ------
    DataError
        Naming the file, the column, bad labels and how many there are.
    """
    symbols: list[str] = []
    entrez: list[int] = []
    bad: list[object] = []
    for label in labels:
        match = GENE_LABEL.match(str(label)) if isinstance(label, str) else None
        if match is None:
            bad.append(label)
            continue
        symbols.append(match.group(1))
        entrez.append(int(match.group(2)))
    if bad:
        raise DataError(
            f"{file}: {column} must hold genes as 'SYMBOL (ENTREZ_ID)', e.g. 'KRAS (3845)'; "
            f"{len(bad)} of {len(list(labels))} do not, e.g. {_preview(bad)}"
        )
    return symbols, entrez


def _find(directory: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        path = directory / name
        if path.is_file():
            return path
    return None


def _require(directory: Path, names: Sequence[str], what: str) -> Path:
    path = _find(directory, names)
    if path is None:
        raise FileNotFoundError(
            f"{' or '.join(names)} ({what}) not found in release directory {directory}"
        )
    return path


def _read_csv(path: Path, **kwargs: object) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)  # type: ignore[arg-type]
    except pd.errors.EmptyDataError:
        raise DataError(f"{path.name}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"{path.name}: not a readable CSV file ({str(error).strip()})") from None


def _check_columns(table: pd.DataFrame, required: Sequence[str], file: str) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DataError(
            f"{file}: missing column {', '.join(repr(c) for c in missing)} "
            f"({len(table)} rows; columns are {list(table.columns)[:12]}"
            f"{', ...' if len(table.columns) > 12 else ''})"
        )


def _check_unique(values: pd.Series | pd.Index, file: str, column: str) -> None:
    duplicated = pd.Series(values)[pd.Series(values).duplicated()]
    if len(duplicated):
        raise DataError(
            f"{file}: {column} has duplicated values in {len(duplicated)} rows, "
            f"e.g. {_preview(duplicated.unique())}"
        )


def _numeric_matrix(table: pd.DataFrame, file: str, what: str) -> pd.DataFrame:
    """The matrix as floats, or an error naming the first non-numeric column."""
    converted = table.apply(pd.to_numeric, errors="coerce").astype(float)
    bad = converted.isna() & table.notna()
    if bad.to_numpy().any():
        columns = bad.columns[bad.any(axis=0)]
        rows = bad.index[bad.any(axis=1)]
        first = columns[0]
        example = table.loc[bad[first], first].iloc[0]
        raise DataError(
            f"{file}: {what} must be numeric; column {first!r} has non-numeric value {example!r} "
            f"({int(bad.to_numpy().sum())} cells in {len(rows)} rows and {len(columns)} columns, "
            f"e.g. rows {_preview(rows)})"
        )
    # NA is a missing measurement and is counted downstream; +-inf is not a
    # measurement at all, and would turn into 0 or NaN after standardising.
    infinite = np.isinf(converted.to_numpy())
    if infinite.any():
        rows_bad, columns_bad = np.nonzero(infinite)
        row, column = converted.index[rows_bad[0]], converted.columns[columns_bad[0]]
        raise DataError(
            f"{file}: {what} must be finite; {int(infinite.sum())} cells are infinite, in "
            f"{len(set(rows_bad))} rows and {len(set(columns_bad))} columns, e.g. row {row!r}, column {column!r}: "
            f"{converted.iloc[rows_bad[0], columns_bad[0]]}"
        )
    return converted


def _as_bool(series: pd.Series, file: str, column: str) -> pd.Series:
    """Parse True/False columns that pandas may have read as text."""
    if series.dtype == bool:
        return series
    text = series.astype(str).str.strip().str.lower()
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    bad = ~text.isin(list(mapping))
    if bad.any():
        raise DataError(
            f"{file}: column {column!r} must be True/False; {int(bad.sum())} of {len(series)} rows "
            f"are not, e.g. {_preview(series[bad].unique())}"
        )
    return text.map(mapping).astype(bool)


# ---------------------------------------------------------------- the tables
def read_sequence_map(path: Path) -> pd.DataFrame:
    table = _read_csv(path)
    file = path.name
    _check_columns(table, SEQUENCE_COLUMNS, file)
    for column in SEQUENCE_COLUMNS:
        missing = table[column].isna()
        if missing.any():
            raise DataError(
                f"{file}: column {column!r} is empty in {int(missing.sum())} of {len(table)} rows, "
                f"e.g. rows {_preview(table.index[missing] + 2)} of the file"
            )
    table["sequence_ID"] = table["sequence_ID"].astype(str)
    _check_unique(table["sequence_ID"], file, "sequence_ID")
    if "PassesQC" in table:
        if table["PassesQC"].isna().any():
            missing = table["PassesQC"].isna()
            raise DataError(
                f"{file}: column 'PassesQC' is empty in {int(missing.sum())} of {len(table)} rows, "
                f"e.g. sequence_ID {_preview(table.loc[missing, 'sequence_ID'])}"
            )
        table["PassesQC"] = _as_bool(table["PassesQC"], file, "PassesQC")
    if not (table["cell_line_name"] == PDNA).any():
        raise DataError(f"{file}: no pDNA rows (cell_line_name == 'pDNA'), so there is no reference for logFC")
    if (table["cell_line_name"] == PDNA).all():
        raise DataError(f"{file}: every row is pDNA; there are no screened samples")
    return table


def read_guide_map(path: Path) -> pd.DataFrame:
    table = _read_csv(path)
    file = path.name
    _check_columns(table, GUIDE_COLUMNS, file)
    missing_guide = table["sgrna"].isna()
    if missing_guide.any():
        raise DataError(
            f"{file}: column 'sgrna' is empty in {int(missing_guide.sum())} of {len(table)} rows"
        )
    table["sgrna"] = table["sgrna"].astype(str)
    # A guide without a gene (empty cell) is dropped later and counted; any
    # label present must parse.
    has_gene = table["gene"].notna() & (table["gene"].astype(str).str.strip() != "")
    symbols, entrez = parse_gene_labels(table.loc[has_gene, "gene"].tolist(), file, "column 'gene'")
    table["symbol"] = pd.Series(pd.NA, index=table.index, dtype="string")
    table["entrez_id"] = pd.Series(pd.NA, index=table.index, dtype="Int64")
    table.loc[has_gene, "symbol"] = symbols
    table.loc[has_gene, "entrez_id"] = entrez
    if "nAlignments" in table:
        table["nAlignments"] = _numeric_matrix(table[["nAlignments"]], file, "nAlignments")["nAlignments"]
    if "UsedByChronos" in table:
        table["UsedByChronos"] = _as_bool(table["UsedByChronos"].fillna(False), file, "UsedByChronos")
    return table


def read_readcounts(path: Path, sequence_ids: set[str], guides: set[str]) -> tuple[pd.DataFrame, list[str]]:
    """Raw counts with sequences as rows; a guides-as-rows file is transposed."""
    notes: list[str] = []
    table = _read_csv(path, index_col=0)
    file = path.name
    table.index = table.index.astype(str)
    table.columns = table.columns.astype(str)
    rows, cols = set(table.index), set(table.columns)
    if len(rows & guides) > len(rows & sequence_ids) and len(cols & sequence_ids) > len(cols & guides):
        table = table.T
        notes.append(f"{file} has guides as rows; read it transposed")
    _check_unique(table.index, file, "sequence_ID (rows)")
    _check_unique(table.columns, file, "sgRNA (columns)")
    table = _numeric_matrix(table, file, "read counts")
    negative = table < 0
    if negative.to_numpy().any():
        rows_bad = table.index[negative.any(axis=1)]
        raise DataError(
            f"{file}: read counts must be >= 0; {int(negative.to_numpy().sum())} cells are negative, "
            f"in rows {_preview(rows_bad)}"
        )
    all_na = table.isna().all(axis=1)
    if all_na.any():
        raise DataError(
            f"{file}: {int(all_na.sum())} of {len(table)} rows have no read counts at all (all NA): "
            f"{_preview(table.index[all_na])}; remove them and their sequence map rows"
        )
    return table, notes


def _gene_matrix(path: Path, what: str) -> tuple[pd.DataFrame, dict[int, str]]:
    """An Omics matrix (rows ModelID, columns ``SYMBOL (ENTREZ)``) keyed by Entrez ID."""
    table = _read_csv(path, index_col=0)
    file = path.name
    if table.index.isna().any():
        raise DataError(f"{file}: {int(table.index.isna().sum())} rows have no ModelID in the first column")
    table.index = table.index.astype(str)
    _check_unique(table.index, file, "ModelID (rows)")
    symbols, entrez = parse_gene_labels(list(table.columns), file, "column headers")
    table = _numeric_matrix(table, file, what)
    table.columns = pd.Index(entrez, name="entrez_id")
    _check_unique(table.columns, file, "Entrez ID of the column headers")
    table.index.name = "ModelID"
    return table, dict(zip(entrez, symbols))


def read_mutations(path: Path) -> pd.DataFrame:
    """One row per listed mutation: ``ModelID``, ``entrez_id`` and the flag columns.

    Accepts the gene as ``Gene`` (``SYMBOL (ENTREZ)``, as in the sample) or as
    ``HugoSymbol`` plus ``EntrezGeneID`` (as in full releases).
    """
    table = _read_csv(path)
    file = path.name
    _check_columns(table, ("ModelID",), file)
    if "Gene" in table:
        symbols, entrez = parse_gene_labels(table["Gene"].tolist(), file, "column 'Gene'")
        table["entrez_id"] = entrez
    elif "EntrezGeneID" in table:
        ids = pd.to_numeric(table["EntrezGeneID"], errors="coerce")
        bad = ids.isna()
        if bad.any():
            raise DataError(
                f"{file}: column 'EntrezGeneID' is empty or not a number in {int(bad.sum())} of "
                f"{len(table)} rows, e.g. {_preview(table.loc[bad, 'EntrezGeneID'].unique())}"
            )
        table["entrez_id"] = ids.astype(int)
    else:
        raise DataError(
            f"{file}: missing column 'Gene' (or 'EntrezGeneID'); columns are {list(table.columns)}"
        )
    missing = table["ModelID"].isna()
    if missing.any():
        raise DataError(f"{file}: column 'ModelID' is empty in {int(missing.sum())} of {len(table)} rows")
    table["ModelID"] = table["ModelID"].astype(str)
    for flag in ("LikelyGoF", "Driver", "LikelyDriver", "LikelyLoF", "Hotspot"):
        if flag in table:
            table[flag] = _as_bool(table[flag].fillna(False), file, flag)
    return table


def read_models(path: Path) -> pd.DataFrame:
    table = _read_csv(path)
    file = path.name
    _check_columns(table, ("ModelID", "OncotreeLineage"), file)
    table = table.dropna(subset=["ModelID"])
    table["ModelID"] = table["ModelID"].astype(str)
    _check_unique(table["ModelID"], file, "ModelID")
    return table[["ModelID", "OncotreeLineage"]]


def read_release(directory: str | Path) -> Release:
    """Read and validate a DepMap release directory.

    Parameters
    ----------
    directory : str or Path
        Holds the release's CSV files under their DepMap names.

    Returns
    -------
    Release

    Raises
    ------
    FileNotFoundError
        The directory or a required table (read counts, sequence map, guide map) is missing.
    DataError
        A table is malformed; the message names the file, the column and the rows.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"release directory {directory} does not exist")
    files: dict[str, str | None] = {}
    seq_path = _require(directory, SEQUENCE_MAP, "sequence map")
    guide_path = _require(directory, GUIDE_MAP, "guide map")
    counts_path = _require(directory, READCOUNTS, "read counts")
    sequence_map = read_sequence_map(seq_path)
    guide_map = read_guide_map(guide_path)
    readcounts, notes = read_readcounts(counts_path, set(sequence_map["sequence_ID"]), set(guide_map["sgrna"]))
    files.update(readcounts=counts_path.name, sequence_map=seq_path.name, guide_map=guide_path.name)

    # Every sample the sequence map names must have counts and vice versa:
    # a mismatch means the two files come from different releases or subsets.
    in_map, in_counts = set(sequence_map["sequence_ID"]), set(readcounts.index)
    absent = sorted(in_map - in_counts)
    if absent:
        raise DataError(
            f"{seq_path.name}: {len(absent)} of {len(in_map)} sequence_ID values have no row in "
            f"{counts_path.name}: {_preview(absent)}"
        )
    # Count rows the sequence map does not describe have no cell line or pDNA
    # batch, so they cannot be used; they are left out and reported, not an
    # error, since a release's count matrix may hold sequences it later dropped.
    extra = sorted(in_counts - in_map)
    if extra:
        readcounts = readcounts.drop(index=extra)
        notes.append(
            f"{counts_path.name}: {len(extra)} of {len(in_counts)} rows are not in {seq_path.name} "
            f"and were left out: {_preview(extra)}"
        )
    release = Release(directory, readcounts, sequence_map, guide_map, files=files, notes=notes)

    cn_path = _find(directory, COPY_NUMBER)
    if cn_path is not None:
        release.copy_number, _ = _gene_matrix(cn_path, "copy number")
    expr_path = _find(directory, EXPRESSION)
    if expr_path is not None:
        release.expression, _ = _gene_matrix(expr_path, "expression")
    mut_path = _find(directory, MUTATIONS)
    if mut_path is not None:
        release.mutations = read_mutations(mut_path)
    model_path = _find(directory, MODELS)
    if model_path is not None:
        release.models = read_models(model_path)
    for key, path in (("copy_number", cn_path), ("expression", expr_path), ("mutations", mut_path), ("models", model_path)):
        files[key] = path.name if path is not None else None
    return release


def optional_table_names() -> dict[str, tuple[str, ...]]:
    """Covariate to the file names that provide it."""
    return {"copy_number": COPY_NUMBER, "rna": EXPRESSION, "is_mutated": MUTATIONS, "lineage": MODELS}


__all__ = [
    "PDNA",
    "Release",
    "optional_table_names",
    "parse_gene_labels",
    "read_release",
]
