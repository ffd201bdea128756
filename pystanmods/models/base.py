"""What every model in the catalogue provides: its Stan programs, its data
wrapper and its simulator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pystanmods.data import DataError, resolve_columns
from pystanmods.data.validate import require_two_levels
from pystanmods.models.record import PARAMETERIZATIONS, ModelRecord, UnitRule


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

    A subclass sets :attr:`record`, its :class:`ModelRecord` (every fact about
    the model), and implements :meth:`_build` and :meth:`simulate`. The
    record's fields are also class attributes (``model.priors``,
    ``model.recommended``, ...), read from the record, never set apart from it.
    """

    record: ClassVar[ModelRecord]

    name: ClassVar[str]
    title: ClassVar[str]
    template: ClassVar[str]
    template_vars: ClassVar[Mapping[str, Any]]
    hierarchical: ClassVar[bool]
    required: ClassVar[tuple[str, ...]]
    optional: ClassVar[tuple[str, ...]]
    unit_rules: ClassVar[tuple[UnitRule, ...]]
    recommended: ClassVar[str]
    adapt_delta: ClassVar[float | None]
    within_chain: ClassVar[bool]
    group_parameters: ClassVar[tuple[str, ...]]
    hyperparameters: ClassVar[tuple[str, ...]]
    defaults: ClassVar[Mapping[str, Any]]
    outcome: ClassVar[str]
    priors: ClassVar[Mapping[str, tuple[Any, ...]]]
    #: Stan variable -> dims, beyond log_lik and y_rep (:meth:`ModelRecord.dims`).
    variable_dims: ClassVar[Mapping[str, tuple[str, ...]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        record = cls.__dict__.get("record")
        if record is None:
            return
        for f in fields(ModelRecord):
            if f.name in cls.__dict__:
                raise TypeError(f"{cls.__name__} sets {f.name} outside its record; set it in {cls.__name__}.record")
            setattr(cls, f.name, getattr(record, f.name))
        cls.variable_dims = record.dims()

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
        stan_data, coords = self._build(frame)
        # After _build's structural checks (labels, nesting), which name the
        # more basic problem when a row is wrong in both ways.
        self.check_units(frame)
        n = int(stan_data["N"])
        require_two_levels(self.name, self.stan_code("noncentered"), stan_data, n)
        obs = frame.index if frame.index.is_unique else pd.RangeIndex(n)
        coords = {**coords, "obs": list(obs)}
        dims = {**{k: list(v) for k, v in self.variable_dims.items()}, "log_lik": ["obs"], "y_rep": ["obs"]}
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

    def check_units(self, frame: pd.DataFrame) -> None:
        """Apply every :class:`UnitRule` of this model (``unit_rules``: the record's,
        or an instance's own) to a frame under canonical column names."""
        for rule in self.unit_rules:
            rule.check(frame, self.name)

    def standata(self, data: pd.DataFrame, columns: Mapping[str, str] | None = None, **flags: bool) -> dict[str, Any]:
        """The Stan data dict for a tidy frame (see :meth:`prepare`)."""
        return self.prepare(data, columns, **flags).data

    def _build(self, frame: pd.DataFrame) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        """The Stan data and the coords of a validated frame; the dims are the record's."""
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

    @property
    def prior_data(self) -> dict[str, float]:
        """Data fields that set constants of the program's priors (none unless a model has them)."""
        return {}

    def prior(self, name: str) -> tuple[Any, ...]:
        """The prior of top-level parameter ``name`` in this instance's program.

        The record's, unless the instance sets a prior's constants through
        :attr:`prior_data` (:class:`~pystanmods.models.ragged.ModelB`'s ``sigma_zeta``).
        """
        return tuple(self.priors[name])

    def draw_prior(self, rng: np.random.Generator, prior_scale: float = 1.0) -> dict[str, float]:
        """One draw of each top-level parameter from :attr:`priors`.

        ``prior_scale`` widens every prior (see :func:`draw_from`); 1 is the
        Stan program's prior, anything else a deliberately wrong one (used to
        show that calibration checks fail).
        """
        if not self.priors:
            raise NotImplementedError(f"{self.name} has no prior simulator: set {type(self).__name__}.priors")
        drawn: dict[str, float] = {}
        for name in self.priors:
            try:
                drawn[name] = draw_from(self.prior(name), rng, prior_scale)
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

    def sbc_inputs(self, simulation: Simulation) -> tuple[pd.DataFrame | StanData, dict[str, Any]]:
        """The data an SBC fit gets and the truths its draws are ranked against.

        By default the simulated frame and truth as they are; a model whose
        program writes a variable only on request, or in another layout than
        the simulator's truth, prepares the data and reshapes the truth here.
        """
        return simulation.data, simulation.truth

    # -------------------------------------------------------------- misc
    def describe(self) -> str:
        """The model's equations, from the header comment of its Stan program."""
        code = self.stan_code(self.recommended if self.hierarchical else "centered")
        start, end = code.find("/*"), code.find("*/")
        header = code[start + 2 : end] if start >= 0 else ""
        return "\n".join(line.rstrip() for line in header.strip("\n").splitlines())

    def __repr__(self) -> str:
        return f"<pystanmods model {self.name}: {self.title}>"


#: The catalogue, model name to an instance, in the order the modules register them.
CATALOGUE: dict[str, Model] = {}


def register(cls: type[Model]) -> type[Model]:
    """Class decorator: add a model (a subclass with its own record) to the catalogue.

    The model modules of :mod:`pystanmods.models` are imported by the package,
    so a new model needs no other registration.
    """
    record = cls.__dict__.get("record")
    if not isinstance(record, ModelRecord):
        raise TypeError(f"{cls.__name__} has no record of its own; set {cls.__name__}.record = ModelRecord(...)")
    if record.name in CATALOGUE:
        raise ValueError(f"two models are named {record.name!r}: {type(CATALOGUE[record.name]).__name__} and {cls.__name__}")
    CATALOGUE[record.name] = cls()
    return cls


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
