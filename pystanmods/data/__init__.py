"""Data preparation: tidy frames in, validated Stan data out."""

from pystanmods.data.errors import DataError, SetupError, UnknownModelError
from pystanmods.data.indexing import Index, encode, nested
from pystanmods.data.stan_json import plain, write_stan_json
from pystanmods.data.validate import InitializationError, label_column, numeric_column, resolve_columns

__all__ = [
    "DataError",
    "InitializationError",
    "SetupError",
    "UnknownModelError",
    "Index",
    "encode",
    "label_column",
    "nested",
    "numeric_column",
    "plain",
    "resolve_columns",
    "write_stan_json",
]
