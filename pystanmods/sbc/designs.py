"""The small designs on which every model of the catalogue is calibrated.

SBC needs hundreds of fits, so each design is the smallest that still has
every level of the model: a handful of genes, guides and cell lines. Small
designs are also the demanding case for calibration, because there the prior
still shapes the posterior and a simulator that disagrees with the program
shows up in the ranks. ``examples/sbc_every_model.py`` (``make sbc``) and the
slow-marked test run these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Design:
    """One SBC configuration: a model, its program and the simulator's sizes."""

    model: str
    parameterization: str
    sizes: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.model}-{self.parameterization}"


_SIZES: dict[str, dict[str, Any]] = {
    "model1": {},
    "model2": {"n_genes": 3, "n_cell_lines": 10},
    "model3": {"n_genes": 2, "n_cell_lines": 4, "n_replicates": 2},
    "model4": {"n_genes": 2, "n_cell_lines": 4, "n_replicates": 2},
    "model5": {"n_cell_lines": 4, "sgrnas_per_gene": [1, 2, 3]},
    "model5_flat": {"n_cell_lines": 4, "sgrnas_per_gene": [1, 2, 3]},
    "model_c": {"n_cell_lines": 4, "sgrnas_per_gene": [1, 2, 3]},
    # Ragged, as the model is meant for, but lightly: a guide that loses all
    # 5 of its cell lines changes the simulation's shape and fails its fit.
    # At 0.05 that has probability about 2e-6 per simulation (6e-5 at 0.1).
    "model_a": {"n_cell_lines": 5, "sgrnas_per_gene": [1, 2, 3], "missing_fraction": 0.05},
    # At mutation frequency 0.5 a gene is mutated in some but not all of its
    # 5 cell lines with probability 0.94, so nearly every simulation has
    # zeta_g for 3-4 genes and the mixture's omega and sigma_zeta are tested.
    "model_b": {"n_cell_lines": 5, "sgrnas_per_gene": [1, 2, 2, 3], "missing_fraction": 0.05,
                "mutation_frequency": 0.5},
    # Two lineages of two cell lines: delta_c within a lineage and lambda_l
    # both exist, and theta_gl has (3 - 1) x (2 - 1) free coordinates.
    "model_lineage": {"sgrnas_per_gene": [1, 2, 3], "cell_lines_per_lineage": [2, 2], "missing_fraction": 0.0},
}

#: Sampler settings of the catalogue run: two chains suffice because ranks are
#: taken among draws thinned to their ESS, and they halve the cost of 200 fits.
FIT_SETTINGS: dict[str, Any] = {"chains": 2, "iter_warmup": 500, "iter_sampling": 500}


def designs(models: list[str] | None = None) -> list[Design]:
    """Every model with priors, in both parameterizations (one for Model 1)."""
    from pystanmods.models import PARAMETERIZATIONS, get_model

    out = []
    for name, sizes in _SIZES.items():
        if models is not None and name not in models:
            continue
        model = get_model(name)
        if not model.priors:
            continue
        parameterizations = PARAMETERIZATIONS if model.hierarchical else ("centered",)
        out.extend(Design(name, p, dict(sizes)) for p in parameterizations)
    return out
