"""The result of a fit: an InferenceData plus what produced it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import arviz as az
import pandas as pd

from pystanmods.stanfit.diagnostics import Diagnostics, diagnose
from pystanmods.stanfit.recovery import recovery_table


@dataclass
class StanFit:
    """A fitted model, the same whichever engine sampled it.

    Attributes
    ----------
    idata : arviz.InferenceData
        posterior, posterior_predictive, log_likelihood, observed_data,
        constant_data and sample_stats, with the data's labels as coords.
    model : str
        Model name.
    parameterization : str
        ``centered`` or ``noncentered``.
    engine : str
        ``cmdstan`` or ``pystan``.
    """

    idata: az.InferenceData

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.idata.posterior.attrs)

    @property
    def model(self) -> str:
        return str(self.attrs["model"])

    @property
    def parameterization(self) -> str:
        return str(self.attrs["parameterization"])

    @property
    def engine(self) -> str:
        return str(self.attrs["engine"])

    @property
    def approximate(self) -> bool:
        """Whether the draws are an approximation (Pathfinder), not MCMC."""
        return bool(int(self.attrs.get("approximate", 0)))

    @property
    def sampling_seconds(self) -> float:
        return float(self.attrs["sampling_seconds"])

    @property
    def compile_seconds(self) -> float:
        return float(self.attrs["compile_seconds"])

    @property
    def seed(self) -> int:
        return int(self.attrs["seed"])

    def parameter_names(self) -> list[str]:
        """Posterior variables that are the model's parameters, not the internal
        coordinates (``_z``, ``_raw``) its record declares."""
        from pystanmods.models import get_model

        internal = get_model(self.model).record.internal()
        return [n for n in self.idata.posterior.data_vars if n not in internal]

    def summary(self, var_names: list[str] | None = None, **kwargs: Any) -> pd.DataFrame:
        """ArviZ summary of the model's parameters (or ``var_names``)."""
        return az.summary(self.idata, var_names=var_names or self.parameter_names(), **kwargs)

    def diagnostics(self, warn: bool = True) -> Diagnostics:
        """R-hat, bulk and tail ESS, divergences, tree-depth hits and E-BFMI.

        With ``warn``, each failed check is also issued as a warning in plain words.
        An approximate fit has none of them and raises ``ValueError``.
        """
        if self.approximate:
            raise ValueError(
                f"{self.model}: this fit is {self.attrs.get('inference', 'approximate')}: its draws are "
                "resampled from a normal approximation, not a Markov chain, so R-hat, ESS and divergences do "
                "not exist for it; compare it with a NUTS fit (pystanmods.fit) before trusting its intervals"
            )
        result = diagnose(self.idata, max_treedepth=int(self.attrs.get("max_treedepth", 10)))
        if warn:
            import warnings

            for problem in result.problems:
                warnings.warn(f"{self.model}: {problem}", stacklevel=2)
        return result

    def recovery(self, truth: dict[str, Any], prob: float = 0.9) -> pd.DataFrame:
        """Posterior against known true values (see :func:`recovery_table`)."""
        return recovery_table(self.idata.posterior, truth, prob=prob)

    def gene_effects(self, prob: float = 0.9, variables: list[str] | None = None) -> pd.DataFrame:
        """One row per gene (x lineage): mean, sd, interval, P(effect < 0); see
        :func:`pystanmods.stanfit.effects.gene_effect_table`."""
        from pystanmods.stanfit.effects import gene_effect_table

        return gene_effect_table(self, prob=prob, variables=variables)

    def plot_gene_effects(self, prob: float = 0.9, ax: Any = None, **kwargs: Any) -> Any:
        """Forest plot of :meth:`gene_effects`; returns the matplotlib Axes."""
        from pystanmods.stanfit.effects import plot_gene_effects

        return plot_gene_effects(self, prob=prob, ax=ax, **kwargs)

    def to_netcdf(self, path: str | os.PathLike[str]) -> str:
        """Save the whole fit, attributes included, as netCDF."""
        return self.idata.to_netcdf(os.fspath(path))

    @classmethod
    def from_netcdf(cls, path: str | os.PathLike[str]) -> StanFit:
        return cls(az.from_netcdf(os.fspath(path)))

    def __repr__(self) -> str:
        post = self.idata.posterior
        if self.approximate:
            return (f"<StanFit {self.model} ({self.parameterization}), APPROXIMATE by {self.engine}: "
                    f"{post.sizes['draw']} draws, {self.sampling_seconds:.1f} s>")
        return (
            f"<StanFit {self.model} ({self.parameterization}, {self.engine}): "
            f"{post.sizes['chain']} chains x {post.sizes['draw']} draws, {self.sampling_seconds:.1f} s>"
        )
