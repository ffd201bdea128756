"""Batch fits on Dask: one fit of a model per group (lineage, gene set, ...).

``fit_groups`` needs the ``dask`` extra (``pip install pystanmods[dask]``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BatchResult", "fit_groups", "group_seed"]


def __getattr__(name: str) -> Any:
    # Imported on first use so that ``import pystanmods`` works without Dask.
    if name in __all__:
        from pystanmods.batch import groups

        return getattr(groups, name)
    raise AttributeError(name)
