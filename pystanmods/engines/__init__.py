"""The two Stan engines behind one interface, and how one is chosen.

``cmdstan`` (cmdstanpy) is used when a CmdStan installation is found,
otherwise the embedded ``pystan`` engine (httpstan). ``engine=`` or the
environment variable ``PYSTANMODS_ENGINE`` overrides the choice.
"""

from __future__ import annotations

import os

from pystanmods.engines.base import Draws, Engine, Program
from pystanmods.engines.cmdstan import CmdStanEngine, find_cmdstan
from pystanmods.engines.options import SamplerOptions
from pystanmods.engines.pystan import PyStanEngine

ENGINES: dict[str, type[Engine]] = {"cmdstan": CmdStanEngine, "pystan": PyStanEngine}
_INSTANCES: dict[str, Engine] = {}


def default_engine_name() -> str:
    """``$PYSTANMODS_ENGINE``, else ``cmdstan`` if installed, else ``pystan``."""
    requested = os.environ.get("PYSTANMODS_ENGINE", "").strip().lower()
    if requested:
        return requested
    return "cmdstan" if find_cmdstan() is not None else "pystan"


def get_engine(engine: str | Engine | None = None) -> Engine:
    """The engine instance for a name (``cmdstan``, ``pystan``) or the default."""
    if isinstance(engine, Engine):
        return engine
    name = (engine or default_engine_name()).strip().lower()
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; engines are {sorted(ENGINES)}")
    if name not in _INSTANCES:
        _INSTANCES[name] = ENGINES[name]()
    return _INSTANCES[name]


__all__ = ["Draws", "Engine", "Program", "SamplerOptions", "default_engine_name", "get_engine"]
