"""Pathfinder, Stan's own, built for the embedded engine: approximate draws in a fraction of NUTS's time.

httpstan 4.13 offers NUTS and fixed_param only, but it ships the headers of
Stan 2.35, whose ``stan::services::pathfinder::pathfinder_lbfgs_multi`` is
what CmdStan's ``pathfinder`` method runs (Zhang et al. 2022: L-BFGS paths,
a normal approximation chosen along each by its ELBO; Stan then resamples
the paths' draws by Pareto-smoothed importance weights, which :func:`run`
does only where their Pareto k allows). ``approximate_main.cpp`` is a small
command-line front end to it; :func:`build` compiles it with a program's C++
into one executable per program (cached), and :func:`run` runs that in a
child process, as CmdStan runs, so that Ctrl-C stops it. The same build
serves whichever engine samples: the draws are Stan's either way.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock

from pystanmods.data.errors import SetupError
from pystanmods.data.stan_json import write_stan_json
from pystanmods.engines.base import Draws, Program

MAIN = Path(__file__).with_name("approximate_main.cpp")
#: The flags of httpstan's own model builds (httpstan.models), so that the
#: program's C++ is compiled as the embedded engine compiles it; C++17 for
#: the Pathfinder headers.
CXXFLAGS = ("-O3", "-std=c++17", "-Wno-sign-compare", "-DBOOST_DISABLE_ASSERTS",
            "-DBOOST_PHOENIX_NO_VARIADIC_EXPRESSION", "-DSTAN_THREADS", "-D_REENTRANT",
            "-D_GLIBCXX_USE_CXX11_ABI=0")
STANC_OPTIONS = ("--O1",)


def stan_version() -> str:
    """The Stan whose services the executable runs: the embedded engine's headers."""
    from pystanmods.engines.pystan import _httpstan_stan_version

    return _httpstan_stan_version()


def _httpstan() -> Path:
    return Path(str(files("httpstan")))


def build_key(program: Program) -> str:
    """What an executable is built from: the program, the front end, Stan's headers and the flags."""
    from pystanmods.compile.cache import cache_key
    from pystanmods.engines.pystan import _httpstan_stan_version

    options = {"cxxflags": list(CXXFLAGS), "stanc": list(STANC_OPTIONS), "main": MAIN.read_text()}
    return cache_key(program.code, "approximate", _httpstan_stan_version(), options)


def program_for(model: Any, parameterization: str) -> Program:
    """The program of ``model`` that Pathfinder is built from (no engine options: it has its own)."""
    return Program(name=model.program_name(parameterization), code=model.stan_code(parameterization))


def _directory(program: Program) -> Path:
    from pystanmods.compile.cache import cache_root

    return cache_root() / "approximate" / f"{program.name}-{build_key(program)[:16]}"


def is_built(program: Program) -> bool:
    """Whether the Pathfinder executable of ``program`` is in the cache."""
    return (_directory(program) / "pathfinder").is_file()


def build(program: Program, *, quiet: bool = False) -> Path:
    """The Pathfinder executable of ``program``, compiled on first use (about as long as a model build)."""
    from pystanmods.engines.pystan import _stanc_with_options

    directory = _directory(program)
    executable = directory / "pathfinder"
    directory.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory) + ".lock"):
        if executable.is_file():
            return executable
        directory.mkdir(exist_ok=True)
        if not quiet:
            print(f"pystanmods: building Pathfinder for {program.name} (once per program; a few minutes)",
                  flush=True)
        start = time.perf_counter()
        name = re.sub(r"\W", "_", program.name) + "_model"
        from pystanmods.engines import pystan as embedded

        embedded._STANC_ARGS[name] = list(STANC_OPTIONS)
        try:
            cpp, _ = _stanc_with_options(program.code, name)
        finally:
            embedded._STANC_ARGS.pop(name, None)
        (directory / f"{name}.cpp").write_text(cpp)
        root = _httpstan()
        partial = directory / "pathfinder.partial"
        command = ["g++", *CXXFLAGS, f"-I{root / 'include'}", str(directory / f"{name}.cpp"), str(MAIN),
                   "-o", str(partial), f"-L{root / 'lib'}", f"-Wl,-rpath,{root / 'lib'}", "-ltbb",
                   "-lsundials_cvodes", "-lsundials_idas", "-lsundials_nvecserial", "-lsundials_kinsol"]
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except FileNotFoundError as error:
            raise SetupError("building Pathfinder needs a C++ compiler (g++), as the embedded engine's "
                             "model builds do") from error
        if done.returncode != 0:
            raise SetupError(f"building Pathfinder for {program.name} failed (g++ exit {done.returncode}):\n"
                             + done.stderr[-4000:])
        # Renamed only when complete, so an interrupted build is never taken for a build.
        partial.replace(executable)
        if not quiet:
            print(f"pystanmods: built Pathfinder for {program.name} in {time.perf_counter() - start:.0f} s",
                  flush=True)
    return executable


#: Pareto k above which importance weights are not trusted (Vehtari et al. 2024, for
#: a few thousand draws): above it the draws are kept as the paths gave them.
PARETO_K_LIMIT = 0.7


def run(executable: Path, data: dict[str, Any], *, seed: int, paths: int = 4, draws: int = 1000,
        iterations: int = 1000, inits: Sequence[Mapping[str, Any]] | None = None) -> Draws:
    """Run Pathfinder: ``draws`` draws from each path's normal approximation, then PSIS.

    The log importance ratios ``lp - lp_approx`` of all ``paths x draws`` draws
    are Pareto-smoothed (ArviZ's ``psislw``). Where their Pareto k is at most
    :data:`PARETO_K_LIMIT`, ``draws`` draws are resampled by the smoothed
    weights, as Stan's Pathfinder does; above it the weights would rest on a
    handful of draws (on the DepMap sample, 2 distinct draws of 1,000), so
    the approximations' own draws are returned, all ``paths x draws`` of
    them. ``extra`` records k and which was done; ``sample_stats`` holds
    ``lp`` (Stan's log density) and ``lp_approx`` (the approximation's).
    ``inits``: a list of starts, path p starting from entry p modulo its
    length (one entry: every path from it).
    """
    from pystanmods.engines.interrupts import sigterm_as_interrupt

    with tempfile.TemporaryDirectory(prefix="pystanmods-pathfinder-") as tmp:
        folder = Path(tmp)
        write_stan_json(folder / "data.json", data)
        args = [str(executable), f"data={folder / 'data.json'}", f"output={folder / 'draws.csv'}",
                f"seed={seed}", f"paths={paths}", f"draws={draws}", f"iterations={iterations}"]
        if inits is not None:
            for i, values in enumerate(inits):
                write_stan_json(folder / f"init{i}.json", values)
            args.append("init=" + ",".join(str(folder / f"init{i}.json") for i in range(len(inits))))
        start = time.perf_counter()
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            with sigterm_as_interrupt():
                _, messages = process.communicate()
        except BaseException:
            # Ctrl-C (or any error here) must not leave the run going.
            process.kill()
            process.wait()
            raise
        seconds = time.perf_counter() - start
        if process.returncode != 0:
            raise RuntimeError(f"Pathfinder failed (exit {process.returncode}):\n{messages[-4000:]}")
        frame = pd.read_csv(folder / "draws.csv", comment="#")
    # Stan drops a path that fails (its L-BFGS or ELBO threw) and goes on with the rest.
    failed = len(re.findall(r"Pathfinder iteration: \d+ failed", messages))
    frame, k = importance_resample(frame, draws, seed)
    stats = {"lp": frame.pop("lp__").to_numpy()[None, :], "lp_approx": frame.pop("lp_approx__").to_numpy()[None, :]}
    return Draws(variables=_variables(frame), sample_stats=stats, sampling_seconds=seconds,
                 extra={"messages": messages, "paths": paths, "failed_paths": failed, "pareto_k": k,
                        "resampled": k <= PARETO_K_LIMIT})


def importance_resample(frame: pd.DataFrame, draws: int, seed: int) -> tuple[pd.DataFrame, float]:
    """PSIS over Pathfinder's draws: ``draws`` resampled rows where Pareto k allows, else all rows; and k."""
    import arviz as az
    import xarray as xr

    log_ratios = (frame["lp__"] - frame["lp_approx__"]).to_numpy()
    finite = np.isfinite(log_ratios)
    if not finite.any():
        return frame, float("inf")
    smoothed, k = az.psislw(xr.DataArray(np.where(finite, log_ratios, -np.inf), dims=["__sample__"]))
    k = float(k)
    if not k <= PARETO_K_LIMIT:
        return frame.reset_index(drop=True), k
    weights = np.exp(smoothed.to_numpy() - smoothed.to_numpy().max())
    rows = np.random.default_rng(seed).choice(len(frame), size=draws, replace=True, p=weights / weights.sum())
    return frame.iloc[rows].reset_index(drop=True), k


def _variables(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Stan's flat columns (``theta.2.3``, column-major) as arrays of shape ``(1, draw, *dims)``."""
    names: dict[str, list[tuple[int, ...]]] = {}
    for column in frame.columns:
        base, *index = column.split(".")
        names.setdefault(base, []).append(tuple(int(i) for i in index))
    out = {}
    for base, indices in names.items():
        if not indices[0]:
            out[base] = frame[base].to_numpy()[None, :]
            continue
        shape = tuple(max(i[d] for i in indices) for d in range(len(indices[0])))
        columns = [f"{base}." + ".".join(map(str, i)) for i in indices]
        values = frame[columns].to_numpy()
        # Stan writes containers column-major (the first index runs fastest):
        # read the indices reversed, then put them back in order.
        reversed_axes = values.reshape(len(frame), *shape[::-1])
        out[base] = reversed_axes.transpose(0, *range(len(shape), 0, -1))[None, ...]
    return out
