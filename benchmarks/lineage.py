"""What a speclet-sized lineage costs the gene_effect model on this machine (issue 16, part 1).

``python -m benchmarks.lineage --out DIR [--genes 500 2000 18119] [--warmup 10] [--draws 10]``

speclet fitted one lineage at a time: about 18,000 genes, 71,000 guides and
40 cell lines. Each size here is a simulation of the ``gene_effect`` model
with 40 cell lines, 1-6 guides per gene (a ragged library averaging 3.5),
2 replicate screens and 5% of guide x line cells missing, fitted in its own
process (so that its peak memory is its own) through ``pystanmods.fit`` on
the embedded engine, centered program on pilot scales, as ``depmap fit``
fits a release. The run is short and its tree depth capped, because it
measures costs, not posteriors:

* the seconds of each step before sampling (simulation, Stan data, pilot);
* Stan's own timing of one gradient, and the wall seconds per leapfrog step
  of a chain with two chains side by side on two cores;
* the peak resident memory of the process and its chains, and the bytes one
  kept draw takes;
* the projected wall time of the issue's goal, 4 chains x (1000 + 1000)
  on 2 cores, at the leapfrog steps per draw measured on the DepMap sample
  (127 at tree depth 7 after 500 warmup iterations, 63 after 300;
  ``benchmarks/results/gene_effect_geometry``, where 153 genes took as many
  steps as 877: the count comes from the posterior's shape, not its size).

Writes ``DIR/lineage.json`` and ``DIR/lineage.md``; each size's figures are
written as they are measured, so a size that fails or runs out of time
keeps what it had.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.scale import peak_rss_mib, stan_gradient_seconds

#: The speclet lineage: genes, and cell lines per lineage.
SPECLET_GENES, CELL_LINES = 18_119, 40
#: Guides per gene, cycled over the genes: mean 3.5, 18,119 genes give about 63,000 guides.
GUIDES_PER_GENE = (4, 4, 3, 4, 2, 5, 4, 1, 3, 6)
REPLICATES, MISSING = 2, 0.05
#: Leapfrog steps per kept draw of the whole DepMap sample (gene_effect_geometry).
STEPS_PER_DRAW = {"after 500 warmup (depth 7)": 127.0, "after 300 warmup (depth 6)": 63.0}
#: The goal of issue 16: 4 chains x (1000 + 1000) on 2 cores.
GOAL_CHAINS, GOAL_ITERATIONS, CORES = 4, 2000, 2
#: A full Avana release as lineage fits: about 1,200 cell lines in lineages of about 40.
RELEASE_LINEAGES = 30
#: Chronos's time for a full release (3-4 hours on a 52 GB machine): the budget of the cluster plan.
CHRONOS_RELEASE_HOURS = 3.5


def measure(n_genes: int, warmup: int, draws: int, max_treedepth: int, seed: int, path: Path) -> dict[str, Any]:
    """One size, in this process; its figures are written to ``path`` after each step."""
    import pystanmods
    from pystanmods.models.gene_effect import GeneEffect, jittered_inits, pilot

    point: dict[str, Any] = {"genes": n_genes, "cell_lines": CELL_LINES, "warmup": warmup, "draws": draws,
                             "max_treedepth": max_treedepth, "chains": 2, "seconds": {}}

    def save() -> None:
        point["peak_rss_mib"] = peak_rss_mib()
        path.write_text(json.dumps(point, indent=2, default=float))

    try:
        t = time.perf_counter()
        model = GeneEffect()
        sim = model.simulate(seed=seed, n_genes=n_genes, n_cell_lines=CELL_LINES, guides_per_gene=GUIDES_PER_GENE,
                             n_replicates=REPLICATES, missing_fraction=MISSING)
        point["seconds"]["simulate"] = time.perf_counter() - t
        t = time.perf_counter()
        stan_data = model.prepare(sim.data, compute_log_lik=False, compute_y_rep=False)
        data = stan_data.data
        point["seconds"]["stan_data"] = time.perf_counter() - t
        point.update(rows=int(data["N"]), guides=int(data["S"]), units=int(data["U"]), blocks=int(data["B"]))
        t = time.perf_counter()
        scales, inits = pilot(data)
        data.update(scales)
        point["seconds"]["pilot"] = time.perf_counter() - t
        save()
        t = time.perf_counter()
        fit = pystanmods.fit(model, stan_data, "centered", engine="pystan", chains=2, iter_warmup=warmup,
                             iter_sampling=draws, seed=seed, max_treedepth=max_treedepth,
                             inits=jittered_inits(inits, scales, 2, seed), show_progress=True)
        point["seconds"]["fit"] = time.perf_counter() - t
        point["seconds"]["sampling"] = fit.sampling_seconds
        point["seconds"]["compile"] = fit.compile_seconds
        steps = fit.idata.sample_stats["n_steps"].to_numpy()
        # Warmup draws are not kept: the steps of kept draws stand for all.
        per_iteration = float(steps.mean())
        point["leapfrog_steps_per_draw"] = per_iteration
        point["seconds_per_leapfrog"] = fit.sampling_seconds / ((warmup + draws) * per_iteration)
        values = sum(int(np.prod(v.shape[2:])) for v in fit.idata.posterior.data_vars.values())
        point["values_per_draw"] = values
        save()
    except BaseException as error:
        point["error"] = " ".join(f"{type(error).__name__}: {error}".split())[:500]
        save()
        raise
    return point


def project(point: dict[str, Any]) -> dict[str, float]:
    """Hours of the goal's 4 x (1000 + 1000) on 2 cores at the sample's steps per draw."""
    spl = point.get("seconds_per_leapfrog")
    if not spl:
        return {}
    return {label: GOAL_ITERATIONS * steps * spl * GOAL_CHAINS / CORES / 3600 for label, steps in STEPS_PER_DRAW.items()}


def workers_needed(hours_per_lineage: float) -> int | None:
    """Fewest 2-core workers that fit :data:`RELEASE_LINEAGES` lineage fits into Chronos's hours, or None.

    Each worker fits one lineage at a time, so a release takes
    ceil(lineages / N) lineage times; if one lineage alone takes longer than
    the budget no N is enough.
    """
    if not hours_per_lineage <= CHRONOS_RELEASE_HOURS:
        return None
    rounds = int(CHRONOS_RELEASE_HOURS // hours_per_lineage)
    return -(-RELEASE_LINEAGES // rounds)


def markdown(points: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    lines = [
        "# gene_effect at lineage sizes (issue 16, part 1)",
        "",
        f"Simulated lineages of 40 cell lines, {REPLICATES} replicates, {MISSING:.0%} of guide x line cells missing; "
        f"centered program on pilot scales, embedded engine, 2 chains x ({settings['warmup']} + {settings['draws']}), "
        f"tree depth at most {settings['max_treedepth']} (a cost measurement, not a posterior). Load average at "
        f"start: {settings.get('load_at_start')}.",
        "",
        "| genes | guides | rows | gene x line blocks | simulate + Stan data + pilot, s | Stan's first gradient, s "
        "| wall s per leapfrog (per chain) | peak RSS, MiB | values per draw | goal 4 x (1000 + 1000) on 2 cores, hours (127 / 63 steps per draw) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        s = p.get("seconds", {})
        before = sum(s.get(k, 0.0) for k in ("simulate", "stan_data", "pilot"))
        hours = project(p)
        lines.append(
            f"| {p['genes']:,} | {p.get('guides', 0):,} | {p.get('rows', 0):,} | {p.get('blocks', 0):,} | {before:.0f} "
            f"| {p.get('stan_gradient_seconds', float('nan')):.3f} | {p.get('seconds_per_leapfrog', float('nan')):.3f} | {p.get('peak_rss_mib', float('nan')):,.0f} "
            f"| {p.get('values_per_draw', 0):,} | "
            + (" / ".join(f"{h:.1f}" for h in hours.values()) if hours else p.get("error", "not measured")) + " |"
        )
    big = max(points, key=lambda p: p["genes"])
    hours = project(big)
    if hours:
        plans = []
        for label, h in hours.items():
            n = workers_needed(h)
            plans.append(f"{label}: {h:.1f} h per lineage, " + (
                f"{n} workers of 2 cores" if n else f"no number of workers (one lineage alone exceeds {CHRONOS_RELEASE_HOURS} h)"))
        lines += ["", f"A full release as {RELEASE_LINEAGES} lineage fits of {big['genes']:,} genes x 40 lines, within "
                  f"Chronos's {CHRONOS_RELEASE_HOURS} h, at the goal's 4 x (1000 + 1000) per lineage: " + "; ".join(plans) + "."]
    lines += [
        "",
        "The projection multiplies the measured seconds per leapfrog step by the steps per draw measured on the "
        "whole DepMap sample; the steps come from the posterior's shape (efficacies against gene means), not its "
        "size (benchmarks/results/gene_effect_geometry), so they are carried over, not measured here. The wall "
        "seconds per leapfrog include the chain's start (building the model from the data) spread over the short "
        "run, so at the smallest size they overstate a step; Stan's timing is of the first gradient a chain takes, "
        "which also sets up the autodiff stack, and here runs 3-5 times a later step.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--genes", type=int, nargs="+", default=[500, 2000, SPECLET_GENES])
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--max-treedepth", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per size")
    parser.add_argument("--point", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.point is not None:
        measure(args.point, args.warmup, args.draws, args.max_treedepth, args.seed,
                args.out / f"lineage_{args.point}.json")
        return 0
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    points = []
    for n in args.genes:
        path = args.out / f"lineage_{n}.json"
        command = [sys.executable, "-m", "benchmarks.lineage", "--out", str(args.out), "--point", str(n),
                   "--warmup", str(args.warmup), "--draws", str(args.draws),
                   "--max-treedepth", str(args.max_treedepth), "--seed", str(args.seed)]
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
            output = done.stdout + done.stderr
            error = "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        except subprocess.TimeoutExpired as stopped:
            output = "".join(o.decode() if isinstance(o, bytes) else (o or "") for o in (stopped.stdout, stopped.stderr))
            error = f"timed out after {args.timeout:.0f} s"
        point = json.loads(path.read_text()) if path.exists() else {"genes": n, "seconds": {}}
        if error:
            point["error"] = point.get("error") or error
        point["wall_seconds"] = time.perf_counter() - start
        # Stan times one gradient as each chain starts and prints it with the chain's messages.
        point["stan_gradient_seconds"] = stan_gradient_seconds(output)
        point["projected_hours"] = project(point)
        points.append(point)
        print(f"{n} genes: {point.get('seconds_per_leapfrog', float('nan')):.3f} s per leapfrog, "
              f"peak {point.get('peak_rss_mib', float('nan')):,.0f} MiB {point.get('error', '')}", flush=True)
    settings = {"warmup": args.warmup, "draws": args.draws, "max_treedepth": args.max_treedepth, "seed": args.seed,
                "load_at_start": load}
    (args.out / "lineage.json").write_text(json.dumps({"settings": settings, "points": points}, indent=2, default=float))
    (args.out / "lineage.md").write_text(markdown(points, settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
