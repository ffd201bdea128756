"""The exception types of bad input and of a missing setup: the user's to fix,
so the command line reports them in one line (anything else is a bug and keeps
its traceback)."""

from __future__ import annotations


class DataError(ValueError):
    """Data that a model cannot use: the message names the column, the value and the rows."""


class UnknownModelError(DataError, KeyError):
    """A model name not in the catalogue (a ``KeyError`` too, as a failed lookup)."""

    __str__ = ValueError.__str__  # KeyError's would quote the message


class SetupError(RuntimeError):
    """The environment lacks what was asked for: CmdStan, an optional extra, usable Dask workers."""
