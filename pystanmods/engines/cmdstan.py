"""The CmdStan engine, through cmdstanpy.

Used wherever a CmdStan installation is found (``$CMDSTAN`` or
``~/.cmdstan``); ``make cmdstan`` installs one for users with internet.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pystanmods.engines import interrupts
from pystanmods.engines.base import SAMPLE_STATS, Draws, Engine, Program
from pystanmods.data.errors import SetupError
from pystanmods.data.stan_json import plain
from pystanmods.engines.options import SamplerOptions

#: Significant digits of the draws CmdStan writes (``output sig_figs``, CmdStan
#: 2.25 and later; cmdstanpy allows 1 to 18). Its default, 6, rounds every draw
#: to about 5e-6 relative; 17 digits already give back a double exactly, so at
#: 18 the CSV holds the same numbers the sampler computed, as the embedded
#: engine's output does.
SIG_FIGS = 18


def cmdstan_version(path: Path) -> str | None:
    """The full version (``2.35.0``) of the CmdStan installation at ``path``, or None.

    Read from the ``CMDSTAN_VERSION := ...`` line of its top-level ``makefile``
    (the line cmdstanpy reads, though it keeps only major and minor), else from
    ``bin/stanc --version`` (``stanc3 v2.35.0``): a patch release must change
    the cache key, so ``(2, 35)`` is not enough.
    """
    try:
        makefile = (path / "makefile").read_text(errors="replace")
    except OSError:
        makefile = ""
    found = re.search(r"^CMDSTAN_VERSION\s*:?=\s*(\d+\.\d+\.\d+\S*)\s*$", makefile, re.MULTILINE)
    if found:
        return found.group(1)
    stanc = path / "bin" / ("stanc.exe" if os.name == "nt" else "stanc")
    try:
        banner = subprocess.run([str(stanc), "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"v(\d+\.\d+\.\d+\S*)", banner)
    return found.group(1) if found else None


def find_cmdstan() -> Path | None:
    """The CmdStan installation cmdstanpy would use, or None."""
    import cmdstanpy

    try:
        return Path(cmdstanpy.cmdstan_path())
    except (ValueError, RuntimeError, OSError):
        return None


class CmdStanEngine(Engine):
    """Stan through a CmdStan installation and cmdstanpy."""

    name = "cmdstan"

    def __init__(self) -> None:
        path = find_cmdstan()
        if path is None:
            raise SetupError(
                "engine 'cmdstan' needs a CmdStan installation, and none was found: "
                "set CMDSTAN to one, or run `make cmdstan` (needs internet)"
            )
        self.path = path
        self._version: str | None = None

    def stan_version(self) -> str:
        """CmdStan's full version; it names the cache folder and enters the cache key."""
        if self._version is None:
            # The directory's name (cmdstan-2.35.0) is the last resort: it is
            # only what the installer called it.
            self._version = cmdstan_version(self.path) or self.path.name.replace("cmdstan-", "")
        return self._version

    def default_compile_options(self) -> dict[str, Any]:
        # Built with threads, as httpstan builds its models, so that
        # threads_per_chain works on every program without a rebuild; stanc
        # at --O1, as the embedded engine (pystan.STANC_OPTIONS), so that both
        # run the same C++ of each program.
        return {"cpp_options": {"STAN_THREADS": True}, "stanc_options": {"O1": True}}

    def _options(self, program: Program) -> dict[str, Any]:
        return {**self.default_compile_options(), **program.options}

    @staticmethod
    def _files(program: Program, directory: Path) -> tuple[Path, Path]:
        suffix = ".exe" if os.name == "nt" else ""
        return directory / f"{program.name}.stan", directory / f"{program.name}{suffix}"

    def is_built(self, program: Program, directory: Path) -> bool:
        stan_file, exe_file = self._files(program, directory)
        return stan_file.is_file() and exe_file.is_file() and exe_file.stat().st_mtime >= stan_file.stat().st_mtime

    def binaries(self, program: Program, directory: Path) -> list[Path]:
        return [self._files(program, directory)[1]]

    def build(self, program: Program, directory: Path) -> None:
        import cmdstanpy

        stan_file, exe_file = self._files(program, directory)
        stan_file.write_text(program.code)
        if exe_file.exists():
            exe_file.unlink()
        options = self._options(program)
        cmdstanpy.CmdStanModel(
            stan_file=str(stan_file),
            cpp_options=options["cpp_options"] or None,
            stanc_options=options["stanc_options"] or None,
        )

    def _model(self, program: Program, directory: Path) -> Any:
        import cmdstanpy

        stan_file, exe_file = self._files(program, directory)
        return cmdstanpy.CmdStanModel(stan_file=str(stan_file), exe_file=str(exe_file))

    @interrupts.stop_cmdstan_on_interrupt
    def sample(self, program: Program, directory: Path, data: dict[str, Any], options: SamplerOptions) -> Draws:
        model = self._model(program, directory)
        output_dir = tempfile.mkdtemp(prefix="pystanmods-cmdstan-")
        try:
            start = time.perf_counter()
            fit = model.sample(
                data=data,
                parallel_chains=min(options.chains, os.cpu_count() or 1),
                output_dir=output_dir,
                sig_figs=SIG_FIGS,
                **options.for_cmdstanpy(),
            )
            seconds = time.perf_counter() - start
            chains = fit.chains
            variables = {}
            for name in fit.metadata.stan_vars:
                values = np.asarray(fit.stan_variable(name))
                # cmdstanpy stacks chains one after another along the first axis.
                variables[name] = values.reshape(chains, values.shape[0] // chains, *values.shape[1:])
            method = fit.method_variables()
            stats = {}
            for stan_name, arviz_name in SAMPLE_STATS.items():
                values = np.asarray(method[stan_name]).T  # (draw, chain) -> (chain, draw)
                stats[arviz_name] = values.astype(bool) if arviz_name == "diverging" else values
        finally:
            shutil.rmtree(output_dir, ignore_errors=True)
        return Draws(variables=variables, sample_stats=stats, sampling_seconds=seconds)

    def log_prob(
        self,
        program: Program,
        directory: Path,
        data: dict[str, Any],
        params: dict[str, Any],
        jacobian: bool = True,
    ) -> float:
        model = self._model(program, directory)
        frame = model.log_prob(params=plain(params), data=data, jacobian=jacobian, sig_figs=SIG_FIGS)
        return float(frame["lp__"].iloc[0])

