"""Stan data and parameter values as JSON: files for direct CmdStan use, and
plain Python values for the engines' JSON encoders."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from cmdstanpy import write_stan_json as _cmdstanpy_write_stan_json


def write_stan_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Write a Stan data dict in CmdStan's JSON format.

    Uses cmdstanpy's writer so that numpy arrays, integer arrays and empty
    arrays come out exactly as CmdStan reads them.
    """
    _cmdstanpy_write_stan_json(os.fspath(path), dict(data))


def plain(value: Any) -> Any:
    """``value`` with numpy arrays as (nested) lists and numpy scalars as Python
    numbers, inside dicts, lists and tuples too: what ``json`` and PyStan take."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
