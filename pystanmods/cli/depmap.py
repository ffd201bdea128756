"""``pystanmods depmap prepare`` (a DepMap release to a tidy CSV) and
``pystanmods depmap fit`` (a release to gene-effect matrices with posteriors).

The main CLI calls :func:`add_parser`; ``python -m pystanmods.cli.depmap`` runs
this subcommand alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pystanmods.cli.arguments import add_cluster_arguments, add_sampler_arguments, cluster_options, sampler_options


_EXAMPLE = "pystanmods depmap prepare RELEASE_DIR --genes KRAS MYB --missing drop -o tidy.csv"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``depmap`` (with ``prepare``) to an argparse subparsers object."""
    depmap = subparsers.add_parser(
        "depmap",
        help="turn a DepMap release into a tidy modeling frame",
        description="Work with DepMap releases (Avana read counts, sequence and guide maps, Omics tables).",
    )
    commands = depmap.add_subparsers(dest="depmap_command", metavar="COMMAND")
    commands.required = True
    prepare = commands.add_parser(
        "prepare",
        help="read counts + covariates -> one row per sgRNA x replicate",
        description=(
            "Compute logFC from a release's raw read counts (QC-passing screens, quality-filtered guides, "
            "reads per million + 1, log2 ratio to the pDNA batch mean, guides under 1 RPM in pDNA dropped) "
            "and join expression, copy number, "
            "mutations and lineage. Prints what was kept and dropped, by reason."
        ),
        epilog=f"example: {_EXAMPLE}",
    )
    _add_selection(prepare)
    prepare.add_argument(
        "--missing", choices=("keep", "drop"), default="keep",
        help="rows whose cell line or gene lacks a covariate: keep as NA (default) or drop",
    )
    prepare.add_argument(
        "--covariates", nargs="+", choices=("rna", "copy_number", "is_mutated", "lineage"), metavar="NAME",
        help="covariates to join (rna, copy_number, is_mutated, lineage; default: all whose table exists)",
    )
    prepare.add_argument(
        "--mutation-filter", metavar="COLUMN",
        help="count only mutations with this True/False column set, e.g. LikelyDriver (default: any listed)",
    )
    prepare.add_argument(
        "--copy-number-scale", choices=("relative", "log2p1"), default="relative",
        help="how OmicsCNGene is stored (default: relative copy number)",
    )
    prepare.add_argument("--keep-counts", action="store_true", help="add counts_initial and counts_final columns")
    prepare.add_argument(
        "--multi-aligned", choices=("drop", "keep"), default="drop",
        help="guides cutting several sites: drop (default) or keep those of one gene, with n_alignments",
    )
    prepare.add_argument(
        "--pseudocount", type=float, default=1.0, help="added to reads per million before the ratio (default 1, as Chronos)"
    )
    prepare.add_argument(
        "--min-pdna-rpm", type=float, default=1.0, metavar="RPM",
        help="drop guides whose pDNA batch reference is below this many reads per million (default 1, as DepMap; 0: keep)",
    )
    prepare.add_argument(
        "--min-guide-map-coverage", type=float, default=0.9, metavar="SHARE",
        help="least share of the count matrix's guides the guide map must list (default 0.9; below: an error)",
    )
    prepare.add_argument("-o", "--output", required=True, metavar="CSV", help="where to write the tidy frame")
    prepare.set_defaults(func=handler)
    _add_fit(commands)
    return depmap


_FIT_EXAMPLE = ("pystanmods depmap fit RELEASE_DIR --all -o out/depmap; by lineage on a local Dask cluster: "
                "pystanmods depmap fit RELEASE_DIR --all --by lineage --workers 2 -o out/by-lineage")


def _add_fit(commands: argparse._SubParsersAction) -> None:
    fit = commands.add_parser(
        "fit",
        help="gene x cell-line effects with posteriors (the gene_effect model), in DepMap's layout",
        description=(
            "Prepare the release (multi-aligned guides of one gene kept, as DepMap does), fit the gene_effect "
            "model (guide efficacy, screen quality, copy-number correction, theta integrated out) and write "
            "gene_effect.csv and gene_dependency.csv (rows ModelID, columns 'SYMBOL (ENTREZ_ID)'), the tidy "
            "table, guide efficacies, per-line control separation, the netCDF fit and a QC plot."
        ),
        epilog=f"example: {_FIT_EXAMPLE}",
    )
    genes = _add_selection(fit)
    genes.add_argument("--all", action="store_true", help="every gene of the release (the default)")
    fit.add_argument(
        "--controls", nargs=2, metavar=("ESSENTIAL", "NONESSENTIAL"),
        help="control gene files for the scaling (default: the release's Achilles control lists)",
    )
    fit.add_argument("--threshold", type=float, default=-0.5,
                     help="gene_dependency is P(scaled effect < THRESHOLD) (default -0.5)")
    fit.add_argument("--prob", type=float, default=0.9, help="mass of the central interval (default 0.9)")
    fit.add_argument("--covariates", nargs="+", choices=("rna", "is_mutated", "lineage"), default=[],
                     metavar="NAME", help="regress each gene's effect on these (rna, is_mutated, lineage); rows "
                     "without them are dropped and counted; writes covariate_slopes.csv")
    add_sampler_arguments(fit, chains=4, warmup=1000, sampling=1000)
    fit.add_argument(
        "--by", choices=("lineage",),
        help="one fit per lineage (Model.csv's OncotreeLineage) on a Dask cluster: OUT/<lineage>/ each, the "
        "combined gene_effect.csv and gene_dependency.csv and lineages.csv; a rerun reuses finished lineages",
    )
    add_cluster_arguments(fit)
    fit.add_argument(
        "--approximate", action="store_true",
        help="a first look by Stan's Pathfinder instead of NUTS, on the same program, scales and starts: minutes "
        "instead of hours, but its intervals are not calibrated and it has no R-hat; every file is named "
        "approximate_* (with --by lineage too); NUTS's sampler settings are ignored",
    )
    fit.add_argument("--quiet", action="store_true", help="no progress bar and no prepare report")
    fit.add_argument("-o", "--out", required=True, metavar="DIR", help="directory of the outputs (created)")
    fit.set_defaults(func=fit_handler)


def fit_handler(args: argparse.Namespace) -> int:
    """Run ``depmap fit``; the output directory is checked before any work."""
    from pystanmods.depmap.gene_effects import fit_gene_effects
    from pystanmods.outputs import check_directory

    out = check_directory(args.out, "output directory")
    genes = _read_genes_file(args.genes_file) if args.genes_file else args.genes
    essential, nonessential = args.controls if args.controls else (None, None)
    if args.by:
        return _fit_by(args, out, genes, essential, nonessential)
    if args.scheduler or args.workers is not None:
        raise ValueError("--scheduler and --workers run lineage fits on Dask: add --by lineage")
    if args.approximate:
        options: dict[str, object] = _pathfinder_options(args)
    else:
        options = {"show_progress": not args.quiet, **sampler_options(args)}
    result = fit_gene_effects(
        args.release_dir,
        genes=genes,
        cell_lines=args.cell_lines,
        essential=essential,
        nonessential=nonessential,
        threshold=args.threshold,
        prob=args.prob,
        covariates=args.covariates,
        verbose=not args.quiet,
        **options,
    )
    written = result.write(out)
    if result.fit.approximate:
        print(f"APPROXIMATE fit ({result.fit.attrs['inference']}): no R-hat or ESS; intervals not calibrated")
    else:
        print(result.fit.diagnostics())
    qc = result.control_separation
    print(f"control separation per cell line: median AUROC {qc['auroc'].median():.3f} (worst {qc['auroc'].min():.3f}), "
          f"median NNMD {qc['nnmd'].median():.2f}")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))
    print(f"wrote {len(written)} files to {out}")
    return 0


def _pathfinder_options(args: argparse.Namespace) -> dict[str, object]:
    """``--approximate``'s settings: Pathfinder takes none of NUTS's but the program and the seed."""
    return {"method": "pathfinder", "parameterization": args.parameterization, "seed": args.seed}


def _fit_by(args: argparse.Namespace, out: Path, genes: list[str] | None, essential: str | None,
            nonessential: str | None) -> int:
    """``depmap fit --by lineage``: one fit per lineage on Dask, a summary line per lineage."""
    from pystanmods.depmap.by_group import NO_LINEAGE, UNUSABLE, fit_gene_effects_by

    options = _pathfinder_options(args) if args.approximate else sampler_options(args)
    result = fit_gene_effects_by(
        args.release_dir, args.by, out=out, genes=genes, cell_lines=args.cell_lines, essential=essential,
        nonessential=nonessential, threshold=args.threshold, prob=args.prob, covariates=args.covariates,
        progress=not args.quiet, **cluster_options(args), **options,
    )
    summary = result.summary
    if args.approximate:
        print("APPROXIMATE fits (Pathfinder): no R-hat or ESS; intervals not calibrated; files named approximate_*")
    for row in summary.itertuples():
        if row.status == "ok" and args.approximate:
            print(f"{row.lineage}: ok ({row.action}), {row.cell_lines} lines x {row.genes} genes, {row.seconds:.1f} s, "
                  f"APPROXIMATE, Pareto k {row.pathfinder_pareto_k:.2f}, {row.pathfinder_failed_paths:.0f} failed paths")
        elif row.status == "ok":
            print(f"{row.lineage}: ok ({row.action}), {row.cell_lines} lines x {row.genes} genes, {row.seconds:.1f} s, "
                  f"max R-hat {row.max_rhat:.3f}, min bulk ESS {row.min_ess_bulk:.0f}, {row.divergences:.0f} divergences")
        else:
            print(f"{row.lineage}: {row.status}, {row.cell_lines} lines: {row.reason}")
    fitted = summary[(summary["status"] == "ok")]
    reused = int((fitted["action"] == "reused").sum())
    lineages = summary[~summary["lineage"].isin([NO_LINEAGE, UNUSABLE])]
    print(f"{len(fitted)} of {len(lineages)} lineages finished ({reused} from an earlier run), "
          f"{len(result.skipped)} skipped with fewer than 2 lines, {len(result.unassigned)} screened lines without a "
          f"lineage, {len(result.unusable)} unusable; summary in {result.summary_path}")
    warned = fitted[fitted["diagnostics_ok"] == False]  # noqa: E712
    if len(warned):
        print(f"diagnostic warnings in {len(warned)} lineage(s): {', '.join(map(str, warned['lineage']))} "
              "(see their README.txt and the records' problems)")
    if result.failed:
        print(f"pystanmods: {len(result.failed)} lineage(s) failed: {', '.join(result.failed)}", file=sys.stderr)
        return 1
    return 0


def _add_selection(parser: argparse.ArgumentParser) -> argparse._MutuallyExclusiveGroup:
    """The release, and the genes and cell lines to keep; returns the genes group."""
    parser.add_argument("release_dir", metavar="RELEASE_DIR", help="directory holding the release's CSV files")
    genes = parser.add_mutually_exclusive_group()
    genes.add_argument("--genes", nargs="+", metavar="GENE", help="symbols, 'SYMBOL (ENTREZ)' labels or Entrez IDs")
    genes.add_argument("--genes-file", metavar="F", help="file with one gene per line")
    parser.add_argument("--cell-lines", nargs="+", metavar="ACH", help="ModelIDs to keep (default: all screened)")
    return genes


def _read_genes_file(path: str) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"genes file {path} not found")
    genes = [line.split("#", 1)[0].strip() for line in file.read_text().splitlines()]
    genes = [g for g in genes if g]
    if not genes:
        raise ValueError(f"genes file {path} lists no genes")
    return genes


def handler(args: argparse.Namespace) -> int:
    """Run ``depmap prepare``; bad input raises DataError/ValueError/FileNotFoundError."""
    from pystanmods.depmap import prepare, supported_models
    from pystanmods.outputs import check_file, write_or_fallback

    output = check_file(args.output, "tidy frame")
    genes = _read_genes_file(args.genes_file) if args.genes_file else args.genes
    frame, report = prepare(
        args.release_dir,
        genes=genes,
        cell_lines=args.cell_lines,
        missing=args.missing,
        covariates=args.covariates,
        mutation_filter=args.mutation_filter,
        copy_number_scale=args.copy_number_scale,
        keep_counts=args.keep_counts,
        multi_aligned=args.multi_aligned,
        pseudocount=args.pseudocount,
        min_pdna_rpm=args.min_pdna_rpm,
        min_guide_map_coverage=args.min_guide_map_coverage,
        verbose=True,
    )
    write_or_fallback(lambda path: frame.to_csv(path, index=False), output, "tidy frame")
    models = supported_models(frame)
    print(f"models this frame fits: {', '.join(models) if models else 'none'}")
    print(f"wrote {len(frame)} rows x {frame.shape[1]} columns to {output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m pystanmods.cli.depmap prepare ...``, as ``pystanmods depmap ...``."""
    from pystanmods.cli.main import run_subcommand

    return run_subcommand("depmap", argv)


if __name__ == "__main__":
    sys.exit(main())
