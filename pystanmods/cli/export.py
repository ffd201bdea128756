"""``pystanmods export``: a model's Stan program, and its data, ready for CmdStan.

Writes ``DIR/PROGRAM.stan`` (the same file ``pystanmods info`` names inside
the installed package) and, given ``--data CSV``, ``DIR/PROGRAM.json``
exactly as ``pystanmods standata`` writes it, so that
``make -C $CMDSTAN $PWD/DIR/PROGRAM`` builds the executable beside them. No
repository checkout is needed.

The main CLI calls :func:`add_parser`; ``python -m pystanmods.cli.export``
runs this subcommand alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_EXAMPLE = "pystanmods export model5 --parameterization centered --data model5.csv model5"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``export`` to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "export",
        help="write a model's .stan file (and, with --data, its Stan JSON) into DIR for direct CmdStan use",
        description=(
            "Write DIR/PROGRAM.stan and, with --data, DIR/PROGRAM.json (as `pystanmods standata` writes it). "
            "Then `make -C \"$CMDSTAN\" \"$PWD/DIR/PROGRAM\"` builds the executable beside them."
        ),
        epilog=f"example: {_EXAMPLE}",
    )
    parser.add_argument("model", metavar="MODEL", help="model name, e.g. model5")
    parser.add_argument("directory", metavar="DIR", help="folder to write into (created if missing)")
    parser.add_argument("--parameterization", choices=("noncentered", "centered", "recommended"),
                        default="noncentered")
    parser.add_argument("--data", metavar="CSV", help="tidy data to write as PROGRAM.json")
    # The data options are standata's, passed through to it unchanged.
    parser.add_argument("--column", action="append", metavar="MAP",
                        help="MODEL_NAME=DATA_NAME, e.g. gene=hugo_symbol (repeatable; with --data)")
    parser.add_argument("--grainsize", type=int, default=None, metavar="K",
                        help="rows per reduce_sum slice (with --data; build with STAN_THREADS=true to use it)")
    parser.add_argument("--no-log-lik", action="store_true", help="set compute_log_lik = 0 (with --data)")
    parser.add_argument("--no-y-rep", action="store_true", help="set compute_y_rep = 0 (with --data)")
    parser.set_defaults(func=handler)
    return parser


def _standata_argv(args: argparse.Namespace, output: Path) -> list[str]:
    """The ``pystanmods standata`` command line that writes ``output`` for these options."""
    argv = ["standata", args.model, args.data, "-o", str(output)]
    for pair in args.column or []:
        argv += ["--column", pair]
    if args.grainsize is not None:
        argv += ["--grainsize", str(args.grainsize)]
    if args.no_log_lik:
        argv.append("--no-log-lik")
    if args.no_y_rep:
        argv.append("--no-y-rep")
    return argv


def handler(args: argparse.Namespace) -> int:
    """Write the program (and the data); bad input raises ValueError or KeyError."""
    from pystanmods.models import get_model

    model = get_model(args.model)
    program = model.program_name(args.parameterization)
    data_only = [flag for flag, given in (("--column", args.column), ("--grainsize", args.grainsize is not None),
                                          ("--no-log-lik", args.no_log_lik), ("--no-y-rep", args.no_y_rep)) if given]
    if data_only and args.data is None:
        raise ValueError(f"{', '.join(data_only)} set the data JSON: give --data CSV too")
    directory = Path(args.directory)
    stan_file = directory / f"{program}.stan"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot write into {directory}: {error.strerror or error}") from None
    if args.data is not None:
        # Through standata's own command, so that the JSON is standata's byte
        # for byte; first, so that bad data leave no program behind.
        from pystanmods.cli.main import build_parser

        standata = build_parser().parse_args(_standata_argv(args, directory / f"{program}.json"))
        standata.func(standata)
    try:
        stan_file.write_text(model.stan_code(args.parameterization))
    except OSError as error:
        raise ValueError(f"cannot write {stan_file}: {error.strerror or error}") from None
    print(f"wrote {stan_file}")
    executable = directory.resolve() / program
    print(f'build it with: make -C "$CMDSTAN" {executable}')
    return 0


if __name__ == "__main__":
    from pystanmods.cli.main import run_subcommand

    sys.exit(run_subcommand("export"))
