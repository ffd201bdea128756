"""Sampler options under cmdstanpy's names, and what each engine calls them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from pystanmods.data.stan_json import plain


@dataclass(frozen=True)
class SamplerOptions:
    """NUTS settings, named as in :meth:`cmdstanpy.CmdStanModel.sample`.

    ``inits`` is a number (uniform(-x, x) on the unconstrained scale), one
    dict for every chain, or a list with a dict per chain.
    """

    chains: int = 4
    iter_warmup: int = 1000
    iter_sampling: int = 1000
    seed: int | None = None
    adapt_delta: float | None = None
    max_treedepth: int | None = None
    inits: float | Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    thin: int | None = None
    step_size: float | None = None
    refresh: int | None = None
    show_progress: bool = True
    #: Threads for each chain's reduce_sum. CmdStan honours it per chain; the
    #: embedded engine has no such setting (its chain processes use the
    #: threading library's default, every core), so there it only selects
    #: the threaded path.
    threads_per_chain: int | None = None

    #: Options that must be whole numbers (chains, iter_sampling, iter_warmup first).
    INTEGERS = ("chains", "iter_sampling", "iter_warmup", "seed", "thin", "max_treedepth", "refresh", "threads_per_chain")

    #: Stan's defaults where an option is left unset.
    STAN_DEFAULTS = {"adapt_delta": 0.8, "max_treedepth": 10, "thin": 1}

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> SamplerOptions:
        known = {f.name for f in fields(cls)}
        unknown = set(kwargs) - known
        if unknown:
            raise TypeError(f"unknown sampler option(s) {sorted(unknown)}; options are {sorted(known)}")
        options = cls(**kwargs)
        options.check()
        # Whole floats (chains=4.0) pass the check; engines get ints.
        whole = {n: int(getattr(options, n)) for n in cls.INTEGERS if getattr(options, n) is not None}
        return replace(options, **whole)

    def check(self) -> None:
        check_count("chains", self.chains, minimum=1)
        check_count("iter_sampling", self.iter_sampling, minimum=1)
        check_count("iter_warmup", self.iter_warmup, minimum=0)
        for name in self.INTEGERS[3:]:
            if getattr(self, name) is not None:
                check_count(name, getattr(self, name), minimum=0 if name in ("seed", "refresh") else 1)
        if self.adapt_delta is not None and not 0 < self.adapt_delta < 1:
            raise ValueError(f"adapt_delta must lie in (0, 1), got {self.adapt_delta}")
        if self.seed is not None and not 0 <= int(self.seed) < 2**31:
            raise ValueError(f"seed must lie in [0, 2**31), got {self.seed}")
        if self.threads_per_chain is not None and self.threads_per_chain < 1:
            raise ValueError(f"threads_per_chain must be at least 1, got {self.threads_per_chain}")

    @property
    def kept_per_chain(self) -> int:
        """Draws each chain keeps: ``iter_sampling`` thinned by ``thin``, rounded up as Stan does."""
        return -(-self.iter_sampling // int(self.value("thin")))

    def value(self, name: str) -> Any:
        """The option's value, or Stan's default when unset."""
        current = getattr(self, name)
        return self.STAN_DEFAULTS.get(name) if current is None else current

    def chain_inits(self) -> list[dict[str, Any]] | None:
        """One init dict per chain, or None when inits are not dicts."""
        if self.inits is None or isinstance(self.inits, (int, float)):
            return None
        if isinstance(self.inits, Mapping):
            return [plain(self.inits) for _ in range(self.chains)]
        inits = [plain(i) for i in self.inits]
        if len(inits) != self.chains:
            raise ValueError(f"inits has {len(inits)} entries for {self.chains} chains")
        return inits

    def for_cmdstanpy(self) -> dict[str, Any]:
        """Keyword arguments of ``CmdStanModel.sample``."""
        kwargs = {k: v for k, v in asdict(self).items() if v is not None}
        inits = self.chain_inits()
        if inits is not None:
            kwargs["inits"] = inits
        return kwargs

    def for_httpstan(self) -> dict[str, Any]:
        """Keyword arguments of PyStan 3's ``Model.sample``.

        The seed is not among them: PyStan takes it in ``stan.build``.
        """
        mapping = {
            "chains": "num_chains",
            "iter_warmup": "num_warmup",
            "iter_sampling": "num_samples",
            "thin": "num_thin",
            "adapt_delta": "delta",
            "max_treedepth": "max_depth",
            "step_size": "stepsize",
            "refresh": "refresh",
        }
        kwargs = {new: getattr(self, old) for old, new in mapping.items() if getattr(self, old) is not None}
        inits = self.chain_inits()
        if inits is not None:
            kwargs["init"] = inits
        elif isinstance(self.inits, (int, float)):
            kwargs["init_radius"] = float(self.inits)
        return kwargs


def check_count(name: str, value: Any, minimum: int) -> None:
    """Raise ValueError unless ``value`` is a whole number >= ``minimum``.

    A float with no fraction (``4.0``) passes; ``2.5`` does not, where ``int()``
    would silently run 2 chains, and neither do strings (``seed='abc'``) or bools.
    """
    whole = isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating)) and float(value).is_integer())
    if isinstance(value, bool) or not whole:
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")

