"""The one exception type for bad input."""

from __future__ import annotations


class DataError(ValueError):
    """Data that a model cannot use: the message names the column, the value and the rows."""
