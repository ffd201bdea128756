"""Run the benchmark: ``python -m benchmarks.run [--quick]``.

1. The comparison: the seed's Models 4 and 5 on the seed's simulated data,
   pystanmods' recommended (identified, non-centered) program against PyMC's
   default NUTS and nutpie, each peer in the seed's parameterization and the
   identified one; same data, chains, warmup and draws, one process run.
2. The scale curve: Model 5 on DepMap-like data of growing size, each point
   in its own process.

Results go to ``benchmarks/results/`` (``latest.*``, ``scale.*``) or, with
``--quick``, to ``benchmarks/results/quick/``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.metrics import OURS, RunResult, free_parameter_summary, stan_parameter_names, write_results

RESULTS = Path(__file__).resolve().parent / "results"
#: The notebook's RANDOM_SEED, used for data and samplers alike.
SEED = 103
MODELS = ("model4", "model5")
PEERS = ("pymc", "nutpie")


def have(module: str) -> bool:
    """Whether an optional peer is importable."""
    return importlib.util.find_spec(module) is not None


#: Stan's default target acceptance, and PyMC's and nutpie's: every run of a
#: comparison aims at the same acceptance rate (pystanmods' own defaults for
#: hierarchical models are higher and cost more steps per draw).
ADAPT_DELTA = 0.8


def run_ours(
    model_name: str, stan_data: Any, chains: int, warmup: int, draws: int, seed: int,
    parameterization: str = "noncentered", adapt_delta: float | None = ADAPT_DELTA,
) -> RunResult:
    """One of pystanmods' programs on the embedded engine.

    Both programs are the identified model; the label says ``identified`` for
    the non-centered one (the model the peers' ``identified`` version copies)
    and ``centered`` for the centered one. ``"recommended"`` runs what a user
    gets by default: the model's recommended program at its own adapt_delta
    (``adapt_delta`` is then ignored).
    """
    import pystanmods

    model = pystanmods.get_model(model_name)
    label = "identified" if parameterization == "noncentered" else parameterization
    if parameterization == "recommended":
        parameterization, adapt_delta = model.recommended, None
        label = f"recommended: {parameterization}, adapt_delta {model.adapt_delta or 0.8}"
    result = RunResult(model_name, OURS, label, int(stan_data.data["N"]), chains, warmup, draws)
    fit = pystanmods.fit(
        model, stan_data, parameterization, engine="pystan", chains=chains,
        iter_warmup=warmup, iter_sampling=draws, seed=seed, adapt_delta=adapt_delta,
    )
    names = stan_parameter_names(model.stan_code(parameterization))
    result.min_ess_bulk, result.worst_parameter, result.max_rhat = free_parameter_summary(fit.idata.posterior, names)
    stats = fit.idata.sample_stats
    result.divergences = int(stats["diverging"].sum())
    result.leapfrog_steps = int(stats["n_steps"].sum())
    result.sampling_seconds = fit.sampling_seconds
    # The build is cached across runs: this is the time the cached build took.
    result.compile_seconds = fit.compile_seconds
    result.notes = (
        f"{model.program_name(parameterization)}; adapt_delta {fit.attrs.get('adapt_delta')}; "
        f"recommended program: {model.recommended}; build {'cached' if fit.attrs.get('compile_cached') else 'fresh'}"
    )
    return result


def compare(
    models: list[str], tools: list[str], chains: int, warmup: int, draws: int, cores: int, seed: int,
    peer_parameterizations: tuple[str, ...] = ("seed", "identified"),
) -> list[RunResult]:
    """Every tool and parameterization on each model's seed-sized simulation."""
    import pystanmods

    from benchmarks import peers

    results: list[RunResult] = []
    for model_name in models:
        model = pystanmods.get_model(model_name)
        sim = model.simulate(seed=seed)
        # log_lik and y_rep off: the peers compute neither while sampling.
        stan_data = model.prepare(sim.data, compute_log_lik=False, compute_y_rep=False)
        plan: list[tuple[str, str]] = [(OURS, "identified")] if OURS in tools else []
        if "pystanmods-centered" in tools:
            plan.append((OURS, "centered"))
        if "pystanmods-recommended" in tools:
            plan.append((OURS, "recommended"))
        plan += [(tool, p) for tool in PEERS if tool in tools for p in peer_parameterizations]
        for tool, parameterization in plan:
            print(f"[compare] {model_name} {tool} ({parameterization}) ...", flush=True)
            start = time.perf_counter()
            try:
                if tool == OURS:
                    program = parameterization if parameterization in ("centered", "recommended") else "noncentered"
                    result = run_ours(model_name, stan_data, chains, warmup, draws, seed, program)
                elif tool == "pymc":
                    result = peers.run_pymc(model_name, stan_data.data, parameterization, chains, warmup, draws, seed, cores)
                else:
                    result = peers.run_nutpie(model_name, stan_data.data, parameterization, chains, warmup, draws, seed, cores)
            except Exception as exc:  # a failed peer is a result, not the end of the run
                traceback.print_exc()
                result = RunResult(model_name, tool, parameterization, int(stan_data.data["N"]), chains, warmup, draws,
                                   error=f"{type(exc).__name__}: {exc}")
            results.append(result)
            print(
                f"    ESS {result.min_ess_bulk:.0f} in {result.sampling_seconds:.1f} s -> {result.ess_per_second:.1f}/s, "
                f"R-hat {result.max_rhat:.3f}, {result.divergences} div, total {time.perf_counter() - start:.0f} s",
                flush=True,
            )
    return results


def scale_curve(
    sizes: list[int], tools: list[str], chains: int, warmup: int, draws: int, cores: int, seed: int,
    big_n: int, big_warmup: int, big_draws: int, timeout: float, out: Path, meta: dict[str, Any],
) -> list[Any]:
    """Each (size, tool) point in its own process; sampling only where it is affordable.

    ``scale.json``/``scale.md``/``scale.png`` in ``out`` are rewritten after
    every point, so that an interrupted curve keeps the points it has.
    """
    from benchmarks import scale

    points: list[Any] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for tool in tools:
                w, d = (big_warmup, big_draws) if n >= big_n else (warmup, draws)
                if tool == "pymc":
                    w = d = 0  # PyMC's own NUTS is timed in the comparison; here its gradient only
                print(f"[scale] N~{n:.0e} {tool} (warmup {w}, draws {d}) ...", flush=True)
                point = scale.spawn_point(tool, n, chains, w, d, seed, cores, Path(tmp) / f"{tool}-{n}.json", timeout)
                print(f"    {point.error or asdict(point)}", flush=True)
                points.append(point)
                save_scale(out, points, meta)
    return points


def save_scale(out: Path, points: list[Any], meta: dict[str, Any]) -> list[Any]:
    """Merge ``points`` into ``out/scale.json`` and redraw its table and plot."""
    from benchmarks import scale

    merged = _merge_scale(out / "scale.json", points)
    (out / "scale.json").write_text(json.dumps({"meta": meta, "points": [asdict(p) for p in merged]}, indent=2, default=float))
    (out / "scale.md").write_text(scale_markdown(merged))
    scale.plot(merged, out / "scale.png")
    return merged


def _merge_scale(path: Path, points: list[Any]) -> list[Any]:
    """New points replace old ones of the same tool and size; the rest are kept."""
    from benchmarks.scale import ScalePoint

    old = []
    if path.exists():
        old = [ScalePoint(**p) for p in json.loads(path.read_text()).get("points", [])]
    fresh = {(p.tool, p.n_target) for p in points}
    return sorted([p for p in old if (p.tool, p.n_target) not in fresh] + points, key=lambda p: (p.n_target, p.tool))


def scale_markdown(points: list[Any]) -> str:
    def f(x: float, spec: str) -> str:
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)

    lines = [
        "| N | tool | G / S / C | gradient ms (Stan's timing) | logp+grad call ms | call µs per obs | ms per leapfrog (NUTS) "
        "| warmup+draws | sampling s | min ESS | ESS/s | max R-hat | div | peak RSS MiB | wall s |",
        "|---:|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        if p.error:
            lines.append(f"| ~{p.n_target:.0e} | {p.tool} | | {f(p.stan_gradient_seconds * 1e3, '.2f')} "
                         f"| not run: {p.error} | | | | | | | | | | |")
            continue
        from benchmarks.scale import sampled as long_enough

        if not long_enough(p):
            # A few iterations from the initial point: its step count and
            # divergences say nothing about the posterior.
            p = type(p)(**{**asdict(p), "seconds_per_leapfrog": math.nan, "divergences": 0})
        sampled = (f"{p.warmup}+{p.draws} ×{p.chains}" if long_enough(p) else
                   f"{p.warmup}+{p.draws} ×{p.chains} (costs only)" if p.draws else "not sampled")
        lines.append(
            f"| {p.n_obs:,} | {p.tool} | {p.genes} / {p.sgrnas} / {p.cell_lines} "
            f"| {f(p.stan_gradient_seconds * 1e3, '.2f')} | {f(p.grad_seconds * 1e3, '.2f')} "
            f"| {f(p.grad_us_per_obs, '.3f')} | {f(p.seconds_per_leapfrog * 1e3, '.2f')} | {sampled} "
            f"| {f(p.sampling_seconds, '.1f')} | {f(p.min_ess_bulk, '.0f')} | {f(p.ess_per_second, '.2f')} "
            f"| {f(p.max_rhat, '.3f')} | {p.divergences} | {f(p.peak_rss_mib, '.0f')} | {f(p.wall_seconds, '.0f')} |"
        )
    return "\n".join(lines) + "\n"


def write_latest(out: Path) -> Path:
    """``latest.md``: the latest comparison and scale curve found in ``out``."""
    text = ["# Benchmark results", ""]
    for compare_json in sorted(out.glob("compare*.json")):
        meta = json.loads(compare_json.read_text())["meta"]
        stem = compare_json.stem
        text += [
            f"## Comparison on the seed's data ({stem})",
            "",
            f"Run of {meta.get('date')}: {meta.get('chains')} chains x {meta.get('warmup')} warmup + "
            f"{meta.get('draws')} draws for every run, {meta.get('cores')} chains in parallel, seed {meta.get('seed')}; "
            f"load average at start {meta.get('loadavg_at_start')}. {meta.get('note')}",
            "",
            (out / f"{stem}.md").read_text(),
        ]
    scale_json = out / "scale.json"
    if scale_json.exists():
        meta = json.loads(scale_json.read_text())["meta"]
        text += [
            "## Scale curve: Model 5 (identified) on DepMap-like data",
            "",
            f"Latest points from {meta.get('date')}; load average at start {meta.get('loadavg_at_start')}. "
            "Gradient (Stan's timing): Stan's own C++ timing of one gradient as each chain starts. "
            "logp+grad call: the in-process C++ call behind `log_prob_grad` for pystanmods (it also builds the "
            "model from the data, which dominates), the compiled logp+gradient function for PyMC and nutpie. "
            "ms per leapfrog: a chain's sampling wall time over its leapfrog steps, chains side by side. "
            "Peak RSS: `ru_maxrss` of the point's own process or its largest child process.",
            "",
            (out / "scale.md").read_text(),
            "![scale curve](scale.png)",
            "",
        ]
    optimise_md = out / "optimise.md"
    if optimise_md.exists():
        text += ["## What the sufficient-statistics rewrite bought (Model 5)", "", optimise_md.read_text()]
    threads_md = out / "threads.md"
    if threads_md.exists():
        text += ["## Within-chain parallelism (Model A, reduce_sum)", "", threads_md.read_text()]
    path = out / "latest.md"
    path.write_text("\n".join(text))
    print(f"wrote {path}")
    return path


def machine() -> dict[str, Any]:
    import pystanmods

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "pystanmods": pystanmods.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    for name in ("pymc", "nutpie", "pytensor", "httpstan", "arviz"):
        if have(name):
            from importlib.metadata import version

            info[name] = version(name)
    return info


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run into results/quick/")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--tools", nargs="+", default=[OURS, "pystanmods-centered", "pystanmods-recommended", *PEERS],
                        help="pystanmods is the non-centered program; -recommended is the model's default program "
                             "at its own adapt_delta, in the comparison only")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--cores", type=int, default=min(2, os.cpu_count() or 1), help="parallel chains for the peers")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-optimise", action="store_true", help="skip the before/after run of the optimisations")
    parser.add_argument("--optimise-n", type=float, default=3e4, help="rows of the before/after run")
    parser.add_argument("--optimise-rounds", type=int, default=2, help="interleaved rounds of the before/after run")
    parser.add_argument("--skip-threads", action="store_true", help="skip the threads_per_chain run")
    parser.add_argument("--threads-n", type=float, default=5e4, help="rows of the threads_per_chain run")
    parser.add_argument("--threads-rounds", type=int, default=2, help="interleaved rounds of the threads run")
    parser.add_argument("--scale-sizes", nargs="+", type=float, default=[1e4, 1e5, 1e6])
    parser.add_argument("--scale-chains", type=int, default=2)
    parser.add_argument("--scale-warmup", type=int, default=300)
    parser.add_argument("--scale-draws", type=int, default=300)
    parser.add_argument("--big-n", type=float, default=1e6, help="sizes from here on get the short run below")
    parser.add_argument("--big-warmup", type=int, default=100)
    parser.add_argument("--big-draws", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed to one scale point")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--report-only", action="store_true", help="rebuild latest.md from the saved results")
    parser.add_argument("--peer-parameterizations", nargs="+", default=["seed", "identified", "centered"],
                        choices=["seed", "identified", "centered"])
    parser.add_argument("--compare-stem", default="compare", help="file stem of the comparison's results")
    # One scale point in this process (the scale curve spawns these; a recorded
    # command may run one alone). Its figures go to --point-out, by default
    # OUT/scale_point_<tool>_<N>.json: no option is required beyond --scale-point.
    parser.add_argument("--scale-point", type=float, default=None, metavar="N",
                        help="run one scale point of about N rows (with --tool, --chains, --warmup, --draws, --thin)")
    parser.add_argument("--tool", default=OURS, help="the scale point's tool (default pystanmods)")
    parser.add_argument("--point-out", type=Path, default=None, metavar="JSON",
                        help="where the scale point's figures go (default OUT/scale_point_<tool>_<N>.json)")
    parser.add_argument("--thin", type=int, default=1, help="keep every k-th draw of the scale point")
    args = parser.parse_args(argv)
    if args.quick:
        args.chains, args.warmup, args.draws = 2, 200, 200
        args.scale_sizes, args.scale_warmup, args.scale_draws = [1e4], 100, 100
        args.optimise_n, args.optimise_rounds = 1e4, 1
        args.threads_n, args.threads_rounds = 1e4, 1
    if args.out is None:
        args.out = RESULTS / "quick" if args.quick else RESULTS
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.scale_point is not None:
        from benchmarks import scale
        from pystanmods.outputs import OutputError

        n_target = int(args.scale_point)
        path = args.point_out or scale.point_file(args.out, args.tool, n_target)
        try:
            scale.measure_point(args.tool, n_target, args.chains, args.warmup, args.draws, args.seed, args.cores,
                                args.thin, path)
        except OutputError as error:  # before anything ran
            print(f"python -m benchmarks.run: error: {error}", file=sys.stderr)
            return 2
        except Exception as error:
            print(f"scale point failed: {type(error).__name__}: {error}; what it measured is in {path}", file=sys.stderr)
            return 1
        print(f"wrote {path}")
        return 0

    missing = [t for t in args.tools if t in PEERS and not have(t)]
    if missing:
        print(f"peers not installed, skipped: {missing} (pip install -e '.[bench]')", file=sys.stderr)
    tools = [t for t in args.tools if t not in missing]
    meta = {
        **machine(),
        "chains": args.chains, "warmup": args.warmup, "draws": args.draws, "cores": args.cores, "seed": args.seed,
        "note": "Timings on a shared 2-core machine; compare ratios within one run, not absolute seconds across runs.",
    }
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if not args.skip_compare and not args.report_only:
        results = compare(args.models, tools, args.chains, args.warmup, args.draws, args.cores, args.seed,
                          tuple(args.peer_parameterizations))
        write_results(out, args.compare_stem, results, meta)
    if not args.skip_scale and not args.report_only:
        from benchmarks import scale

        scale_tools = [t for t in scale.TOOLS if t in tools]
        points = scale_curve(
            [int(n) for n in args.scale_sizes], scale_tools, args.scale_chains, args.scale_warmup, args.scale_draws,
            args.cores, args.seed, int(args.big_n), args.big_warmup, args.big_draws, args.timeout, out, meta,
        )
    if not args.skip_optimise and not args.report_only:
        from benchmarks import optimise

        result = optimise.run(int(args.optimise_n), 2, args.scale_warmup, args.scale_draws, args.seed,
                              args.optimise_rounds)
        result["meta"] = meta
        (out / "optimise.json").write_text(json.dumps(result, indent=2, default=str))
        (out / "optimise.md").write_text(optimise.markdown(result))
        print(optimise.markdown(result))
    if not args.skip_threads and not args.report_only:
        from benchmarks import threads

        result = threads.run(int(args.threads_n), args.scale_warmup, args.scale_draws, args.seed,
                             args.threads_rounds, args.cores)
        result["meta"] = meta
        (out / "threads.json").write_text(json.dumps(result, indent=2, default=str))
        (out / "threads.md").write_text(threads.markdown(result))
        print(threads.markdown(result))
    if args.report_only and (out / "scale.json").exists():
        save_scale(out, [], json.loads((out / "scale.json").read_text())["meta"])
    write_latest(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
