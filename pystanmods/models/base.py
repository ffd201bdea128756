"""What every model in the catalogue provides: its Stan programs, its data
wrapper and its simulator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pystanmods.data import DataError, resolve_columns

PARAMETERIZATIONS: tuple[str, ...] = ("centered", "noncentered")


def stan_dir() -> Path:
    """Directory of the Stan programs and templates.

    ``pystanmods/stan`` in an installed wheel, ``stan/`` at the top of a
    source checkout (and so of an editable install).
    """
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "stan", package.parent / "stan"):
        if (candidate / "templates").is_dir():
            return candidate
    raise FileNotFoundError(f"no Stan programs found beside {package}")


@dataclass
class StanData:
    """A model's Stan data dict with the labels that become InferenceData coords.

    Attributes
    ----------
    data : dict
        The Stan data dict, with 1-based indices.
    coords : dict
        Dimension name to labels (``gene``, ``cell_line``, ``sgrna``, ``obs``, ...).
    dims : dict
        Stan variable name to its dimension names.
    observed : numpy.ndarray
        The outcome, as passed to Stan.
    frame : pandas.DataFrame
        The validated frame under canonical column names.
    """

    data: dict[str, Any]
    coords: dict[str, list[Any]]
    dims: dict[str, list[str]]
    observed: np.ndarray
    frame: pd.DataFrame


@dataclass
class Simulation:
    """Simulated tidy data with the values that generated it.

    Attributes
    ----------
    data : pandas.DataFrame
        Tidy data in the model's default column names.
    truth : dict
        True values under the model's parameter names, as identified by the
        model: where the model fixes a location (cell-line effects that sum to
        zero), the truth is shifted the same way, so that it is what the
        posterior estimates.
    generating : dict
        The values as drawn, before any such shift, and the settings used.
    """

    data: pd.DataFrame
    truth: dict[str, Any]
    generating: dict[str, Any] = field(default_factory=dict)


class Model:
    """Base class of the model catalogue.

    Subclasses set the class attributes and implement :meth:`_build` and
    :meth:`simulate`.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    template: ClassVar[str]
    template_vars: ClassVar[Mapping[str, Any]] = {}
    hierarchical: ClassVar[bool] = True
    required: ClassVar[tuple[str, ...]]
    optional: ClassVar[tuple[str, ...]] = ()
    recommended: ClassVar[str] = "noncentered"
    #: NUTS target acceptance used when the caller sets none. Hierarchical
    #: models default to 0.95, as rstanarm does for its multilevel models: a
    #: smaller step costs little on these posteriors and removes the
    #: occasional divergence near a scale parameter's boundary.
    adapt_delta: ClassVar[float | None] = 0.95
    #: Whether the programs can split the likelihood's rows over threads with
    #: reduce_sum: the data flag ``grainsize`` (0, the default, is the serial
    #: vectorised statement) picks the path in the same compiled program.
    within_chain: ClassVar[bool] = False
    #: Stan variable -> dims, beyond log_lik and y_rep.
    variable_dims: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: Group-level effects whose coverage is judged in aggregate.
    group_parameters: ClassVar[tuple[str, ...]] = ()
    #: Population-level parameters checked against the truth one by one.
    hyperparameters: ClassVar[tuple[str, ...]] = ()
    #: Sizes and true values of the default simulation (the seed's).
    defaults: ClassVar[Mapping[str, Any]] = {}
    outcome: ClassVar[str] = "logfc"
    #: The priors of the Stan program's top-level parameters, as written in its
    #: model block: ``("normal", loc, scale)``, ``("halfnormal", scale)`` (a
    #: ``normal(0, scale)`` on a ``<lower=0>`` parameter),
    #: ``("exponential", rate)``, ``("lognormal", log_loc, log_scale)`` or
    #: ``("beta", a, b)``. :meth:`simulate_prior` draws from them and
    #: tests/test_sbc.py checks them against the ``.stan`` files. A new model
    #: gets prior draws by filling this in and, where its simulator cannot draw a
    #: group level from these values as the program does, :meth:`_prior_overrides`.
    priors: ClassVar[Mapping[str, tuple[Any, ...]]] = {}
    #: What the model assumes and where its intervals are too narrow, one
    #: sentence each; ``pystanmods info`` prints them.
    limitations: ClassVar[tuple[str, ...]] = ()

    # ----------------------------------------------------------- programs
    @property
    def parameterizations(self) -> tuple[str, ...]:
        return PARAMETERIZATIONS

    def check_parameterization(self, parameterization: str) -> str:
        """Validate a parameterization; ``"recommended"`` resolves to the model's own."""
        if parameterization == "recommended":
            return self.recommended
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}"
            )
        return parameterization

    def program_name(self, parameterization: str) -> str:
        """File stem of the Stan program, e.g. ``model5_noncentered``.

        A model with no group level has one program for both parameterizations.
        """
        parameterization = self.check_parameterization(parameterization)
        return self.name if not self.hierarchical else f"{self.name}_{parameterization}"

    def programs(self) -> list[str]:
        """The distinct program stems of this model."""
        return sorted({self.program_name(p) for p in PARAMETERIZATIONS})

    def stan_file(self, parameterization: str = "noncentered") -> Path:
        """Path of the committed ``.stan`` file for a parameterization."""
        return stan_dir() / f"{self.program_name(parameterization)}.stan"

    def stan_code(self, parameterization: str = "noncentered") -> str:
        return self.stan_file(parameterization).read_text()

    # --------------------------------------------------------------- data
    def prepare(
        self,
        data: pd.DataFrame,
        columns: Mapping[str, str] | None = None,
        *,
        compute_log_lik: bool = True,
        compute_y_rep: bool = True,
    ) -> StanData:
        """Validate a tidy frame and build the Stan data with its coords.

        Parameters
        ----------
        data : pandas.DataFrame
            One row per observation, with the model's columns.
        columns : mapping, optional
            Canonical column name to the name used in ``data``.
        compute_log_lik, compute_y_rep : bool
            Whether the fit keeps pointwise log-likelihoods and replicated
            data; switching them off changes only the data, not the program.
        """
        frame = resolve_columns(data, self.required, self.optional, columns, model=self.name)
        stan_data, coords, dims = self._build(frame)
        n = int(stan_data["N"])
        obs = frame.index if frame.index.is_unique else pd.RangeIndex(n)
        coords = {**coords, "obs": list(obs)}
        dims = {**dims, "log_lik": ["obs"], "y_rep": ["obs"]}
        stan_data["compute_log_lik"] = int(bool(compute_log_lik))
        stan_data["compute_y_rep"] = int(bool(compute_y_rep))
        if self.within_chain:
            stan_data["grainsize"] = 0
        return StanData(
            data=stan_data,
            coords=coords,
            dims=dims,
            observed=np.asarray(stan_data[self.outcome], dtype=float),
            frame=frame,
        )

    def standata(self, data: pd.DataFrame, columns: Mapping[str, str] | None = None, **flags: bool) -> dict[str, Any]:
        """The Stan data dict for a tidy frame (see :meth:`prepare`)."""
        return self.prepare(data, columns, **flags).data

    def _build(
        self, frame: pd.DataFrame
    ) -> tuple[dict[str, Any], dict[str, list[Any]], dict[str, list[str]]]:
        raise NotImplementedError

    # ---------------------------------------------------------- simulation
    def settings(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The default simulation settings updated with ``overrides``."""
        unknown = set(overrides) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"{self.name} simulation has no setting {sorted(unknown)}; "
                f"settings are {sorted(self.defaults)}"
            )
        return {**self.defaults, **overrides}

    def simulate(self, seed: int | None = None, **overrides: Any) -> Simulation:
        raise NotImplementedError

    def draw_prior(self, rng: np.random.Generator, prior_scale: float = 1.0) -> dict[str, float]:
        """One draw of each top-level parameter from :attr:`priors`.

        ``prior_scale`` widens every prior (see :func:`draw_from`); 1 is the
        Stan program's prior, anything else a deliberately wrong one (used to
        show that calibration checks fail).
        """
        if not self.priors:
            raise NotImplementedError(f"{self.name} has no prior simulator: set {type(self).__name__}.priors")
        drawn: dict[str, float] = {}
        for name, prior in self.priors.items():
            try:
                drawn[name] = draw_from(prior, rng, prior_scale)
            except ValueError as error:
                raise ValueError(f"{self.name}: {error} for {name}") from None
        return drawn

    def _prior_overrides(
        self, rng: np.random.Generator, drawn: Mapping[str, float], settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Simulator settings that make :meth:`simulate` follow the program's
        prior below the top level (for example sum-to-zero effects drawn
        already centred). The default, nothing, suits simulators that draw
        every group effect from the hyperparameters they are given."""
        return {}

    def simulate_prior(self, seed: int | None = None, *, prior_scale: float = 1.0, **overrides: Any) -> Simulation:
        """Simulate with every parameter drawn from the Stan program's prior.

        The top-level parameters come from :meth:`draw_prior`; the group effects
        and the data from :meth:`simulate` given them. ``overrides`` set sizes
        (``n_genes``, ``n_cell_lines``, ...), not parameter values. The truth is
        then a draw from the joint prior, as simulation-based calibration needs.
        """
        fixed = set(overrides) & set(self.priors)
        if fixed:
            raise ValueError(f"{self.name}: {sorted(fixed)} are drawn from the prior and cannot be fixed")
        rng = np.random.default_rng(seed)
        drawn = self.draw_prior(rng, prior_scale)
        settings = self.settings({**overrides, **drawn})
        extra = self._prior_overrides(rng, drawn, settings)
        simulation = self.simulate(seed=int(rng.integers(2**32)), **{**overrides, **drawn, **extra})
        simulation.generating.update(from_prior=True, prior_scale=float(prior_scale))
        return simulation

    # -------------------------------------------------------------- misc
    def describe(self) -> str:
        """The model's equations, from the header comment of its Stan program."""
        code = self.stan_code(self.recommended if self.hierarchical else "centered")
        start, end = code.find("/*"), code.find("*/")
        header = code[start + 2 : end] if start >= 0 else ""
        return "\n".join(line.rstrip() for line in header.strip("\n").splitlines())

    def __repr__(self) -> str:
        return f"<pystanmods model {self.name}: {self.title}>"


def draw_from(prior: Sequence[Any], rng: np.random.Generator, prior_scale: float = 1.0) -> float:
    """One draw from a prior in the form of :attr:`Model.priors`.

    ``prior_scale`` multiplies the sd of a normal, the mean of an exponential
    and the log-scale sd of a lognormal, and divides both shapes of a beta
    (same mean, wider for ``prior_scale > 1``).
    """
    family, *args = prior
    if family == "normal":
        return float(rng.normal(args[0], args[1] * prior_scale))
    if family == "halfnormal":
        return float(abs(rng.normal(0.0, args[0] * prior_scale)))
    if family == "exponential":
        # Stan's exponential takes a rate, numpy's a scale (the mean).
        return float(rng.exponential(prior_scale / args[0]))
    if family == "lognormal":
        return float(rng.lognormal(args[0], args[1] * prior_scale))
    if family == "beta":
        return float(rng.beta(args[0] / prior_scale, args[1] / prior_scale))
    raise ValueError(f"unknown prior family {family!r}")


def require_single(frame: pd.DataFrame, column: str, model: str) -> None:
    """Raise unless ``column`` is absent or holds a single level."""
    if column in frame:
        levels = frame[column].astype(str).unique()
        if len(levels) > 1:
            raise DataError(
                f"{model} fits one {column}; column '{column}' has {len(levels)} levels "
                f"({', '.join(map(repr, levels[:3]))}{', ...' if len(levels) > 3 else ''}) "
                f"over {len(frame)} rows"
            )


def labels(prefix: str, n: int) -> list[str]:
    """Zero-padded labels such as ``cell01`` that sort in numeric order."""
    width = len(str(n))
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def as_array(value: Sequence[float] | np.ndarray | None, size: int, name: str) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=float)
    if array.shape != (size,):
        raise ValueError(f"{name} needs {size} values, got {array.shape[0] if array.ndim else 1}")
    return array
