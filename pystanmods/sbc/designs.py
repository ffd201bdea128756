"""The small designs on which every model of the catalogue is calibrated.

SBC needs hundreds of fits, so each design (a model record's ``sbc`` sizes)
is the smallest that still has every level of the model: a handful of genes, guides and cell lines. Small
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
    settings: dict[str, Any] = field(default_factory=lambda: dict(FIT_SETTINGS))

    @property
    def label(self) -> str:
        return f"{self.model}-{self.parameterization}"


#: Sampler settings of the catalogue run: two chains suffice because ranks are
#: taken among draws thinned to their ESS, and they halve the cost of 200 fits.
FIT_SETTINGS: dict[str, Any] = {"chains": 2, "iter_warmup": 500, "iter_sampling": 500}


def designs(models: list[str] | None = None) -> list[Design]:
    """Every model with an SBC design in its record (``record.sbc``), in both
    parameterizations (one for Model 1)."""
    from pystanmods.models import PARAMETERIZATIONS, all_models

    out = []
    for model in all_models():
        if models is not None and model.name not in models:
            continue
        if model.record.sbc is None or not model.priors:
            continue
        parameterizations = PARAMETERIZATIONS if model.hierarchical else ("centered",)
        record = model.record
        out.extend(
            Design(model.name, p, dict(record.sbc),
                   {**FIT_SETTINGS, **record.sbc_fit, **record.sbc_fit_by_program.get(p, {})})
            for p in parameterizations
        )
    return out
