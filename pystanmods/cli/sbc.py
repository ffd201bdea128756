"""``pystanmods sbc``: simulation-based calibration of a model, on Dask.

The main CLI calls :func:`add_parser`; ``python -m pystanmods.cli.sbc`` runs
this subcommand alone.
"""

from __future__ import annotations

import argparse
import sys

from pystanmods.cli.arguments import add_cluster_arguments, add_sampler_arguments, cluster_options, parse_settings, sampler_options

_EXAMPLE = "pystanmods sbc model2 --sims 200 --out sbc/model2 --set n_genes=3"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``sbc`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "sbc",
        help="simulation-based calibration: fit data drawn from the prior, check rank uniformity",
        description=(
            "Draw SIMS data sets from MODEL's prior, fit each on Dask workers, and test that the rank of every "
            "true value among the (ESS-thinned) posterior draws is uniform: chi-square per parameter, "
            "Holm-corrected. Writes OUT/report.md, ranks.csv, fits.csv, uniformity.csv and plots/*.png. "
            "Exits 1 unless the run passes: a parameter flagged (FAIL), or a fit failed or more than 10% of "
            "fits had divergences or R-hat >= 1.01 (INCONCLUSIVE)."
        ),
        epilog=f"example: {_EXAMPLE}",
    )
    parser.add_argument("model", metavar="MODEL", help="model name, e.g. model1")
    parser.add_argument("--sims", type=int, default=200, help="number of simulated data sets (default 200)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    add_cluster_arguments(parser)
    add_sampler_arguments(parser, chains=4, warmup=500, sampling=250)
    parser.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="simulator size, e.g. n_genes=3 or n_cell_lines=10 (repeatable)")
    parser.add_argument("--alpha", type=float, default=0.05, help="family-wise level of the uniformity tests")
    parser.add_argument("--max-retries", type=int, default=2, help="retries of a failed fit, with other seeds")
    parser.add_argument("--prior-scale", type=float, default=1.0,
                        help="multiply the simulator's prior scales (not 1: a deliberately wrong simulator)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=handler)
    return parser


def handler(args: argparse.Namespace) -> int:
    """Run SBC and print the verdict; bad input raises ValueError."""
    from pystanmods import sbc

    cluster = cluster_options(args)
    sizes = parse_settings(args.set)
    result = sbc.run(
        args.model,
        args.sims,
        sizes=sizes,
        prior_scale=args.prior_scale,
        alpha=args.alpha,
        max_retries=args.max_retries,
        out=args.out,
        plots=not args.no_plots,
        **cluster,
        progress=not args.quiet,
        **sampler_options(args),
    )
    print(result.verdict())
    print(f"report: {result.out / 'report.md'}")
    return 0 if result.passed else 1


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m pystanmods.cli.sbc ...``, as ``pystanmods sbc ...``."""
    from pystanmods.cli.main import run_subcommand

    return run_subcommand("sbc", argv)


if __name__ == "__main__":
    sys.exit(main())
