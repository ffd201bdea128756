"""DepMap releases to tidy modeling frames.

>>> from pystanmods import depmap
>>> frame, report = depmap.prepare("tests/data/depmap-sample", genes=["KRAS", "MYB"])  # doctest: +SKIP
>>> depmap.supported_models(frame)  # doctest: +SKIP
>>> fit = depmap.fit_frame("model5", frame, engine="pystan", seed=1)  # doctest: +SKIP
>>> depmap.gene_effect_table(fit)  # the same as fit.gene_effects()  # doctest: +SKIP

How logFC is computed is in :mod:`pystanmods.depmap.logfc`; how covariates
are joined in :mod:`pystanmods.depmap.covariates`. A fit's gene-effect
table is :meth:`pystanmods.StanFit.gene_effects`, the same for every frame.
"""

from pystanmods.stanfit.effects import gene_effect_table
from pystanmods.depmap.fit import check_frame, fit_frame, supported_models
from pystanmods.depmap.gene_effects import GeneEffects, fit_gene_effects
from pystanmods.depmap.by_group import LineageFits, fit_gene_effects_by
from pystanmods.depmap.simulate import simulated_release
from pystanmods.depmap.prepare import COLUMNS, Prepared, prepare
from pystanmods.depmap.release import Release, parse_gene_labels, read_release
from pystanmods.depmap.report import PrepareReport

__all__ = [
    "COLUMNS",
    "GeneEffects",
    "LineageFits",
    "PrepareReport",
    "Prepared",
    "Release",
    "check_frame",
    "fit_frame",
    "fit_gene_effects",
    "fit_gene_effects_by",
    "gene_effect_table",
    "parse_gene_labels",
    "prepare",
    "read_release",
    "simulated_release",
    "supported_models",
]
