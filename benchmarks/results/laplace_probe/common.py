"""The gene_effect centered program's density on the DepMap sample, as the compiled module exposes it.

Shared by the probe's scripts: the module of httpstan's compiled program, the
data dict its functions take, the pilot point in unconstrained coordinates,
and where each parameter sits in them.
"""

from __future__ import annotations

from typing import Any

import httpstan.models
import numpy as np

from pystanmods.data.stan_json import plain
from pystanmods.depmap import prepare
from pystanmods.depmap.release import read_release
from pystanmods.engines import get_engine
from pystanmods.engines.asyncio_compat import run_outside_loop
from pystanmods.models.gene_effect import GeneEffect, pilot
from pystanmods.sampling import compile_model

SAMPLE = "benchmarks/data/depmap-sample"


def density(n_genes: int | None = None) -> tuple[Any, dict[str, Any], np.ndarray, dict[str, slice], dict[str, Any]]:
    """Module, data, pilot point, parameter layout and Stan data of the first ``n_genes`` genes (all if None)."""
    release = read_release(SAMPLE)
    genes = None
    if n_genes is not None:
        everything, _ = prepare(release, covariates=["copy_number"], multi_aligned="keep", verbose=False)
        genes = sorted(everything["gene"].unique())[:n_genes]
    frame, _ = prepare(release, genes=genes, covariates=["copy_number"], multi_aligned="keep", verbose=False)
    stan_data = GeneEffect().prepare(frame, compute_log_lik=False, compute_y_rep=False).data
    scales, inits = pilot(stan_data)
    stan_data.update(scales)
    engine = get_engine("pystan")
    compiled = compile_model(GeneEffect(), "centered", engine, quiet=True)
    posterior = engine._posterior(compiled.program, compiled.directory, stan_data, None)
    module = run_outside_loop(httpstan.models.import_services_extension_module, posterior.model_name)
    data = plain(stan_data)
    x0 = np.array(module.transform_inits(data, plain(inits)))
    # Parameters come first among the module's names, each as many unconstrained
    # values as constrained ones (no simplex or the like in this program).
    layout, position = {}, 0
    for name, dims in zip(module.get_param_names(data), module.get_dims(data)):
        if position >= len(x0):
            break
        size = int(np.prod(dims)) if dims else 1
        layout[name] = slice(position, position + size)
        position += size
    return module, data, x0, layout, stan_data
