"""Within-chain parallelism: Model A's likelihood split over threads, in one run.

Model A keeps one likelihood term per row (its covariates differ per row), so
it is the model where ``reduce_sum`` has work to split. On one DepMap-like data
set the same posterior is sampled serially and with ``threads_per_chain``,
first with one chain (a machine with more cores than chains) and then with as
many chains as cores (where the threads only compete with the other chains).
Rounds interleave the settings so that a change in the machine's load falls on
all of them. The centered program runs: at this size every level of Model A is
data-rich, and the non-centered one takes hundreds of steps per draw, while
what threads change is the cost of each step.

The sampled runs' cost per leapfrog step also carries each iteration's output
(every draw and httpstan's per-draw diagnostics go through a socket as JSON),
spread over however many steps that iteration took, and a threaded chain
adapts differently from a serial one because reduce_sum adds in another
order. So the gradient is also timed alone, with Stan's own timer
(:func:`gradient_timing`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any

import numpy as np

from benchmarks.metrics import free_parameter_summary, stan_parameter_names
from benchmarks.optimise import Variant, _median, set_costs

#: Cell lines of the simulation: a mid-sized DepMap lineage.
CELL_LINES = 50
GUIDES_PER_GENE = 4
MISSING_FRACTION = 0.1
PARAMETERIZATION = "centered"


def simulate(n_target: int, seed: int) -> Any:
    """A Model A simulation of about ``n_target`` rows: genes x 4 guides x 50 cell lines, 10% missing."""
    import pystanmods

    genes = max(2, round(n_target / (GUIDES_PER_GENE * CELL_LINES * (1 - MISSING_FRACTION))))
    return pystanmods.get_model("model_a").simulate(
        seed=seed, n_genes=genes, sgrnas_per_gene=GUIDES_PER_GENE, n_cell_lines=CELL_LINES,
        missing_fraction=MISSING_FRACTION,
    )


def settings(cores: int) -> list[tuple[str, int, int | None]]:
    """(name, chains, threads_per_chain) of the compared runs."""
    threads = max(2, cores)
    return [
        ("1 chain, serial", 1, None),
        (f"1 chain, {threads} threads", 1, threads),
        (f"{cores} chains, serial", cores, None),
        (f"{cores} chains, {threads} threads each", cores, threads),
    ]


def _sample(model: Any, stan_data: Any, name: str, chains: int, threads: int | None,
            warmup: int, draws: int, seed: int) -> Variant:
    import pystanmods

    fit = pystanmods.fit(model, stan_data, PARAMETERIZATION, engine="pystan", chains=chains, iter_warmup=warmup,
                         iter_sampling=draws, seed=seed, threads_per_chain=threads, adapt_delta=0.8,
                         show_progress=False)
    names = stan_parameter_names(model.stan_code(PARAMETERIZATION))
    variant = Variant(name, terms=int(stan_data.data["N"]), compile_seconds=fit.compile_seconds)
    variant.min_ess_bulk, _, variant.max_rhat = free_parameter_summary(fit.idata.posterior, names)
    stats = fit.idata.sample_stats
    variant.divergences = int(stats["diverging"].sum())
    set_costs(variant, fit.sampling_seconds, np.asarray(stats["n_steps"]), warmup)
    return variant


def gradient_timing(stan_data: Any, threads: int, repeats: int = 8) -> dict[str, float]:
    """Stan's own timing of one gradient, serial and threaded, as each chain starts.

    Every chain times one gradient evaluation in C++ before it samples ("Gradient
    evaluation took ... seconds"). One-iteration, one-chain fits of each path,
    alternated ``repeats`` times, give that timing in a sampler process as it
    is during sampling; medians are shown.
    """
    from benchmarks.scale import stan_gradient_seconds
    from pystanmods.engines import SamplerOptions, get_engine
    from pystanmods.sampling import compile_model, grainsize_for

    engine = get_engine("pystan")
    compiled = compile_model("model_a", PARAMETERIZATION, engine, quiet=True)
    # The grainsize fit(threads_per_chain=threads) would set.
    paths = {"serial": 0, "threaded": grainsize_for(int(stan_data.data["N"]), threads)}
    seconds: dict[str, list[float]] = {label: [] for label in paths}
    for r in range(repeats):
        for label, grainsize in paths.items():
            options = SamplerOptions(chains=1, iter_warmup=0, iter_sampling=1, seed=r + 1, show_progress=False)
            draws = engine.sample(compiled.program, compiled.directory, {**stan_data.data, "grainsize": grainsize},
                                  options)
            seconds[label].append(stan_gradient_seconds(draws.extra["messages"]))
    timing = {f"{label}_grad_s": float(np.median(values)) for label, values in seconds.items()}
    timing["grad_speedup"] = timing["serial_grad_s"] / timing["threaded_grad_s"]
    timing["repeats"] = repeats
    return timing


def run(n_target: int = 50_000, warmup: int = 200, draws: int = 200, seed: int = 5, rounds: int = 2,
        cores: int | None = None) -> dict[str, Any]:
    """Sample every setting of :func:`settings` in interleaved rounds; medians and speed-ups."""
    import pystanmods

    cores = cores or min(2, os.cpu_count() or 1)
    model = pystanmods.get_model("model_a")
    simulation = simulate(n_target, seed)
    stan_data = model.prepare(simulation.data, compute_log_lik=False, compute_y_rep=False)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    setups = settings(cores)
    gradient = gradient_timing(stan_data, max(2, cores))
    runs: dict[str, list[Variant]] = {name: [] for name, _, _ in setups}
    for r in range(rounds):
        for name, chains, threads in setups:
            runs[name].append(_sample(model, stan_data, name, chains, threads, warmup, draws, seed + r))
    variants = [_median(runs[name]) for name, _, _ in setups]
    by_name = {v.name: v for v in variants}
    # Each threaded setting against the serial one with the same chains.
    speedup = {}
    for (name, chains, threads), (serial_name, _, _) in zip(setups[1::2], setups[0::2]):
        speedup[name] = by_name[serial_name].ms_per_leapfrog / by_name[name].ms_per_leapfrog
    data = stan_data.data
    return {
        "started": started, "n_obs": int(data["N"]), "genes": int(data["G"]), "sgrnas": int(data["S"]),
        "cell_lines": int(data["C"]), "warmup": warmup, "draws": draws, "seed": seed, "rounds": rounds,
        "cores": cores, "variants": [dataclasses.asdict(v) for v in variants],
        "runs": {name: [dataclasses.asdict(v) for v in vs] for name, vs in runs.items()},
        "speedup_per_leapfrog": speedup, "gradient": gradient,
    }


def markdown(result: dict[str, Any]) -> str:
    """The run as a Markdown table."""
    head = (
        f"Model A {PARAMETERIZATION}, {result['n_obs']:,} rows ({result['genes']} genes, {result['sgrnas']} guides, "
        f"{result['cell_lines']} cell lines), embedded engine, {result['warmup']} + {result['draws']} per chain, "
        f"adapt_delta 0.8, {result['cores']} cores, seeds {result['seed']}..{result['seed'] + result['rounds'] - 1}: "
        f"{result['rounds']} interleaved rounds, medians shown. Run started {result['started']}.\n\n"
    )
    lines = ["| setting | ms per leapfrog | speed-up vs serial | steps per chain | sampling s | min bulk ESS | "
             "ESS/s | max R-hat | divergences |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for v in result["variants"]:
        ratio = result["speedup_per_leapfrog"].get(v["name"])
        rhat = v["max_rhat"]
        lines.append(
            f"| {v['name']} | {v['ms_per_leapfrog']:.2f} | {f'{ratio:.2f}x' if ratio else '1.00x'} | "
            f"{v['leapfrog_per_chain']:.0f} | {v['sampling_seconds']:.1f} | {v['min_ess_bulk']:.0f} | "
            f"{v['ess_per_second']:.2f} | {f'{rhat:.4f}' if math.isfinite(rhat) else '– (1 chain)'} | "
            f"{v['divergences']} |"
        )
    text = head + "\n".join(lines) + "\n"
    gradient = result.get("gradient")
    if gradient:
        text += (
            f"\nThe gradient alone, as Stan times it when a chain starts (1 chain; median of "
            f"{gradient['repeats']:.0f} alternated fits each): {gradient['serial_grad_s'] * 1e3:.2f} ms serial, "
            f"{gradient['threaded_grad_s'] * 1e3:.2f} ms with {max(2, result['cores'])} threads, "
            f"**{gradient['grad_speedup']:.2f}x**.\n"
        )
    return text
