"""Simulation-based calibration of the catalogue's models, on Dask.

``run`` needs the ``dask`` extra (``pip install pystanmods[dask]``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SBCResult", "run"]


def __getattr__(name: str) -> Any:
    # Imported on first use so that ``import pystanmods`` works without Dask.
    if name in __all__:
        from pystanmods.sbc import core

        return getattr(core, name)
    raise AttributeError(name)
