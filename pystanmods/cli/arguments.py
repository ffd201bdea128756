"""Arguments shared by the subcommands: NAME=VALUE pairs, sampler options, the cluster."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence


def parse_pairs(pairs: Sequence[str] | None, what: str) -> dict[str, str]:
    """``["a=b", ...]`` to a dict, naming the malformed entry."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"{what} must be NAME=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def parse_settings(pairs: Sequence[str] | None, what: str = "--set") -> dict[str, object]:
    """NAME=VALUE pairs with each value read as JSON where it parses (numbers, lists), else a string."""
    settings: dict[str, object] = {}
    for key, raw in parse_pairs(pairs, what).items():
        try:
            settings[key] = json.loads(raw)
        except json.JSONDecodeError:
            settings[key] = raw
    return settings


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """``--scheduler`` and ``--workers`` of the Dask subcommands."""
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--scheduler", metavar="ADDR", help="address of a running Dask scheduler (default: a local cluster)")
    cluster.add_argument("--workers", type=int, metavar="N", help="worker processes of the local cluster (default: one per core)")


def cluster_options(args: argparse.Namespace) -> dict[str, object]:
    """``scheduler`` and ``n_workers`` from :func:`add_cluster_arguments`'s options, checked before any work."""
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    return {"scheduler": args.scheduler, "n_workers": args.workers}


def add_sampler_arguments(
    parser: argparse.ArgumentParser, chains: int, warmup: int, sampling: int, seed: int | None = 1
) -> None:
    """The program and NUTS settings, under cmdstanpy's names."""
    parser.add_argument(
        "--parameterization", choices=("recommended", "centered", "noncentered"), default="recommended",
        help="which program of a hierarchical model (default: the model's recommended one)",
    )
    parser.add_argument("--engine", choices=("pystan", "cmdstan"), help="default: cmdstan if installed, else pystan")
    parser.add_argument("--chains", type=int, default=chains)
    parser.add_argument("--iter-warmup", type=int, default=warmup)
    parser.add_argument("--iter-sampling", type=int, default=sampling)
    parser.add_argument("--adapt-delta", type=float)
    parser.add_argument("--max-treedepth", type=int)
    parser.add_argument("--seed", type=int, default=seed)


def sampler_options(args: argparse.Namespace) -> dict[str, object]:
    """Keyword arguments of ``pystanmods.fit`` from :func:`add_sampler_arguments`'s
    options; the optional NUTS settings only where they were given."""
    options: dict[str, object] = {
        "parameterization": args.parameterization,
        "engine": args.engine,
        "chains": args.chains,
        "iter_warmup": args.iter_warmup,
        "iter_sampling": args.iter_sampling,
        "seed": args.seed,
    }
    optional = {"adapt_delta": args.adapt_delta, "max_treedepth": args.max_treedepth}
    return {**options, **{k: v for k, v in optional.items() if v is not None}}
