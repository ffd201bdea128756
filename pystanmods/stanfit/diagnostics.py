"""Convergence diagnostics of a fit, with plain-word warnings."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import arviz as az
import numpy as np

#: Thresholds from Vehtari et al. (2021) and the Stan reference manual.
RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100
EBFMI_MIN = 0.3


@dataclass
class Diagnostics:
    """What a fit's sampler says about itself.

    Attributes
    ----------
    max_rhat, min_ess_bulk, min_ess_tail : float
        Over every scalar of the posterior group.
    divergences : int
        Divergent transitions after warmup.
    treedepth_hits : int
        Transitions that stopped at ``max_treedepth``.
    ebfmi : list of float
        E-BFMI per chain.
    problems : list of str
        Plain-word warnings; empty when all checks pass.
    """

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    treedepth_hits: int
    ebfmi: list[float]
    chains: int
    draws: int
    worst_rhat: str = ""
    worst_ess: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        return {
            "max_rhat": self.max_rhat,
            "min_ess_bulk": self.min_ess_bulk,
            "min_ess_tail": self.min_ess_tail,
            "divergences": self.divergences,
            "treedepth_hits": self.treedepth_hits,
            "min_ebfmi": min(self.ebfmi) if self.ebfmi else float("nan"),
        }

    def __str__(self) -> str:
        lines = [
            f"chains x draws      {self.chains} x {self.draws}",
            f"max R-hat           {self.max_rhat:.4f}  ({self.worst_rhat})",
            f"min bulk ESS        {self.min_ess_bulk:.0f}  ({self.worst_ess})",
            f"min tail ESS        {self.min_ess_tail:.0f}",
            f"divergences         {self.divergences}",
            f"max tree depth hits {self.treedepth_hits}",
            f"E-BFMI per chain    {', '.join(f'{b:.2f}' for b in self.ebfmi)}",
        ]
        lines += [f"WARNING: {p}" for p in self.problems] or ["all checks passed"]
        return "\n".join(lines)


def _worst(dataset: "az.InferenceData", fn: str) -> tuple[float, str]:
    values = getattr(az, fn)(dataset) if fn == "rhat" else az.ess(dataset, method=fn)
    best_value, best_name = (-np.inf if fn == "rhat" else np.inf), ""
    for name, array in values.data_vars.items():
        data = np.asarray(array.values, dtype=float)
        if data.size == 0 or np.all(np.isnan(data)):
            continue
        index = np.nanargmax(data) if fn == "rhat" else np.nanargmin(data)
        value = float(data.flat[index])
        if (fn == "rhat" and value > best_value) or (fn != "rhat" and value < best_value):
            position = np.unravel_index(index, data.shape) if data.ndim else ()
            best_value, best_name = value, name + (f"[{','.join(str(i) for i in position)}]" if position else "")
    return best_value, best_name


def diagnose(idata: az.InferenceData, max_treedepth: int = 10, var_names: list[str] | None = None) -> Diagnostics:
    """Compute the diagnostics of a fit's InferenceData."""
    posterior = idata.posterior if var_names is None else idata.posterior[var_names]
    # Constant quantities (a sum-to-zero effect of one group) have no R-hat.
    varying = [n for n, v in posterior.data_vars.items() if v.size and float(v.std()) > 0]
    posterior = posterior[varying]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        max_rhat, worst_rhat = _worst(posterior, "rhat")
        min_bulk, worst_ess = _worst(posterior, "bulk")
        min_tail, _ = _worst(posterior, "tail")
    stats = idata.sample_stats
    divergences = int(stats["diverging"].sum())
    hits = int((stats["tree_depth"] >= max_treedepth).sum())
    try:
        ebfmi = [float(b) for b in az.bfmi(idata)]
    except (KeyError, ValueError):
        ebfmi = []
    chains, draws = int(posterior.sizes["chain"]), int(posterior.sizes["draw"])
    problems = []
    if max_rhat >= RHAT_MAX:
        problems.append(
            f"R-hat is {max_rhat:.3f} for {worst_rhat} (should be below {RHAT_MAX}): the chains disagree, "
            "so the posterior summaries cannot be trusted; run longer or reparameterize."
        )
    if min_bulk < ESS_PER_CHAIN_MIN * chains:
        problems.append(
            f"bulk ESS is only {min_bulk:.0f} for {worst_ess} (want {ESS_PER_CHAIN_MIN * chains} for "
            f"{chains} chains): too few effective draws for stable estimates; draw more."
        )
    if min_tail < ESS_PER_CHAIN_MIN * chains:
        problems.append(
            f"tail ESS is only {min_tail:.0f}: interval ends are unreliable; draw more."
        )
    if divergences:
        problems.append(
            f"{divergences} divergent transitions: the sampler missed part of the posterior; "
            "raise adapt_delta or try the other parameterization."
        )
    if hits:
        problems.append(
            f"{hits} transitions hit max_treedepth={max_treedepth}: sampling is inefficient; "
            "consider raising max_treedepth or reparameterizing."
        )
    low = [i for i, b in enumerate(ebfmi) if b < EBFMI_MIN]
    if low:
        problems.append(
            f"E-BFMI below {EBFMI_MIN} in chain(s) {low}: the sampler explores the energy poorly, "
            "often a sign of a funnel; try the other parameterization."
        )
    return Diagnostics(
        max_rhat=max_rhat,
        min_ess_bulk=min_bulk,
        min_ess_tail=min_tail,
        divergences=divergences,
        treedepth_hits=hits,
        ebfmi=ebfmi,
        chains=chains,
        draws=draws,
        worst_rhat=worst_rhat,
        worst_ess=worst_ess,
        problems=problems,
    )
