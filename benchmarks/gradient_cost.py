"""What one gradient of the gene_effect program costs, part by part, and what stanc's --O1 buys.

``python -m benchmarks.gradient_cost --out DIR [--genes 2000] [--draws 3] [--rounds 2] [--before REV [--parts]]``

Issue 16 asks, where the lineage goal is missed, which step costs what. A
leapfrog step is one gradient of the log density. Each variant here is the
centered program (as ``depmap fit`` samples a release) with one part of its
log density computed a second time and added multiplied by zero: the density,
and so every trajectory, stays exactly the shipped one (same seed, same
steps), while the autodiff work of that part is done twice. A part's cost is
its variant's time per step minus the shipped program's:

``+ likelihood again``
    the whole likelihood, ``integrated_log_density``;
``+ line sums again``
    its per-cell-line part: the dense cell line x guide products with omega
    and omega^2 (four cell line x guide sparse products before 2026-12-01)
    and the line sums of squares;
``+ block products again``
    the five block x guide sparse products the gene x line blocks need
    (n k, n k^2, n k omega, n ybar k, n x k), without the block algebra;

so the block algebra (Sherman-Morrison and the determinant lemma per gene x
cell line) is the likelihood's cost less the other two, and the parameters'
transforms and priors are the shipped step less the likelihood. Then the
shipped program built two other ways, same density:

``stanc --O1``
    stanc's level-1 optimisations, which include struct-of-arrays autodiff
    vectors (one node per vector operation instead of one per element;
    ``stanc --O1 --debug-mem-patterns`` lists which vectors get it);

(A third build, ``--O1`` with ``-march=native``, crashed its chain with
"double free or corruption": httpstan links every model against its own
prebuilt ``stan_services.o``, compiled for the generic instruction set, and
Eigen's alignment then differs between the two halves. So the C++ flags of
the embedded engine stay httpstan's.)

With ``--before REV`` the runs compare instead the centered program of git
revision ``REV`` (``git show REV:stan/gene_effect_centered.stan``) with the
current one, both built with ``--O1``: a change to the likelihood, before and
after in one run. ``--parts`` adds the zero-weighted copies, built with
``--O1`` too, to split the current program's step.

Time per step is measured inside runs of each variant, without the chain's
start and warmup: two runs from the same seed, with the same short warmup
(step size only: too short to adapt a metric) at a fixed maximum tree depth,
one of ``draws`` draws and one of ``3 x draws``, and (wall time difference) /
(step difference). Without warmup, Stan's initial step size diverges at the
first step from the pilot point, so some warmup is needed for real
trajectories.
Rounds interleave the variants so that a change in the machine's load falls
on all of them; medians are shown. The first draws' log densities are
compared: the zero-weighted copies must leave them equal to the shipped
program's, and the other builds equal to rounding.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.lineage import CELL_LINES, GUIDES_PER_GENE, MISSING, REPLICATES

#: Maximum tree depth of the timed runs: long trajectories, so that the steps dominate each draw.
DEPTH = 6

#: The likelihood statement of the shipped program, after which the copies go.
LIKELIHOOD = re.compile(r"  target \+= integrated_log_density\(.*?\);\n", re.DOTALL)


@dataclass
class Variant:
    """One build of the centered program, perhaps with a zero-weighted copy of a part."""

    name: str
    code: str
    stanc_options: list[str] = field(default_factory=list)


def _with_copy(code: str, copy: str) -> str:
    """``code`` with ``copy`` (statements adding ``0 *`` a part to the target) after its likelihood."""
    match = list(LIKELIHOOD.finditer(code))
    if len(match) != 1:
        raise ValueError("the gene_effect program's likelihood statement was not found exactly once")
    end = match[0].end()
    return code[:end] + copy + code[end:]


def _likelihood_again(code: str) -> str:
    statement = LIKELIHOOD.search(code).group(0)  # type: ignore[union-attr]
    return "  target += 0 * " + statement.strip()[len("target += "):] + "\n"


#: The per-line part of integrated_log_density, once more, weighted by zero.
LINE_PART = """  {
    matrix[C, 2] n_w = line_n * append_col(omega_s, square(omega_s));
    vector[2 * C] yx_w = line_yx * omega_s;
    vector[C] rss0 = line_sums[:, 4] - 2 * kappa_c .* line_sums[:, 6] + square(kappa_c) .* line_sums[:, 5]
                     - 2 * beta_c .* (line_sums[:, 2] - kappa_c .* line_sums[:, 3])
                     + square(beta_c) .* line_sums[:, 1]
                     - 2 * (yx_w[1:C] - kappa_c .* yx_w[(C + 1):(2 * C)] - beta_c .* n_w[:, 1]) + n_w[:, 2];
    target += 0 * sum(line_sums[:, 1] .* (log(2 * pi()) + 2 * log_sigma_c) + rss0 ./ exp(2 * log_sigma_c));
  }
"""

#: The five block products, once more, weighted by zero.
BLOCK_PRODUCTS = """  {
    vector[B] n_k = csr_matrix_times_vector(B, S, unit_weights[:, 1], unit_sgrna, block_start, k_s);
    vector[B] n_k2 = csr_matrix_times_vector(B, S, unit_weights[:, 1], unit_sgrna, block_start, square(k_s));
    vector[B] n_kw = csr_matrix_times_vector(B, S, unit_weights[:, 1], unit_sgrna, block_start, k_s .* omega_s);
    vector[B] ny_k = csr_matrix_times_vector(B, S, unit_weights[:, 2], unit_sgrna, block_start, k_s);
    vector[B] nx_k = csr_matrix_times_vector(B, S, unit_weights[:, 3], unit_sgrna, block_start, k_s);
    target += 0 * (sum(n_k) + sum(n_k2) + sum(n_kw) + sum(ny_k) + sum(nx_k));
  }
"""


def variants(code: str, before: tuple[str, str] | None = None, parts: bool = False) -> list[Variant]:
    """The shipped program, its zero-weighted copies and its other builds.

    With ``before`` (a revision and its program), that program and the shipped
    one, both at ``--O1``, and with ``parts`` the copies at ``--O1`` as well.
    """
    def copies(options: list[str]) -> list[Variant]:
        return [Variant("+ likelihood again", _with_copy(code, _likelihood_again(code)), options),
                Variant("+ line sums again", _with_copy(code, LINE_PART), options),
                Variant("+ block products again", _with_copy(code, BLOCK_PRODUCTS), options)]

    if before is not None:
        rev, before_code = before
        out = [Variant(f"before ({rev})", before_code, ["--O1"]), Variant("shipped", code, ["--O1"])]
        return out + (copies(["--O1"]) if parts else [])
    return [Variant("shipped", code), *copies([]), Variant("stanc --O1", code, stanc_options=["--O1"])]


def lineage_data(n_genes: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stan data (with pilot scales) and pilot inits of a simulated lineage, as benchmarks.lineage makes it."""
    from pystanmods.models.gene_effect import GeneEffect, pilot

    model = GeneEffect()
    sim = model.simulate(seed=seed, n_genes=n_genes, n_cell_lines=CELL_LINES, guides_per_gene=GUIDES_PER_GENE,
                         n_replicates=REPLICATES, missing_fraction=MISSING)
    data = model.prepare(sim.data, compute_log_lik=False, compute_y_rep=False).data
    scales, inits = pilot(data)
    data.update(scales)
    return data, inits


def _program(variant: Variant, engine: Any) -> Any:
    from pystanmods.engines.base import Program

    options = engine.default_compile_options()
    options["stanc_options"] = list(variant.stanc_options)
    slug = re.sub(r"[^a-z0-9]+", "_", variant.name.lower()).strip("_")
    return Program(f"gene_effect_centered_cost_{slug}", variant.code, options)


def descendant_cpu_seconds() -> float:
    """User + system CPU seconds so far of this process's live descendants.

    The embedded engine samples in a pool of forked processes that outlive
    each fit, so the resource module's children figures never see them;
    /proc does. On a shared machine a step's CPU time is the steadier
    measure: being descheduled adds wall time, not CPU time (sharing the
    memory bus still adds to both).
    """
    import os

    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state, ppid, ... utime and stime are fields 14 and 15 of stat(5).
        parent[int(entry)] = int(fields[1])
        ticks[int(entry)] = int(fields[11]) + int(fields[12])
    root, total = os.getpid(), 0
    for pid in ticks:
        ancestor = parent.get(pid)
        while ancestor is not None and ancestor != root and ancestor > 1:
            ancestor = parent.get(ancestor)
        if ancestor == root:
            total += ticks[pid]
    return total / os.sysconf("SC_CLK_TCK")


def _run(compiled: Any, engine: Any, data: dict[str, Any], inits: dict[str, Any], warmup: int, draws: int,
         seed: int) -> tuple[float, int, float, float]:
    """Wall seconds, kept draws' leapfrog steps, first lp__ and the samplers' CPU seconds of one chain."""
    from pystanmods.engines.options import SamplerOptions

    options = SamplerOptions(chains=1, iter_warmup=warmup, iter_sampling=draws, seed=seed, max_treedepth=DEPTH,
                             inits=inits, show_progress=False)
    cpu = descendant_cpu_seconds()
    out = engine.sample(compiled.program, compiled.directory, data, options)
    cpu = descendant_cpu_seconds() - cpu
    steps = int(np.asarray(out.sample_stats["n_steps"]).sum())
    lp = float(np.asarray(out.sample_stats["lp"]).ravel()[0])
    return out.sampling_seconds, steps, lp, cpu


def program_at(rev: str) -> str:
    """The centered gene_effect program as committed at git revision ``rev``."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["git", "show", f"{rev}:stan/gene_effect_centered.stan"], cwd=root,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"--before {rev}: git show failed: {done.stderr.strip()}")
    return done.stdout


def measure(n_genes: int, warmup: int, draws: int, rounds: int, seed: int, before: str | None = None,
            with_parts: bool = False) -> dict[str, Any]:
    """Every variant's milliseconds per leapfrog step, medians over interleaved rounds."""
    from pystanmods.compile.cache import compile_program
    from pystanmods.engines import get_engine
    from pystanmods.models.gene_effect import GeneEffect

    engine = get_engine("pystan")
    data, inits = lineage_data(n_genes, seed)
    builds = []
    previous = (before, program_at(before)) if before else None
    for variant in variants(GeneEffect().stan_code("centered"), previous, with_parts):
        compiled = compile_program(_program(variant, engine), engine, quiet=True)
        builds.append((variant, compiled))
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    per_round: dict[str, list[dict[str, Any]]] = {v.name: [] for v, _ in builds}
    for r in range(rounds):
        for variant, compiled in builds:
            # The same seed: the long run's first draws are the short run's.
            t_short, s_short, lp, cpu_short = _run(compiled, engine, data, inits, warmup, draws, seed + r)
            t_long, s_long, _, cpu_long = _run(compiled, engine, data, inits, warmup, 3 * draws, seed + r)
            if s_long <= s_short:
                raise RuntimeError(f"{variant.name}: {s_long} steps in {3 * draws} draws against {s_short} in {draws}")
            per_round[variant.name].append({
                "ms_per_leapfrog": 1e3 * (t_long - t_short) / (s_long - s_short),
                "cpu_ms_per_leapfrog": 1e3 * (cpu_long - cpu_short) / (s_long - s_short),
                "steps": [s_short, s_long], "seconds": [t_short, t_long], "cpu_seconds": [cpu_short, cpu_long],
                "first_lp": lp,
            })
            last = per_round[variant.name][-1]
            print(f"round {r + 1} {variant.name}: {last['ms_per_leapfrog']:.2f} ms per step "
                  f"({last['cpu_ms_per_leapfrog']:.2f} CPU ms), steps {s_short}/{s_long}", flush=True)
    rows = []
    for variant, compiled in builds:
        runs = per_round[variant.name]
        rows.append({
            "variant": variant.name, "stanc_options": variant.stanc_options,
            "compile_seconds": compiled.compile_seconds,
            "ms_per_leapfrog": float(np.median([x["ms_per_leapfrog"] for x in runs])),
            "cpu_ms_per_leapfrog": float(np.median([x["cpu_ms_per_leapfrog"] for x in runs])),
            "first_lp": runs[0]["first_lp"], "runs": runs,
        })
    return {
        "genes": n_genes, "cell_lines": CELL_LINES, "rows": int(data["N"]), "guides": int(data["S"]),
        "units": int(data["U"]), "blocks": int(data["B"]), "warmup": warmup, "draws": [draws, 3 * draws], "rounds": rounds,
        "seed": seed, "max_treedepth": DEPTH, "before": before, "load_at_start": load, "started": started, "variants": rows,
    }


def parts(result: dict[str, Any]) -> dict[str, float]:
    """Milliseconds per step of each part of the shipped program's gradient."""
    ms = {v["variant"]: v["ms_per_leapfrog"] for v in result["variants"]}
    shipped = ms["shipped"]
    likelihood = ms["+ likelihood again"] - shipped
    lines = ms["+ line sums again"] - shipped
    products = ms["+ block products again"] - shipped
    return {
        "parameters, transforms and priors": shipped - likelihood,
        "likelihood: line sums": lines,
        "likelihood: block products": products,
        "likelihood: block algebra": likelihood - lines - products,
        "whole step": shipped,
    }


def _has_parts(result: dict[str, Any]) -> bool:
    return any(v["variant"].startswith("+ ") for v in result["variants"])


def markdown(result: dict[str, Any]) -> str:
    # Against the revision before a change when there is one, else the shipped --O0 build.
    reference = result["variants"][0]
    label = "before" if result.get("before") else "shipped"
    lines = [
        "# One gradient of gene_effect (centered)" + (", part by part" if _has_parts(result) else "") + " (issue 16)",
        "",
        f"A simulated lineage of {result['genes']:,} genes x {result['cell_lines']} cell lines "
        f"({result['guides']:,} guides, {result['rows']:,} rows, {result['units']:,} guide x line units, "
        f"{result['blocks']:,} gene x line blocks), pilot scales and inits, embedded engine (Stan 2.35), one chain, "
        f"{result['warmup']} warmup iterations, tree depth at most {result['max_treedepth']}; ms per leapfrog = wall time difference of "
        f"{result['draws'][1]} and {result['draws'][0]} draws from one seed over their difference in steps. "
        f"{result['rounds']} interleaved rounds, medians shown. Started {result['started']}, load average "
        f"{result['load_at_start']}.",
        "",
        f"| variant | ms per leapfrog | speed-up over {label} | CPU ms per leapfrog | CPU speed-up | lp at the first draw |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for v in result["variants"]:
        ms, cpu = v["ms_per_leapfrog"], v.get("cpu_ms_per_leapfrog", float("nan"))
        lines.append(f"| {v['variant']} | {ms:.2f} | {reference['ms_per_leapfrog'] / ms:.2f}x | {cpu:.2f} | "
                     f"{reference.get('cpu_ms_per_leapfrog', float('nan')) / cpu:.2f}x | {v['first_lp']:.4f} |")
    names = {v["variant"] for v in result["variants"]}
    if {"+ likelihood again", "+ line sums again", "+ block products again"} <= names:
        lines += ["", "Where the shipped step's time goes (differences of the rows above):", "",
                  "| part | ms per leapfrog | share |", "|---|---:|---:|"]
        split = parts(result)
        for name, ms in split.items():
            lines.append(f"| {name} | {ms:.2f} | {ms / split['whole step']:.0%} |")
    lines += [
        "",
        "The zero-weighted copies leave the density as it is, so their lp equals the shipped program's and "
        "their trajectories are the same; the other builds (--O1, or the program before a change) compute the "
        "same density in another order, equal to rounding.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--before", metavar="REV", help="compare with the program at this git revision (both --O1)")
    parser.add_argument("--parts", action="store_true", help="with --before: also split the step at --O1")
    args = parser.parse_args(argv)
    if args.parts and not args.before:
        parser.error("--parts goes with --before")
    args.out.mkdir(parents=True, exist_ok=True)
    result = measure(args.genes, args.warmup, args.draws, args.rounds, args.seed, args.before, args.parts)
    (args.out / "gradient_cost.json").write_text(json.dumps(result, indent=2, default=float))
    (args.out / "gradient_cost.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
