"""Shared by the scripts of this folder: the sample, the gene subset, its Stan data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "benchmarks" / "data" / "depmap-sample"
SPLIT = ("GNS", "GPR26", "NPHS2", "TFAP2D")  # the genes whose chains split on the whole sample


def subset(n_genes: int) -> list[str]:
    """n_genes drawn at random (seed 7) from the sample's guide map, plus the four split genes."""
    genes = sorted(pd.read_csv(DATA / "AvanaGuideMap.csv")["gene"].dropna().map(lambda s: s.split(" (")[0]).unique())
    pick = list(np.random.default_rng(7).choice(genes, n_genes, replace=False))
    return pick + [g for g in SPLIT if g not in pick]


def stan_data(n_genes: int) -> tuple[dict, list]:
    """The Stan data and jittered pilot inits that ``fit_gene_effects`` builds for the subset
    (2 chains, seed 1), taken just before it would sample."""
    import pystanmods.sampling as sampling
    from pystanmods.depmap import gene_effects as ge
    from pystanmods.depmap.release import read_release

    captured: dict = {}

    def grab(model, data, **kw):
        captured.update(data=data.data, inits=kw["inits"])
        raise KeyboardInterrupt

    real, sampling.fit = sampling.fit, grab
    try:
        ge.fit_gene_effects(read_release(DATA), genes=subset(n_genes), chains=2, seed=1, verbose=False)
    except KeyboardInterrupt:
        pass
    finally:
        sampling.fit = real
    return captured["data"], captured["inits"]
