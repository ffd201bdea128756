"""What each optimisation of Model 5 bought, before and after, in one run.

On one DepMap-like data set (genes x ~4 guides x cell lines x replicate
screens, rows per guide x replicate, as the DepMap preparation gives them),
the same posterior is sampled five ways:

``rows (before)``
    The program as it was before the rewrites
    (``benchmarks/stan/model5_centered_rows.stan``): one likelihood term per
    row, rows in the order the simulator writes them (sorted by guide).
``rows, shuffled``
    The same program with the rows in random order: what memory locality is
    worth, since every gather ``alpha_s[sgrna]`` then jumps.
``units, vectorised``
    One normal term per guide x cell-line unit through the sufficient
    statistics of its replicate rows (``benchmarks/stan/model5_centered_units.stan``).
``quadratic form, sparse M``
    The same statistics with the square expanded, so that the only per-unit
    work is one sparse product of the guide x cell-line count matrix M with
    the cell-line effects (``benchmarks/stan/model5_centered_csr.stan``).
``quadratic form, 1 r' + E (after)``
    ``stan/model5_centered.stan``: M split into each cell line's usual
    replicate count r_c, which enters through two sums, and a remainder E
    that is nonzero only at missing guides and odd replicate counts.

Each variant gets the same NUTS run (warmup and draws), in interleaved rounds
so that a change in the machine's load falls on every variant: wall time per
leapfrog step is the gradient's cost plus the sampler's own work, and min
bulk ESS per second the end-to-end gain.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import scale
from benchmarks.metrics import free_parameter_summary, stan_parameter_names

BEFORE_PROGRAM = Path(__file__).parent / "stan" / "model5_centered_rows.stan"
UNITS_PROGRAM = Path(__file__).parent / "stan" / "model5_centered_units.stan"
CSR_PROGRAM = Path(__file__).parent / "stan" / "model5_centered_csr.stan"
#: Replicate screens per cell line: DepMap's median is 2 (86 replicates of 42
#: screens in the shared sample release).
REPLICATES = 2


@dataclass
class Variant:
    """One way of sampling the same posterior."""

    name: str
    terms: int = 0
    sampling_seconds: float = math.nan
    leapfrog_per_chain: float = math.nan
    ms_per_leapfrog: float = math.nan
    min_ess_bulk: float = math.nan
    ess_per_second: float = math.nan
    max_rhat: float = math.nan
    divergences: int = 0
    compile_seconds: float = math.nan


def _sample(program: Any, data: dict[str, Any], options: Any, name: str, terms: int) -> Variant:
    import arviz as az

    from pystanmods.compile.cache import compile_program
    from pystanmods.engines import get_engine

    engine = get_engine("pystan")
    compiled = compile_program(program, engine, quiet=True)
    draws = engine.sample(compiled.program, compiled.directory, data, options)
    names = stan_parameter_names(program.code)
    posterior = az.from_dict(posterior={k: v for k, v in draws.variables.items() if k in names}).posterior
    variant = Variant(name, terms=terms, compile_seconds=compiled.compile_seconds)
    variant.min_ess_bulk, _, variant.max_rhat = free_parameter_summary(posterior, names)
    variant.divergences = int(np.asarray(draws.sample_stats["diverging"]).sum())
    set_costs(variant, draws.sampling_seconds, np.asarray(draws.sample_stats["n_steps"]), options.iter_warmup)
    return variant


def set_costs(variant: Variant, sampling_seconds: float, steps: np.ndarray, warmup: int) -> None:
    """Fill ``variant``'s time per leapfrog step and ESS/s from its (chain, draw) step counts.

    Chains run side by side, so a chain's wall time is spent on its own
    steps. Post-warmup steps only are stored; scale them to warmup + draws by
    the mean, which is close because the step size is fixed after warmup.
    """
    chains, draws = steps.shape
    variant.sampling_seconds = sampling_seconds
    variant.leapfrog_per_chain = float(steps.sum() / chains * (warmup + draws) / draws)
    variant.ms_per_leapfrog = 1e3 * sampling_seconds / variant.leapfrog_per_chain
    variant.ess_per_second = variant.min_ess_bulk / sampling_seconds


def run(n_target: int = 100_000, chains: int = 2, warmup: int = 300, draws: int = 300, seed: int = 11,
        rounds: int = 3) -> dict[str, Any]:
    """Sample the five variants and return their figures and the ratios."""
    import pystanmods
    from pystanmods.engines.options import SamplerOptions

    model = pystanmods.get_model("model5")
    simulation = scale.simulate(n_target, seed, REPLICATES)
    after = model.prepare(simulation.data, compute_log_lik=False, compute_y_rep=False).data
    options = SamplerOptions(chains=chains, iter_warmup=warmup, iter_sampling=draws, seed=seed,
                             adapt_delta=0.8, show_progress=False)
    engine = pystanmods.engines.get_engine("pystan")
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    setups = _setups(model, engine, after, seed)
    # Rounds interleave the variants, so that a change in the machine's load
    # falls on all of them; each variant's figures are its medians over rounds.
    runs: dict[str, list[Variant]] = {name: [] for _, _, name, _ in setups}
    for r in range(rounds):
        round_options = dataclasses.replace(options, seed=seed + r)
        for program, data, name, terms in setups:
            runs[name].append(_sample(program, data, round_options, name, terms))
    variants = [_median(runs[name]) for _, _, name, _ in setups]
    base = variants[0]
    return {
        "started": started,
        "n_obs": int(after["N"]), "units": int(after["U"]), "genes": int(after["G"]), "sgrnas": int(after["S"]),
        "cell_lines": int(after["C"]), "replicates": REPLICATES,
        "chains": chains, "warmup": warmup, "draws": draws, "seed": seed, "rounds": rounds,
        "variants": [asdict(v) for v in variants],
        "runs": {name: [asdict(v) for v in vs] for name, vs in runs.items()},
        "speedup_per_leapfrog": {v.name: base.ms_per_leapfrog / v.ms_per_leapfrog for v in variants},
        "ess_per_second_ratio": {v.name: v.ess_per_second / base.ess_per_second for v in variants},
    }


def _setups(model: Any, engine: Any, after: dict[str, Any], seed: int) -> list:
    """(program, data, name, per-unit terms) of the five variants."""
    from pystanmods.engines.base import Program
    from pystanmods.sampling import program_for

    before_program = Program("model5_centered_rows", BEFORE_PROGRAM.read_text(), engine.default_compile_options())
    units_program = Program("model5_centered_units", UNITS_PROGRAM.read_text(), engine.default_compile_options())
    csr_program = Program("model5_centered_csr", CSR_PROGRAM.read_text(), engine.default_compile_options())
    row_keys = ("N", "G", "C", "S", "sgrna", "sgrna_gene", "cell_line", "logfc", "compute_log_lik", "compute_y_rep")
    before = {k: after[k] for k in row_keys}
    order = np.random.default_rng(seed).permutation(int(after["N"]))
    shuffled = {**before, **{k: np.asarray(before[k])[order] for k in ("sgrna", "cell_line", "logfc")}}
    return [
        (before_program, before, "rows (before)", int(after["N"])),
        (before_program, shuffled, "rows, shuffled", int(after["N"])),
        (units_program, after, "units, vectorised", int(after["U"])),
        (csr_program, after, "quadratic form, sparse M", int(after["U"])),
        (program_for(model, "centered", engine), after, "quadratic form, 1 r' + E (after)",
         cross_term_nonzeros(after)),
    ]


def cross_term_nonzeros(data: dict[str, Any]) -> int:
    """Nonzeros of E in the shipped program's split M = 1 r' + E.

    The same choice as the program's transformed data: per cell line, r_c is
    the most common unit count if that leaves fewer nonzeros than r_c = 0.
    """
    rows = np.asarray(data["unit_sgrna"]) - 1
    cells = np.asarray(data["unit_cell_line"]) - 1
    counts = np.zeros((int(data["S"]), int(data["C"])))
    counts[rows, cells] = np.asarray(data["unit_n"])
    nonzeros = 0
    for c in range(counts.shape[1]):
        present = counts[counts[:, c] > 0, c]
        values, freq = np.unique(present, return_counts=True)
        mode = values[np.argmax(freq)] if len(values) else 0.0
        with_mode = int(np.sum(counts[:, c] != mode))
        nonzeros += with_mode if with_mode < len(present) else len(present)
    return nonzeros


def _median(runs: list[Variant]) -> Variant:
    """Per-field medians of one variant's rounds (divergences summed)."""
    out = Variant(runs[0].name, terms=runs[0].terms, compile_seconds=runs[0].compile_seconds)
    for name in ("sampling_seconds", "leapfrog_per_chain", "ms_per_leapfrog", "min_ess_bulk", "ess_per_second"):
        setattr(out, name, float(np.median([getattr(v, name) for v in runs])))
    out.max_rhat = max(v.max_rhat for v in runs)
    out.divergences = sum(v.divergences for v in runs)
    return out


def markdown(result: dict[str, Any]) -> str:
    """The run as a Markdown table."""
    head = (
        f"Model 5 centered, {result['n_obs']:,} rows = {result['units']:,} guide x cell-line units "
        f"({result['genes']} genes, {result['sgrnas']} guides, {result['cell_lines']} cell lines, "
        f"{result['replicates']} replicate screens); {result['chains']} chains x {result['warmup']} + "
        f"{result['draws']}, adapt_delta 0.8, seeds {result['seed']}..{result['seed'] + result['rounds'] - 1}: "
        f"{result['rounds']} interleaved rounds, medians shown (divergences summed, R-hat the largest). "
        f"Run started {result['started']}.\n\n"
    )
    lines = ["| variant | per-unit terms | ms per leapfrog (NUTS) | "
             "speed-up per leapfrog | steps per chain | sampling s | min bulk ESS | ESS/s | ESS/s ratio | "
             "max R-hat | divergences |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for v in result["variants"]:
        lines.append(
            f"| {v['name']} | {v['terms']:,} | {v['ms_per_leapfrog']:.2f} | "
            f"{result['speedup_per_leapfrog'][v['name']]:.2f}x | {v['leapfrog_per_chain']:.0f} | "
            f"{v['sampling_seconds']:.1f} | {v['min_ess_bulk']:.0f} | {v['ess_per_second']:.2f} | "
            f"{result['ess_per_second_ratio'][v['name']]:.2f}x | {v['max_rhat']:.4f} | {v['divergences']} |"
        )
    return head + "\n".join(lines) + "\n"
