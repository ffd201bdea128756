"""The scale curve: Model 5 on DepMap-like simulated data of growing size.

Each point runs in its own process (``python -m benchmarks.run --scale-point
N --tool T``), so that its peak memory is its own and a blow-up at one size
does not take the whole run down.
"""

from __future__ import annotations

import json
import math
import re
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Share of sgRNA x cell-line cells left out: screens miss some guides in some lines.
MISSING_FRACTION = 0.1
#: The peers' target acceptance, used for pystanmods' fits too.
ADAPT_DELTA = 0.8
#: Below this many draws a point reports costs but no ESS or R-hat.
MIN_DRAWS_FOR_ESS = 50
#: Guides per gene: mostly 4 (as in the Avana library), some genes with fewer or more.
GUIDES, GUIDE_WEIGHTS = (2, 3, 4, 5, 6), (0.05, 0.15, 0.6, 0.15, 0.05)


@dataclass
class ScalePoint:
    """One tool at one data size. Times in seconds, memory in MiB."""

    tool: str
    n_target: int
    n_obs: int = 0
    genes: int = 0
    sgrnas: int = 0
    cell_lines: int = 0
    grad_seconds: float = math.nan
    grad_us_per_obs: float = math.nan
    logp_seconds: float = math.nan
    stan_gradient_seconds: float = math.nan
    chains: int = 0
    warmup: int = 0
    draws: int = 0
    sampling_seconds: float = math.nan
    leapfrog_steps: int = 0
    seconds_per_leapfrog: float = math.nan
    min_ess_bulk: float = math.nan
    ess_per_second: float = math.nan
    max_rhat: float = math.nan
    divergences: int = 0
    compile_seconds: float = math.nan
    peak_rss_mib: float = math.nan
    wall_seconds: float = math.nan
    notes: str = ""
    error: str = ""


def cell_lines_for(n_target: int) -> int:
    """Cell lines of a DepMap lineage: few in a small screen, 50 from 10^5 up."""
    return 25 if n_target <= 20_000 else 50


def simulate(n_target: int, seed: int, n_replicates: int = 1) -> Any:
    """A Model 5 simulation of about ``n_target`` observations.

    Genes x ~4 sgRNAs x cell lines (x replicate screens), ragged in guides per
    gene and with 10% of guide x cell-line cells missing.
    """
    import pystanmods

    rng = np.random.default_rng(seed)
    n_cells = cell_lines_for(n_target)
    genes = max(2, round(n_target / (4 * n_cells * n_replicates * (1 - MISSING_FRACTION))))
    per_gene = rng.choice(GUIDES, size=genes, p=GUIDE_WEIGHTS)
    return pystanmods.get_model("model5").simulate(
        seed=seed,
        n_cell_lines=n_cells,
        sgrnas_per_gene=tuple(int(k) for k in per_gene),
        missing_fraction=MISSING_FRACTION,
        n_replicates=n_replicates,
        alpha_s=None,
    )


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in data.items()}


#: Scale-curve tools: pystanmods' programs and the peers on the identified model.
TOOLS = ("pystanmods", "pystanmods-centered", "nutpie", "pymc")
_STAN_GRADIENT = re.compile(r"Gradient evaluation took ([0-9.eE+-]+) seconds")


def stan_gradient_seconds(output: str) -> float:
    """Median of the one-gradient timings Stan prints as each chain starts.

    Stan times one gradient in C++ before sampling: that is the gradient alone,
    without the model construction the in-process call includes.
    """
    values = [float(v) for v in _STAN_GRADIENT.findall(output or "")]
    return float(np.median(values)) if values else math.nan


def pystan_grad_timers(data: dict[str, Any], parameterization: str = "noncentered") -> tuple[Any, Any, int]:
    """Calls of the embedded engine's C++ ``log_prob_grad`` and ``log_prob``.

    These are the functions behind the engine's ``log_prob_grad`` and PyStan's
    ``grad_log_prob``, called in-process: through PyStan each call would also
    send the whole data set as JSON over httpstan's HTTP interface, which at
    10^6 observations is most of the time. Each C++ call still builds the
    model from the data dict; ``log_prob`` (one evaluation without gradient)
    times mostly that construction, so ``grad - logp`` bounds the gradient
    alone from below.
    """
    import httpstan.models

    from benchmarks.metrics import stan_parameter_names
    from pystanmods.engines import get_engine
    from pystanmods.engines.asyncio_compat import run_outside_loop
    from pystanmods.sampling import compile_model

    engine = get_engine("pystan")
    compiled = compile_model("model5", parameterization, engine, quiet=True)
    # The engine's own posterior builder installs the cached build where
    # httpstan looks for it; its name is the httpstan model name.
    posterior = engine._posterior(compiled.program, compiled.directory, data, None)
    module = run_outside_loop(httpstan.models.import_services_extension_module, posterior.model_name)
    plain = _plain(data)
    # The module lists parameters, then transformed parameters and generated
    # quantities; Model 5 has no constrained-size parameters (simplexes and
    # the like), so the unconstrained size is the sum of the parameters' sizes.
    n_params = len(stan_parameter_names(compiled.program.code))
    size = sum(int(np.prod(d)) if d else 1 for d in module.get_dims(plain)[:n_params])
    rng = np.random.default_rng(1)
    x = list(rng.normal(0, 0.5, size))
    return (lambda: module.log_prob_grad(plain, x, True)), (lambda: module.log_prob(plain, x, True)), size


def run_point(tool: str, n_target: int, chains: int, warmup: int, draws: int, seed: int, cores: int,
              thin: int = 1, point: ScalePoint | None = None) -> ScalePoint:
    """Measure one tool at one size (called inside the point's own process).

    Figures are filled into ``point`` as they are measured, so that a caller
    passing its own keeps them when a later step fails (see :func:`measure_point`).
    """
    from benchmarks import peers
    from benchmarks.metrics import free_parameter_summary, stan_parameter_names

    start = time.perf_counter()
    if point is None:
        point = ScalePoint(tool, n_target, chains=chains, warmup=warmup, draws=draws)
    import pystanmods

    model = pystanmods.get_model("model5")
    sim = simulate(n_target, seed)
    stan_data = model.prepare(sim.data, compute_log_lik=False, compute_y_rep=False)
    data = stan_data.data
    point.n_obs, point.genes, point.sgrnas, point.cell_lines = int(data["N"]), int(data["G"]), int(data["S"]), int(data["C"])
    if tool.startswith("pystanmods"):
        parameterization = "centered" if tool.endswith("centered") else "noncentered"
        grad, logp, _ = pystan_grad_timers(data, parameterization)
        point.grad_seconds = peers.median_seconds(grad, budget=3.0)
        point.logp_seconds = peers.median_seconds(logp, budget=1.5)
        if draws:
            fit = pystanmods.fit(
                model, stan_data, parameterization, engine="pystan", chains=chains,
                iter_warmup=warmup, iter_sampling=draws, seed=seed, adapt_delta=ADAPT_DELTA, thin=thin,
            )
            point.notes = f"adapt_delta {fit.attrs.get('adapt_delta')}" + (f"; thin {thin}: step counts are of kept draws only" if thin > 1 else "")
            names = stan_parameter_names(model.stan_code(parameterization))
            if draws >= MIN_DRAWS_FOR_ESS:
                point.min_ess_bulk, _, point.max_rhat = free_parameter_summary(fit.idata.posterior, names)
            else:
                point.notes += "; too few draws for ESS: run only for Stan's gradient timing and the memory of a fit"
            stats = fit.idata.sample_stats
            point.divergences = int(stats["diverging"].sum())
            point.leapfrog_steps = int(stats["n_steps"].sum())
            point.sampling_seconds = fit.sampling_seconds
            point.compile_seconds = fit.compile_seconds
    elif tool in ("nutpie", "pymc"):
        pm_model = peers.model5(data, "identified")
        point.grad_seconds = peers.median_seconds(peers.logp_grad_timer(pm_model, tool), budget=3.0)
        if draws and tool == "nutpie":
            result = peers.run_nutpie("model5", data, "identified", chains, warmup, draws, seed, cores)
            if draws >= MIN_DRAWS_FOR_ESS:
                point.min_ess_bulk, point.max_rhat = result.min_ess_bulk, result.max_rhat
            point.divergences = result.divergences
            point.leapfrog_steps, point.sampling_seconds = result.leapfrog_steps, result.sampling_seconds
            point.compile_seconds = result.compile_seconds
    else:
        raise ValueError(f"unknown tool {tool!r}")
    point.grad_us_per_obs = point.grad_seconds / point.n_obs * 1e6
    if draws >= MIN_DRAWS_FOR_ESS and point.sampling_seconds == point.sampling_seconds and point.leapfrog_steps:
        # Chains run side by side, so a chain's wall time per step is the
        # cost of one gradient plus the sampler's own work, under this load.
        point.seconds_per_leapfrog = point.sampling_seconds / (point.leapfrog_steps / chains)
        point.ess_per_second = point.min_ess_bulk / point.sampling_seconds
    point.wall_seconds = time.perf_counter() - start
    _record_memory(point)
    return point


def peak_rss_mib() -> float:
    """Peak resident memory so far, MiB: the larger of this process and its largest waited-for child."""
    # ru_maxrss is in KiB on Linux; the embedded engine runs its chains in children.
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return rss / 1024


def _record_memory(point: ScalePoint) -> None:
    point.peak_rss_mib = peak_rss_mib()


def point_file(out: Path, tool: str, n_target: int) -> Path:
    """Where a scale point run on its own writes its figures: ``OUT/scale_point_<tool>_<N>.json``."""
    return out / f"scale_point_{tool}_{n_target}.json"


def measure_point(tool: str, n_target: int, chains: int, warmup: int, draws: int, seed: int, cores: int,
                  thin: int, path: Path) -> ScalePoint:
    """Run one point and write it to ``path`` whatever happens.

    The path is checked before anything runs. On failure (an exception, or
    Ctrl-C) the point is written with ``error`` set and every figure measured
    up to then, and the error is raised again: a long run never loses what it
    measured to a failure at its end.
    """
    from pystanmods.outputs import check_file

    check_file(path, "scale point")
    start = time.perf_counter()
    point = ScalePoint(tool, n_target, chains=chains, warmup=warmup, draws=draws)
    try:
        run_point(tool, n_target, chains, warmup, draws, seed, cores, thin, point=point)
    except BaseException as error:
        point.error = " ".join(f"{type(error).__name__}: {error}".split())[:500]
        point.wall_seconds = time.perf_counter() - start
        _record_memory(point)
        write_point(point, path)
        raise
    write_point(point, path)
    return point


def spawn_point(
    tool: str, n_target: int, chains: int, warmup: int, draws: int, seed: int, cores: int, out: Path, timeout: float
) -> ScalePoint:
    """Run :func:`run_point` in a fresh process and read its result back."""
    command = [
        sys.executable, "-m", "benchmarks.run", "--scale-point", str(n_target), "--tool", tool,
        "--chains", str(chains), "--warmup", str(warmup), "--draws", str(draws),
        "--seed", str(seed), "--cores", str(cores), "--point-out", str(out),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        # Stan prints its gradient timing as a chain starts: keep it even when
        # the run itself did not finish in time.
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout
        return ScalePoint(tool, n_target, chains=chains, warmup=warmup, draws=draws,
                          stan_gradient_seconds=stan_gradient_seconds(stdout or ""),
                          error=f"sampling timed out after {timeout:.0f} s")
    if done.returncode != 0 or not out.exists():
        tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return ScalePoint(tool, n_target, chains=chains, warmup=warmup, draws=draws, error=tail[0][:200])
    point = ScalePoint(**json.loads(out.read_text()))
    point.stan_gradient_seconds = stan_gradient_seconds(done.stdout + done.stderr)
    return point


def sampled(point: ScalePoint) -> bool:
    """Whether a point ran long enough for its per-step cost and ESS to mean anything."""
    return point.draws >= MIN_DRAWS_FOR_ESS


def write_point(point: ScalePoint, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(point), default=float))


def plot(points: list[ScalePoint], path: Path) -> None:
    """Gradient time per call and sampling wall time against N, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for i, (tool, marker) in enumerate(zip(TOOLS, "oDs^")):
        color = f"C{i}"  # one colour per tool across both panels
        mine = sorted((p for p in points if p.tool == tool and not p.error), key=lambda p: p.n_obs)
        stan = [(p.n_obs, p.stan_gradient_seconds * 1e3) for p in mine if p.stan_gradient_seconds == p.stan_gradient_seconds]
        if stan:
            axes[0].plot(*zip(*stan), marker=marker, color=color, label=f"{tool} gradient (Stan's own timing)")
        elif not tool.startswith("pystanmods"):
            grad = [(p.n_obs, p.grad_seconds * 1e3) for p in mine if p.grad_seconds == p.grad_seconds]
            if grad:
                axes[0].plot(*zip(*grad), marker=marker, color=color, label=f"{tool} compiled logp+grad")
        step = [(p.n_obs, p.seconds_per_leapfrog * 1e3) for p in mine if sampled(p) and p.seconds_per_leapfrog == p.seconds_per_leapfrog]
        if step:
            axes[0].plot(*zip(*step), marker=marker, color=color, linestyle="--", mfc="none", label=f"{tool} per leapfrog in NUTS")
        ess = [(p.n_obs, p.ess_per_second) for p in mine if p.ess_per_second == p.ess_per_second]
        if ess:
            axes[1].plot(*zip(*ess), marker=marker, color=color, label=tool)
    axes[0].set(xscale="log", yscale="log", xlabel="observations N", ylabel="milliseconds", title="Cost of one gradient")
    axes[1].set(xscale="log", yscale="log", xlabel="observations N", ylabel="min bulk ESS / s", title="Model 5 ESS per second")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Model 5 (identified) on DepMap-like data, 2 cores; each point's run settings are in scale.md")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
