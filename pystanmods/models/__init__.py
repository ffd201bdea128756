"""The model catalogue: every module of this package that defines a model
registers it (``@register``, :func:`pystanmods.models.base.register`) when
imported, so adding a model touches only its own module and its template."""

from __future__ import annotations

import importlib
import pkgutil

from pystanmods.data.errors import UnknownModelError
from pystanmods.models.base import CATALOGUE, PARAMETERIZATIONS, Model, Simulation, StanData, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

#: Catalogue order: by name (model1 ... model5_flat, then the lettered models).
_CATALOGUE: dict[str, Model] = {name: CATALOGUE[name] for name in sorted(CATALOGUE)}


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


def require_threaded(model: Model, setting: str) -> None:
    """Refuse a within-chain threading ``setting`` for a model without a reduce_sum likelihood."""
    if not model.within_chain:
        raise ValueError(
            f"{model.name} has no threaded likelihood, so {setting} would change nothing; "
            f"models with one: {threaded_models()}"
        )


__all__ = ["PARAMETERIZATIONS", "Model", "Simulation", "StanData", "all_models", "get_model", "list_models", "register", "require_threaded", "threaded_models"]
