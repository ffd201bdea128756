"""Stan data dicts as JSON files for direct CmdStan use."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cmdstanpy import write_stan_json as _cmdstanpy_write_stan_json


def write_stan_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Write a Stan data dict in CmdStan's JSON format.

    Uses cmdstanpy's writer so that numpy arrays, integer arrays and empty
    arrays come out exactly as CmdStan reads them.
    """
    _cmdstanpy_write_stan_json(os.fspath(path), dict(data))
