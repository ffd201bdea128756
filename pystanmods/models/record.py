"""One declarative record per model: every fact about a model in one place.

A model of the catalogue is its record (this module), its Stan template
(``stan/templates/<template>``) and its own build and simulate code (a
:class:`~pystanmods.models.base.Model` subclass that sets ``record``).
Everything else reads the record: the data wrapper (columns and per-unit
rules), the InferenceData dims (an undeclared variable is an error), the
gene-effect table, the SBC designs, the prior-parity test and ``pystanmods
info``. See ``docs/adding-a-model.md``.

The record is a frozen dataclass rather than a data file beside the template:
it is typed and checked when the module is imported, it can hold the
simulator's defaults (tuples, ``None`` for "draw it") as they are, and
editors and type checkers follow its names. The template stays the one place
of the Stan code, and the record names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pandas as pd

from pystanmods.data.errors import DataError

PARAMETERIZATIONS: tuple[str, ...] = ("centered", "noncentered")

#: Families of :attr:`ModelRecord.priors`, with the number of constants each takes.
PRIOR_FAMILIES: dict[str, int] = {"normal": 2, "halfnormal": 1, "exponential": 1, "lognormal": 2, "beta": 2}


@dataclass(frozen=True)
class Effect:
    """A group-level effect and the coordinates its programs sample.

    The parameterization rule: the non-centered program samples ``<name>_z``
    (standard normal) and builds ``<name>`` from it; the centered program
    samples ``<name>`` itself. An effect that sums to zero has ``free_dims``,
    the K - 1 free coordinates it is built from, and is sampled as
    ``<name>_raw`` (centered) or ``<name>_z`` (non-centered) on those.

    Attributes
    ----------
    name : str
        Stan variable, e.g. ``alpha_s``.
    dims : tuple of str
        Its dimension names, e.g. ``("sgrna",)``.
    free_dims : tuple of str, optional
        Dimension names of the free coordinates of a sum-to-zero effect.
    """

    name: str
    dims: tuple[str, ...]
    free_dims: tuple[str, ...] | None = None

    def sampled(self, parameterization: str) -> str:
        """The name the program's parameters block declares for this effect."""
        if parameterization == "noncentered":
            return f"{self.name}_z"
        return f"{self.name}_raw" if self.free_dims is not None else self.name

    def internal(self) -> dict[str, tuple[str, ...]]:
        """Internal coordinates over both parameterizations, with their dims."""
        inner = self.free_dims if self.free_dims is not None else self.dims
        out = {f"{self.name}_z": inner}
        if self.free_dims is not None:
            out[f"{self.name}_raw"] = self.free_dims
        return out


@dataclass(frozen=True)
class UnitRule:
    """A column measured once per unit: one value per ``unit`` (e.g. gene x cell line).

    ``RNA is one value per gene x cell line`` is ``UnitRule("rna")``. Numeric
    values of a unit that differ by more than a relative ``1e-12`` (the
    round-off of a CSV round trip) are refused by :meth:`check`; a column of
    labels (a lineage) is compared as the text the user wrote.
    """

    column: str
    unit: tuple[str, ...] = ("gene", "cell_line")

    #: Relative tolerance of "the same value": float round-off, not real spread.
    TOLERANCE = 1e-12

    def check(self, frame: pd.DataFrame, model: str) -> None:
        """Raise :class:`DataError` naming the units where ``column`` varies.

        Missing values are not this rule's concern (the column's own reader
        refuses them) and do not count as a second value.
        """
        if self.column not in frame or any(u not in frame for u in self.unit):
            return
        series = frame[self.column]
        values = pd.to_numeric(series, errors="coerce").astype(float)
        labels = bool((values.isna() & series.notna()).any())
        if labels:
            values = series.astype(str).where(series.notna())
        spread = values.groupby([frame[u] for u in self.unit], sort=True).agg(["min", "max", "size", "nunique"])
        if labels:
            varying, shown = spread[spread["nunique"] > 1], repr
        else:
            varying = spread[spread["max"] - spread["min"] > self.TOLERANCE * (1 + spread["max"].abs())]
            shown = "{:.4g}".format
        if len(varying):
            unit = " x ".join(self.unit)
            first = varying.index[0]
            where = ", ".join(f"{u} {v!r}" for u, v in zip(self.unit, first if isinstance(first, tuple) else (first,)))
            raise DataError(
                f"{model}: column '{self.column}' takes more than one value within {unit} "
                f"in {len(varying)} of {len(spread)} units ({int(varying['size'].sum())} rows), e.g. {where} "
                f"({shown(varying['min'].iloc[0])} to {shown(varying['max'].iloc[0])}); it is measured once per {unit}"
            )


@dataclass(frozen=True)
class ModelRecord:
    """Every fact about one model.

    Attributes
    ----------
    name, title : str
        Catalogue name (``model5``) and one-line description.
    template : str
        File under ``stan/templates`` that renders the model's programs.
    template_vars : mapping
        Variables passed to the template (one template can serve two models).
    required, optional : tuple of str
        Canonical columns of the tidy frame.
    unit_rules : tuple of UnitRule
        Columns measured once per unit, checked by every data path.
    outcome : str
        The modelled column.
    hierarchical : bool
        False for a model with one program (no group level).
    recommended : {"centered", "noncentered"}
        The program ``parameterization="recommended"`` (the default) runs.
    adapt_delta : float or None
        NUTS target acceptance when the caller sets none (None: Stan's 0.8).
    within_chain : bool
        Whether the programs have a reduce_sum likelihood (data flag ``grainsize``).
    priors : mapping
        Top-level parameter to its prior as written in the model block:
        ``("normal", loc, scale)``, ``("halfnormal", scale)`` (``normal(0,
        scale)`` on a ``<lower=0>`` parameter), ``("exponential", rate)``,
        ``("lognormal", log_loc, log_scale)`` or ``("beta", a, b)``. The
        template's header, its model block and this must agree
        (tests/test_templates.py).
    effects : tuple of Effect
        Group-level effects, with dims and parameterization rule.
    variables : mapping
        Other non-scalar Stan variables (transformed parameters, generated
        quantities) to their dims. With ``effects`` this is every non-scalar
        variable a program writes, besides ``log_lik`` and ``y_rep``.
    gene_effects : tuple of str
        The gene's effect on logFC: what the gene-effect table reports.
    slopes : tuple of str
        Per-gene (or per-guide) slopes on covariates.
    results : tuple of str
        Other quantities users read (noise scales, mixture probabilities).
    group_parameters : tuple of str
        Group effects whose recovery is judged by aggregate coverage.
    hyperparameters : tuple of str
        Population-level parameters whose recovery is checked one by one.
    defaults : mapping
        Sizes and true values of the default simulation.
    sbc : mapping or None
        Simulator sizes of the model's SBC design (None: no SBC design).
    sbc_fit : mapping
        Sampler settings its SBC fits need beyond the catalogue's
        (:data:`pystanmods.sbc.designs.FIT_SETTINGS`), e.g. longer chains.
    sbc_fit_by_program : mapping
        Settings for one program's SBC fits only, on top of ``sbc_fit``, keyed
        by parameterization, e.g. ``{"noncentered": {"max_treedepth": 12}}``.
    limitations : tuple of str
        What the model cannot do, in plain words.
    """

    name: str
    title: str
    template: str
    required: tuple[str, ...]
    priors: Mapping[str, tuple[Any, ...]]
    defaults: Mapping[str, Any]
    template_vars: Mapping[str, Any] = field(default_factory=dict)
    optional: tuple[str, ...] = ()
    unit_rules: tuple[UnitRule, ...] = ()
    outcome: str = "logfc"
    hierarchical: bool = True
    recommended: str = "noncentered"
    adapt_delta: float | None = 0.95
    within_chain: bool = False
    effects: tuple[Effect, ...] = ()
    variables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    gene_effects: tuple[str, ...] = ()
    slopes: tuple[str, ...] = ()
    results: tuple[str, ...] = ()
    group_parameters: tuple[str, ...] = ()
    hyperparameters: tuple[str, ...] = ()
    sbc: Mapping[str, Any] | None = None
    sbc_fit: Mapping[str, Any] = field(default_factory=dict)
    sbc_fit_by_program: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    limitations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Frozen all the way down: a record's mappings cannot be changed in place either.
        for name in ("priors", "defaults", "template_vars", "variables", "sbc", "sbc_fit"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, MappingProxyType(dict(value)))
        object.__setattr__(self, "sbc_fit_by_program", MappingProxyType(
            {k: MappingProxyType(dict(v)) for k, v in self.sbc_fit_by_program.items()}))
        problems = []
        for program in self.sbc_fit_by_program:
            if program not in PARAMETERIZATIONS or not self.hierarchical:
                problems.append(f"sbc_fit_by_program names {program!r}, not a program of this model")
        if self.recommended not in PARAMETERIZATIONS:
            problems.append(f"recommended {self.recommended!r} is not one of {PARAMETERIZATIONS}")
        if self.hierarchical != bool(self.effects):
            problems.append("a model is hierarchical exactly when it has group effects")
        for parameter, prior in self.priors.items():
            family, *args = prior
            if PRIOR_FAMILIES.get(family) != len(args):
                problems.append(f"prior of {parameter} {prior!r} is not one of {PRIOR_FAMILIES}")
        dims = self.dims()
        for name in (*self.gene_effects, *self.slopes, *self.results, *self.group_parameters):
            if name not in dims:
                problems.append(f"{name} is named as a result but has no declared dims")
        for name in self.gene_effects:
            if name in dims and "gene" not in dims[name]:
                problems.append(f"gene effect {name} has no gene dimension")
        for name in self.hyperparameters:
            if name in dims:
                problems.append(f"hyperparameter {name} has dims {dims[name]}; hyperparameters are scalars")
        if problems:
            raise ValueError(f"record of {self.name}: " + "; ".join(problems))

    def dims(self) -> dict[str, tuple[str, ...]]:
        """Every non-scalar Stan variable of the model's programs, with its dims.

        The group effects, their internal coordinates in both
        parameterizations, and :attr:`variables`.
        """
        out: dict[str, tuple[str, ...]] = {}
        for effect in self.effects:
            out[effect.name] = effect.dims
            out.update(effect.internal())
        out.update(self.variables)
        return out

    def internal(self) -> frozenset[str]:
        """Names of the internal coordinates (``_z``, ``_raw``), left out of summaries."""
        return frozenset(name for effect in self.effects for name in effect.internal())

    def sampled(self, parameterization: str) -> dict[str, str]:
        """Each group effect to the name its program samples in ``parameterization``."""
        return {effect.name: effect.sampled(parameterization) for effect in self.effects}

    def describe(self) -> list[str]:
        """The record as lines of text, for ``pystanmods info``."""
        lines = [f"{self.name}: {self.title}"]
        lines.append(
            f"columns: required {', '.join(self.required)}"
            + (f"; optional {', '.join(self.optional)}" if self.optional else "")
        )
        for rule in self.unit_rules:
            lines.append(f"  {rule.column}: one value per {' x '.join(rule.unit)}")
        if self.hierarchical:
            lines.append(f"parameterizations: centered, noncentered (recommended: {self.recommended})")
        lines.append(f"adapt_delta default: {self.adapt_delta if self.adapt_delta is not None else 'Stan default 0.8'}")
        if self.within_chain:
            lines.append("within-chain threads: yes (reduce_sum likelihood; threads_per_chain=)")
        lines.append("priors:")
        lines.extend(f"  {name} ~ {_prior_text(prior)}" for name, prior in self.priors.items())
        if self.effects:
            lines.append("group effects:")
            for effect in self.effects:
                rule = "sum to zero, " if effect.free_dims is not None else ""
                lines.append(
                    f"  {effect.name}[{', '.join(effect.dims)}]: {rule}sampled as "
                    f"{effect.sampled('centered')} (centered) / {effect.sampled('noncentered')} (noncentered)"
                )
        for label, names in (("gene effects", self.gene_effects), ("slopes", self.slopes), ("other results", self.results)):
            if names:
                lines.append(f"{label}: {', '.join(names)}")
        if self.sbc is not None:
            lines.append("SBC design: " + (", ".join(f"{k}={v}" for k, v in self.sbc.items()) or "the default simulation"))
        for text in self.limitations:
            lines.append(f"limitation: {text}")
        return lines


def _prior_text(prior: tuple[Any, ...]) -> str:
    family, *args = prior
    if family == "halfnormal":
        return f"half-normal(0, {args[0]:g})"
    return f"{family}({', '.join(f'{a:g}' for a in args)})"
