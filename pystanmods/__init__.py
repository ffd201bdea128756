"""pystanmods: precompiled hierarchical Stan models for CRISPR-Cas9 knockout screens."""

import warnings

# ArviZ announces its refactor on every import; it is not about this package's use.
warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor.*", category=FutureWarning)

from pystanmods.data import DataError, write_stan_json
from pystanmods.models import get_model, list_models
from pystanmods.sampling import compile_model, fit, log_prob, pathfinder
from pystanmods.stanfit import StanFit
from pystanmods.stanfit.compare import compare

__version__ = "0.1.0"
__all__ = [
    "DataError",
    "StanFit",
    "compare",
    "compile_model",
    "fit",
    "get_model",
    "list_models",
    "log_prob",
    "pathfinder",
    "write_stan_json",
]
