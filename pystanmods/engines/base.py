"""What an engine does: compile a Stan program, sample it, evaluate its log density."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pystanmods.engines.options import SamplerOptions

#: Stan's sampler diagnostics under ArviZ's names.
SAMPLE_STATS = {
    "lp__": "lp",
    "accept_stat__": "acceptance_rate",
    "stepsize__": "step_size",
    "treedepth__": "tree_depth",
    "n_leapfrog__": "n_steps",
    "divergent__": "diverging",
    "energy__": "energy",
}


@dataclass
class Draws:
    """Posterior draws as both engines return them.

    Attributes
    ----------
    variables : dict
        Stan variable name to an array of shape ``(chain, draw, *shape)``.
    sample_stats : dict
        ArviZ sample-stat name to an array of shape ``(chain, draw)``.
    sampling_seconds : float
        Wall time of warmup and sampling.
    """

    variables: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray]
    sampling_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Program:
    """A Stan program to compile: its name, its code and the compile options."""

    name: str
    code: str
    options: dict[str, Any] = field(default_factory=dict)


class Engine(abc.ABC):
    """A Stan implementation that pystanmods can drive."""

    name: str

    @abc.abstractmethod
    def stan_version(self) -> str:
        """Version of Stan (stanc and the sampler) behind this engine."""

    @abc.abstractmethod
    def default_compile_options(self) -> dict[str, Any]:
        """Compile options used when none are given; part of the cache key."""

    @abc.abstractmethod
    def build(self, program: Program, directory: Path) -> None:
        """Compile ``program`` into the cache entry ``directory``."""

    @abc.abstractmethod
    def is_built(self, program: Program, directory: Path) -> bool:
        """Whether a usable build of ``program`` is in ``directory``."""

    def binaries(self, program: Program, directory: Path) -> list[Path]:
        """The compiled files of ``program`` in ``directory`` that a fit loads or runs.

        The cache records their checksums and verifies them before each use;
        an engine that names none gets no verification.
        """
        return []

    @abc.abstractmethod
    def sample(self, program: Program, directory: Path, data: dict[str, Any], options: SamplerOptions) -> Draws:
        """Run NUTS with adaptation and return the draws."""

    @abc.abstractmethod
    def log_prob(
        self,
        program: Program,
        directory: Path,
        data: dict[str, Any],
        params: dict[str, Any],
        jacobian: bool = True,
    ) -> float:
        """Stan's log density (up to constants dropped by ``~``) at constrained ``params``."""

    def __repr__(self) -> str:
        return f"<{self.name} engine, Stan {self.stan_version()}>"
