"""The ``pystanmods`` command line.

``pystanmods list | info MODEL | simulate MODEL -o data.csv |
standata MODEL data.csv -o data.json | fit MODEL data.csv -o fit.nc |
compile [--all] | install-cmdstan``, plus the subcommands of the modules in
:data:`SUBCOMMAND_MODULES` (``depmap``, ``batch``, ``sbc``, ``export``).

A bad input or a missing setup ends with one line on stderr and exit status
2, never a traceback; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import textwrap
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from pystanmods.cli.arguments import add_sampler_arguments, parse_pairs, parse_settings, sampler_options
from pystanmods.data import DataError, SetupError, plain
from pystanmods.outputs import OutputSavedElsewhere

#: Modules under pystanmods.cli that add their own subcommand via ``add_parser``.
SUBCOMMAND_MODULES = ("depmap", "batch", "sbc", "export")

#: Errors that are the user's input or setup, not a bug: reported in one line.
#: TypeError, KeyError and other RuntimeErrors are left to show their
#: traceback: a bug reported as a user mistake is a bug nobody files.
#: OutputSavedElsewhere says where a finished result was saved instead.
USER_ERRORS = (DataError, ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
               SetupError, OutputSavedElsewhere)


def _read_table(path: str, columns: dict[str, str] | None = None) -> Any:
    from pystanmods.data.tables import read_tidy

    return read_tidy(path, columns)


# ----------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace) -> int:
    from pystanmods.models import all_models

    for model in all_models():
        programs = "one program" if not model.hierarchical else "centered, noncentered"
        print(f"{model.name:<14} {model.title}  [{programs}]")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from pystanmods.models import get_model

    model = get_model(args.model)
    print("\n".join(model.record.describe()))
    for parameterization in model.parameterizations:
        print(f"stan file ({parameterization}): {model.stan_file(parameterization)}")
    print("simulation defaults: " + ", ".join(f"{k}={v}" for k, v in model.defaults.items()))
    print()
    print(model.describe())
    if model.limitations:
        print()
        print("limitations:")
        for limitation in model.limitations:
            print(textwrap.fill(limitation, width=100, initial_indent="  - ", subsequent_indent="    "))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from pystanmods.models import get_model
    from pystanmods.outputs import check_file, write_or_fallback

    model = get_model(args.model)
    output = check_file(args.output, "simulated data")
    if args.truth:
        check_file(args.truth, "true values")
    overrides = parse_settings(args.set)
    simulation = model.simulate(seed=args.seed, **overrides)
    write_or_fallback(lambda path: simulation.data.to_csv(path, index=False), output, "simulated data")
    print(f"wrote {len(simulation.data)} rows to {output}")
    if args.truth:
        truth = plain(simulation.truth)
        write_or_fallback(lambda path: path.write_text(json.dumps(truth, indent=2)), args.truth, "true values")
        print(f"wrote the true values to {args.truth}")
    return 0


def cmd_standata(args: argparse.Namespace) -> int:
    from pystanmods.data import write_stan_json
    from pystanmods.models import get_model, require_threaded
    from pystanmods.outputs import check_file, write_or_fallback

    model = get_model(args.model)
    check_file(args.output, "Stan data")
    columns = parse_pairs(args.column, "--column") or None
    data = model.standata(
        _read_table(args.data, columns),
        columns,
        compute_log_lik=not args.no_log_lik,
        compute_y_rep=not args.no_y_rep,
    )
    if args.grainsize is not None:
        require_threaded(model, f"--grainsize {args.grainsize}")
        data["grainsize"] = args.grainsize
    write_or_fallback(lambda path: write_stan_json(path, data), args.output, "Stan data")
    print(f"wrote Stan data for {model.name} (N={data['N']}) to {args.output}")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    import pystanmods
    from pystanmods.outputs import check_file, write_or_fallback

    output = check_file(args.output, "fit")
    columns = parse_pairs(args.column, "--column") or None
    fit = pystanmods.fit(
        args.model,
        _read_table(args.data, columns),
        columns=columns,
        show_progress=not args.quiet,
        # Unset flags leave fit() to drop log_lik/y_rep that would not fit in memory.
        compute_log_lik=False if args.no_log_lik else None,
        compute_y_rep=False if args.no_y_rep else None,
        variables=args.variables,
        threads_per_chain=args.threads_per_chain,
        **sampler_options(args),
    )
    print(fit)
    print(fit.diagnostics(warn=False))
    if not args.quiet:
        print(fit.summary().to_string())
    # After sampling: a failed write saves the fit to a fallback file and says where.
    write_or_fallback(fit.to_netcdf, output, "fit")
    print(f"wrote {output}")
    return 0


def _compile_one(job: tuple[str, str, str | None]) -> tuple[str, float, bool]:
    from pystanmods.sampling import compile_model

    name, parameterization, engine = job
    if engine is None:
        return _build_pathfinder(name, parameterization)
    compiled = compile_model(name, parameterization, engine)
    return compiled.program.name, compiled.compile_seconds, compiled.cached


def _build_pathfinder(name: str, parameterization: str) -> tuple[str, float, bool]:
    import time

    from pystanmods.engines import approximate
    from pystanmods.models import get_model

    model = get_model(name)
    program = approximate.program_for(model, parameterization)
    start = time.perf_counter()
    cached = approximate.is_built(program)
    approximate.build(program, quiet=True)
    return f"{program.name} (Pathfinder)", time.perf_counter() - start, cached


def cmd_compile(args: argparse.Namespace) -> int:
    from pystanmods.engines import get_engine
    from pystanmods.models import all_models, get_model

    if not args.all and not args.models and not args.pathfinder:
        raise ValueError("name the models to compile, or pass --all or --pathfinder")
    models = all_models() if args.all else [get_model(m) for m in args.models]
    engine = get_engine(args.engine)
    jobs: dict[str, tuple[str, str, str | None]] = {}
    for model in models:
        for parameterization in model.parameterizations:
            jobs.setdefault(model.program_name(parameterization), (model.name, parameterization, engine.name))
    programs = {m.program_name(p): (m, p) for m in all_models() for p in m.parameterizations}
    for name in args.pathfinder:
        # A program by its name, or every program of a model; None marks a Pathfinder build.
        if name in programs:
            model, parameterization = programs[name]
            chosen = [parameterization]
        else:
            model = get_model(name)
            chosen = list(model.parameterizations)
        for parameterization in chosen:
            jobs[f"{model.program_name(parameterization)} pathfinder"] = (model.name, parameterization, None)
    print(f"{len(jobs)} programs for engine {engine.name} (Stan {engine.stan_version()}), {args.jobs} at a time")
    from tqdm import tqdm

    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = pool.map(_compile_one, jobs.values())
        for name, seconds, cached in tqdm(results, total=len(jobs), desc="compile", unit="program", disable=args.quiet):
            state = "cached" if cached else f"compiled in {seconds:.0f} s"
            tqdm.write(f"  {name:<28} {state}")
    return 0


def cmd_install_cmdstan(args: argparse.Namespace) -> int:
    import cmdstanpy

    from pystanmods.engines import find_cmdstan

    existing = find_cmdstan()
    if existing is not None and not args.force:
        print(f"CmdStan is already installed at {existing}")
        return 0
    print("installing CmdStan through cmdstanpy.install_cmdstan (downloads from GitHub) ...")
    try:
        ok = cmdstanpy.install_cmdstan(version=args.version, cores=args.cores, progress=True)
    except Exception as error:  # cmdstanpy raises several kinds on a failed download
        ok = False
        reason = " ".join(str(error).split()) or type(error).__name__
    else:
        reason = "see cmdstanpy's messages above"
    if not ok:
        raise SetupError(
            f"could not install CmdStan ({reason}). It needs internet access to GitHub; "
            "without it pystanmods uses the embedded engine (httpstan), which needs nothing more. "
            "With an existing CmdStan, set CMDSTAN=/path/to/cmdstan instead"
        )
    print(f"CmdStan installed at {find_cmdstan()}")
    return 0


# ------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pystanmods",
        description="Precompiled hierarchical Stan models for CRISPR-Cas9 knockout screens.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    p = commands.add_parser("list", help="the models in the catalogue")
    p.set_defaults(func=cmd_list)

    p = commands.add_parser("info", help="a model's equations, columns, Stan files and defaults")
    p.add_argument("model")
    p.set_defaults(func=cmd_info)

    p = commands.add_parser("simulate", help="simulate tidy data from a model (the seed's settings by default)")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True, metavar="CSV")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a simulation setting (repeatable)")
    p.add_argument("--truth", metavar="JSON", help="also write the true parameter values here")
    p.set_defaults(func=cmd_simulate)

    column_help = "MODEL_NAME=DATA_NAME, e.g. gene=hugo_symbol (repeatable)"
    p = commands.add_parser("standata", help="tidy CSV -> Stan JSON data for direct CmdStan use")
    p.add_argument("model")
    p.add_argument("data", metavar="CSV")
    p.add_argument("-o", "--output", required=True, metavar="JSON")
    p.add_argument("--column", action="append", metavar="MAP", help=column_help)
    p.add_argument("--no-log-lik", action="store_true", help="set compute_log_lik = 0")
    p.add_argument("--no-y-rep", action="store_true", help="set compute_y_rep = 0")
    p.add_argument("--grainsize", type=int, default=None, metavar="K",
                   help="rows per reduce_sum slice (0: serial); run CmdStan with num_threads to use it")
    p.set_defaults(func=cmd_standata)

    p = commands.add_parser("fit", help="fit a model to a tidy CSV and save the InferenceData as netCDF")
    p.add_argument("model")
    p.add_argument("data", metavar="CSV")
    p.add_argument("-o", "--output", required=True, metavar="NC")
    add_sampler_arguments(p, chains=4, warmup=1000, sampling=1000, seed=None)
    p.add_argument("--column", action="append", metavar="MAP", help=column_help)
    p.add_argument("--quiet", action="store_true", help="no progress bars and no summary table")
    p.add_argument("--no-log-lik", action="store_true", help="leave out the pointwise log-likelihood")
    p.add_argument("--no-y-rep", action="store_true", help="leave out replicated data")
    p.add_argument("--variables", nargs="+", metavar="NAME", help="keep only these posterior variables")
    p.add_argument("--threads-per-chain", type=int, default=None, metavar="K",
                   help="split each chain's likelihood over K threads with reduce_sum (models C, A, B, lineage)")
    p.set_defaults(func=cmd_fit)

    p = commands.add_parser("compile", help="precompile models into the cache")
    p.add_argument("models", nargs="*", metavar="MODEL")
    p.add_argument("--all", action="store_true", help="every model and parameterization")
    p.add_argument("--engine", choices=("pystan", "cmdstan"), default=None)
    p.add_argument("--jobs", type=int, default=1, help="programs compiled at once (default 1)")
    p.add_argument("--pathfinder", nargs="+", metavar="PROGRAM", default=[],
                   help="also build Stan's Pathfinder for these programs (e.g. gene_effect_centered), or every "
                   "program of these models (pystanmods.pathfinder, depmap fit --approximate)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_compile)

    p = commands.add_parser("install-cmdstan", help="install CmdStan through cmdstanpy (needs internet)")
    p.add_argument("--version", default=None, help="CmdStan version (default: cmdstanpy's latest)")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--force", action="store_true", help="install even if one is found")
    p.set_defaults(func=cmd_install_cmdstan)

    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"pystanmods.cli.{name}")
        except ImportError as error:
            # An optional extra (dask) may be missing: the rest of the CLI still works.
            missing = commands.add_parser(name, help=f"(unavailable: {error})")
            missing.set_defaults(func=_unavailable(name, error))
            continue
        module.add_parser(commands)
    return parser


def _unavailable(name: str, error: ImportError) -> Any:
    def handler(args: argparse.Namespace) -> int:
        raise SetupError(f"'pystanmods {name}' is unavailable: {error}; install pystanmods[dask]")

    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"pystanmods: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pystanmods: interrupted", file=sys.stderr)
        return 130


def run_subcommand(name: str, argv: Sequence[str] | None = None) -> int:
    """Run one subcommand as if it were ``pystanmods NAME ...``: the stand-alone
    entry of ``python -m pystanmods.cli.NAME``, with the same one-line errors."""
    args = list(sys.argv[1:] if argv is None else argv)
    return main([name, *args])


if __name__ == "__main__":
    sys.exit(main())
