"""The embedded engine: the Stan inside httpstan, driven through PyStan 3.

PyStan builds the models; the chains run through httpstan's endpoints and
their draws are streamed from its fit files (``httpstan_fits``).

httpstan ships stanc and the Stan services, so this engine needs nothing but
PyPI and a C++ compiler. Its compiled extension modules are kept under
pystanmods' cache directory rather than httpstan's default one, so that the
whole cache is one place (``PYSTANMODS_CACHE_DIR``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import subprocess
import sys
import tempfile
import time
import types
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any

import numpy as np

from pystanmods.compile import integrity
from pystanmods.data.errors import SetupError
from pystanmods.data.stan_json import plain
from pystanmods.engines import httpstan_fits, interrupts, samplers
from pystanmods.engines.asyncio_compat import loop_is_running, run_outside_loop
from pystanmods.engines.base import SAMPLE_STATS, Draws, Engine, Program
from pystanmods.engines.options import SamplerOptions

_HTTPSTAN_DIR: Path | None = None

#: While a chain samples, httpstan holds its output gzip-compressed in this
#: process: each saved draw, plus a diagnostic message per draw with the
#: unconstrained values, momenta and gradients. Measured: 53 bytes per saved
#: value on Model 5 at 10^5 rows (parameters only, 2 x 300 draws of 2,893
#: values). When a chain ends httpstan makes two more copies of its output to
#: write the fit file.
COMPRESSED_BYTES_PER_VALUE = 56
#: The fit files are then read into float64 arrays: each chain's, all chains
#: stacked, and one array per variable (httpstan_fits).
ARRAY_BYTES_PER_VALUE = 24


class OutputTooLarge(SetupError):
    """The draws of a fit would not fit in memory through the embedded engine."""


def _available_memory() -> int | None:
    """Bytes the kernel reports as available (Linux), else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_output_memory(
    values_per_draw: int, options: SamplerOptions, available: int | None = None, cores: int | None = None
) -> None:
    """Refuse, before sampling, a fit whose draws the engine could not collect.

    Without this check such a fit samples for as long as it takes and is then
    killed for memory while its output is collected. ``PYSTANMODS_MEMORY_CHECK=0``
    skips it.
    """
    import os

    if os.environ.get("PYSTANMODS_MEMORY_CHECK", "1") == "0":
        return
    available = _available_memory() if available is None else available
    if available is None:
        return
    per_chain = options.kept_per_chain
    kept = options.chains * per_chain
    # httpstan runs as many chains at once as there are cores.
    running = min(options.chains, cores or os.cpu_count() or 1)
    need = values_per_draw * max(
        per_chain * COMPRESSED_BYTES_PER_VALUE * (running + 2), kept * ARRAY_BYTES_PER_VALUE
    )
    if need > 0.9 * available:
        raise OutputTooLarge(
            f"the embedded engine would need about {need / 1e9:.1f} GB to collect {options.chains} x "
            f"{per_chain} draws of {values_per_draw:,} values (httpstan keeps each running chain's "
            f"output in memory with its gradients, about {COMPRESSED_BYTES_PER_VALUE} bytes per value), and "
            f"{available / 1e9:.1f} GB are available. "
            "Thin the draws (thin=2 halves it), run fewer chains or draws, or use CmdStan (engine='cmdstan'), "
            "which streams draws to CSV files; PYSTANMODS_MEMORY_CHECK=0 samples anyway"
        )


def _use_pystanmods_cache() -> None:
    """Point httpstan's model cache into pystanmods' cache directory.

    httpstan looks the directory up through ``httpstan.cache.cache_directory``
    on every call, in this process and in the sampler processes it forks, so
    replacing that function once is enough.
    """
    global _HTTPSTAN_DIR
    import httpstan
    import httpstan.cache

    from pystanmods.compile.cache import cache_root

    directory = cache_root() / f"httpstan-{httpstan.__version__}"
    if _HTTPSTAN_DIR != directory:
        directory.mkdir(parents=True, exist_ok=True)
        httpstan.cache.cache_directory = lambda: directory
        _HTTPSTAN_DIR = directory


def _keep_build_files_out_of_cwd() -> None:
    """Have httpstan compile its object files in a temporary directory.

    httpstan leaves setuptools' default ``build_temp``, ``build/temp.*`` in the
    working directory: each compile left some 35 MB of object files wherever
    the user ran the fit (754 MB in one repository), and could not compile at
    all from a directory it may not write. Each build now gets a temporary
    directory of its own, removed when the build ends. httpstan builds in an
    executor thread, so this is a subclass installed once in httpstan's module
    rather than a setting around the call.
    """
    import httpstan.build_ext
    import setuptools.command.build_ext

    if getattr(httpstan.build_ext.build_ext, "pystanmods", False):
        return

    class BuildExt(setuptools.command.build_ext.build_ext):
        def initialize_options(self) -> None:
            super().initialize_options()
            self.build_temp = tempfile.mkdtemp(prefix="pystanmods-build-")

        def run(self) -> None:
            try:
                super().run()
            finally:
                shutil.rmtree(self.build_temp, ignore_errors=True)

    httpstan.build_ext.build_ext = types.SimpleNamespace(build_ext=BuildExt, pystanmods=True)


def _httpstan_stan_version() -> str:
    """Stan's version as httpstan ships it, read from the bundled Stan headers."""
    import re
    from importlib.resources import files

    header = files("httpstan").joinpath("include/stan/version.hpp").read_text()
    parts = [re.search(rf"#define STAN_{part} (\d+)", header) for part in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(m.group(1) for m in parts if m)


#: stanc arguments of every build: level-1 optimisations (struct-of-arrays
#: autodiff vectors); the CmdStan engine's default is the same.
STANC_OPTIONS = ("--O1",)

#: stanc arguments beyond httpstan's own, per Stan model name (``model_<hash>``),
#: for the builds in progress: httpstan's build runs stanc with fixed arguments,
#: so :func:`_stanc_with_options` stands in for it and looks them up here.
_STANC_ARGS: dict[str, list[str]] = {}


def _stanc_with_options(program_code: str, stan_model_name: str) -> tuple[str, str]:
    """httpstan's ``compile.compile`` with the build's extra stanc arguments (e.g. ``--O1``).

    The same call as httpstan 4.13's (its stanc, ``--name``, ``--warn-pedantic``,
    ``--print-cpp``), plus the arguments registered for ``stan_model_name``.
    """
    from importlib.resources import as_file, files

    extra = _STANC_ARGS.get(stan_model_name, [])
    with as_file(files("httpstan").joinpath("stanc")) as stanc, tempfile.TemporaryDirectory(prefix="httpstan_") as tmp:
        path = Path(tmp) / f"{stan_model_name}.stan"
        path.write_text(program_code)
        done = subprocess.run([str(stanc), "--name", stan_model_name, "--warn-pedantic", *extra, "--print-cpp",
                               str(path)], capture_output=True, timeout=60)
    stderr = done.stderr.decode().strip()
    if done.returncode != 0:
        raise ValueError(stderr)
    return done.stdout.decode().strip(), stderr


def _program_code(program: Program, key_options: dict[str, Any]) -> str:
    """The code handed to httpstan.

    httpstan names a model by a hash of its code alone, so the compile options
    go into a leading comment: a build with other options is another model.
    """
    return f"// pystanmods {program.name} options={sorted(key_options.items())}\n{program.code}"


class PyStanEngine(Engine):
    """Stan 2.35 through httpstan 4.13 and PyStan 3."""

    name = "pystan"

    def stan_version(self) -> str:
        if self._stan_version is None:
            self._stan_version = _httpstan_stan_version()
        return self._stan_version

    def __init__(self) -> None:
        self._stan_version: str | None = None

    def default_compile_options(self) -> dict[str, Any]:
        # httpstan's own C++ flags, stated here so that they are part of the key
        # (-march=native is not an option: httpstan links every model against
        # its prebuilt generic stan_services.o, and the mixed build crashed with
        # "double free or corruption"). stanc's --O1 turns the programs'
        # vectors of autodiff variables into struct-of-arrays ones: a leapfrog
        # step of gene_effect on 2,000 genes x 40 lines took 21.9 ms instead of
        # 45.5 (benchmarks/results/gradient_cost).
        return {"extra_compile_args": ["-O3", "-std=c++14", "-Wno-sign-compare"], "stanc_options": list(STANC_OPTIONS)}

    def _options(self, program: Program) -> dict[str, Any]:
        return {**self.default_compile_options(), **program.options}

    def _model_name(self, program: Program) -> str:
        import httpstan.models

        return httpstan.models.calculate_model_name(_program_code(program, self._options(program)))

    def is_built(self, program: Program, directory: Path) -> bool:
        return _has_module(directory / "httpstan")

    def binaries(self, program: Program, directory: Path) -> list[Path]:
        kept = directory / "httpstan"
        return sorted(p for p in kept.iterdir() if p.suffix in EXTENSION_SUFFIXES) if kept.is_dir() else []

    def _install(self, program: Program, directory: Path) -> None:
        """Make httpstan find the build kept in ``directory``.

        httpstan names a model by a hash that includes ``sys.executable``, so
        the same virtualenv reached as ``python`` or ``python3`` would build the
        model again. The entry keeps a copy of the build; it is copied to
        whatever name this interpreter gives the model.
        """
        import httpstan.cache

        _use_pystanmods_cache()
        model_dir = httpstan.cache.model_directory(self._model_name(program))
        kept = directory / "httpstan"
        # The entry's own build was verified against its checksums
        # (compile_program); httpstan's copy is compared with it, since a
        # damaged copy crashes the process that loads it (SIGBUS).
        binaries = self.binaries(program, directory)
        damage = integrity.differences(kept, model_dir, binaries)
        if damage is None:
            return
        if _has_module(model_dir):
            print(
                f"pystanmods: httpstan's copy of {program.name} in {model_dir} is damaged ({damage}); "
                f"replacing it from {directory}",
                file=sys.stderr,
                flush=True,
            )
        integrity.copy_files(kept, model_dir, binaries)

    def build(self, program: Program, directory: Path) -> None:
        import httpstan.cache
        import httpstan.compile
        import httpstan.models

        _use_pystanmods_cache()
        _keep_build_files_out_of_cwd()
        options = self._options(program)
        code = _program_code(program, options)
        model_name = httpstan.models.calculate_model_name(code)
        (directory / f"{program.name}.stan").write_text(code)
        # The steps of httpstan's own create-model view, so that PyStan later
        # finds a complete cache entry and does not build again.
        httpstan.cache.delete_model_directory(model_name)
        stan_model_name = f"model_{model_name.split('/')[1]}"
        stanc_options = list(options.get("stanc_options") or [])
        if stanc_options:
            # httpstan's build calls httpstan.compile.compile by attribute.
            _STANC_ARGS[stan_model_name] = stanc_options
            httpstan.compile.compile = _stanc_with_options
        try:
            _, stanc_warnings = _with_stanc_retries(httpstan.compile.compile, code, stan_model_name)
            httpstan.cache.dump_stanc_warnings(stanc_warnings, model_name)
            compiler_output = _with_stanc_retries(
                lambda: run_outside_loop(
                    asyncio.run,
                    httpstan.models.build_services_extension_module(
                        code, extra_compile_args=options["extra_compile_args"]
                    ),
                )
            )
        finally:
            _STANC_ARGS.pop(stan_model_name, None)
        httpstan.cache.dump_services_extension_module_compiler_output(compiler_output, model_name)
        kept = directory / "httpstan"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(httpstan.cache.model_directory(model_name), kept, ignore=shutil.ignore_patterns("fits"))

    def _posterior(self, program: Program, directory: Path, data: dict[str, Any], seed: int | None) -> Any:
        import stan

        self._install(program, directory)
        # After _install, which points httpstan at pystanmods' cache: the
        # sampler processes must inherit that.
        samplers.start()
        if loop_is_running():
            # Loaded here first, so that this thread, not PyStan's helper
            # thread, has the model's autodiff stack: a pool forked from this
            # thread after an interrupt (samplers.stop) then inherits a usable
            # stack; without it the refit's chains died of SIGSEGV.
            import httpstan.models

            httpstan.models.import_services_extension_module(self._model_name(program))
        code = _program_code(program, self._options(program))
        # PyStan announces "Building..." on stdout even when the model is cached,
        # and repeats stanc's pedantic notes on stderr at every fit; the notes on
        # these reviewed programs are known false positives (a prior that
        # depends on a parameter, as every hierarchical level's does).
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return run_outside_loop(stan.build, code, data=plain(data), random_seed=seed)

    def sample(self, program: Program, directory: Path, data: dict[str, Any], options: SamplerOptions) -> Draws:
        with interrupts.sigterm_as_interrupt():
            try:
                fit_names, posterior, seconds = self._run(program, directory, data, options)
                # Inside: a signal while the fit files are read stops this too.
                chains = httpstan_fits.collect(fit_names, options.kept_per_chain)
            except KeyboardInterrupt:
                samplers.stop()
                # One short traceback (or the CLI's one line), not asyncio's chain of them.
                raise KeyboardInterrupt(f"sampling {program.name} was interrupted; its chains were stopped") from None
            except httpstan_fits.ChainProcessDied as died:
                samplers.stop()
                raise interrupts.chain_died(program.name, str(died), directory) from None
        columns = chains[0].columns
        messages = [m for chain in chains for m in chain.messages]
        if options.show_progress and messages:
            # As PyStan did: Stan's own notes (rejections, the gradient
            # timing) on stderr when progress is shown, else only kept.
            print("Messages received during sampling:", *(f"  {m.split(':', 1)[-1]}" for m in messages),
                  sep="\n", file=sys.stderr)
        draws = np.stack([chain.draws for chain in chains])
        del chains
        variables = httpstan_fits.split_variables(columns, draws, posterior.param_names, posterior.dims)
        stats = {}
        for stan_name, arviz_name in SAMPLE_STATS.items():
            values = draws[:, :, columns.index(stan_name)]
            stats[arviz_name] = values.astype(bool) if arviz_name == "diverging" else values.copy()
        return Draws(
            variables=variables,
            sample_stats=stats,
            sampling_seconds=seconds,
            extra={"messages": "\n".join(messages)},
        )

    def _run(
        self, program: Program, directory: Path, data: dict[str, Any], options: SamplerOptions
    ) -> tuple[list[str], Any, float]:
        """Build the posterior, run its chains; their fit names, the posterior and the seconds."""
        posterior = self._posterior(program, directory, data, options.seed)
        # Sampler diagnostics (lp__, accept_stat__, ...) add 7 values per draw.
        check_output_memory(sum(int(np.prod(d)) for d in posterior.dims) + 7, options)
        requests = httpstan_fits.payloads(posterior.data, posterior.random_seed, options.for_httpstan())

        def run() -> list[str]:
            # Not asyncio.run: its Ctrl-C handler exists only when SIGINT has
            # Python's default one, and it does not cover SIGTERM.
            return interrupts.run_until_interrupted(
                httpstan_fits.run_chains(
                    posterior.model_name, requests, options.iter_warmup + options.iter_sampling, options.show_progress
                ),
                discard=httpstan_fits.delete_fits,
            )

        start = time.perf_counter()
        # In a notebook the chains run from a helper thread and Ctrl-C reaches
        # the waiting thread: stop the chains there, or the helper never ends.
        fit_names = run_outside_loop(run, on_interrupt=samplers.stop)
        return fit_names, posterior, time.perf_counter() - start

    def log_prob(
        self,
        program: Program,
        directory: Path,
        data: dict[str, Any],
        params: dict[str, Any],
        jacobian: bool = True,
    ) -> float:
        posterior = self._posterior(program, directory, data, None)
        unconstrained = run_outside_loop(posterior.unconstrain_pars, plain(params))
        return float(run_outside_loop(posterior.log_prob, unconstrained, adjust_transform=jacobian))


#: httpstan runs stanc with a hard one-second timeout; on a loaded machine
#: (two cores busy compiling C++) stanc alone can take longer.
STANC_ATTEMPTS = 5


def _with_stanc_retries(function: Any, *args: Any) -> Any:
    """Call ``function``, retrying when httpstan's stanc subprocess times out."""
    for attempt in range(1, STANC_ATTEMPTS + 1):
        try:
            return function(*args)
        except subprocess.TimeoutExpired:
            if attempt == STANC_ATTEMPTS:
                raise
            time.sleep(attempt)
    raise AssertionError("unreachable")


def _has_module(directory: Path) -> bool:
    return directory.is_dir() and any(p.suffix in EXTENSION_SUFFIXES for p in directory.iterdir())
