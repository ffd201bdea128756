"""``pystanmods batch``: one fit of a model per group of a CSV, on Dask.

The main CLI calls :func:`add_parser`; ``python -m pystanmods.cli.batch`` runs
this subcommand alone.
"""

from __future__ import annotations

import argparse
import sys

from pystanmods.cli.arguments import add_cluster_arguments, add_sampler_arguments, cluster_options, parse_pairs, sampler_options

_EXAMPLE = "pystanmods batch model2 tidy.csv --by lineage --out fits/ --workers 2"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``batch`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "batch",
        help="fit a model once per group (lineage, gene set) on a Dask cluster",
        description=(
            "Fit MODEL to each group of DATA (rows sharing the --by column's value) on Dask workers. "
            "Each fit is saved as OUT/<group>.nc with OUT/<group>.json, and OUT/summary.csv lists every "
            "group's diagnostics and runtime. Rerunning skips groups already finished with the same model, "
            "data and settings. Exits 1, naming them, when any group failed."
        ),
        epilog=f"example: {_EXAMPLE}",
    )
    parser.add_argument("model", metavar="MODEL", help="model name, e.g. model2 (see `pystanmods models`)")
    parser.add_argument("data", metavar="DATA", help="tidy CSV, one row per observation")
    parser.add_argument("--by", nargs="+", default=["lineage"], metavar="COLUMN", help="group column(s) (default: lineage)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (shared by the workers)")
    add_cluster_arguments(parser)
    add_sampler_arguments(parser, chains=4, warmup=1000, sampling=1000)
    parser.add_argument("--column", action="append", metavar="CANONICAL=NAME",
                        help="map a model column to a CSV column, e.g. logfc=LFC (repeatable)")
    parser.add_argument("--no-log-lik", action="store_true", help="do not keep pointwise log-likelihoods")
    parser.add_argument("--no-y-rep", action="store_true", help="do not keep replicated data")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=handler)
    return parser


def handler(args: argparse.Namespace) -> int:
    """Run the batch; bad input raises DataError/ValueError/FileNotFoundError."""
    from pystanmods.batch import fit_groups
    from pystanmods.data.tables import read_tidy
    from pystanmods.outputs import check_directory

    cluster = cluster_options(args)
    check_directory(args.out, "--out")
    columns = parse_pairs(args.column, "--column") or None
    frame = read_tidy(args.data, columns, labels=args.by)
    result = fit_groups(
        args.model,
        frame,
        by=args.by,
        out=args.out,
        columns=columns,
        # None: kept unless over fit()'s memory budget, as in pystanmods.fit.
        compute_log_lik=False if args.no_log_lik else None,
        compute_y_rep=False if args.no_y_rep else None,
        **cluster,
        progress=not args.quiet,
        **sampler_options(args),
    )
    summary = result.summary
    done = int((summary["status"] == "ok").sum())
    skipped = int((summary["action"] == "skipped").sum())
    print(f"{done} of {len(summary)} groups finished ({skipped} from an earlier run); summary in {result.out / 'summary.csv'}")
    warned = summary[(summary["status"] == "ok") & (summary["diagnostics_ok"] == False)]  # noqa: E712
    if len(warned):
        print(f"diagnostic warnings in {len(warned)} group(s): {', '.join(map(str, warned['group']))}")
    if result.failed:
        failed = summary[summary["status"] != "ok"]
        print(f"pystanmods: {len(failed)} group(s) failed: {', '.join(map(str, failed['group']))}", file=sys.stderr)
        for row in failed.itertuples():
            print(f"  {row.group}: {row.error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m pystanmods.cli.batch ...``, as ``pystanmods batch ...``."""
    from pystanmods.cli.main import run_subcommand

    return run_subcommand("batch", argv)


if __name__ == "__main__":
    sys.exit(main())
