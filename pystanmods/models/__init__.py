"""The model catalogue."""

from __future__ import annotations

from pystanmods.data.errors import UnknownModelError
from pystanmods.models.base import PARAMETERIZATIONS, Model, Simulation, StanData
from pystanmods.models.guides import Model5, Model5Flat
from pystanmods.models.lineage import ModelLineage
from pystanmods.models.noise import ModelC
from pystanmods.models.ragged import ModelA, ModelB
from pystanmods.models.regression import Model1, Model2
from pystanmods.models.replicates import Model3
from pystanmods.models.varying import Model4

_CATALOGUE: dict[str, Model] = {m.name: m for m in (Model1(), Model2(), Model3(), Model4(), Model5(), Model5Flat())}
for _model in (ModelC(), ModelA(), ModelB(), ModelLineage()):
    _CATALOGUE[_model.name] = _model


def register(model: Model) -> Model:
    """Add a model to the catalogue (used by the model modules)."""
    _CATALOGUE[model.name] = model
    return model


def list_models() -> list[str]:
    """Names of the models in the catalogue."""
    return list(_CATALOGUE)


def _normalise(name: str) -> str:
    return name.strip().lower().replace(" ", "").replace("-", "_")


def get_model(name: str | Model) -> Model:
    """Look a model up by name: ``"model5"``, ``"Model 5"``, ``"5"`` or ``"model5-flat"``."""
    if isinstance(name, Model):
        return name
    key = _normalise(str(name))
    for candidate in (key, f"model{key}", f"model_{key}"):
        if candidate in _CATALOGUE:
            return _CATALOGUE[candidate]
    raise UnknownModelError(f"no model named {name!r}; models are {', '.join(_CATALOGUE)}")


def all_models() -> list[Model]:
    return list(_CATALOGUE.values())


def threaded_models() -> list[str]:
    """Names of the models whose programs have a reduce_sum likelihood (``within_chain``)."""
    return [m.name for m in all_models() if m.within_chain]


__all__ = ["PARAMETERIZATIONS", "Model", "Simulation", "StanData", "all_models", "get_model", "list_models", "register", "threaded_models"]
