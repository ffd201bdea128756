"""The CmdStan engine, through cmdstanpy.

Used wherever a CmdStan installation is found (``$CMDSTAN`` or
``~/.cmdstan``); ``make cmdstan`` installs one for users with internet.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pystanmods.engines.base import SAMPLE_STATS, Draws, Engine, Program
from pystanmods.data.errors import SetupError
from pystanmods.data.stan_json import plain
from pystanmods.engines.options import SamplerOptions


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

    def stan_version(self) -> str:
        import cmdstanpy

        version = cmdstanpy.cmdstan_version()
        if version is None:
            return self.path.name.replace("cmdstan-", "")
        return ".".join(str(v) for v in version)

    def default_compile_options(self) -> dict[str, Any]:
        # Built with threads, as httpstan builds its models, so that
        # threads_per_chain works on every program without a rebuild.
        return {"cpp_options": {"STAN_THREADS": True}, "stanc_options": {}}

    def _options(self, program: Program) -> dict[str, Any]:
        return {**self.default_compile_options(), **program.options}

    @staticmethod
    def _files(program: Program, directory: Path) -> tuple[Path, Path]:
        suffix = ".exe" if os.name == "nt" else ""
        return directory / f"{program.name}.stan", directory / f"{program.name}{suffix}"

    def is_built(self, program: Program, directory: Path) -> bool:
        stan_file, exe_file = self._files(program, directory)
        return stan_file.is_file() and exe_file.is_file() and exe_file.stat().st_mtime >= stan_file.stat().st_mtime

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

    def sample(self, program: Program, directory: Path, data: dict[str, Any], options: SamplerOptions) -> Draws:
        model = self._model(program, directory)
        output_dir = tempfile.mkdtemp(prefix="pystanmods-cmdstan-")
        try:
            start = time.perf_counter()
            fit = model.sample(
                data=data,
                parallel_chains=min(options.chains, os.cpu_count() or 1),
                output_dir=output_dir,
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
        frame = model.log_prob(params=plain(params), data=data, jacobian=jacobian, sig_figs=18)
        return float(frame["lp__"].iloc[0])
